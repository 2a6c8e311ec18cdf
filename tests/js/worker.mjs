// A Cloudflare Worker using the edgepush package: records per request and
// flushes after the response with ctx.waitUntil. Bundled by wrangler and run
// in workerd by tests/tests/js_package.rs.
import { Emitter } from "edgepush";

let emitter;

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    emitter ??= new Emitter({
      endpoint: env.EDGEPUSH_URL,
      namespace: "JsWorker",
      dimensions: { service: "shop" },
    });
    emitter.count("requests", 1, { unit: "Count", dimensions: { route: url.pathname } });
    emitter.record("body_size", Number(url.searchParams.get("size")), { unit: "Bytes" });
    ctx.waitUntil(emitter.flush());
    return new Response("ok");
  },
};
