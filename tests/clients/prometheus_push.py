"""Pushes with Prometheus' own Python client (prometheus_client), as a batch
job would push to a Pushgateway: push_to_gateway, then pushadd_to_gateway.
Used by the end-to-end tests as a real client.

Usage: prometheus_push.py URL KEY
"""
import sys

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.exposition import basic_auth_handler

# The _created series of counters and histograms are timestamps, not
# measurements; most batch jobs turn them off.
disable_created_metrics()


def main(url: str, key: str) -> None:
    def auth(url, method, timeout, headers, data):
        return basic_auth_handler(url, method, timeout, headers, data, "job", key)

    registry = CollectorRegistry()
    processed = Counter("jobs_processed", "Items processed.", ["queue"], registry=registry)
    processed.labels(queue="emails").inc(5)
    duration = Histogram(
        "job_duration_seconds", "Job duration.", buckets=(0.1, 0.5, 1.0), registry=registry
    )
    for seconds in (0.05, 0.3, 0.3, 2.0):
        duration.observe(seconds)
    # A grouping label holding '/' travels base64-encoded in the path.
    push_to_gateway(url, job="nightly", registry=registry,
                    grouping_key={"instance": "host/a"}, handler=auth)

    registry = CollectorRegistry()
    Gauge("last_success_seconds", "When the job last succeeded.", registry=registry).set(1234.5)
    pushadd_to_gateway(url, job="nightly", registry=registry,
                       grouping_key={"instance": "host/a"}, handler=auth)
    print("pushed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
