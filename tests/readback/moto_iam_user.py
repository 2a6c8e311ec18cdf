"""Creates an IAM user with an access key and an allow-all policy in a moto
server started with INITIAL_NO_AUTH_ACTION_COUNT, so that every later request
must carry a valid SigV4 signature. Prints the key as JSON."""
import json
import sys

import boto3


def main(endpoint: str) -> None:
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
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
    main(sys.argv[1])
