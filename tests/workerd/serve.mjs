// Runs the built receiver Worker (receiver/build/index.js, or the build that
// EDGEPUSH_WORKER_SCRIPT names relative to the repository) in workerd through
// Miniflare, for the end-to-end tests.
//
//   node tests/workerd/serve.mjs PORT BINDINGS_JSON [MINIFLARE_OPTIONS_JSON]
//
// The optional third argument adds Miniflare options, such as local Queues
// (queueProducers, queueConsumers) and KV namespaces (kvNamespaces).
//
// Prints "ready" once it answers, and stops on SIGTERM or SIGINT.
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [port, bindings, options] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const mf = new Miniflare({
  modules: true,
  // EDGEPUSH_WORKER_SCRIPT: another build, such as receiver/build-wire-only.
  scriptPath: path.resolve(root, process.env.EDGEPUSH_WORKER_SCRIPT ?? "receiver/build/index.js"),
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  compatibilityDate: "2026-04-26",
  // As wrangler.toml: gzip through `node:zlib`.
  compatibilityFlags: ["nodejs_compat"],
  host: "127.0.0.1",
  port: Number(port),
  bindings: JSON.parse(bindings ?? "{}"),
  // Subrequests go straight to the network, as on Cloudflare. By default
  // Miniflare passes each one through a JavaScript Worker of its own that
  // removes a CF-Connecting-IP header (which the receiver never sets): a
  // second request and subrequest per fetch in the same workerd thread,
  // counted in the CPU figures although Cloudflare runs no such thing.
  stripCfConnectingIp: false,
  ...JSON.parse(options ?? "{}"),
});
await mf.ready;
console.log("ready");
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
