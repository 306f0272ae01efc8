"""features.py: sparse minute counts, hourly sums, calendars and window bookkeeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from insights_kit.features import hour_calendar, hourly_sums, minute_counts, window_sums, with_local_calendar

UTC = timezone.utc
T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday


def _events(offsets_s: list[int], names: list[str]) -> pl.LazyFrame:
    return pl.LazyFrame({
        "eventTime": [T0 + timedelta(seconds=s) for s in offsets_s],
        "eventName": names,
    }).with_columns(pl.col("eventTime").cast(pl.Datetime("us", "UTC")))


def test_minute_counts_are_sparse_per_key():
    ev = _events([0, 10, 59, 60, 3600, 5], ["A", "A", "A", "A", "A", "B"])
    got = minute_counts(ev, by=["eventName"]).collect().sort("eventName", "minute")
    assert got.to_dicts() == [
        {"eventName": "A", "minute": T0, "count": 3},
        {"eventName": "A", "minute": T0 + timedelta(minutes=1), "count": 1},
        {"eventName": "A", "minute": T0 + timedelta(hours=1), "count": 1},
        {"eventName": "B", "minute": T0, "count": 1},
    ]
    assert minute_counts(ev, by=[]).collect()["count"].sum() == 6


def test_hourly_sums_hold_sum_and_sum_of_squares():
    ev = _events([0, 1, 2, 60, 7200 + 5], ["A"] * 5)
    got = hourly_sums(minute_counts(ev, by=["eventName"]), by=["eventName"]).collect().sort("hour")
    assert got["s1"].to_list() == [4, 1]
    assert got["s2"].to_list() == [3 * 3 + 1, 1]
    assert got["hod"].to_list() == [0, 2]
    assert got["weekend"].to_list() == [False, False]


def test_local_calendar_shifts_hour_and_day_type():
    # Sunday 20:00 UTC is Monday 04:00 in Shanghai: hour and day type both move
    f = pl.LazyFrame({"t": [datetime(2025, 3, 2, 20, tzinfo=UTC)]}).with_columns(pl.col("t").cast(pl.Datetime("us", "UTC")))
    utc = with_local_calendar(f, time_col="t").collect().row(0, named=True)
    sh = with_local_calendar(f, time_col="t", timezone="Asia/Shanghai").collect().row(0, named=True)
    assert (utc["hod"], utc["weekend"]) == (20, True)
    assert (sh["hod"], sh["weekend"]) == (4, False)


def test_hour_calendar_counts_observed_minutes():
    cal = hour_calendar(T0 + timedelta(minutes=45), T0 + timedelta(hours=3)).collect()
    assert cal["hour"].to_list() == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert cal["minutes"].to_list() == [15, 60, 60]


def test_window_sums_cover_half_open_past_windows():
    hourly = pl.LazyFrame({
        "k": ["a", "a", "a", "b"],
        "hour": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=5), T0],
        "s1": [1, 10, 100, 7],
    }).with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))
    query = pl.LazyFrame({
        "k": ["a", "a", "a", "c"],
        "H": [T0 + timedelta(hours=5), T0 + timedelta(hours=6), T0 + timedelta(hours=1), T0 + timedelta(hours=5)],
    }).with_columns(pl.col("H").cast(pl.Datetime("us", "UTC")))
    got = window_sums(query, hourly, by=["k"], at="H",
                      windows={"all": timedelta(hours=5), "last": timedelta(hours=1)}, values=["s1"])
    got = got.collect().sort("k", "H")
    # [H-5h, H): H=1h -> {0h}; H=5h -> {0h,1h} (not 5h itself); H=6h -> {1h,5h}; unknown key -> 0
    assert got["s1_all"].to_list() == [1, 11, 110, 0]
    assert got["s1_last"].to_list() == [1, 0, 100, 0]
