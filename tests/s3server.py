"""A real local S3-compatible server for the suite: moto's server mode in a subprocess.

IAM is enforced (``INITIAL_NO_AUTH_ACTION_COUNT``): the first requests create three users
without signatures, after which every request must be signed by a key moto knows and be
allowed by its user's policy. So the suite sees real ``InvalidAccessKeyId`` and
``AccessDenied`` answers, not mocks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: IAM calls made before enforcement starts (3 users, their policies and keys).
_SETUP_CALLS = 8


@dataclass
class S3Server:
    url: str
    admin: dict[str, str]  # may do anything
    reader: dict[str, str]  # s3:ListBucket and s3:GetObject only
    nobody: dict[str, str]  # a valid key without any permission
    process: subprocess.Popen

    def env(self, who: str = "reader") -> dict[str, str]:
        """Environment for an insights-kit process that reads as `who`."""
        key = getattr(self, who)
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "INSIGHTS_KIT_ENDPOINT_URL": self.url,
        }

    def client(self, who: str = "admin"):
        import boto3

        key = getattr(self, who)
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])

    def upload_tree(self, bucket: str, folder: Path, prefix: str = "") -> int:
        """Create `bucket` and upload every file under `folder` (keys relative to it)."""
        from concurrent.futures import ThreadPoolExecutor

        s3 = self.client()
        s3.create_bucket(Bucket=bucket)
        files = sorted(p for p in folder.rglob("*") if p.is_file())

        def put(path: Path) -> None:
            s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix(), Body=path.read_bytes())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files))
        return len(files)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> S3Server:
    import boto3

    port = _free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_SETUP_CALLS))
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup",
                       aws_secret_access_key="setup")

    def user(name: str, actions: list[str] | None) -> dict[str, str]:
        iam.create_user(UserName=name)
        if actions is not None:
            policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}

    admin = user("admin", ["*"])
    # s3:ListBucket and s3:GetObject are what S3 and OSS require; moto 5.2 checks listing as
    # s3:ListObjects/s3:ListObjectsV2 (its operation names) instead, so those are granted too.
    reader = user("reader", ["s3:ListBucket", "s3:GetObject", "s3:ListObjects", "s3:ListObjectsV2"])
    nobody = user("nobody", None)
    return S3Server(url, admin, reader, nobody, process)
