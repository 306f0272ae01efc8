"""Rate detectors on synthetic minute series whose answer is known (and one real trail)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from insights_kit.detectors._rate import CallRateConfig, ErrorRateConfig, _sf, _upper, rate_series
from insights_kit.detectors.base import INCIDENT_SCHEMA, UnitContext
from insights_kit.detectors.call_rate import CallRateDetector
from insights_kit.detectors.error_rate import ErrorRateDetector
from insights_kit.schema import conform

UTC = timezone.utc
T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
DAY, HOUR, MIN = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def series(start: datetime, counts, name: str, *, rw: str = "Write", code: str | None = None,
           service: str = "Ecs") -> pl.DataFrame:
    """Rows (minute, eventName, n, ...) for per-minute ``counts`` starting at ``start``."""
    counts = np.asarray(counts, dtype=np.int64)
    idx = np.flatnonzero(counts)
    return pl.DataFrame({
        "minute": [start + int(i) * MIN for i in idx], "n": counts[idx],
    }, schema={"minute": pl.Datetime("us", "UTC"), "n": pl.Int64}).with_columns(
        pl.lit(name).alias("eventName"), pl.lit(rw).alias("eventRW"), pl.lit(code, pl.String).alias("errorCode"),
        pl.lit(service).alias("serviceName"), pl.lit(f"{service.lower()}.aliyuncs.com").alias("eventSource"))


def events(*parts: pl.DataFrame) -> pl.LazyFrame:
    """Canonical events: ``n`` events spread over each row's minute."""
    df = pl.concat(parts).with_row_index("_r").with_columns(pl.int_ranges(0, "n").alias("_i")).explode("_i")
    df = df.with_columns(
        (pl.col("minute") + pl.duration(milliseconds=pl.col("_i") * 59_000 // pl.col("n"))).alias("eventTime"),
        pl.format("E{}-{}", "_r", "_i").alias("eventId"),
        pl.lit("Management").alias("eventCategory"),
    )
    return conform(df.sort("eventTime"))


def ctx(end: datetime, *, start: datetime = T0, learning: timedelta = DAY) -> UnitContext:
    return UnitContext("1234567890123456", "cn-hangzhou", start, end, start + learning)


def days_of(n_days: int, value: int) -> np.ndarray:
    return np.full(n_days * 1440, value)


RNG_SEED = 7


def quiet_writes(n_days: int) -> pl.DataFrame:
    """A write API at ~0.2 calls/minute: the 'quiet week' noise floor."""
    rng = np.random.default_rng(RNG_SEED)
    return series(T0, rng.poisson(0.2, n_days * 1440), "RunInstances")


def busy_reads(n_days: int, *, per_minute: int = 40, errors_every: int = 5, errors: int = 2,
               code: str = "Throttling.User") -> list[pl.DataFrame]:
    """DescribeInstances with a steady 1% error share (``errors`` every ``errors_every`` minutes)."""
    n = n_days * 1440
    err = np.where(np.arange(n) % errors_every == 0, errors, 0)
    return [series(T0, np.full(n, per_minute) - err, "DescribeInstances", rw="Read"),
            series(T0, err, "DescribeInstances", rw="Read", code=code)]


def burst(at: datetime, *, rw: str = "Write", per_minute: int = 20, minutes: int = 3) -> pl.DataFrame:
    return series(at, [per_minute] * minutes, "DeleteInstance", rw=rw)


BURST = T0 + 7 * DAY + 10 * HOUR


# ---------------------------------------------------------------------------------- call rate


def test_write_burst_after_quiet_week_gives_one_incident_with_statistics():
    end = T0 + 8 * DAY
    got = CallRateDetector().detect(events(quiet_writes(8), burst(BURST)), ctx(end))
    assert got.schema == pl.Schema(INCIDENT_SCHEMA)
    assert got.height == 1
    row = got.row(0, named=True)
    assert (row["insightType"], row["insightObject"], row["serviceName"]) == ("ApiCallRateInsight", "DeleteInstance", "Ecs")
    assert row["startTime"] == row["firedAt"] == BURST
    assert row["endTime"] == BURST + 3 * MIN  # last hot minute + 1; closed after 5 quiet minutes
    assert (row["startAverage"], row["insightCount"], row["insightDuration"], row["insightAverage"]) == (20.0, 60, 3, 20.0)
    assert (row["baselineAverage"], row["baselineDuration"]) == (0.0, 7 * 1440)
    model = json.loads(row["model"])
    assert set(model) == {"expected", "pValue", "dispersion", "ratio", "components", "scale", "scales", "alpha",
                          "windowCount", "windowExpected", "test"}
    assert model["scale"] == 1 and model["scales"] == [1, 5, 15, 60]
    assert model["expected"] == 0.05 and model["pValue"] < 1e-6 and model["ratio"] == 400.0
    assert set(model["components"]) == {"season", "recur", "recent"}


def test_read_burst_is_not_a_call_rate_insight():
    got = CallRateDetector().detect(events(quiet_writes(8), burst(BURST, rw="Read")), ctx(T0 + 8 * DAY))
    assert got.height == 0


def test_nightly_job_is_expected_but_the_same_job_at_14h_is_not():
    job = np.zeros(9 * 1440, dtype=np.int64)
    job[[d * 1440 + 120 for d in range(9)]] = 50  # 02:00 every day
    end = T0 + 9 * DAY
    assert CallRateDetector().detect(events(quiet_writes(9), series(T0, job, "CreateSnapshot")), ctx(end)).height == 0
    job[8 * 1440 + 14 * 60] = 50  # and 14:00 on day 8
    got = CallRateDetector().detect(events(quiet_writes(9), series(T0, job, "CreateSnapshot")), ctx(end))
    assert got.select("insightObject", "startTime").rows() == [("CreateSnapshot", T0 + 8 * DAY + 14 * HOUR)]


def _business_hours(n_days: int, start: datetime = T0, *, rate: float = 8.0) -> pl.DataFrame:
    rng = np.random.default_rng(RNG_SEED)
    minutes = np.arange(n_days * 1440)
    local = [start + int(m) * MIN for m in minutes[:: 60]]  # one per hour is enough for the mask
    weekday = np.repeat([t.weekday() < 5 for t in local], 60)
    hod = (minutes // 60) % 24
    return series(start, np.where(weekday & (hod >= 9) & (hod < 18), rng.poisson(rate, minutes.size), 0),
                  "UpdateTicket")


def test_weekday_business_hours_raise_nothing_on_monday_morning():
    part = _business_hours(15)
    monday_9 = T0 + 14 * DAY + 9 * HOUR
    assert part.filter(pl.col("minute") == monday_9).height == 1  # the pattern is really there
    assert CallRateDetector().detect(events(part), ctx(T0 + 15 * DAY)).height == 0


def test_business_hours_in_a_local_timezone():
    # 09:00-18:00 in Shanghai is 01:00-10:00 UTC; weekdays are Shanghai weekdays
    part = _business_hours(15, T0 - 8 * HOUR).with_columns(pl.col("minute"))
    cfg = CallRateConfig(timezone="Asia/Shanghai")
    end = T0 - 8 * HOUR + 15 * DAY
    assert CallRateDetector(cfg).detect(events(part), ctx(end, start=T0 - 8 * HOUR)).height == 0


def test_three_calls_of_a_new_api_stay_under_the_floor():
    got = CallRateDetector().detect(events(quiet_writes(8), burst(BURST, per_minute=3, minutes=1)), ctx(T0 + 8 * DAY))
    assert got.height == 0


def test_level_shift_fires_once_at_onset_then_adapts():
    rng = np.random.default_rng(RNG_SEED)
    onset = 3 * 1440 + 600
    counts = np.concatenate([rng.poisson(0.1, onset), rng.poisson(30, 1440)])
    end = T0 + onset * MIN + DAY
    got = CallRateDetector().detect(events(series(T0, counts, "ModifyConfig")), ctx(end))
    assert got.height == 1
    row = got.row(0, named=True)
    assert row["startTime"] == T0 + onset * MIN
    cfg = CallRateConfig()
    assert row["endTime"] is not None and row["endTime"] <= row["startTime"] + (cfg.recent_hours + 1) * HOUR


def test_burst_at_the_end_of_data_is_still_open():
    end = BURST + 3 * MIN
    row = CallRateDetector().detect(events(quiet_writes(8), burst(BURST)), ctx(end)).row(0, named=True)
    assert row["endTime"] is None and row["insightDuration"] == 3 and row["insightCount"] == 60


def test_nothing_starts_during_learning():
    c = ctx(T0 + 2 * DAY)
    got = CallRateDetector().detect(events(quiet_writes(2), burst(T0 + 5 * HOUR)), c)
    assert got.height == 0 and c.counters["learning"] >= 1


# ---------------------------------------------------------------------------------- error rate


def test_throttling_share_jump_names_api_and_code():
    at = T0 + 3 * DAY + 10 * HOUR
    jump = [series(at, [20] * 15, "DescribeInstances", rw="Read", code="Throttling.User"),
            series(at, [-20] * 15, "DescribeInstances", rw="Read")]  # same 40 calls/minute, half fail
    reads = busy_reads(4)
    ok = pl.concat([reads[0], jump[1]]).group_by(pl.exclude("n")).agg(pl.col("n").sum())
    c = ctx(T0 + 4 * DAY)
    got = ErrorRateDetector().detect(events(ok.select(reads[0].columns), reads[1], jump[0]), c)
    assert got.select("insightType", "insightObject", "eventName", "errorCode", "startTime").rows() == [
        ("ApiErrorRateInsight", "DescribeInstances", "DescribeInstances", "Throttling.User", at)]
    assert got["insightCount"][0] >= 15 * 20
    assert c.counters["merged"] == 1  # the region-wide Throttling.User incident told the same story


def test_permission_probing_over_many_apis_is_a_code_level_insight():
    at = T0 + 2 * DAY + 10 * HOUR
    probes = [series(at + (i % 8) * MIN, [1 + i % 2], f"List{i:02d}", rw="Read", code="NoPermission", service="Ram")
              for i in range(40)]
    got = ErrorRateDetector().detect(events(*busy_reads(3, errors=0), *probes), ctx(T0 + 3 * DAY))
    assert got.select("insightObject", "errorCode", "eventName", "startTime").rows() == [
        ("NoPermission", "NoPermission", None, at)]
    assert got["insightCount"][0] == 60


def test_read_burst_with_the_usual_error_share_is_not_an_error_insight():
    at = T0 + 3 * DAY + 10 * HOUR
    spike = [series(at, [1980] * 5, "DescribeInstances", rw="Read"),
             series(at, [20] * 5, "DescribeInstances", rw="Read", code="Throttling.User")]
    ev = events(*busy_reads(4), *spike)
    assert ErrorRateDetector().detect(ev, ctx(T0 + 4 * DAY)).height == 0
    assert CallRateDetector().detect(ev, ctx(T0 + 4 * DAY)).height == 0


# ---------------------------------------------------------------------------------- causality, determinism, charts


def _mixed() -> pl.LazyFrame:
    job = np.zeros(8 * 1440, dtype=np.int64)
    job[[d * 1440 + 120 for d in range(8)] + [7 * 1440 + 14 * 60]] = 50
    rng = np.random.default_rng(RNG_SEED)
    onset = 7 * 1440 + 16 * 60
    shift = np.concatenate([rng.poisson(0.1, onset), rng.poisson(30, 8 * 1440 - onset)])
    at = T0 + 7 * DAY + 12 * HOUR
    return events(quiet_writes(8), burst(BURST), series(T0, job, "CreateSnapshot"), series(T0, shift, "ModifyConfig"),
                  *busy_reads(8, per_minute=20, errors_every=10, errors=2),
                  series(at, [30] * 10, "DescribeInstances", rw="Read", code="Throttling.User"))


def _run(ev: pl.LazyFrame, end: datetime) -> pl.DataFrame:
    both = [CallRateDetector().detect(ev, ctx(end)), ErrorRateDetector().detect(ev, ctx(end))]
    return pl.concat(both).sort("startTime", "insightType", "insightObject")


@pytest.mark.parametrize("cut_min", [10 * 60 + 1, 10 * 60 + 6, 12 * 60 + 4, 14 * 60 + 1, 17 * 60 + 30])
def test_truncated_input_gives_the_same_incidents(cut_min):
    ev, end = _mixed(), T0 + 8 * DAY
    full = _run(ev, end)
    assert full["insightObject"].to_list() == ["DeleteInstance", "DescribeInstances", "CreateSnapshot", "ModifyConfig"]
    cut = T0 + 7 * DAY + cut_min * MIN
    part = _run(ev.filter(pl.col("eventTime") < cut), cut)
    key = ["insightType", "insightObject", "errorCode", "startTime"]
    before = full.filter(pl.col("startTime") < cut)
    assert part.select(key).rows() == before.select(key).rows()
    for p, f in zip(part.iter_rows(named=True), before.iter_rows(named=True)):
        assert p["endTime"] is None or p == f  # open ones differ only while open


def test_two_runs_are_identical():
    ev, end = _mixed(), T0 + 8 * DAY
    assert _run(ev, end).equals(_run(ev, end))


def test_rate_series_draws_the_detectors_band():
    ev = events(quiet_writes(8), burst(BURST))
    inc = CallRateDetector().detect(ev, ctx(T0 + 8 * DAY)).row(0, named=True)
    got = rate_series(ev, insight_type="ApiCallRateInsight", since=BURST - HOUR, until=BURST + HOUR,
                      event_name="DeleteInstance")
    assert got.columns == ["minute", "count", "expected", "upper"] and got.height == 120
    at = got.filter(pl.col("minute") == BURST).row(0, named=True)
    assert at["count"] == 20 and at["expected"] == pytest.approx(json.loads(inc["model"])["expected"])
    assert at["count"] >= at["upper"]
    assert got.filter(pl.col("count") == 0)["upper"].min() >= 2


def test_upper_is_the_smallest_hot_count():
    lam = np.array([0.05, 0.05, 2.0, 30.0, 7.5]); phi = np.array([1.0, 40.0, 1.0, 3.0, 1.7])
    up = _upper(lam, phi, 1e-3)
    assert np.all(_sf(up, lam, phi) <= 1e-3) and np.all(up >= lam + 1)
    assert np.all((_sf(up - 1, lam, phi) > 1e-3) | (up - 1 < lam + 1))


# ---------------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_sans_delivery_log_access_denied_step():
    root = REALDATA / "sans504-s3-ransomware"
    if not root.exists():
        pytest.skip("realdata absent")
    from insights_kit.detect import analysis_events
    from insights_kit.readers import load

    lf = analysis_events(load([root], progress=False).events, home_region="us-west-1")
    unit = lf.filter(pl.col("analysisRegion") == "us-west-1").drop("analysisRegion").collect().lazy()
    first, last = unit.select(pl.col("eventTime").min().alias("a"), pl.col("eventTime").max().alias("b")).collect().row(0)
    start = first.replace(second=0, microsecond=0)
    c = ctx(last.replace(second=0, microsecond=0) + MIN, start=start)
    got = ErrorRateDetector().detect(unit, c)
    lo, hi = datetime(2021, 7, 29, 23, 55, tzinfo=UTC), datetime(2021, 7, 30, 0, 5, tzinfo=UTC)
    assert got.filter(pl.col("startTime").is_between(lo, hi)).height >= 1, got


def _by(frame: pl.DataFrame, principal: str) -> pl.DataFrame:
    return frame.with_columns(pl.lit(principal).alias("principalId"))


def _probe(at: datetime, principal: str, apis=("ListUsers", "ListPolicies", "GetUser", "ListRoles"), each=3):
    """``each`` NoPermission on each of ``apis``, interleaved over about ten minutes."""
    return [_by(series(at + (2 * k + i) * MIN, [1], api, rw="Read", code="NoPermission", service="Ram"), principal)
            for i, api in enumerate(apis) for k in range(each)]


def test_a_caller_collecting_a_few_denials_on_each_api_raises_each_api():
    at = T0 + 2 * DAY + 10 * HOUR
    rng = np.random.default_rng(RNG_SEED)
    bob = _by(series(T0, rng.poisson(0.05, 3 * 1440), "DescribeRegions", rw="Read", service="Ecs"), "bob")
    ev = events(*[_by(p, "app") for p in busy_reads(3)], bob, *_probe(at, "bob"))
    got = ErrorRateDetector().detect(ev, ctx(T0 + 3 * DAY))
    per_api = got.filter(pl.col("eventName").is_not_null()).sort("eventName")
    assert per_api["eventName"].to_list() == ["GetUser", "ListPolicies", "ListRoles", "ListUsers"]
    assert per_api["insightCount"].to_list() == [3, 3, 3, 3] and per_api["errorCode"].unique().to_list() == ["NoPermission"]
    models = [json.loads(m) for m in per_api["model"]]
    assert {m["test"] for m in models} == {"caller"} and {m["caller"] for m in models} == {"bob"}
    assert (per_api["startTime"] >= at).all() and (per_api["startTime"] < at + 10 * MIN).all()
    # each API's insight ends with its own last denial (API i is denied at minutes i, i+2, i+4)
    order = {"ListUsers": 0, "ListPolicies": 1, "GetUser": 2, "ListRoles": 3}
    assert per_api["endTime"].to_list() == [at + (5 + order[n]) * MIN for n in per_api["eventName"]]
    # the region-wide error-code insight is there once (the code level's, not again the caller's)
    assert got.filter(pl.col("eventName").is_null())["errorCode"].to_list() == ["NoPermission"], got
    # without the caller level, three denials per API are below every API's min_count
    off = ErrorRateDetector(ErrorRateConfig(caller_level=False)).detect(ev, ctx(T0 + 3 * DAY))
    assert off.filter(pl.col("eventName").is_not_null()).height == 0


def test_a_caller_denied_once_on_each_of_many_apis_raises_the_error_code():
    # A stolen key trying 30 APIs once each: no API holds caller_api_min_count denials, and
    # the region's own NoPermission series cannot tell (a scanner's routine clusters of
    # denials every two hours make it bursty), but the caller is unusual: the region-wide
    # error-code insight tells it.
    at = T0 + 2 * DAY + 10 * HOUR + 20 * MIN
    rng = np.random.default_rng(RNG_SEED)
    bob = _by(series(T0, rng.poisson(0.05, 3 * 1440), "DescribeRegions", rw="Read", service="Ecs"), "bob")
    scans = np.where(np.arange(3 * 1440) % 120 == 0, 12, 0)
    scanner = [_by(series(T0, scans, "ListPolicies", rw="Read", code="NoPermission", service="Ram"), "scanner"),
               _by(series(T0, scans * 3, "ListPolicies", rw="Read", service="Ram"), "scanner")]
    apis = tuple(f"List{i:02d}" for i in range(30))
    ev = events(*[_by(p, "app") for p in busy_reads(3)], bob, *scanner, *_probe(at, "bob", apis=apis, each=1))
    got = ErrorRateDetector(ErrorRateConfig(code_level=True)).detect(ev, ctx(T0 + 3 * DAY))
    assert got.filter(pl.col("eventName").is_not_null()).height == 0
    code = got.filter(pl.col("eventName").is_null())
    assert code.height == 1, got
    row = code.row(0, named=True)
    assert (row["insightObject"], row["errorCode"], row["insightCount"]) == ("NoPermission", "NoPermission", 30)
    assert json.loads(row["model"])["test"] == "caller" and json.loads(row["model"])["caller"] == "bob"
    assert at <= row["startTime"] < at + 10 * MIN and row["endTime"] == at + 30 * MIN
    # the caller level off: the code's own test does not see it
    off = ErrorRateDetector(ErrorRateConfig(caller_level=False)).detect(ev, ctx(T0 + 3 * DAY))
    assert off.height == 0, off.select("startTime", "insightObject", "insightCount", "model")


def test_a_caller_whose_denials_are_routine_stays_quiet():
    # a scanner role that probes the same four APIs every two hours and is always denied
    routine = [part for h in range(2, 70, 2) for part in _probe(T0 + h * HOUR, "scanner")]
    ev = events(*[_by(p, "app") for p in busy_reads(3)], *routine)
    got = ErrorRateDetector().detect(ev, ctx(T0 + 3 * DAY))
    assert got.filter(pl.col("eventName").is_not_null()).height == 0, got.select("eventName", "startTime", "model")
