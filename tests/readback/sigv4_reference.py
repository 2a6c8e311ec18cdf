"""Signs a request with botocore's SigV4 (the official Python SDK's signer)
and prints the Authorization header, to check edgepush's signing against an
independent implementation. Reads JSON on stdin: method, url, headers (the
unsigned ones), body_hex, region, service, access_key_id, secret_access_key,
session_token (or null), amz_date (YYYYMMDDTHHMMSSZ)."""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> None:
    r = json.load(sys.stdin)
    request = AWSRequest(
        method=r["method"], url=r["url"], data=bytes.fromhex(r["body_hex"]), headers=r["headers"]
    )
    credentials = Credentials(r["access_key_id"], r["secret_access_key"], r["session_token"])
    auth = SigV4Auth(credentials, r["service"], r["region"])
    # add_auth would take the clock's time: sign at the given one instead,
    # with the same steps.
    request.context["timestamp"] = r["amz_date"]
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    print(f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, SignedHeaders={signed}, Signature={signature}")


if __name__ == "__main__":
    main()
