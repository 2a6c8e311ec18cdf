"""A Python Lambda function, under the Runtime API loop of the extension's
Python example (what Lambda's Python runtime runs): a handler that sends
metrics with the StatsD clients Python code uses, `statsd` (StatsClient) and
Datadog's `datadog` (DogStatsd), to localhost:$EDGEPUSH_STATSD_PORT, and
with OpenTelemetry's SDK and its OTLP/HTTP exporter to
localhost:$EDGEPUSH_OTLP_PORT, where the edgepush extension listens. The
OpenTelemetry provider is flushed at the end of each invocation, as the
OpenTelemetry Lambda instrumentation does.

The event says what to do:
  {"send": [[client, method, arg..., {keyword args}?], ...],
   "sleep": seconds, "grow_mb": megabytes, "fail": true}
with client "statsd" or "dogstatsd" and a method of that client (incr,
timing, gauge, set, histogram, distribution, ...), or "otel" and an
instrument kind (counter, histogram, gauge), a name, a value and
attributes. The response lists the datagrams the `statsd` client sent (it
samples: a rate below 1 sends some calls only), so the test knows what
went out.
"""
import os
import sys
import time

import statsd
from datadog.dogstatsd import DogStatsd
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

PORT = int(os.environ.get("EDGEPUSH_STATSD_PORT", "8125"))
OTLP = int(os.environ.get("EDGEPUSH_OTLP_PORT", "4318"))


class Recording(statsd.StatsClient):
    """StatsClient, keeping what it sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = []

    def _send(self, data):
        self.sent.append(data)
        super()._send(data)


plain = Recording("localhost", PORT)
dog = DogStatsd(host="localhost", port=PORT)
# Exports when flushed (an hour's interval otherwise); temporality from
# OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE.
provider = MeterProvider(
    metric_readers=[
        PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"http://localhost:{OTLP}/v1/metrics"),
            export_interval_millis=3_600_000,
        )
    ]
)
meter = provider.get_meter("shop")
instruments = {}


def otel(kind, name, value, attributes=None):
    key = (kind, name)
    if key not in instruments:
        instruments[key] = getattr(meter, f"create_{kind}")(name)
    instrument = instruments[key]
    record = {"counter": "add", "histogram": "record", "gauge": "set"}[kind]
    getattr(instrument, record)(value, attributes or {})


def handler(event, context):
    plain.sent = []
    for call in event.get("send", []):
        client, method, *args = call
        if client == "otel":
            otel(method, *args)
            continue
        kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
        getattr(plain if client == "statsd" else dog, method)(*args, **kwargs)
    provider.force_flush()
    if event.get("grow_mb"):
        hog = bytearray(event["grow_mb"] * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(5)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("the event asked to fail")
    return {"sent": plain.sent}


if __name__ == "__main__":
    # The loop Lambda's Python runtime runs, as the extension's example has it.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../emitter/extension/examples/python"))
    from bootstrap import run

    run(handler)
