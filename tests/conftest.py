"""Shared fixtures: small management events and the delivery trees they arrive in.

Generic on purpose, so any test module can build an OSS tree, an SLS export or a
LookupEvents folder in ``tmp_path`` in a line or two::

    def test_x(make_event, write_oss):
        write_oss(tmp_path, [make_event(eventName="DeleteInstance")])
"""

from __future__ import annotations

import gzip
import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

# The package is not installed in the venv: make `import insights_kit` work from a checkout.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
T0 = datetime(2025, 3, 4, 8, 0, tzinfo=timezone.utc)


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(i: int = 0, **fields) -> dict:
    """One ActionTrail management event (reference section 1.3 layout); `fields` override."""
    ev = {
        "eventVersion": "1",
        "eventId": str(uuid.UUID(int=i + 1)).upper(),
        "eventTime": iso(T0 + timedelta(seconds=i)),
        "eventType": "ApiCall",
        "eventCategory": "Management",
        "eventRW": "Write",
        "eventName": "DeleteInstance",
        "eventSource": "ecs.aliyuncs.com",
        "serviceName": "Ecs",
        "apiVersion": "2014-05-26",
        "acsRegion": "cn-hangzhou",
        "isGlobal": False,
        "recipientAccountId": "1234567890123456",
        "requestId": f"REQ-{i}",
        "sourceIpAddress": "203.0.113.24",
        "userAgent": "aliyuncli/3.0",
        "userIdentity": {"type": "ram-user", "principalId": "2765", "accountId": "1234567890123456",
                         "accessKeyId": "LTAI5tExample", "userName": "ops-bot"},
        "requestParameters": {"InstanceId": "i-bp1", "Force": True},
        "eventAttributes": {"SensitiveAction": "true"},
    }  # fmt: skip
    ev.update(fields)
    return {k: v for k, v in ev.items() if v is not ...}  # pass `field=...` to drop a key


def cloudtrail_event(i: int = 0, **fields) -> dict:
    """One AWS CloudTrail record; `fields` override (``...`` drops a key)."""
    ev = {
        "eventVersion": "1.08",
        "eventID": str(uuid.UUID(int=10_000 + i)),
        "eventTime": iso(T0 + timedelta(seconds=i)),
        "eventType": "AwsApiCall",
        "eventName": "DescribeInstances",
        "eventSource": "ec2.amazonaws.com",
        "awsRegion": "us-west-1",
        "readOnly": True,
        "recipientAccountId": "342082656213",
        "requestID": f"req-{i}",
        "sourceIPAddress": "96.253.26.224",
        "userAgent": "aws-cli/2.2.23",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA1", "accountId": "342082656213",
                         "arn": "arn:aws:iam::342082656213:user/jmerckle", "userName": "jmerckle",
                         "accessKeyId": "AKIA1"},
        "managementEvent": True,
    }  # fmt: skip
    ev.update(fields)
    return {k: v for k, v in ev.items() if v is not ...}


def encode(records: list, shape: str = "ndjson") -> bytes:
    """Serialise records as ``ndjson``, ``array``, ``records`` ({"Records": [...]}) or ``lookup``."""
    if shape == "ndjson":
        return b"".join(json.dumps(r).encode() + b"\n" for r in records)
    if shape == "array":
        return json.dumps(records, indent=1).encode()
    if shape == "records":
        return json.dumps({"Records": records}).encode()
    if shape == "lookup":
        return json.dumps({"RequestId": "R-1", "Events": records, "NextToken": "n"}).encode()
    raise ValueError(shape)


def oss_path(root: Path, region: str, day: datetime, name: str = "part", *, account: str | None = None) -> Path:
    """``root/AliyunLogs/Actiontrail/[rd/account/]region/YYYY/MM/DD/Actiontrail_<region>_<name>.gz``."""
    base = Path(root) / "AliyunLogs" / "Actiontrail"
    if account:
        base = base / "rd-abc123" / account
    return base / region / day.strftime("%Y/%m/%d") / f"Actiontrail_{region}_{name}.gz"


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def write_oss(root: Path, records: list[dict], *, shape: str = "ndjson", name: str = "part", account: str | None = None) -> list[Path]:
    """Write records into an OSS tree, one .gz per (region, day) of their eventTime.

    Records with a missing/odd eventTime or region (the ones tests corrupt on purpose)
    go to the file of the previous record, so a corrupted record sits between good ones.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    key = ("cn-hangzhou", T0.strftime("%Y-%m-%d"))
    for r in records:
        region, when = r.get("acsRegion"), str(r.get("eventTime", ""))
        try:
            good_time = when[10] == "T" and bool(datetime.fromisoformat(when[:10]))
        except (ValueError, IndexError):
            good_time = False
        if isinstance(region, str) and region.replace("-", "").isalnum() and good_time:
            key = (region, when[:10])
        groups.setdefault(key, []).append(r)
    paths = []
    for (region, day), recs in sorted(groups.items()):
        p = oss_path(root, region, datetime.fromisoformat(day), name, account=account)
        paths.append(write_gz(p, encode(recs, shape)))
    return paths


@pytest.fixture
def make_event():
    return event


@pytest.fixture
def make_cloudtrail():
    return cloudtrail_event


@pytest.fixture
def write_oss_tree():
    return write_oss


@pytest.fixture
def realdata() -> Path:
    """The shared real-data folder; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data not found at {REALDATA}")
    return REALDATA
