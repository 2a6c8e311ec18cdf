// Node.js entry point. The WebAssembly module is inlined (base64, made by
// .ci/build-js), not read from a file beside this one: a bundle made by
// esbuild (as CDK's NodejsFunction and SAM make them) carries it along.
import { initSync } from "./edgepush.js";
// Emitter.count, set and record (it calls nothing in the wasm as it loads).
import "./per-call.mjs";
import wasm from "./edgepush_bg.wasm.base64.mjs";

initSync({ module: Buffer.from(wasm, "base64") });

export { Counter, Distribution, Emitter, Gauge, Statistics } from "./edgepush.js";
export { withMetrics } from "./with-metrics.mjs";
