// Node.js entry point: loads the WebAssembly module from the package folder.
import { readFileSync } from "node:fs";
import { initSync } from "./edgepush.js";

initSync({ module: readFileSync(new URL("./edgepush_bg.wasm", import.meta.url)) });

export { Counter, Distribution, Emitter, Gauge, Statistics } from "./edgepush.js";
