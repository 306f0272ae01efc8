"""s3:// and oss:// sources against a real local S3-compatible server (moto, IAM enforced).

The shipped sample is uploaded once; every check runs the ``insights-kit`` command as a user
would, with the endpoint given by ``--endpoint-url`` or the environment, and compares with the
same command on the local copy.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from insights_kit import objects

sys.path.insert(0, str(Path(__file__).parent))
import s3server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
CLI = [sys.executable, "-m", "insights_kit.cli"]


# --------------------------------------------------------------------------- no server needed
def test_parse_and_remote_file_shape():
    loc = objects.parse("oss://trail/AliyunLogs/Actiontrail/")
    assert (loc.scheme, loc.bucket, loc.prefix) == ("oss", "trail", "AliyunLogs/Actiontrail/")
    with pytest.raises(objects.StorageError, match="expected s3://bucket/prefix"):
        objects.parse("s3:///nobucket")
    f = objects.RemoteFile("s3", "b", "a/2025/03/07/Actiontrail_x.json.gz", 10, "e1")
    assert (str(f), f.suffix, f.name, f.stat().st_size) == ("s3://b/a/2025/03/07/Actiontrail_x.json.gz", ".gz",
                                                            "Actiontrail_x.json.gz", 10)


@pytest.mark.parametrize(
    "folder, days",
    [
        ("AliyunLogs/Actiontrail/cn-hangzhou/2025", (date(2025, 1, 1), date(2025, 12, 31))),
        ("AliyunLogs/Actiontrail/cn-hangzhou/2025/02", (date(2025, 2, 1), date(2025, 2, 28))),
        ("AliyunLogs/Actiontrail/cn-hangzhou/2024/12", (date(2024, 12, 1), date(2024, 12, 31))),
        ("AliyunLogs/Actiontrail/cn-hangzhou/2025/03/07", (date(2025, 3, 7), date(2025, 3, 7))),
        ("events/acsRegion=cn-beijing/date=2025-03-07", (date(2025, 3, 7), date(2025, 3, 7))),
        ("AliyunLogs/Actiontrail/rd-123/1234567890", None),  # an account id is not a year
        ("AliyunLogs/Actiontrail", None),
    ],
)
def test_date_folders_are_recognised(folder, days):
    assert objects._folder_days(folder.split("/")) == days


def test_oss_without_an_endpoint_says_how_to_give_one(monkeypatch):
    for name in (objects.ENDPOINT_ENV, "OSS_ENDPOINT", "OSS_REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(objects.StorageError, match="--endpoint-url https://s3.oss-<region>.aliyuncs.com"):
        objects.endpoint_for("oss")
    monkeypatch.setenv("OSS_REGION", "cn-hangzhou")
    assert objects.endpoint_for("oss") == "https://s3.oss-cn-hangzhou.aliyuncs.com"


# --------------------------------------------------------------------------- against the server
@pytest.fixture(scope="module")
def server():
    srv = s3server.start()
    srv.upload_tree("trail-bucket", SAMPLE, prefix="actiontrail/")
    yield srv
    srv.stop()


def _run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INSIGHTS_KIT_", "OSS_"))}
    done = subprocess.run(CLI + args, env={**clean, **env}, capture_output=True, text=True, cwd=ROOT)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _insights(store: Path) -> dict[str, bytes]:
    folder = store / "AliyunLogs"
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "store"
    _run(["detect", str(SAMPLE), "--out", str(out)], {})
    return out


@pytest.mark.slow
def test_detect_from_s3_equals_the_local_copy(server, local_store, tmp_path):
    env = server.env()
    endpoint = env.pop("INSIGHTS_KIT_ENDPOINT_URL")
    out = tmp_path / "store"
    _run(["detect", "s3://trail-bucket/actiontrail/", "--out", str(out), "--endpoint-url", endpoint], env)
    assert _insights(out) and _insights(out) == _insights(local_store)
    remote, local = (json.loads((d / "summary.json").read_text()) for d in (out, local_store))
    assert remote["records"]["records_read"] == local["records"]["records_read"]
    assert remote["totals"] == local["totals"]


@pytest.mark.slow
def test_oss_scheme_and_a_bucket_lake(server, local_store, tmp_path):
    # oss:// speaks the same S3 API; a lake ingested from the bucket and uploaded to another
    # bucket is scanned lazily from there and gives the same Insights as the local lake.
    lake = tmp_path / "lake"
    _run(["ingest", "oss://trail-bucket/actiontrail", "--out", str(lake)], server.env())
    rows = pl_read_lake(lake)
    assert rows.filter(~rows["sourceFile"].str.starts_with("oss://trail-bucket/actiontrail/AliyunLogs/")).height == 0
    server.upload_tree("lake-bucket", lake, prefix="lakes/sample/")
    from_bucket, from_disk = tmp_path / "a", tmp_path / "b"
    _run(["detect", "s3://lake-bucket/lakes/sample", "--out", str(from_bucket)], server.env())
    _run(["detect", str(lake), "--out", str(from_disk)], {})
    assert _insights(from_bucket) == _insights(from_disk) == _insights(local_store)


def pl_read_lake(lake: Path):
    import polars as pl

    return pl.read_parquet(sorted((lake / "events").rglob("*.parquet")))


@pytest.mark.slow
def test_listing_is_pruned_by_date_folders(server, tmp_path):
    out = tmp_path / "store"
    _run(["detect", "s3://trail-bucket/actiontrail/", "--out", str(out), "--since", "2025-03-07",
          "--until", "2025-03-08"], server.env())
    records = json.loads((out / "summary.json").read_text())["records"]
    # 4 regions x 9 days (03-03..03-11) in the sample. Listed: 03-06 (the lag margin before
    # --since), the window's day, and the next two days' folders (late deliveries): 4 days.
    assert records["folders_pruned"] == 4 * 5
    listed_days = ("2025/03/06", "2025/03/07", "2025/03/08", "2025/03/09")
    expected = [p for p in (SAMPLE / "AliyunLogs").rglob("*.gz") if any(d in p.as_posix() for d in listed_days)]
    assert records["files_found"] == len(expected)


@pytest.mark.slow
def test_state_runs_read_only_new_objects_and_match_one_run(server, local_store, tmp_path):
    out, state = tmp_path / "store", tmp_path / "state"
    reads = []
    for day in (5, 8, 11, 12, 13):
        _run(["detect", "s3://trail-bucket/actiontrail/", "--out", str(out), "--state", str(state),
              "--until", f"2025-03-{day:02d}"], server.env())
        records = json.loads((out / "summary.json").read_text())["records"]
        reads.append((records["files_read"], records["files_already_read"]))
    assert _insights(out) == _insights(local_store)
    assert all(already > 0 for _, already in reads[1:])
    assert reads[-1][0] == 0  # nothing new after the last delivery day


@pytest.mark.slow
def test_a_broken_object_is_quarantined_with_its_url(server, tmp_path):
    s3 = server.client()
    s3.create_bucket(Bucket="broken-bucket")
    good = (SAMPLE / "AliyunLogs/Actiontrail/cn-hangzhou/2025/03/07").iterdir().__next__()
    s3.put_object(Bucket="broken-bucket", Key="AliyunLogs/Actiontrail/cn-hangzhou/2025/03/07/good.json.gz",
                  Body=good.read_bytes())
    s3.put_object(Bucket="broken-bucket", Key="AliyunLogs/Actiontrail/cn-hangzhou/2025/03/07/bad.json.gz",
                  Body=gzip.compress(b'{"eventId": "x1", "eventTime": "2025-03-07T01:00:00Z"\n{not json}\n'))
    out = tmp_path / "store"
    done = _run(["detect", "s3://broken-bucket", "--out", str(out)], server.env())
    summary = json.loads((out / "summary.json").read_text())
    records = summary["records"]
    assert records["quarantined"] >= 1
    assert records["records_read"] == (records["loaded"] + records["quarantined"] + records["duplicates"]
                                       + records["outside_window"])
    rows = [json.loads(line) for line in Path(summary["quarantine"]["file"]).read_text().splitlines()]
    assert {r["sourceFile"] for r in rows} == {"s3://broken-bucket/AliyunLogs/Actiontrail/cn-hangzhou/2025/03/07/bad.json.gz"}
    assert "quarantined" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "who, url, expected",
    [
        ("reader", "s3://no-such-bucket/x", "s3://no-such-bucket/x: no such bucket (NoSuchBucket)"),
        ("nobody", "s3://trail-bucket/actiontrail/", "access denied listing (AccessDenied)"),
        ("wrong", "s3://trail-bucket/actiontrail/", "does not know this AccessKey ID (InvalidAccessKeyId)"),
        ("reader", "s3://", "expected s3://bucket/prefix"),
    ],
)
def test_storage_errors_are_one_clear_line(server, tmp_path, who, url, expected):
    env = server.env("reader" if who == "wrong" else who)
    if who == "wrong":
        env["AWS_ACCESS_KEY_ID"] = "AKIAWRONGWRONGWRONG"
    done = _run(["detect", url, "--out", str(tmp_path / "x")], env, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("insights-kit: error: ") and expected in lines[0], done.stderr


@pytest.mark.slow
def test_report_from_s3(server, local_store, tmp_path):
    out = tmp_path / "report"
    _run(["report", "s3://trail-bucket/actiontrail/", "--out", str(out), "--regions", "cn-hangzhou",
          "--jobs", "1"], server.env())
    assert "cn-hangzhou" in (out / "index.html").read_text()
    assert _insights(out / "insights") == _insights(local_store)
    # the page's data was read from the bucket too (its notebook kernel inherits the endpoint)
    assert any("ApiCallRateInsight" in p.read_text(errors="replace") for p in out.rglob("*.html"))
