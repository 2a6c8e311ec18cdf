// An AWS Lambda handler written as a user writes one, bundled by esbuild the
// way CDK's NodejsFunction bundles it, then run by invoke.cjs
// (tests/tests/js_package.rs).
import { Emitter, withMetrics } from "edgepush";

const metrics = new Emitter({
  endpoint: process.env.EDGEPUSH_URL, // the receiver's base URL
  apiKey: process.env.EDGEPUSH_API_KEY,
  namespace: "JsLambda",
  dimensions: { service: "shop" },
  timeoutMs: 2000,
  attempts: 2,
});

export const handler = withMetrics(metrics, async (event) => {
  metrics.count("orders", event.orders, { unit: "Count" });
  for (const ms of event.latencies) metrics.record("latency", ms, { unit: "Milliseconds" });
  return { ok: true };
});
