"""The graded stealth plan: determinism, intensity ranges, shapes, and the other plans left alone."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from insights_kit import scenarios as sc
from insights_kit import stealth as st
from insights_kit.simulate import simulate

DAY0 = int(datetime(2025, 3, 3, tzinfo=timezone.utc).timestamp())  # simulate's default start
SEED, SCALE = 3, 0.005
KEYS = [f"STS.NTkey{h:02d}" for h in range(24)]
INTENSITY_KEYS = {"calls", "duration_minutes", "rate_per_minute"}


def _slots(seeds=range(1, 13), max_day: int = 30):
    for seed in seeds:
        account = sc.build_account(seed)
        for slot in st.stealth_plan(seed, max_day, account):
            yield account, slot


def _records(root: Path) -> pl.DataFrame:
    rows = [json.loads(line) for f in sorted((root / "AliyunLogs").rglob("*.gz"))
            for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
    flat = [{k: r.get(k) for k in ("eventId", "eventTime", "eventName", "acsRegion", "sourceIpAddress", "userAgent",
                                   "errorCode")} | {"accessKeyId": r["userIdentity"].get("accessKeyId"),
                                                    "principalId": r["userIdentity"].get("principalId")} for r in rows]
    return pl.DataFrame(flat, infer_schema_length=None).unique("eventId", keep="first", maintain_order=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, pl.DataFrame]:
    """Ten days with the stealth plan (every kind once): labels and distinct events."""
    root = tmp_path_factory.mktemp("stealth")
    simulate(root, days=10, seed=SEED, scale=SCALE, progress=False, stealth=True)
    return json.loads((root / "labels.json").read_text()), _records(root)


def test_plan_is_deterministic_a_prefix_and_rotates_the_kinds():
    for seed in (1, 7, 404):
        account = sc.build_account(seed)
        short, long = st.stealth_plan(seed, 9, account), st.stealth_plan(seed, 40, account)
        assert short == st.stealth_plan(seed, 9) and long[: len(short)] == short
        assert [s.day for s in long] == list(range(sc.FIRST_INCIDENT_DAY, 41))
        assert st.stealth_plan(seed, 2) == []
        for r in range(len(long) // len(st.KINDS)):
            assert sorted(s.kind for s in long[r * 7:(r + 1) * 7]) == sorted(st.KINDS)
    assert [s.kind for s in st.stealth_plan(1, 40)] != [s.kind for s in st.stealth_plan(2, 40)]


def test_slots_avoid_other_plans_and_use_new_foreign_addresses():
    taken = {p for table in (sc.FOREIGN_PREFIXES, sc.IDENTITY_PREFIXES) for group in table.values() for p in group}
    for seed in (1, 7, 404):
        account = sc.build_account(seed)
        known = {a.ip.rsplit(".", 1)[0] for ch in account.channels.values() for a in ch.addresses}
        plan = st.stealth_plan(seed, 60, account)
        ips = [s.ip for s in plan if s.ip]
        assert len(ips) == len(set(ips))
        for s in plan:
            end = s.minute + s.params["duration"]
            assert st.FIRST_MINUTE <= s.minute and end < st.LAST_MINUTE  # after 19:30Z, within the UTC day
            assert (s.ip is not None) == (s.kind in st.STEALTH_PREFIXES)
            if s.ip:
                assert s.ip.rsplit(".", 1)[0] not in taken | known
            if s.kind == "low_rate_writes":
                assert end <= st.NIGHT_END_MINUTE
            if s.kind == "mixed_burst":
                assert s.region not in st._principal_regions(account, s.actor)


@pytest.mark.parametrize("kind, key, lo, hi", [
    ("quiet_stranger", "calls", 3, 25), ("quiet_stranger", "duration", 20, 90),
    ("low_rate_writes", "rate", 0.5, 4), ("low_rate_writes", "duration", 45, 180),
    ("companion_bursts", "rate", 20, 80), ("companion_bursts", "small_rate", 2, 10),
    ("companion_bursts", "duration", 5, 20), ("multi_api_probe", "duration", 5, 30),
    ("slow_runaway", "rate", 3, 30), ("slow_runaway", "duration", 30, 120),
    ("mixed_burst", "calls", 40, 120), ("mixed_burst", "duration", 5, 15),
    ("error_creep", "share", 0.15, 0.5), ("error_creep", "duration", 60, 240), ("error_creep", "rate", 2, 8),
])
def test_intensity_is_drawn_over_its_range(kind, key, lo, hi):
    values = np.array([s.params[key] for _, s in _slots() if s.kind == kind], dtype=float)
    assert len(values) >= 20 and values.min() >= lo and values.max() <= hi
    # spread over the range, not a constant: both ends' thirds are reached
    assert values.min() < lo + (hi - lo) / 3 and values.max() > hi - (hi - lo) / 3


def test_probe_counts_are_drawn_over_their_range():
    apis = [len(s.params["apis"]) for _, s in _slots() if s.kind == "multi_api_probe"]
    denials = [m for _, s in _slots() if s.kind == "multi_api_probe" for m in s.params["denials"]]
    assert set(apis) == {2, 3, 4, 5} and min(denials) == 3 and max(denials) == 15


def _events(account, slot, keys=None):
    return st.stealth_events(slot, account, DAY0 + slot.day * 86400, keys)


def test_each_kind_looks_as_described():
    seen, creep_thirds = set(), []
    for account, slot in _slots(range(1, 5), 20):
        frame, labels = _events(account, slot, KEYS)
        p, channel = slot.params, account.channels[slot.actor]
        seen.add(slot.kind)
        usual = {a.ip for a in channel.addresses if a.first_day == 0}
        assert frame["tag"].unique().to_list() == [f"st-{slot.index}"]
        assert frame["t"].max() < DAY0 + (slot.day + 1) * 86400  # never past the UTC day
        assert labels and all(INTENSITY_KEYS <= set(lab.extra["intensity"]) for lab in labels)
        side = [lab for lab in labels if lab.key.endswith("-side-errors")]
        errors_labelled = any(lab.type == "ApiErrorRateInsight" and lab not in side for lab in labels)
        assert len(side) == (0 if errors_labelled else 1)  # the incident's own calls' usual errors
        assert all(lab.expect == "may" and lab.object == "*" for lab in side)
        labels = [lab for lab in labels if lab not in side]
        main = labels[0]
        span = (frame["t"].max() - frame["t"].min()) / 60
        if slot.kind == "quiet_stranger":
            assert frame.height == p["calls"] and set(frame["sourceIpAddress"]) == {slot.ip}
            assert p["duration"] - 1 <= span <= p["duration"]
            assert frame["eventName"].str.contains("^(Describe|List|GetBucketInfo)").all()
            assert (slot.user_agent == channel.user_agents[0][0]) != p["new_agent"]
            assert [(lab.type, lab.expect) for lab in labels] == [("IpInsight", "insight"), ("AkInsight", "may")]
        elif slot.kind == "low_rate_writes":
            per_minute = frame.group_by(pl.col("t") // 60).len()["len"].max()
            assert per_minute <= int(np.ceil(p["rate"])) + 1  # never more than a few calls in a minute
            assert frame.height == max(round(p["rate"] * p["duration"]), 1)
            assert set(frame["sourceIpAddress"]) <= usual and set(frame["eventName"]) == {p["api"]}
            local_hour = ((frame["t"] - DAY0) // 3600 + 8) % 24
            assert local_hour.is_between(3, 6).all()
            assert (main.type, main.object) == ("ApiCallRateInsight", p["api"])
        elif slot.kind == "companion_bursts":
            counts = frame["eventName"].value_counts()
            big = counts.filter(pl.col("eventName") == p["api"])["count"][0]
            small = counts.filter(pl.col("eventName") == p["small_api"])["count"][0]
            assert big > small and set(frame["sourceIpAddress"]) == {slot.ip}
            assert 0.5 * p["rate"] * p["duration"] <= big <= 1.5 * p["rate"] * p["duration"] + 5
            assert {lab.object for lab in labels if lab.type == "ApiCallRateInsight"} == {p["api"], p["small_api"]}
        elif slot.kind == "multi_api_probe":
            assert frame["errorCode"].eq("NoPermission").all() and set(frame["acsRegion"]) == {account.home_region}
            assert dict(frame["eventName"].value_counts().iter_rows()) == dict(zip(p["apis"], p["denials"]))
            assert span <= p["duration"]
            api_labels = [lab for lab in labels if lab.type == "ApiErrorRateInsight" and lab.expect == "insight"]
            assert sorted(lab.object for lab in api_labels) == sorted(p["apis"])
            assert all(lab.extra["level"] == "api" for lab in api_labels)
        elif slot.kind == "slow_runaway":
            assert set(frame["sourceIpAddress"]) <= usual and set(frame["eventName"]) == {p["api"]}
            hours = (frame["t"] - DAY0 - slot.day * 86400) // 3600
            assert frame["accessKeyId"].to_list() == [KEYS[h] for h in hours]  # the role's key of each hour
        elif slot.kind == "mixed_burst":
            assert frame.height == p["calls"] and set(frame["sourceIpAddress"]) == {slot.ip}
            first, last = frame.sort("t").row(0, named=True), frame.sort("t").row(-1, named=True)
            assert first["acsRegion"] == last["acsRegion"] == slot.region
            ram = frame.filter(pl.col("eventName").is_in(["CreateAccessKey", "AttachPolicyToUser"]))
            assert ram.height >= 2 and set(ram["acsRegion"]) == {account.home_region}
            assert frame["eventName"].eq("DeleteTrail").any()
        elif slot.kind == "error_creep":
            assert set(frame["sourceIpAddress"]) <= usual
            failed = frame.with_columns(bad=pl.col("errorCode").eq_missing("NoPermission"),
                                        part=(pl.col("t") - pl.col("t").min()) * 3 // (p["duration"] * 60 + 1))
            thirds = failed.group_by("part").agg(pl.col("bad").mean(), n=pl.len()).sort("part")
            share, n = thirds["bad"].to_numpy(), thirds["n"].to_numpy()
            # a linear ramp: the thirds' mean shares are at 1/6, 3/6 and 5/6 of the way from 3 % to s
            ramp = st.CREEP_START_SHARE + (p["share"] - st.CREEP_START_SHARE) * np.array([1, 3, 5]) / 6
            assert (np.abs(share - ramp) <= 4 * np.sqrt(ramp * (1 - ramp) / n) + 0.02).all()
            creep_thirds.append(share)
            assert 0.6 * p["rate"] <= frame.height / p["duration"] <= 1.5 * p["rate"] + 0.5
            assert main.extra["intensity"]["error_share"] == round(p["share"], 4)
    assert seen == set(st.KINDS)
    first, middle, last = np.mean(creep_thirds, axis=0)
    assert first < middle < last  # the share rises


def test_measure_baseline_counts_background_in_whole_hours():
    t = np.array([3600, 3601, 5000, 7300, 100])
    frame = sc.events_frame(t, eventName="TagResources", acsRegion="cn-beijing").with_columns(
        tag=pl.Series([None, None, "st-1", None, None], dtype=pl.String))  # a scripted row is not background
    assert st.measure_baseline(frame, "TagResources", "cn-beijing", 3700, 4000) == round(2 / 60, 6)
    assert st.measure_baseline(frame, "TagResources", "cn-beijing", 3700, 7300) == round(3 / 120, 6)
    assert st.measure_baseline(frame, "TagResources", "cn-hangzhou", 3700, 4000) == 0.0
    assert st.measure_baseline(None, "TagResources", "cn-beijing", 0, 1) is None


def test_simulated_labels_carry_intensity_and_match_the_rows(run):
    labels, events = run
    assert labels["stealth"] is True
    entries = [e for e in labels["incidents"] if e["scenario"] in st.KINDS]
    assert {e["scenario"] for e in entries} == set(st.KINDS)
    for e in entries:
        i = e["intensity"]
        assert INTENSITY_KEYS <= set(i) and i["calls"] == e["events"] > 0 and e["note"]
        assert e["start"] >= "2025-03-06" and e["start"][11:16] >= "19:45"  # day 3, after the nightly jobs
        if e["type"] in ("ApiCallRateInsight",) or e["scenario"] == "error_creep" and e["expect"] == "insight":
            assert i["baseline_per_minute"] >= 0  # measured on the day's background
        if e["type"] == "IpInsight" and e["expect"] == "insight":
            # a never-seen address: no event before the incident uses it, in any region
            used = events.filter(pl.col("sourceIpAddress") == e["object"])
            assert used["eventTime"].min() == e["start"]


def test_other_plans_are_unchanged_by_the_stealth_plan(tmp_path, run):
    labels, events = run
    plain = tmp_path / "plain"
    simulate(plain, days=6, seed=SEED, scale=SCALE, progress=False)
    base = _records(plain)
    columns = [c for c in base.columns if c != "eventId"]
    # the stealth run's first six days hold every event of the plain run, field for field
    with_stealth = events.filter(pl.col("eventTime") < "2025-03-09").select(columns)
    before, after = Counter(base.select(columns).rows()), Counter(with_stealth.rows())
    assert not before - after
    extra = after - before
    stealth_days = [e for e in labels["incidents"] if e["scenario"] in st.KINDS and e["start"] < "2025-03-09"]
    assert extra and all(row[0][11:16] >= "19:45" for row in extra)  # eventTime
    assert sum(extra.values()) >= max(e["events"] for e in stealth_days)
    # and so do the labels of every other episode (ids are renumbered, nothing else changes)
    plain_labels = json.loads((plain / "labels.json").read_text())
    strip = lambda entries: sorted(  # noqa: E731
        json.dumps({k: v for k, v in e.items() if k != "id"}, sort_keys=True) for e in entries
        if e["scenario"] not in st.KINDS and e["start"] < "2025-03-09" and e["scenario"] != "cloud_service_calls")
    assert strip(plain_labels["incidents"]) == strip(labels["incidents"])
    assert "stealth" not in plain_labels
