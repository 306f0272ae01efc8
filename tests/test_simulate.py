"""The labelled simulator: layout, determinism, event shapes, labels, seasonality."""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from insights_kit import scenarios as sc
from insights_kit.simulate import main, simulate
from insights_kit.schema import ACTIONTRAIL_INSIGHT_TYPES

SEED, SCALE = 3, 0.02
#: A Sunday: five days cover a weekend day, a Monday morning and three incidents (days 3-4).
START = date(2025, 3, 9)
NAME = re.compile(
    r"^Actiontrail_(?P<region>[a-z0-9-]+)_(?P<stamp>\d{14})_1002_(?P<count>\d+)_(?P<size>\d+)_(?P<md5>[0-9a-f]{32})\.gz$"
)
GUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _files(root: Path) -> list[Path]:
    return sorted((root / "AliyunLogs").rglob("*.gz"))


def _lines(root: Path) -> list[tuple[Path, str]]:
    return [(f, line) for f in _files(root) for line in gzip.decompress(f.read_bytes()).decode().splitlines()]


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, days=5, seed=SEED, scale=SCALE, start=START, progress=False)
    return out


@pytest.fixture(scope="module")
def records(sim) -> list[dict]:
    return [json.loads(line) for _, line in _lines(sim)]


@pytest.fixture(scope="module")
def events(records) -> pl.DataFrame:
    """Distinct events, flattened, with a parsed time and the local (UTC+8) clock."""
    flat = [
        {k: v for k, v in r.items() if k not in ("userIdentity", "eventAttributes")}
        | {"idType": r["userIdentity"]["type"], "principalId": r["userIdentity"].get("principalId"),
           "accessKeyId": r["userIdentity"].get("accessKeyId")}
        for r in records
    ]
    frame = pl.DataFrame(flat, infer_schema_length=None).unique("eventId", keep="first", maintain_order=True)
    return frame.with_columns(
        ts=pl.col("eventTime").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
    ).with_columns(local=pl.col("ts").dt.convert_time_zone("Asia/Shanghai"))


@pytest.fixture(scope="module")
def labels(sim) -> dict:
    return json.loads((sim / "labels.json").read_text())


def test_same_arguments_give_the_same_bytes_and_no_incidents_below_four_days(tmp_path):
    a = simulate(tmp_path / "a", days=2, seed=5, scale=0.01, progress=False)
    b = simulate(tmp_path / "b", days=2, seed=5, scale=0.01, progress=False)
    files_a, files_b = _files(a.out), _files(b.out)
    assert [f.relative_to(a.out) for f in files_a] == [f.relative_to(b.out) for f in files_b] and files_a
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(files_a, files_b))
    assert a.labels_path.read_bytes() == b.labels_path.read_bytes()
    got = json.loads(a.labels_path.read_text())
    assert not [e for e in got["incidents"] if e["expect"] == "insight"]
    assert "no incidents" in got["note"]
    # a different seed is a different account
    c = simulate(tmp_path / "c", days=1, seed=6, scale=0.01, progress=False)
    assert json.loads(c.labels_path.read_text())["account"] != got["account"]


def test_first_days_do_not_depend_on_the_number_of_days(tmp_path, sim):
    shorter = simulate(tmp_path / "short", days=4, seed=SEED, scale=SCALE, start=START, progress=False)
    short_files = {f.relative_to(shorter.out): f.read_bytes() for f in _files(shorter.out)}
    long_files = {f.relative_to(sim): f.read_bytes() for f in _files(sim) if f.parts[-2] != "13"}  # day 5: 13 Mar
    assert short_files.keys() == long_files.keys()
    assert short_files == long_files


def test_rerun_into_the_same_folder_replaces_the_files(tmp_path):
    simulate(tmp_path, days=1, seed=1, scale=0.01, progress=False)
    first = sorted(p.name for p in _files(tmp_path))
    simulate(tmp_path, days=1, seed=2, scale=0.01, progress=False)
    second = sorted(p.name for p in _files(tmp_path))
    assert not set(first) & set(second)
    assert len({p.name for p in _files(tmp_path)}) == len(second)


