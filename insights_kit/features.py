"""Per-minute series and per-hour aggregates for the rate detectors (Polars, lazy).

Everything here is a plain function ``LazyFrame -> LazyFrame`` with keyword-only options,
in the style of polars-xdt. Series are kept **sparse**: a minute appears only when it has a
nonzero count, and hours only when they have events. Windows over the past ("the 7 days
before this hour") are answered from cumulative sums of the hourly aggregates with two
as-of lookups per window, so no dense minute grid is ever built.

Columns produced:

* :func:`minute_counts` -> ``by..., minute, count``
* :func:`hourly_sums` -> ``by..., hour, hod, weekend, s1, s2`` (sum and sum of squares of the
  per-minute counts in the hour; minutes without events contribute 0 to both)
* :func:`hour_calendar` -> ``hour, hod, weekend, minutes`` (observed minutes of each hour)
* :func:`window_sums` -> the query plus ``<value>_<window>`` sums over past hours
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import polars as pl

from insights_kit.schema import UTC_DATETIME

__all__ = ["minute_counts", "with_local_calendar", "hourly_sums", "hour_calendar", "window_sums"]


def minute_counts(
    events: pl.LazyFrame, *, by: Sequence[str], time_col: str = "eventTime"
) -> pl.LazyFrame:
    """Count events per ``by`` key and UTC minute (nonzero minutes only).

    Parameters
    ----------
    events : pl.LazyFrame
        Events with a ``Datetime(us, UTC)`` time column.
    by : sequence of str
        Series key columns (may be empty: one series for the whole frame).
    time_col : str, default "eventTime"
        The time column.

    Returns
    -------
    pl.LazyFrame
        ``by..., minute, count`` (``count`` Int64), in no particular order.

    Examples
    --------
    >>> minute_counts(events, by=["eventName"]).collect()  # doctest: +SKIP
    """
    keys = list(by)
    return (
        events.group_by([*keys, pl.col(time_col).dt.truncate("1m").alias("minute")])
        .agg(pl.len().cast(pl.Int64).alias("count"))
    )


def with_local_calendar(
    frame: pl.LazyFrame, *, time_col: str, timezone: str = "UTC", prefix: str = ""
) -> pl.LazyFrame:
    """Add local hour-of-day ``hod`` (Int8) and ``weekend`` (Saturday/Sunday) columns.

    Seasonality follows the users' clock, not UTC: with ``timezone="Asia/Shanghai"`` a
    UTC hour 01:00 is local 09:00 on the same weekday.

    Examples
    --------
    >>> with_local_calendar(hours, time_col="hour", timezone="Asia/Shanghai")  # doctest: +SKIP
    """
    local = pl.col(time_col).dt.convert_time_zone(timezone)
    return frame.with_columns(
        local.dt.hour().cast(pl.Int8).alias(f"{prefix}hod"),
        (local.dt.weekday() >= 6).alias(f"{prefix}weekend"),
    )


def hourly_sums(
    counts: pl.LazyFrame, *, by: Sequence[str], timezone: str = "UTC"
) -> pl.LazyFrame:
    """Aggregate sparse minute counts to hours: ``s1`` = Σ count, ``s2`` = Σ count².

    ``s1`` and ``s2`` are enough to get the mean and variance of the per-minute counts
    (zeros included) over any set of hours once the number of minutes is known.

    Examples
    --------
    >>> hourly_sums(minute_counts(ev, by=["eventName"]), by=["eventName"])  # doctest: +SKIP
    """
    keys = list(by)
    out = counts.group_by([*keys, pl.col("minute").dt.truncate("1h").alias("hour")]).agg(
        pl.col("count").sum().cast(pl.Int64).alias("s1"),
        (pl.col("count").cast(pl.Int64) ** 2).sum().alias("s2"),
    )
    return with_local_calendar(out, time_col="hour", timezone=timezone)


def hour_calendar(start: datetime, end: datetime, *, timezone: str = "UTC") -> pl.LazyFrame:
    """Every UTC hour from ``start``'s hour to ``end`` with its observed ``minutes``.

    The first hour is partial when data starts mid-hour; counting only observed minutes
    keeps baselines of young units unbiased. One row per hour of the unit (720 for 30 days),
    shared by all series.

    Examples
    --------
    >>> hour_calendar(datetime(2025, 3, 1, 8, 30, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))  # doctest: +SKIP
    """
    first = start.replace(minute=0, second=0, microsecond=0)
    last = max(end, first + timedelta(hours=1))
    hours = pl.datetime_range(first, last, "1h", closed="left", time_zone="UTC", time_unit="us")
    frame = pl.LazyFrame().select(hours.alias("hour")).with_columns(
        pl.col("hour").cast(UTC_DATETIME),
    )
    skipped = (start - first) // timedelta(minutes=1)  # minutes of the first hour before data
    frame = frame.with_columns(
        pl.when(pl.col("hour") == first)
        .then(pl.lit(60 - skipped))
        .otherwise(pl.lit(60))
        .cast(pl.Int64)
        .alias("minutes")
    )
    return with_local_calendar(frame, time_col="hour", timezone=timezone)


def window_sums(
    query: pl.LazyFrame,
    hourly: pl.LazyFrame,
    *,
    by: Sequence[str],
    at: str,
    windows: Mapping[str, timedelta],
    values: Sequence[str],
) -> pl.LazyFrame:
    """Sum hourly ``values`` over ``[at - window, at)`` for every query row.

    Uses per-key cumulative sums of the (sparse) hourly rows and two as-of lookups per
    window (the cumulative sum strictly before each bound), so the cost is a sort and a few
    joins whatever the window length. Missing keys give 0.

    Parameters
    ----------
    query : pl.LazyFrame
        Rows with the ``by`` keys and a datetime column ``at`` (an hour start).
    hourly : pl.LazyFrame
        ``by..., hour, values...`` with one row per (key, hour).
    by : sequence of str
        Keys matched between query and hourly rows (may be empty).
    at : str
        Query column holding the exclusive end of the windows.
    windows : mapping of str to timedelta
        Window name -> length; the output gets ``<value>_<name>`` columns.
    values : sequence of str
        Integer columns of ``hourly`` to sum.

    Examples
    --------
    >>> window_sums(q, hourly_sums(c, by=["k"]), by=["k"], at="H",
    ...             windows={"win": timedelta(days=7)}, values=["s1"])  # doctest: +SKIP
    """
    keys = list(by)
    cum = (
        hourly.select([*keys, "hour", *values])
        .sort([*keys, "hour"])
        .select(
            *keys,
            "hour",
            *[
                (pl.col(v).cum_sum().over(keys) if keys else pl.col(v).cum_sum()).alias(f"_c_{v}")
                for v in values
            ],
        )
        .sort("hour")
    )
    # sums depend only on (key, at): compute them once per distinct pair and join back on it
    # (a row index would not survive re-evaluation of an unordered lazy query)
    q = query.select([*keys, at]).unique()
    bounds = {"_at": pl.col(at)} | {f"_lo_{n}": pl.col(at) - w for n, w in windows.items()}
    sums = q
    for name, bound in bounds.items():
        looked = (
            q.with_columns(bound.alias("_b"))
            .sort("_b")
            .join_asof(
                cum,
                left_on="_b",
                right_on="hour",
                by=keys or None,
                strategy="backward",
                allow_exact_matches=False,  # strictly before the bound: [lo, at)
                check_sortedness=False,  # sorted on the as-of key; groups follow
            )
            .select(*keys, at, *[pl.col(f"_c_{v}").fill_null(0).alias(f"{name}_{v}") for v in values])
        )
        sums = sums.join(looked, on=[*keys, at], how="left", nulls_equal=True)
    sums = sums.select(
        *keys,
        at,
        *[(pl.col(f"_at_{v}") - pl.col(f"_lo_{n}_{v}")).alias(f"{v}_{n}") for n in windows for v in values],
    )
    return query.join(sums, on=[*keys, at], how="left", nulls_equal=True)


#: Bucket sizes (minutes) a time axis picks from (:func:`bucket_minutes`).
BUCKET_CHOICES = (1, 5, 15, 60, 180, 360, 1440)


def bucket_minutes(span: timedelta, *, max_buckets: int) -> int:
    """The smallest of :data:`BUCKET_CHOICES` that cuts ``span`` into at most ``max_buckets`` buckets.

    Examples
    --------
    >>> bucket_minutes(timedelta(hours=1), max_buckets=240), bucket_minutes(timedelta(days=10), max_buckets=240)
    (1, 60)
    """
    minutes = max(span.total_seconds() / 60, 1)
    return next((b for b in BUCKET_CHOICES if minutes / b <= max_buckets), BUCKET_CHOICES[-1])

