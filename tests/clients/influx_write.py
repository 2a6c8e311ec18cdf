"""Writes line protocol with InfluxDB's own Python client (influxdb-client)
through the v2 write API, as a user's code would, and reports what the
receiver answered. Used by the end-to-end tests as a real client.

Usage: influx_write.py URL TOKEN BUCKET TIME_MS
Prints JSON: {"written": true} for the good write; then the status and
body of a write with string and boolean fields ("typed": line-protocol
sinks store them, CloudWatch refuses them, so a partial write) and of a
write with a line the receiver refuses ("partial").
"""
import json
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException


def attempt(write, bucket: str, record) -> dict:
    """Writes `record`: its status, and the body of an error."""
    try:
        write.write(bucket=bucket, record=record, write_precision=WritePrecision.MS)
        return {"status": 204}
    except ApiException as e:
        return {"status": e.status, "body": json.loads(e.body)}


def main(url: str, token: str, bucket: str, time_ms: int) -> None:
    out = {}
    with InfluxDBClient(url=url, token=token, org="shop-org", enable_gzip=True) as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        write.write(
            bucket=bucket,
            record=[
                Point("checkout").tag("shop", "eu").field("latency", 12.5).field("items", 3).time(time_ms, WritePrecision.MS),
                Point("checkout").tag("shop", "eu").field("latency", 7.5).field("items", 1).time(time_ms + 1, WritePrecision.MS),
                Point("queue").tag("shop", "eu").field("value", 7.0).time(time_ms, WritePrecision.MS),
            ],
            write_precision=WritePrecision.MS,
        )
        out["written"] = True
        typed = Point("stock").tag("shop", "eu").field("level", 4).field("note", 'low "now", C:\\x').field("restocked", True).time(time_ms, WritePrecision.MS)
        out["typed"] = attempt(write, bucket, [typed])
        out["partial"] = attempt(write, bucket, f"stock,shop=eu level=5 {time_ms + 1}\nstock,shop=eu,_private=x level=6 {time_ms + 2}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