def test_files_follow_the_oss_delivery_layout(sim, labels):
    files = _files(sim)
    assert len(files) == labels["files"]
    for f in files:
        match = NAME.match(f.name)
        assert match, f.name
        parts = f.relative_to(sim).parts
        assert parts[:2] == ("AliyunLogs", "Actiontrail") and len(parts) == 7
        region, year, month, day = parts[2:6]
        assert region == match["region"] and match["stamp"][:8] == f"{year}{month}{day}"
        data = f.read_bytes()
        assert int(match["size"]) == len(data)
        assert match["md5"] == hashlib.md5(data).hexdigest()
        assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0: reproducible bytes
        lines = gzip.decompress(data).decode().splitlines()
        assert int(match["count"]) == len(lines)
        stamp = datetime.strptime(match["stamp"], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        for line in lines[:3]:
            event = json.loads(line)
            assert event["acsRegion"] == region
            # the file's window: 5 minutes from the stamp (a duplicate may come from the window before)
            seconds = (datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) - stamp)
            assert -300 <= seconds.total_seconds() < 300


def test_records_have_actiontrail_fields_and_types(records, labels):
    home = labels["home_region"]
    seen_types = set()
    for r in records:
        assert r["eventVersion"] == "1" and GUID.match(r["eventId"]) and GUID.match(r["requestId"])
        assert TIME.match(r["eventTime"])
        assert r["eventType"] in {"ApiCall", "ConsoleOperation", "ConsoleSignin", "AliyunServiceEvent"}
        seen_types.add(r["eventType"])
        assert r["eventCategory"] == "Management" and r["eventRW"] in {"Read", "Write"}
        assert isinstance(r["isGlobal"], bool) and r["recipientAccountId"] == labels["account"]
        for key in ("eventName", "eventSource", "serviceName", "acsRegion", "sourceIpAddress", "userAgent"):
            assert isinstance(r[key], str) and r[key]
        assert ("apiVersion" in r) == (r["eventType"] == "ApiCall")
        # errorCode/errorMessage only on failures: absent (never null) otherwise
        assert ("errorCode" in r) == ("errorMessage" in r)
        assert r.get("errorCode", "x") and r.get("errorMessage", "x")
        identity = r["userIdentity"]
        assert identity["type"] in {"ram-user", "assumed-role", "root-account", "system"}
        if identity["type"] == "system":
            assert r["eventType"] == "AliyunServiceEvent" and set(identity) == {"type", "userName"}
        else:
            assert identity["accountId"] == labels["account"] and identity["principalId"]
        if identity["type"] == "assumed-role":
            assert identity["accessKeyId"].startswith("STS.") and ":" in identity["principalId"]
            assert identity["userName"].split(":")[1] == identity["principalId"].split(":")[1]
        if r["eventType"].startswith("Console"):
            assert "accessKeyId" not in identity
        if r["isGlobal"]:
            assert r["acsRegion"] == home and r["serviceName"] in {"Ram", "Sts", "AasSub"}
        if "eventAttributes" in r:
            assert r["eventAttributes"] == {"SensitiveAction": "true"} and r["eventRW"] == "Write"
        if "vpcId" in r:
            assert ipaddress.ip_address(r["sourceIpAddress"]).is_private and r["vpcId"].startswith("vpc-")
    assert seen_types == {"ApiCall", "ConsoleOperation", "ConsoleSignin", "AliyunServiceEvent"}
    assert any(r["isGlobal"] and r["serviceName"] == "Ram" for r in records)
    # background errors (days before the first incident) exist but stay a small share
    quiet = [r for r in records if r["eventTime"] < "2025-03-12"]
    errors = sum("errorCode" in r for r in quiet)
    assert 0 < errors < 0.03 * len(quiet)


def test_duplicate_deliveries_are_exact_copies_in_another_file(sim, labels):
    by_id: dict[str, list[tuple[Path, str]]] = {}
    for f, line in _lines(sim):
        by_id.setdefault(json.loads(line)["eventId"], []).append((f, line))
    copies = {k: v for k, v in by_id.items() if len(v) > 1}
    assert len(copies) == labels["duplicates"] > 0
    assert len(by_id) == labels["events"]
    assert labels["records"] == labels["events"] + labels["duplicates"]
    for (f1, l1), (f2, l2) in copies.values():
        assert l1 == l2 and f1 != f2


