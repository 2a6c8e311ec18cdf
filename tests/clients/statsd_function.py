"""A Python Lambda function: the Runtime API loop as Lambda's Python runtime
runs it, around a handler that sends metrics with the StatsD clients Python
code uses, `statsd` (StatsClient) and Datadog's `datadog` (DogStatsd), to
localhost:$EDGEPUSH_STATSD_PORT, where the edgepush extension listens.

The event says what to do:
  {"send": [[client, method, arg..., {keyword args}?], ...],
   "sleep": seconds, "grow_mb": megabytes, "fail": true}
with client "statsd" or "dogstatsd" and a method of that client (incr,
timing, gauge, set, histogram, distribution, ...). The response lists the
datagrams the `statsd` client sent (it samples: a rate below 1 sends
some calls only), so the test knows what went out.
"""
import json
import os
import time
import urllib.request

import statsd
from datadog.dogstatsd import DogStatsd

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PORT = int(os.environ.get("EDGEPUSH_STATSD_PORT", "8125"))


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


def handler(event):
    plain.sent = []
    for call in event.get("send", []):
        client, method, *args = call
        kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
        getattr(plain if client == "statsd" else dog, method)(*args, **kwargs)
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


def main():
    base = f"http://{API}/2018-06-01/runtime/invocation"
    while True:
        with urllib.request.urlopen(f"{base}/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        try:
            url, body = f"{base}/{request_id}/response", handler(event)
        except Exception as e:  # the runtime reports the handler's error
            url = f"{base}/{request_id}/error"
            body = {"errorMessage": str(e), "errorType": type(e).__name__}
        post = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(post).read()


if __name__ == "__main__":
    main()
