"""A Python Lambda function that keeps its StatsD metrics code: the
`statsd` client sends to the edgepush extension on localhost:8125, Datadog's
DogStatsD client adds tags (dimensions) and distributions."""
import os

import statsd  # pip install statsd
from datadog.dogstatsd import DogStatsd  # pip install datadog

PORT = int(os.environ.get("EDGEPUSH_STATSD_PORT", "8125"))
metrics = statsd.StatsClient("localhost", PORT)
dog = DogStatsd(host="localhost", port=PORT)


def handler(event, context):
    metrics.incr("orders")
    with metrics.timer("checkout"):
        total = sum(item["cents"] for item in event.get("items", []))
    dog.distribution("basket_value", total, tags=[f"tenant:{event.get('tenant', 'acme')}"])
    return {"total": total}
