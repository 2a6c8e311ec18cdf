// Cloudflare Workers entry point: wrangler (and other bundlers for workerd)
// import the .wasm file as a compiled WebAssembly.Module.
import wasm from "./edgepush_bg.wasm";
import { initSync } from "./edgepush.js";
// Emitter.count, set and record (it calls nothing in the wasm as it loads).
import "./per-call.mjs";

initSync({ module: wasm });

export { Counter, Distribution, Emitter, Gauge, Statistics } from "./edgepush.js";
export { withMetrics } from "./with-metrics.mjs";
