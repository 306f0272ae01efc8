"""IpInsight: new source addresses, heterogeneity dimensions, learning period, chunking."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from insights_kit.detectors.base import INCIDENT_SCHEMA, Allowlist, UnitContext
from insights_kit.detectors.ip import IpConfig, IpDetector
from insights_kit.schema import conform

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
DAY10 = T0 + timedelta(days=10)
OFFICE_UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
SDK_UA = "aliyun-sdk-java/4.5.0 Java/17"
ATTACKER_UA = "python-requests/2.31"
FOREIGN = "185.220.101.1"  # a public address outside every network of the history


def ev(t, ip, principal, ua, name, rw="Read", error=None):
    return {
        "eventTime": t,
        "eventName": name,
        "eventRW": rw,
        "sourceIpAddress": ip,
        "sourceIsIp": True,
        "principalId": principal,
        "userAgent": ua,
        "errorCode": error,
        "recipientAccountId": "1",
        "acsRegion": "cn-hangzhou",
    }


def office_history(days: int = 10) -> list[dict]:
    """alice works 09-17 from three office addresses; automation runs hourly from a VPC."""
    rows = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        for hour in range(9, 18):
            for i, ip in enumerate(["203.0.113.10", "203.0.113.11", "203.0.113.12"]):
                t = day + timedelta(hours=hour, minutes=7 * i)
                rows.append(ev(t, ip, "alice", OFFICE_UA, "DescribeInstances"))
                rows.append(ev(t + timedelta(minutes=2), ip, "alice", OFFICE_UA, "StartInstance", "Write"))
        for hour in range(24):
            for ip in ["10.1.2.3", "10.1.3.4"]:
                t = day + timedelta(hours=hour, minutes=30)
                rows.append(ev(t, ip, "automation", SDK_UA, "DescribeSnapshots"))
                rows.append(ev(t, ip, "automation", SDK_UA, "CreateSnapshot", "Write"))
    return rows


def attack(start: datetime, calls: int = 40) -> list[dict]:
    """A foreign address with a new user agent deleting instances, half of the calls failing."""
    return [
        ev(start + timedelta(minutes=i // 10), FOREIGN, "alice", ATTACKER_UA, "DeleteInstance", "Write", "Forbidden" if i % 2 else None)
        for i in range(calls)
    ]


def frame(rows: list[dict]) -> pl.DataFrame:
    df = pl.DataFrame(rows, infer_schema_length=None).sort("eventTime", maintain_order=True)
    df = df.with_columns(pl.format("e{}", pl.int_range(pl.len())).alias("eventId"))
    return conform(df).collect()


def context(events: pl.DataFrame, *, data_end=None, history=None, allowlist=None, data_start=None) -> UnitContext:
    start = data_start or events["eventTime"].min().replace(second=0, microsecond=0)
    end = data_end or events["eventTime"].max().replace(second=0, microsecond=0) + timedelta(minutes=1)
    return UnitContext(
        account="1",
        region="cn-hangzhou",
        data_start=start,
        data_end=end,
        learning_end=start + timedelta(hours=24),
        history=history or {},
        allowlist=allowlist or Allowlist(),
    )


def run(rows, config=None, **ctx_kwargs):
    events = frame(rows)
    ctx = context(events, **ctx_kwargs)
    incidents = IpDetector(config or IpConfig()).detect(events.lazy(), ctx)
    return incidents, ctx


def starts(incidents: pl.DataFrame) -> list[tuple[str, datetime]]:
    return sorted(incidents.select("insightObject", "startTime").rows())


def dimensions(incident_model: str) -> dict[str, dict]:
    return {d["name"]: d for d in json.loads(incident_model)["dimensions"]}


@pytest.fixture(scope="module")
def day10():
    """History + day 10 with a colleague, a new VPC address and the attack."""
    rows = office_history()
    rows += [
        ev(DAY10 + timedelta(hours=10, minutes=3), "203.0.113.77", "alice", OFFICE_UA, "DescribeInstances"),
        ev(DAY10 + timedelta(hours=10, minutes=5), "203.0.113.77", "alice", OFFICE_UA, "StartInstance", "Write"),
        ev(DAY10 + timedelta(hours=11, minutes=30), "10.1.9.9", "automation", SDK_UA, "DescribeSnapshots"),
        ev(DAY10 + timedelta(hours=11, minutes=30), "10.1.9.9", "automation", SDK_UA, "CreateSnapshot", "Write"),
    ]
    rows += attack(DAY10 + timedelta(hours=3, minutes=12, seconds=20))
    return rows


def test_only_the_attack_fires(day10):
    incidents, ctx = run(day10)
    assert incidents.schema == pl.Schema(INCIDENT_SCHEMA)
    # (a) colleague in the office /24 and (b) new address in the automation's private /16: no insight
    assert starts(incidents) == [(FOREIGN, DAY10 + timedelta(hours=3, minutes=12))]
    row = incidents.row(0, named=True)
    assert row["insightType"] == "IpInsight" and row["sourceIpAddress"] == FOREIGN
    assert row["firedAt"] >= row["startTime"]
    assert row["endTime"] == DAY10 + timedelta(hours=3, minutes=16)  # last call 03:15 + 1
    assert row["insightCount"] == 40 and row["insightAverage"] == 40.0
    assert row["baselineAverage"] == 0.0 and row["baselineDuration"] == 10 * 1440 - 30
    model = json.loads(row["model"])
    assert model["score"] >= model["threshold"] == 0.6
    assert model["trainingProfiles"] >= 30 and 0.0 <= model["isolationForest"] <= 1.0
    dims = dimensions(row["model"])
    assert [d["name"] for d in model["dimensions"]] == list(dims)
    assert dims["network"]["verdict"] == "UNSEEN"
    assert dims["userAgent"]["verdict"] == "UNSEEN"
    assert dims["principal"]["verdict"] == "RARE"  # alice, but never from this network
    assert dims["sensitiveApis"]["verdict"] == "UNSEEN"
    assert all(0.0 <= d["score"] <= 1.0 and d["detail"] for d in dims.values())
    assert ctx.counters["suppressed"] == 0


def test_benign_candidates_score_low(day10):
    incidents, _ = run(day10, IpConfig(threshold=0.0))  # every candidate fires at its first minute
    by_address = {r["insightObject"]: json.loads(r["model"]) for r in incidents.iter_rows(named=True)}
    assert set(by_address) == {FOREIGN, "203.0.113.77", "10.1.9.9"}
    colleague = {d["name"]: d for d in by_address["203.0.113.77"]["dimensions"]}
    assert colleague["network"]["verdict"] == "INFREQUENT"  # same /24
    assert colleague["principal"]["verdict"] == "FREQUENT" and colleague["userAgent"]["verdict"] == "FREQUENT"
    vpc = {d["name"]: d for d in by_address["10.1.9.9"]["dimensions"]}
    assert vpc["network"]["verdict"] == "INFREQUENT"  # known private /16 = same network
    assert vpc["asn"]["verdict"] == "FREQUENT"  # the private pseudo-ASN is in daily use
    assert by_address["203.0.113.77"]["score"] < 0.4 and by_address["10.1.9.9"]["score"] < 0.45


def test_known_next_day_and_one_insight_per_day(day10):
    rows = list(day10)
    day11 = DAY10 + timedelta(days=1)
    rows += attack(day11 + timedelta(hours=4))  # (d) known now: no new insight
    incidents, _ = run(rows)
    assert starts(incidents) == [(FOREIGN, DAY10 + timedelta(hours=3, minutes=12))]


def test_two_bursts_one_insight():
    rows = office_history()
    # (e) one quiet call, then a burst two hours later: one insight, from the first call
    rows.append(ev(DAY10 + timedelta(hours=1, minutes=5), FOREIGN, "alice", ATTACKER_UA, "DescribeInstances"))
    rows += attack(DAY10 + timedelta(hours=3, minutes=12), calls=20)
    rows += attack(DAY10 + timedelta(hours=6), calls=20)
    incidents, _ = run(rows)
    assert incidents.height == 1
    row = incidents.row(0, named=True)
    assert row["startTime"] == DAY10 + timedelta(hours=1, minutes=5)
    assert row["firedAt"] >= DAY10 + timedelta(hours=1, minutes=5)
    assert row["insightCount"] <= 41


def test_allowlisted_network_and_principal_are_suppressed(day10):
    incidents, ctx = run(day10, allowlist=Allowlist(networks=("185.220.0.0/16",)))
    assert incidents.height == 0
    assert ctx.counters["suppressed"] == 1
    incidents, ctx = run(day10, allowlist=Allowlist(networks=("2001:db8::/32", "185.220.101.1")))
    assert incidents.height == 0 and ctx.counters["suppressed"] == 1
    incidents, ctx = run(day10, allowlist=Allowlist(principals=("alice",)))
    assert incidents.height == 0
    # only alice called from: the foreign address, the colleague's, and the 3 office ones on day 1 (all new then)
    assert ctx.counters["suppressed"] == 5


def test_open_incident_has_null_end(day10):
    events = frame(day10)
    ctx = context(events, data_end=DAY10 + timedelta(hours=3, minutes=30))
    incidents = IpDetector(IpConfig()).detect(events.filter(pl.col("eventTime") < ctx.data_end).lazy(), ctx)
    row = incidents.row(0, named=True)
    assert row["endTime"] is None  # quiet for 15 minutes only
    assert row["insightDuration"] == 18


def learning_rows() -> list[dict]:
    """First day: the office and automation (established), an intruder and a sporadic newcomer."""
    rows = office_history(days=3)
    intruder = "198.51.100.50"
    rows += [
        ev(T0 + timedelta(hours=20, minutes=1), intruder, "mallory", "aws-cli/2.2.23 Python/3.8", "GetCallerIdentity"),
        ev(T0 + timedelta(hours=20, minutes=3), intruder, "mallory", "aws-cli/2.2.23 Python/3.8", "ListUsers", error="AccessDenied"),
        ev(T0 + timedelta(hours=20, minutes=4), intruder, "mallory", "aws-cli/2.2.23 Python/3.8", "PutUserPolicy", "Write"),
        ev(T0 + timedelta(hours=20, minutes=5), intruder, "mallory", "aws-cli/2.2.23 Python/3.8", "CreateAccessKey", "Write"),
    ]
    # the same kind of activity spread over 3 clock hours: established, never released
    for hour in (2, 5, 8):
        rows.append(ev(T0 + timedelta(hours=hour, minutes=40), "192.0.2.60", "bob", "Boto3/1.18.8 Python/3.7", "PutUserPolicy", "Write"))
    return rows


def test_learning_withholds_then_releases_non_established():
    rows = learning_rows()
    incidents, ctx = run(rows)
    assert starts(incidents) == [("198.51.100.50", T0 + timedelta(hours=20, minutes=1))]
    assert ctx.counters["released"] == 1
    assert ctx.counters["withheld"] == 7  # 5 office/automation + intruder + bob
    model = json.loads(incidents["model"][0])
    assert model["isolationForest"] is None and model["trainingProfiles"] == 0
    assert incidents["baselineDuration"][0] == 24 * 60


def test_learning_not_decided_before_learning_end():
    rows = [r for r in learning_rows() if r["eventTime"] < T0 + timedelta(hours=21)]
    incidents, ctx = run(rows)
    assert incidents.height == 0
    assert ctx.counters["withheld"] == 7 and ctx.counters["released"] == 0


def chunked_starts(rows, cuts, config=None):
    events = frame(rows)
    single_ctx = context(events)
    single = IpDetector(config or IpConfig()).detect(events.lazy(), single_ctx)
    history, found = {}, []
    bounds = [single_ctx.data_start, *cuts, single_ctx.data_end]
    for lo, hi in zip(bounds, bounds[1:]):
        part = events.filter(pl.col("eventTime").is_between(lo, hi, closed="left"))
        ctx = context(events, data_start=single_ctx.data_start, data_end=hi, history=history)
        found.append(IpDetector(config or IpConfig()).detect(part.lazy(), ctx))
        history = ctx.new_history
    return single, pl.concat(found).unique(["insightObject", "startTime"], keep="last")


def test_chunking_gives_the_same_starts(day10):
    rows = learning_rows() + [r for r in day10 if r["eventTime"] >= T0 + timedelta(days=3)]
    rows += attack(DAY10 + timedelta(days=1, hours=23, minutes=50), calls=5)  # known by then
    cuts = [T0 + timedelta(hours=20, minutes=3), T0 + timedelta(days=4, hours=7, minutes=13), DAY10 + timedelta(hours=3, minutes=13)]
    single, chunked = chunked_starts(rows, cuts)
    assert starts(single) == starts(chunked)
    assert len(starts(single)) == 2
    # the incident open at a cut is closed by the next run, identically
    assert single.sort("startTime").select("endTime", "insightCount", "firedAt").rows() == chunked.sort("startTime").select(
        "endTime", "insightCount", "firedAt"
    ).rows()


def test_deterministic(day10):
    first, _ = run(day10)
    second, _ = run(day10)
    assert first.equals(second)


# ----------------------------------------------------------------------------- real data
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "sans504-s3-ransomware"


def _sans_unit_events() -> pl.DataFrame:
    """us-west-1 with global (us-east-1 IAM ...) events remapped into it."""
    try:
        from insights_kit.readers import load
    except ImportError:
        load = None
    if load is not None:
        events = load([REALDATA], progress=False).events.collect()
    else:  # fallback parser for the native S3 delivery layout
        records = []
        for path in sorted(REALDATA.rglob("*.json.gz")):
            records += json.loads(gzip.decompress(path.read_bytes()))["Records"]
        raw = pl.DataFrame(
            [
                {
                    "eventId": r["eventID"],
                    "eventTime": r["eventTime"],
                    "eventName": r["eventName"],
                    "acsRegion": r["awsRegion"],
                    "isGlobal": r["awsRegion"] == "us-east-1" and r["eventSource"].split(".")[0] in ("iam", "sts", "signin"),
                    "sourceIpAddress": r.get("sourceIPAddress"),
                    "sourceIsIp": r.get("sourceIPAddress", "")[:1].isdigit(),
                    "userAgent": r.get("userAgent"),
                    "principalId": r.get("userIdentity", {}).get("principalId"),
                    "errorCode": r.get("errorCode"),
                    "eventRW": None if r.get("readOnly") is None else ("Read" if r["readOnly"] else "Write"),
                }
                for r in records
            ],
            infer_schema_length=None,
        ).with_columns(pl.col("eventTime").str.to_datetime(time_zone="UTC"))
        events = conform(raw.unique("eventId", keep="first", maintain_order=True)).collect()
    return events.filter(pl.col("isGlobal").fill_null(False) | (pl.col("acsRegion") == "us-west-1"))


@pytest.mark.realdata
@pytest.mark.skipif(not REALDATA.exists(), reason="shared/realdata/sans504-s3-ransomware absent")
def test_sans_new_ip_is_found_and_operator_is_not():
    events = _sans_unit_events()
    ctx = context(events)
    assert ctx.data_start == datetime(2021, 7, 28, 15, 28, tzinfo=timezone.utc)
    incidents = IpDetector(IpConfig()).detect(events.lazy(), ctx)
    found = starts(incidents)
    assert ("3.238.12.183", datetime(2021, 7, 29, 13, 2, tzinfo=timezone.utc)) in found
    assert all(address != "96.253.26.224" for address, _ in found)
    dims = dimensions(incidents.filter(pl.col("insightObject") == "3.238.12.183")["model"][0])
    assert dims["principal"]["verdict"] == "UNSEEN" and dims["network"]["verdict"] == "UNSEEN"


def test_a_quiet_stranger_fires_and_the_end_judges_the_whole_incident():
    """Four reads of alice's key, with her usual agent, from a never-seen network, ASN and country."""
    start = DAY10 + timedelta(hours=11, minutes=4)
    quiet = [ev(start + timedelta(minutes=12 * i), FOREIGN, "alice", OFFICE_UA, "DescribeInstances") for i in range(4)]
    later = [ev(start + timedelta(minutes=50 + i), FOREIGN, "alice", OFFICE_UA, "DeleteInstance", "Write")
             for i in range(6)]
    incidents, _ = run(office_history() + quiet + later, data_end=DAY10 + timedelta(days=1))
    assert starts(incidents) == [(FOREIGN, start)]
    row = incidents.row(0, named=True)
    model = json.loads(row["model"])
    assert model["stranger"] and model["score"] >= 0.65 and row["firedAt"] == start
    assert model["calls"] == 1  # the Start is what the first call showed
    end = json.loads(row["endModel"])
    assert end["calls"] == 10  # the End covers every call of the incident
    assert dimensions(row["endModel"])["sensitiveApis"]["score"] > dimensions(row["model"])["sensitiveApis"]["score"]
    # without the stranger rule, the same reads stay below the threshold
    without, _ = run(office_history() + quiet, IpConfig(stranger_score=0.0))
    assert without.height == 0