def test_labels_name_events_that_are_in_the_data(events, labels):
    assert {"generator", "seed", "days", "scale", "start", "end", "account", "regions", "home_region",
            "duplicates", "events", "incidents"} <= set(labels)
    assert labels["generator"] == "insights-kit simulate" and labels["days"] == 5
    incidents = [e for e in labels["incidents"] if e["expect"] == "insight"]
    assert len({e["id"] for e in labels["incidents"]}) == len(labels["incidents"])
    assert {e["scenario"] for e in incidents} and len({e["region"] for e in incidents}) >= 2
    for entry in labels["incidents"]:
        assert entry["type"] in set(ACTIONTRAIL_INSIGHT_TYPES)
        assert entry["region"] in labels["regions"] and entry["expect"] in {"insight", "none", "may"}
        start = datetime.strptime(entry["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        end = datetime.strptime(entry["end"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert start <= end
        rows = events.filter((pl.col("acsRegion") == entry["region"]) & pl.col("ts").is_between(start, end))
        if entry["type"] == "IpInsight":
            rows = rows.filter(pl.col("sourceIpAddress") == entry["object"])
        elif entry["type"] in ("TrailConcealmentInsight", "PolicyChangeInsight", "PasswordChangeInsight"):
            rows = rows.filter(pl.col("serviceName") == entry["object"])  # the object is the service
        elif entry["type"] == "AkInsight":  # the object is the AccessKey
            rows = rows.filter(pl.col("accessKeyId") == entry["object"])
        elif entry["object"] != "*":
            rows = rows.filter((pl.col("eventName") == entry["object"]) | (pl.col("errorCode") == entry["object"]))
        assert rows.height >= entry["events"] > 0, entry["id"]
        assert rows["ts"].min() == start and rows["ts"].max() == end, entry["id"]
        if entry["expect"] == "insight":
            assert start.date() >= date.fromordinal(START.toordinal() + sc.FIRST_INCIDENT_DAY)
        if entry["expect"] == "insight" and entry["type"] == "IpInsight":
            # a never-seen foreign address, used only by the incident
            every = events.filter(pl.col("sourceIpAddress") == entry["object"])
            assert every["ts"].min() == start and every["ts"].max() == end
            assert ipaddress.ip_address(entry["object"]).is_global
        if entry["type"] == "ApiErrorRateInsight" and entry["expect"] == "insight":
            code = entry["errorCode"]
            failed = rows.filter(pl.col("errorCode") == code).height
            assert failed >= 0.3 * rows.height


def test_benign_lookalikes_are_present(events, labels):
    benign = [e for e in labels["incidents"] if e["expect"] == "none"]
    scenarios = {e["scenario"] for e in benign}
    assert {"nightly_backup", "nightly_cleanup", "readonly_burst", "monday_morning", "cloud_service_calls",
            "new_address_same_subnet", "new_private_vpc_address"} <= scenarios
    for entry in benign:
        if entry["scenario"] == "readonly_burst":
            assert 300 <= entry["burstEvents"] <= 800
        if entry["scenario"] == "nightly_backup":
            local = datetime.strptime(entry["start"], "%Y-%m-%dT%H:%M:%SZ").hour + 8
            assert local % 24 in (1, 2)  # 02:00 +- 3 min local
            assert 30 <= entry["events"] <= 60
        if entry["scenario"].startswith("new_"):
            # new address next to the principal's known ones: same /24 (public) or /16 (private VPC)
            # (IpInsight is per region: "new" means new in the label's region)
            before = events.filter(
                (pl.col("principalId") == entry["principalId"]) & (pl.col("eventTime") < entry["start"])
                & (pl.col("acsRegion") == entry["region"])
            )["sourceIpAddress"].unique()
            prefix = 16 if ipaddress.ip_address(entry["object"]).is_private else 24
            net = ipaddress.ip_network(f"{entry['object']}/{prefix}", strict=False)
            assert entry["object"] not in before.to_list()
            assert any(ipaddress.ip_address(ip) in net for ip in before.to_list())


def test_seasonality_is_visible(events):
    days = events.group_by(pl.col("ts").dt.date().alias("day")).len().sort("day")["len"].to_list()
    sunday, weekdays = days[0], days[1:3]  # days 3-4 hold incidents
    assert min(weekdays) > 1.2 * sunday
    people = events.filter(pl.col("userAgent").is_in([sc.UA_CONSOLE, sc.UA_CLI]))
    hour = pl.col("local").dt.hour()
    busy = people.filter((hour >= 9) & (hour < 18)).height / 9
    night = people.filter(hour < 6).height / 6
    assert busy > 5 * night
    monday = people.filter((pl.col("local").dt.weekday() == 1) & (hour >= 9) & (hour < 11)).height
    tuesday = people.filter((pl.col("local").dt.weekday() == 2) & (hour >= 9) & (hour < 11)).height
    assert monday > 1.4 * tuesday
    quiet = events.filter((pl.col("ts").dt.day() <= 11) & (pl.col("principalId").str.contains(":nightly").not_()))
    rw = dict(quiet.group_by("eventRW").len().iter_rows())
    assert rw["Read"] > 5 * rw["Write"]


def test_incident_plan_is_a_prefix_and_covers_every_scenario_by_day_eight():
    short, long = sc.incident_plan(7, max_day=7), sc.incident_plan(7, max_day=30)
    assert long[: len(short)] == short
    assert {s.scenario for s in short} == set(sc.SCENARIOS)
    assert min(s.day for s in long) == sc.FIRST_INCIDENT_DAY
    assert len({s.region for s in short}) >= 3
    ips = [s.ip for s in long if s.ip]
    assert len(ips) == len(set(ips))


@pytest.mark.parametrize("scenario", sc.SCENARIOS)
def test_each_scenario_has_its_documented_shape(scenario):
    account = sc.build_account(11)
    plan = [s for s in sc.incident_plan(11, max_day=40) if s.scenario == scenario]
    for slot in plan[:2]:
        frame, specs = sc.incident_events(slot, account, 1_741_000_000 - 1_741_000_000 % 86400, "STS.NTtest")
        frame = frame.with_columns(
            rw=pl.col("eventName").replace_strict({n: a.rw for n, a in sc.APIS.items()}),
            minute=pl.col("t") // 60,
        )
        span = (frame["t"].max() - frame["t"].min()) / 60
        known = {a.ip for a in account.channels[slot.actor].addresses}
        # the primary trace is always expected; an AkInsight of a short burst only "may" be raised
        assert frame["tag"].n_unique() == 1 and specs[0].expect == "insight"
        assert {s.expect for s in specs} <= {"insight", "may"}
        ip_specs = [s for s in specs if s.type == "IpInsight"]
        if ip_specs:
            assert frame["sourceIpAddress"].unique().to_list() == [slot.ip] and slot.ip not in known
            assert ip_specs[0].object == slot.ip
        if scenario == "leaked_key_teardown":
            deletes = frame.filter(pl.col("eventName") == "DeleteInstance").height
            assert 40 <= deletes <= 80 and span <= 7
            assert frame.filter(pl.col("eventName") == "DeleteSnapshot").height > 0
            assert {s.object for s in specs} >= {slot.ip, "DeleteInstance"}
        elif scenario == "permission_probing":
            assert 40 <= frame["eventName"].n_unique() <= 60 and span <= 10.5
            denied = frame.filter(pl.col("errorCode") == "NoPermission")
            assert denied.height > 0.7 * frame.height
            assert 3 <= denied.height / 10 <= 12
        elif scenario == "quiet_recon":
            assert 10 <= frame.height <= 25 and set(frame["rw"]) == {"Read"} and span <= 60
        elif scenario == "runaway_automation":
            per_minute = frame.group_by("minute").len()["len"]
            assert 50 <= per_minute.mean() <= 200 and 30 <= span <= 91
            assert set(frame["sourceIpAddress"]) <= known and frame["eventName"].n_unique() == 1
        elif scenario == "throttling_storm":
            share = frame["errorCode"].eq_missing("Throttling.User").mean()
            assert 0.3 <= share <= 0.8 and 10 <= span <= 31
            assert set(frame["sourceIpAddress"]) <= known
            assert specs[0].object == "DescribeInstances" and specs[0].type == "ApiErrorRateInsight"
        elif scenario == "trail_tampering":
            assert {"StopLogging", "UpdateTrail", "DeleteTrail", "DeleteBucket"} <= set(frame["eventName"])
            assert all(sc.APIS[n].sensitive for n in ("StopLogging", "UpdateTrail", "DeleteTrail"))


def test_guids_and_volume_scale():
    from insights_kit.simulate import guids

    g = guids(np.random.default_rng(1), 1000)
    assert g.str.contains(GUID.pattern).all() and g.n_unique() == 1000


def test_module_entry_point(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--days", "1", "--seed", "2", "--scale", "0.005", "--no-progress"]) == 0
    assert "events in" in capsys.readouterr().out
    assert (tmp_path / "labels.json").exists()
