"""Reads every metric of a namespace back from a CloudWatch API endpoint.

Prints one JSON object per metric: name, dimensions, units seen, and the
Sum, SampleCount, Minimum and Maximum over the last and next day. Used by the
end-to-end tests as an independent client (boto3), never by the product.
"""
import datetime
import json
import os
import sys

import boto3


def main(endpoint: str, namespace: str) -> None:
    cw = boto3.client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name=os.environ.get("EDGEPUSH_AWS_REGION", "us-east-1"),
        # Keys of a user made by iam_user.py when moto checks signatures.
        aws_access_key_id=os.environ.get("EDGEPUSH_AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("EDGEPUSH_AWS_SECRET_ACCESS_KEY", "testing"),
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    out = []
    seen = set()
    for page in cw.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page["Metrics"]:
            # moto lists a metric once per stored value: read each one once.
            key = (metric["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"])))
            if key in seen:
                continue
            seen.add(key)
            points = cw.get_metric_statistics(
                Namespace=namespace,
                MetricName=metric["MetricName"],
                Dimensions=metric["Dimensions"],
                StartTime=now - datetime.timedelta(days=1),
                EndTime=now + datetime.timedelta(days=1),
                Period=60,
                Statistics=["Sum", "SampleCount", "Minimum", "Maximum"],
            )["Datapoints"]
            out.append(
                {
                    "name": metric["MetricName"],
                    "dimensions": {d["Name"]: d["Value"] for d in metric["Dimensions"]},
                    "units": sorted({p.get("Unit", "None") for p in points}),
                    "sum": sum(p["Sum"] for p in points),
                    "count": sum(p["SampleCount"] for p in points),
                    "min": min((p["Minimum"] for p in points), default=None),
                    "max": max((p["Maximum"] for p in points), default=None),
                }
            )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