def test_an_incident_never_makes_its_network_familiar():
    # The attacker of day 10 comes back on day 12 from the next address of its /24 with the
    # same client, for a handful of reads: its day-10 calls are not history, so it is a
    # never-seen network, ASN and client again. The day-10 address itself stays seen.
    rows = office_history(12) + attack(DAY10 + timedelta(hours=3))
    back = DAY10 + timedelta(days=2, hours=5)
    rows += [ev(back + timedelta(minutes=4 * i), "185.220.101.77", "alice", ATTACKER_UA, "DescribeInstances")
             for i in range(6)]
    rows += attack(DAY10 + timedelta(days=2, hours=9))  # the day-10 address again: already raised once
    incidents, _ = run(rows)
    assert starts(incidents) == [(FOREIGN, DAY10 + timedelta(hours=3)), ("185.220.101.77", back)]


def test_sensitivity_sums_do_not_depend_on_row_order_or_chunks():
    import random

    from insights_kit.detectors.ip_features import _fixed_order_sum

    rng = random.Random(3)
    values = [rng.random() for _ in range(5000)]
    sums = set()
    for _ in range(6):
        order = values[:]
        rng.shuffle(order)
        cuts = [0, *sorted(rng.sample(range(1, len(order)), 7)), len(order)]
        frame = pl.concat([pl.DataFrame({"k": [1] * (b - a), "v": order[a:b]}) for a, b in zip(cuts, cuts[1:])],
                          rechunk=False)
        sums.add(frame.lazy().group_by("k").agg(_fixed_order_sum("v")).collect().item(0, "v"))
    assert len(sums) == 1 and sums.pop() == pytest.approx(sum(values), abs=1e-6 * len(values))


