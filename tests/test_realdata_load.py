"""The real CloudTrail sets in ../shared/realdata load completely (skipped when absent)."""

from __future__ import annotations

import polars as pl
import pytest

from insights_kit.readers import load

pytestmark = pytest.mark.realdata


def _balanced(res) -> bool:
    s = res.stats
    return s.records_read == s.loaded + s.quarantined + s.duplicates + s.outside_window


def test_sans_exact_counts(realdata):
    res = load([realdata / "sans504-s3-ransomware"])
    df = res.events.collect()
    assert (res.stats.records_read, res.stats.loaded, res.stats.duplicates) == (30_477, 23_981, 6_496)
    assert res.stats.quarantined == 0 and _balanced(res)
    assert df["eventId"].n_unique() == 23_981 and df["eventTime"].is_sorted()
    assert df["sourceFormat"].unique().to_list() == ["cloudtrail"]
    assert set(df.filter(pl.col("sourceIsIp"))["sourceIpAddress"].unique()) == {"96.253.26.224", "3.238.12.183"}
    first = df.filter(pl.col("sourceIpAddress") == "3.238.12.183")["eventTime"].min()
    assert first.isoformat() == "2021-07-29T13:02:53+00:00"


def test_invictus_loads(realdata):
    res = load([realdata / "invictus-stratus-2023"])
    assert res.stats.loaded == 2_900 and res.stats.quarantined == 0 and _balanced(res)


def test_stratus_scrambled_ips_are_not_ips(realdata):
    res = load([realdata / "stratus-detonation-logs"])
    df = res.events.collect()
    assert res.stats.loaded == 310 and res.stats.quarantined == 0 and _balanced(res)
    scrambled = df.filter(pl.col("sourceIpAddress").str.contains(r"(^|\.)0\d"))
    assert scrambled.height > 0 and not scrambled["sourceIsIp"].any()
    assert df.filter(pl.col("sourceIpAddress") == "253.252.51.07")["sourceIsIp"].to_list() == [False] * 56


def test_otrf_ndjson_uses_timestamp_and_csv_is_quarantined(realdata):
    res = load([realdata / "otrf-aws"])
    df = res.events.collect()
    assert res.stats.loaded == 103 and _balanced(res)
    assert df["eventTime"].null_count() == 0
    assert df["eventTime"].min().isoformat() == "2020-09-14T00:44:20+00:00"
    q = res.quarantine
    assert q.height == 1 and q["position"][0] == "file" and q["sourceFile"][0].endswith(".zip!AWS_S3_HoneyBucketLogs.csv")


def test_all_sets_together(realdata):
    sets = ["sans504-s3-ransomware", "invictus-stratus-2023", "stratus-detonation-logs", "otrf-aws"]
    res = load([realdata / s for s in sets])
    assert res.stats.loaded == 23_981 + 2_900 + 310 + 103 and _balanced(res)
