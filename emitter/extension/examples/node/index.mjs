// A Node.js Lambda function that keeps its OpenTelemetry metrics code: the
// SDK's OTLP/HTTP exporter sends to the edgepush extension on
// localhost:4318 (the exporter's default, or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT),
// in delta temporality, flushed before each response.
import { AggregationTemporalityPreference, OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";

const provider = new MeterProvider({
  readers: [
    new PeriodicExportingMetricReader({
      // The extension aggregates per interval: it takes deltas.
      exporter: new OTLPMetricExporter({ temporalityPreference: AggregationTemporalityPreference.DELTA }),
      // Exported when flushed below; the interval only bounds a long invocation.
      exportIntervalMillis: 60_000,
    }),
  ],
});
const meter = provider.getMeter("shop");
const orders = meter.createCounter("orders", { unit: "1" });
const basket = meter.createHistogram("basket_value", { description: "order value in cents" });

export const handler = async (event) => {
  orders.add(1, { tenant: event.tenant ?? "acme" });
  basket.record(event.cents ?? 0);
  // Before returning: Lambda may freeze the process right after.
  await provider.forceFlush();
  return { ok: true };
};
