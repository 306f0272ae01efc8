"""Multi-scale rate tests and incident bounds on synthetic series whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from insights_kit.detectors._rate import CallRateConfig, ErrorRateConfig
from insights_kit.detectors.call_rate import CallRateDetector
from insights_kit.detectors.error_rate import ErrorRateDetector
from test_rate_detectors import DAY, HOUR, MIN, T0, ctx, events, quiet_writes, series


def _at(day: int, minute: int, counts, name: str, **kw) -> pl.DataFrame:
    return series(T0 + day * DAY + minute * MIN, counts, name, **kw)


def _one(got: pl.DataFrame, name: str) -> dict:
    rows = got.filter(pl.col("insightObject") == name)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_sustained_one_call_a_minute_on_an_idle_api_is_found_with_its_bounds():
    onset = 8 * 1440 + 2 * 60 + 7  # 02:07 on day 8, the API idle for a week
    loop = np.ones(120, dtype=np.int64)
    got = CallRateDetector().detect(events(quiet_writes(9), _at(0, onset, loop, "ModifyInstanceAttribute")),
                                    ctx(T0 + 9 * DAY))
    row = _one(got, "ModifyInstanceAttribute")
    t0 = T0 + onset * MIN
    assert t0 <= row["firedAt"] <= t0 + 30 * MIN  # a sustained shift fires within 30 minutes
    assert t0 <= row["startTime"] <= t0 + 2 * MIN  # and its start is moved back to the onset
    assert abs(row["endTime"] - (t0 + 120 * MIN)) <= 10 * MIN
    assert abs(row["insightCount"] - 120) <= 6
    model = json.loads(row["model"])
    assert model["scale"] > 1 and model["windowCount"] >= 10
    assert "returned to its expected band" in row["endReason"]


def test_the_smaller_of_two_simultaneous_bursts_is_found_too():
    at = 8 * 1440 + 10 * 60 + 3
    parts = [quiet_writes(9), _at(0, at, [40] * 10, "DeleteInstance"), _at(0, at, [3] * 10, "StopInstance")]
    got = CallRateDetector().detect(events(*parts), ctx(T0 + 9 * DAY))
    for name in ("DeleteInstance", "StopInstance"):
        row = _one(got, name)
        assert T0 + at * MIN <= row["firedAt"] <= T0 + (at + 5) * MIN, name


def test_an_incident_never_teaches_the_baseline_and_ends_with_the_activity():
    rng = np.random.default_rng(3)
    background = _at(0, 0, rng.poisson(0.5, 9 * 1440), "TagResources")
    start = 8 * 1440 + 9 * 60
    loop = _at(0, start, rng.poisson(6, 4 * 60), "TagResources")  # ~6/min for 4 hours
    got = CallRateDetector().detect(events(quiet_writes(9), background, loop), ctx(T0 + 9 * DAY))
    row = _one(got, "TagResources")
    calls = loop["n"].sum()
    assert row["startTime"] <= T0 + (start + 5) * MIN
    assert abs(row["endTime"] - (T0 + (start + 240) * MIN)) <= 10 * MIN, row["endTime"]
    assert abs(row["insightCount"] - calls) <= 0.05 * calls + 0.5 * 4 * 60  # minus the background's share


def test_a_level_that_stays_up_is_accepted_after_hours_and_the_end_says_so():
    rng = np.random.default_rng(4)
    background = _at(0, 0, rng.poisson(0.5, 10 * 1440), "TagResources")
    start = 8 * 1440 + 2 * 60
    shift = _at(0, start, rng.poisson(6, 30 * 60), "TagResources")  # from 02:00 on day 8, for good
    cfg = CallRateConfig(accept_after_hours=4)
    got = CallRateDetector(cfg).detect(events(quiet_writes(10), background, shift), ctx(T0 + 10 * DAY))
    row = _one(got, "TagResources")
    hours = (row["endTime"] - row["startTime"]) / HOUR
    assert 4 <= hours <= 4 + cfg.recent_hours + 2, hours
    assert row["endReason"].startswith("accepted as the new normal")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_calm_series_raise_nothing_at_any_scale(seed):
    rng = np.random.default_rng(seed)
    minutes = np.arange(9 * 1440)
    daily = 1 + np.sin(2 * np.pi * (minutes % 1440) / 1440)  # a smooth daily cycle, 0 to 2x
    parts = [_at(0, 0, rng.poisson(level * daily), f"Api{i}") for i, level in enumerate([0.02, 0.3, 2, 12])]
    got = CallRateDetector().detect(events(*parts), ctx(T0 + 9 * DAY))
    assert got.height == 0, got.select("insightObject", "startTime", "model").rows()


def _busy(n_days: int, share: float, rng: np.random.Generator, *, per_minute: float = 20.0):
    calls = rng.poisson(per_minute, n_days * 1440)
    errors = rng.binomial(calls, share)
    return calls - errors, errors


def test_error_creep_on_a_busy_api_is_found_while_the_same_share_in_a_read_burst_is_not():
    rng = np.random.default_rng(5)
    ok, err = _busy(9, 0.03, rng)
    creep_from, minutes = 8 * 1440 + 10 * 60, 180
    calls = ok[creep_from:creep_from + minutes] + err[creep_from:creep_from + minutes]
    share = np.linspace(0.03, 0.33, minutes)
    err[creep_from:creep_from + minutes] = rng.binomial(calls, share)
    ok[creep_from:creep_from + minutes] = calls - err[creep_from:creep_from + minutes]
    parts = [_at(0, 0, ok, "DescribeInstances", rw="Read"),
             _at(0, 0, err, "DescribeInstances", rw="Read", code="Forbidden.RAM")]
    got = ErrorRateDetector().detect(events(*parts), ctx(T0 + 9 * DAY))
    api = got.filter(pl.col("eventName") == "DescribeInstances")
    assert api.height >= 1
    assert T0 + creep_from * MIN <= api["firedAt"].min() <= T0 + (creep_from + minutes) * MIN

    # the same API, calls tripled for an hour with the usual 3 % share: not an error insight
    ok, err = _busy(9, 0.03, np.random.default_rng(6))
    burst = slice(8 * 1440 + 10 * 60, 8 * 1440 + 11 * 60)
    more_ok, more_err = _busy(1, 0.03, np.random.default_rng(7), per_minute=40)
    ok[burst] += more_ok[:60]
    err[burst] += more_err[:60]
    parts = [_at(0, 0, ok, "DescribeInstances", rw="Read"),
             _at(0, 0, err, "DescribeInstances", rw="Read", code="Forbidden.RAM")]
    assert ErrorRateDetector().detect(events(*parts), ctx(T0 + 9 * DAY)).height == 0


def test_a_probe_over_three_apis_gives_one_error_insight_per_api():
    rng = np.random.default_rng(8)
    at = 8 * 1440 + 15 * 60
    parts = [quiet_writes(9)]
    for name in ("ListUsers", "GetPolicy", "CreateUser"):
        parts.append(_at(0, at, rng.poisson(1.5, 12), name, code="NoPermission", service="Ram"))
    got = ErrorRateDetector(ErrorRateConfig(code_level=False)).detect(events(*parts), ctx(T0 + 9 * DAY))
    assert sorted(got["insightObject"]) == ["CreateUser", "GetPolicy", "ListUsers"]


def test_error_creep_on_an_api_whose_calls_start_with_it_is_one_share_incident():
    rng = np.random.default_rng(9)
    n = 9 * 1440
    ok = np.zeros(n, dtype=np.int64)
    ok[rng.choice(n, 40, replace=False)] = 1  # a rarely used API
    start, minutes = 8 * 1440 + 20 * 60, 190
    calls = rng.poisson(4.5, minutes)
    err = np.zeros(n, dtype=np.int64)
    err[start:start + minutes] = rng.binomial(calls, np.linspace(0.03, 0.37, minutes))
    ok[start:start + minutes] += calls - err[start:start + minutes]
    parts = [_at(0, 0, ok, "ListTagResources", rw="Read"), quiet_writes(9),
             _at(0, 0, err, "ListTagResources", rw="Read", code="NoPermission")]
    got = ErrorRateDetector(ErrorRateConfig(code_level=False)).detect(events(*parts), ctx(T0 + 9 * DAY))
    row = _one(got, "ListTagResources")
    assert json.loads(row["model"])["test"] == "share"
    assert row["insightCount"] >= 0.95 * err.sum()
    assert abs(row["endTime"] - (T0 + (start + minutes) * MIN)) <= 10 * MIN
