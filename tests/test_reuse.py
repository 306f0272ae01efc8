"""A --state run's rate incidents: rescoring only what new minutes can change gives exactly
the incidents of one run over everything (insights_kit.detectors._reuse)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from insights_kit.detectors import _reuse
from insights_kit.detectors._multiscale import rate_incidents
from insights_kit.detectors._rate import API_KEYS, CallRateConfig, ErrorRateConfig
from insights_kit.detectors.base import UnitContext

T0 = datetime(2025, 3, 3, tzinfo=timezone.utc)
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
DAYS = 12


def _series(name: str, counts: np.ndarray) -> pl.DataFrame:
    idx = np.flatnonzero(counts)
    return pl.DataFrame({"minute": [T0 + int(i) * MIN for i in idx], "count": counts[idx]},
                        schema={"minute": pl.Datetime("us", "UTC"), "count": pl.Int64}).with_columns(
        pl.lit("Ecs").alias("serviceName"), pl.lit("ecs.aliyuncs.com").alias("eventSource"),
        pl.lit(name).alias("eventName")).select(*API_KEYS, "minute", "count")


def _counts(seed: int) -> pl.DataFrame:
    """Series of every kind: quiet gaps between bursts, a nightly job, one never quiet, rare calls."""
    rng = np.random.default_rng(seed)
    n = DAYS * 1440
    minute_of_day = np.arange(n) % 1440
    day = np.arange(n) // 1440

    def burst(base: np.ndarray, start: int, minutes: int, rate: float) -> np.ndarray:
        base[start:start + minutes] += rng.poisson(rate, minutes)
        return base

    office = np.where((minute_of_day >= 540) & (minute_of_day < 660), rng.poisson(0.6, n), 0)
    office = burst(burst(office, 4 * 1440 + 600, 6, 30), int(rng.integers(9, 11)) * 1440 + 560, 8, 25)
    nightly = np.where((minute_of_day >= 120) & (minute_of_day < 140), rng.poisson(5, n), 0)
    nightly = burst(nightly, 7 * 1440 + 14 * 60, 20, 12)
    busy = burst(rng.poisson(2, n), 9 * 1440 + int(rng.integers(0, 600)), 15, 25)
    rare = np.where((day % 3 == 0) & (minute_of_day == 700), 2, 0)
    rare = burst(rare, 11 * 1440 + 300, 10, 20)
    return pl.concat([_series("Office", office), _series("Nightly", nightly), _series("Busy", busy),
                      _series("Rare", rare)]).sort(*API_KEYS, "minute")


def _ctx(end: datetime, changed: datetime | None, history: dict) -> UnitContext:
    return UnitContext("1234567890123456", "cn-hangzhou", T0, end, T0 + DAY, history=history, changed_since=changed)


@pytest.mark.parametrize("seed,level", [(1, "calls"), (2, "errors")])
def test_run_by_run_with_kept_incidents_equals_one_run_each_time(seed, level, monkeypatch):
    counts = _counts(seed)
    config = CallRateConfig() if level == "calls" else ErrorRateConfig()
    # errors among a steady 30 calls a minute of each API
    steady = pl.DataFrame({"minute": pl.datetime_range(T0, T0 + DAYS * DAY, MIN, time_zone="UTC", eager=True,
                                                       closed="left")}).with_columns(pl.lit(30, pl.Int64).alias("count"))
    exposure = (pl.concat([counts, counts.select(API_KEYS).unique().join(steady, how="cross").select(counts.columns)])
                .group_by(*API_KEYS, "minute").agg(pl.col("count").sum()).lazy() if level == "errors" else None)
    extra = dict(exposure=exposure, exposure_keys=API_KEYS) if level == "errors" else {}
    scored_rows, busy_scored = [], []
    real = _reuse.rate_incidents

    def counting(c, **kw):  # how many rows each run scored
        query = kw.get("query") if kw.get("query") is not None else c
        scored_rows.append(query.filter(pl.col("eventName") == "Rare").height)
        busy_scored.append(query.filter(pl.col("eventName") == "Busy").height)
        return real(c, **kw)

    monkeypatch.setattr(_reuse, "rate_incidents", counting)
    # runs at uneven hours; the Rare series' calls of day 9 arrive one run late
    runs = [(2, 5), (4, 17), (6, 9), (8, 2), (9, 20), (10, 7), (11, 16), (12, 0)]
    if level == "errors":  # slower to score: fewer runs, the late one kept
        runs = [(2, 5), (6, 9), (9, 20), (10, 7), (12, 0)]
    cuts = [T0 + DAY * d + HOUR * h for d, h in runs]
    late = (pl.col("eventName") == "Rare") & (pl.col("minute") >= T0 + 9 * DAY) & (pl.col("minute") < T0 + 10 * DAY)
    history: dict[str, pl.DataFrame] = {}
    previous = None
    found = 0
    new_rows: list[int] = []
    busy_new: list[int] = []
    for cut in cuts:
        seen = counts.filter(pl.col("minute") < cut)
        if cut == T0 + 9 * DAY + 20 * HOUR:
            seen = seen.filter(~late)  # held back
        new = seen if previous is None else seen.join(previous, on=[*API_KEYS, "minute"], how="anti")
        changed = new["minute"].min() if new.height else None
        new_rows.append(new.filter(pl.col("eventName") == "Rare").height)
        busy_new.append(new.filter(pl.col("eventName") == "Busy").height)
        ctx = _ctx(cut, changed, history)
        got = _reuse.reusable_rate_incidents(seen, name="level", ctx=ctx, keys=API_KEYS, config=config, **extra)
        whole = rate_incidents(seen, keys=API_KEYS, data_start=T0, data_end=cut, learning_end=T0 + DAY,
                               config=config, **extra)
        if whole.height or got.height:
            assert_frame_equal(got, whole)
        found = max(found, whole.height)
        history = dict(ctx.new_history)
        previous = seen
    assert found >= 3  # the bursts are found: the comparison is not of empty frames
    # and later runs score only the new minutes of a series quiet between its calls (until its burst)
    before_burst = [i for i, cut in enumerate(cuts) if 0 < i and cut < T0 + 11 * DAY]
    assert [scored_rows[i] for i in before_burst] == [new_rows[i] for i in before_burst], (scored_rows, new_rows)
    # a series never quiet is scored from reach() (11 h) before the hour of its new minutes while it is calm
    assert any(scored <= new + 12 * 60 for scored, new in zip(busy_scored[1:], busy_new[1:])), (busy_scored, busy_new)


def test_kept_incidents_are_ignored_after_a_change_of_parameters_or_an_earlier_window():
    counts = _counts(4)
    first = _ctx(T0 + 8 * DAY, None, {})
    _reuse.reusable_rate_incidents(counts.filter(pl.col("minute") < T0 + 8 * DAY), name="level", ctx=first,
                                   keys=API_KEYS, config=CallRateConfig())
    kept = dict(first.new_history)
    later = _ctx(T0 + 9 * DAY, T0 + 8 * DAY, kept)
    assert _reuse._kept("level", _reuse._key(API_KEYS, [], CallRateConfig(), later), later) is not None
    other = CallRateConfig(alpha_start=1e-9)
    assert _reuse._kept("level", _reuse._key(API_KEYS, [], other, later), later) is None
    earlier = _ctx(T0 + 6 * DAY, T0 + 5 * DAY, kept)
    assert _reuse._kept("level", _reuse._key(API_KEYS, [], CallRateConfig(), earlier), earlier) is None


def test_a_table_a_unit_no_longer_keeps_is_gone_from_the_state(tmp_path):
    from insights_kit.detect import State

    state = State(tmp_path)
    frame = pl.DataFrame({"x": [1]})
    state.histories[("1234567890123456", "cn-hangzhou")] = {"level": frame, "level_meta": frame}
    state.write()
    again = State(tmp_path)
    assert set(again.histories[("1234567890123456", "cn-hangzhou")]) == {"level", "level_meta"}
    again.histories[("1234567890123456", "cn-hangzhou")] = {"level_meta": frame}  # no incidents left
    again.write()
    assert set(State(tmp_path).histories[("1234567890123456", "cn-hangzhou")]) == {"level_meta"}
