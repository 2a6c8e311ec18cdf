// Cloudflare Workers entry point: wrangler (and other bundlers for workerd)
// import the .wasm file as a compiled WebAssembly.Module.
import wasm from "./edgepush_bg.wasm";
import { initSync } from "./edgepush.js";

initSync({ module: wasm });

// Emitter.count, set and record.
import "./per-call.mjs";

export { Counter, Distribution, Emitter, Gauge, Statistics } from "./edgepush.js";
export { withMetrics } from "./with-metrics.mjs";
