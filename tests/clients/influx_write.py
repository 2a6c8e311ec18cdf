"""Writes line protocol with InfluxDB's own Python client (influxdb-client)
through the v2 write API, as a user's code would, and reports what the
receiver answered. Used by the end-to-end tests as a real client.

Usage: influx_write.py URL TOKEN BUCKET TIME_MS
Prints JSON: {"written": true} for the good write, then the status and body
of a write with a string field (a partial write).
"""
import json
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException


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
        try:
            write.write(
                bucket=bucket,
                record=f"stock,shop=eu level=4 {time_ms}\nstock,shop=eu note=\"low\" {time_ms}",
                write_precision=WritePrecision.MS,
            )
            out["partial"] = {"status": 204}
        except ApiException as e:
            out["partial"] = {"status": e.status, "body": json.loads(e.body)}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
