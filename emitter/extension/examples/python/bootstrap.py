"""What Lambda's Python runtime does around a handler, for running this
example under a local Runtime API (AWS_LAMBDA_RUNTIME_API): ask for the next
event, call the handler, post its result or error. In Lambda the managed
runtime does this; deploy app.py alone."""
import json
import os
import urllib.request


def run(handler):
    """Serves invocations to `handler(event, context)` for ever."""
    api = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
    while True:
        with urllib.request.urlopen(f"{api}/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        try:
            url, body = f"{api}/{request_id}/response", handler(event, None)
        except Exception as e:  # the runtime reports the handler's error
            url = f"{api}/{request_id}/error"
            body = {"errorType": type(e).__name__, "errorMessage": str(e)}
        post = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(post).read()


if __name__ == "__main__":
    from app import handler

    run(handler)