def _state_runs(events: pl.DataFrame, cuts, *, late: pl.DataFrame | None = None, late_at: int = 0,
                forget_settled: bool = False):
    """Runs as a --state run makes them: all events so far, the history, the oldest new event.

    ``late`` rows arrive only with run ``late_at`` (their true times are older).
    ``forget_settled``: each run is given only the events of the days its history does not settle.
    """
    start = events["eventTime"].min().replace(second=0, microsecond=0)
    history, seen_until, result = {}, start, None
    for k, hi in enumerate(cuts):
        known = events.filter(pl.col("eventTime") < hi)
        new = known.filter(pl.col("eventTime") >= seen_until)
        if late is not None:
            if k < late_at:
                known = known.join(late, on="eventId", how="anti")
                new = new.join(late, on="eventId", how="anti")
            elif k == late_at:
                new = pl.concat([new, late])
        if forget_settled and "ip_state" in history:
            settled = int(history["ip_state"]["keepFrom"][0])
            oldest_new = new["eventTime"].min()
            if oldest_new is not None:
                settled = min(settled, int(oldest_new.timestamp() // 86_400))
            known = known.filter(pl.col("eventTime") >= datetime.fromtimestamp(settled * 86_400, timezone.utc))
        ctx = context(known, data_start=start, data_end=hi, history=history)
        ctx.changed_since = new["eventTime"].min()
        result = IpDetector(IpConfig()).detect(known.sort("eventTime").lazy(), ctx)
        history, seen_until = ctx.new_history, hi
    return result


def test_state_runs_replay_settled_days_and_rework_a_late_day(day10):
    day11 = [r for r in office_history(days=12) if r["eventTime"] >= DAY10 + timedelta(days=1)]
    events = frame(learning_rows() + [r for r in day10 if r["eventTime"] >= T0 + timedelta(days=3)] + day11)
    end = events["eventTime"].max().replace(second=0, microsecond=0) + timedelta(minutes=1)
    whole = IpDetector(IpConfig()).detect(events.lazy(), context(events, data_end=end))
    attack_rows = events.filter(pl.col("sourceIpAddress") == FOREIGN)
    assert whole.filter(pl.col("insightObject") == FOREIGN).height == 1
    cuts = [T0 + timedelta(days=d, hours=6) for d in range(1, 12)] + [end]
    columns = ["insightObject", "startTime", "endTime", "insightCount", "firedAt", "model", "endModel"]
    expected = whole.sort("startTime", "insightObject").select(columns)
    for kwargs in ({}, {"forget_settled": True}):
        # day by day: the earlier days' incidents come back from the history, unchanged
        assert _state_runs(events, cuts, **kwargs).sort("startTime", "insightObject").select(columns).equals(expected)
    # the attack's events (day 10, 03:12) delivered only with the last run, after the run that
    # ended at day 11, 06:00 settled day 10
    late_at = len(cuts) - 1
    assert cuts[late_at - 1] >= DAY10 + timedelta(days=1)
    for kwargs in ({}, {"forget_settled": True}):
        got = _state_runs(events, cuts, late=attack_rows, late_at=late_at, **kwargs)
        assert got.sort("startTime", "insightObject").select(columns).equals(expected)
