"""Creates an IAM user with an access key and an allow-all policy in a
CloudWatch emulator that verifies signatures (moto started with
INITIAL_NO_AUTH_ACTION_COUNT, fakecloud with --verify-sigv4), signing with the
bootstrap key given (any for moto's first unsigned calls, test/test for
fakecloud), so that every later request must carry a valid SigV4 signature
made with the new key. Prints the key as JSON.

    iam_user.py ENDPOINT BOOTSTRAP_KEY_ID BOOTSTRAP_SECRET"""
import json
import sys

import boto3


def main(endpoint: str, key_id: str, secret: str) -> None:
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    iam.create_user(UserName="edgepush")
    key = iam.create_access_key(UserName="edgepush")["AccessKey"]
    iam.put_user_policy(
        UserName="edgepush",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    json.dump({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
