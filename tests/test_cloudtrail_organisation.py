"""A CloudTrail organisation trail: every member's events in one bucket, units per (account, region).

CloudTrail delivers an organisation trail as
``AWSLogs/<org-id>/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<stamp>_<id>.json.gz``,
each file a ``{"Records": [...]}`` document. The reader takes the account and region from the
records themselves (``recipientAccountId``, ``awsRegion``), and the date folders prune a window.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

CLI = [sys.executable, "-m", "insights_kit.cli"]
ORG = "o-a1b2c3d4e5"
T0 = datetime(2025, 6, 2, tzinfo=timezone.utc)
# account -> {region: events per hour}; each account's busiest region differs
MEMBERS = {"111122223333": {"us-east-1": 6, "eu-west-1": 2}, "444455556666": {"us-east-1": 1, "ap-south-1": 5}}


def _record(account: str, region: str, ts: datetime, n: int) -> dict:
    return {
        "eventVersion": "1.08",
        "eventID": f"{account}-{region}-{n:06d}",
        "eventTime": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15",
        "recipientAccountId": account,
        "requestID": f"req-{n}",
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "readOnly": True,
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": account,
                         "arn": f"arn:aws:iam::{account}:user/ops", "userName": "ops", "accessKeyId": "AKIAEXAMPLE"},
    }  # fmt: skip


def _write_trail(root: Path, days: int = 3) -> int:
    written = 0
    for account, regions in MEMBERS.items():
        for region, per_hour in regions.items():
            for day in range(days):
                start = T0 + timedelta(days=day)
                folder = root / "AWSLogs" / ORG / account / "CloudTrail" / region / start.strftime("%Y/%m/%d")
                folder.mkdir(parents=True)
                for hour in range(24):
                    ts = start + timedelta(hours=hour)
                    records = [_record(account, region, ts + timedelta(minutes=7 * k), written + k)
                               for k in range(per_hour)]
                    written += len(records)
                    name = f"{account}_CloudTrail_{region}_{ts:%Y%m%dT%H%M}Z_{hour:04d}.json.gz"
                    (folder / name).write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return written


def _detect(*args: str) -> dict:
    done = subprocess.run(CLI + ["detect", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads((Path(args[args.index("--out") + 1]) / "summary.json").read_text())


def test_an_organisation_trail_gives_units_per_account_and_region(tmp_path):
    total = _write_trail(tmp_path / "bucket")
    summary = _detect(str(tmp_path / "bucket"), "--out", str(tmp_path / "out"))
    accounts = summary["accounts"]
    assert sorted(accounts) == sorted(MEMBERS)
    for account, regions in MEMBERS.items():
        assert accounts[account]["regions"] == sorted(regions)
        assert accounts[account]["homeRegion"] == max(regions, key=regions.get)  # each its own busiest
        assert accounts[account]["events"] == 3 * 24 * sum(regions.values())
    assert summary["homeRegion"] is None  # the members' home regions differ
    assert summary["totals"]["events"] == total
    # us-east-1 holds a unit of each member, ap-south-1 only the second's
    assert sorted(summary["regions"]["us-east-1"]["accounts"]) == sorted(MEMBERS)
    assert summary["regions"]["ap-south-1"]["accounts"] == ["444455556666"]


def test_an_organisation_trail_window_prunes_date_folders(tmp_path):
    _write_trail(tmp_path / "bucket", days=6)  # 2025-06-02 .. 06-07
    summary = _detect(str(tmp_path / "bucket"), "--out", str(tmp_path / "out"),
                      "--since", "2025-06-04", "--until", "2025-06-05")
    per_day = sum(24 * sum(r.values()) for r in MEMBERS.values())
    assert summary["totals"]["events"] == per_day
    # Folders are delivery dates: the day before (the lag) and the day after (late files) are
    # read too; 06-02 and 06-07 are never opened.
    files_per_day = 24 * sum(len(r) for r in MEMBERS.values())
    records = summary["records"]
    assert (records["files_pruned"], records["files_read"]) == (2 * files_per_day, 4 * files_per_day), records
