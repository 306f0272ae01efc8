"""Rate incidents of a ``--state`` run: score only what new events can change.

:func:`~insights_kit.detectors._multiscale.rate_incidents` judges each series on its own
(its baselines, masks and incident bounds read no other series) and causally (minute *m* is
judged on the minutes before it). A ``--state`` run keeps, per level (``name``), the
incidents, the masked minutes (those the baselines left out) and the hot minutes (at any
scale, in any masking pass) of its last run, and:

* a series with no minute at or after the run's first new event (``UnitContext.changed_since``)
  and no open incident keeps its incidents: a later run can only add minutes after its last;
* a series with new minutes and no open incident is scored from a start ``S``, and keeps its
  incidents, masks and hot minutes from before ``S``. ``S`` is the later of ``T``, the end of
  its last gap of ``QUIET_GAP`` (4 hours) without a minute before the first new event, and
  ``T - reach``, for ``T`` the hour of the first new event, when the last run found no hot
  minute in ``[T - reach, T)``. Either way no masked minute may lie in the baseline window
  before ``T`` (``baseline_days`` + 1 day), so none is in any baseline window after ``S``;
* any other series is scored again over all the history the state holds.

Why nothing before ``S`` changes: new minutes change incidents only from ``T`` on. Across a
gap nothing is carried back (trims and masks reach only minutes with calls). Otherwise each
masking pass carries a change back by at most one trim (2 buckets) and one mask lead (1
bucket): ``reach`` = ``mask_passes`` x (3 x widest scale - 1) + (2 x widest scale - 1)
minutes, in whole hours (11 hours by default); no minute was hot there, so no incident spans
``S``. From ``S`` on the rows are scored against the series' whole history, as one run would.

What is kept: ``history[name]`` (incidents), ``history[name + "_masked"]``,
``history[name + "_hot"]`` and one row of metadata ``history[name + "_meta"]``: a key of
everything that shapes the incidents (the detector's parameters, the series keys, the unit's
first minute and learning end) and the ``data_end`` they were computed to. They are used only
when the key is the same and this run ends at or after that ``data_end`` (a rerun of an
earlier window scores everything). The ``learning`` counter counts the minutes this run scored.

Examples
--------
>>> inc = reusable_rate_incidents(counts, name="rate_api_calls", ctx=ctx, keys=API_KEYS,
...                               config=CallRateConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from insights_kit.detectors._multiscale import rate_incidents
from insights_kit.detectors._rate import RateConfig
from insights_kit.detectors.base import UnitContext
from insights_kit.schema import UTC_DATETIME

#: Bumped when what a level keeps changes meaning: older kept tables are ignored.
REUSE_VERSION = 2
#: A gap without a minute of the series that no change can be carried back across.
QUIET_GAP = timedelta(hours=4)

_META_SCHEMA = {"key": pl.String(), "dataEnd": UTC_DATETIME}


def reach(config: RateConfig) -> timedelta:
    """How far back from a changed minute a change of incidents can reach (see the module)."""
    widest = max(config.scales)
    passes = config.mask_passes if config.accept_after_hours > 0 else 0
    minutes = passes * (3 * widest - 1) + 2 * widest - 1
    return timedelta(hours=math.ceil((minutes + 1) / 60))


def _key(keys: list[str], exposure_keys: list[str], config: RateConfig, ctx: UnitContext) -> str:
    return json.dumps([REUSE_VERSION, keys, exposure_keys, repr(config), ctx.data_start.isoformat(),
                       ctx.learning_end.isoformat()])


def _kept(name: str, key: str, ctx: UnitContext) -> pl.DataFrame | None:
    """Last run's incidents of this level, when they can be reused (else None)."""
    meta = ctx.history.get(f"{name}_meta")
    if meta is None or meta.height != 1 or meta["key"][0] != key or meta["dataEnd"][0] > ctx.data_end:
        return None
    return ctx.history.get(name, pl.DataFrame())


def _changed_series(counts: pl.DataFrame, open_series: pl.DataFrame, keys: list[str],
                    ctx: UnitContext) -> pl.DataFrame:
    """Series with a minute at or after the first new event, or with an incident still open."""
    parts = [open_series.lazy()]
    if ctx.changed_since is not None:
        since = ctx.changed_since.replace(second=0, microsecond=0)
        parts.append(counts.lazy().filter(pl.col("minute") >= since).select(keys))
    return pl.concat(parts, how="vertical_relaxed").unique().collect()


def _query_starts(series: pl.DataFrame, masked: pl.DataFrame, hot: pl.DataFrame, open_series: pl.DataFrame,
                  keys: list[str], ctx: UnitContext, config: RateConfig) -> pl.DataFrame:
    """``keys..., _from``: where each series with new minutes is scored from (null: everything)."""
    out = series.select(keys).unique()
    if ctx.changed_since is None or series.is_empty():
        return out.with_columns(pl.lit(None, UTC_DATETIME).alias("_from"))
    first_new = ctx.changed_since.replace(second=0, microsecond=0)
    back = reach(config)
    after_gap = pl.col("_prev") + QUIET_GAP + timedelta(minutes=1)
    hour_up = pl.when(after_gap.dt.truncate("1h") == after_gap).then(after_gap).otherwise(
        after_gap.dt.truncate("1h") + timedelta(hours=1))
    # T after a gap: scored from T (nothing in the gap to carry a change back)
    gaps = (
        series.lazy().select(*keys, "minute").sort(*keys, "minute")
        .with_columns(pl.col("minute").shift().over(keys).alias("_prev"))
        .filter(pl.col("_prev").is_not_null())
        .with_columns(hour_up.alias("_T"))
        .filter((pl.col("_T") <= pl.col("minute")) & (pl.col("_T") <= first_new))
        .select(*keys, "_T", pl.col("_T").alias("_from"))
    )
    # T at the hour of the first new event: scored from T - reach, which must hold no hot minute
    boundary = first_new.replace(minute=0)
    at_hour = out.lazy().with_columns(pl.lit(boundary, UTC_DATETIME).alias("_T"),
                                      pl.lit(boundary - back, UTC_DATETIME).alias("_from"))
    candidates = pl.concat([gaps, at_hour])
    window = timedelta(days=config.baseline_days + 1)
    blocked = pl.concat([
        candidates.join(masked.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("_T") - window) & (pl.col("minute") < pl.col("_T"))),
        candidates.join(hot.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("_from")) & (pl.col("minute") < pl.col("_T"))),
    ]).select(*keys, "_T", "_from").unique()
    starts = (
        candidates.join(blocked, on=[*keys, "_T", "_from"], how="anti", nulls_equal=True)
        .join(open_series.lazy(), on=keys, how="anti", nulls_equal=True)
        .group_by(keys).agg(pl.col("_from").max())
        .collect()
    )
    return out.join(starts, on=keys, how="left", nulls_equal=True)


def _since(frame: pl.DataFrame | pl.LazyFrame, bounds: pl.DataFrame, keys: list[str],
           column: str) -> pl.DataFrame | pl.LazyFrame:
    """Rows of ``frame`` (eager or lazy) at or after their series' ``column`` in ``bounds`` (null: all)."""
    joined = frame.join(bounds.lazy() if isinstance(frame, pl.LazyFrame) else bounds, on=keys, how="left",
                        nulls_equal=True)
    return joined.filter(pl.col(column).is_null() | (pl.col("minute") >= pl.col(column))).drop(column)


def _before(frame: pl.DataFrame, starts: pl.DataFrame, keys: list[str], column: str) -> pl.DataFrame:
    """Rows of ``frame`` of series scored from ``_from`` whose ``column`` is before it."""
    if frame.is_empty():
        return frame
    return (frame.join(starts.filter(pl.col("_from").is_not_null()), on=keys, how="inner", nulls_equal=True)
            .filter(pl.col(column) < pl.col("_from")).drop("_from"))


def _combined(kept: pl.DataFrame, fresh: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Kept and fresh incidents in rate_incidents' order, ``_run`` numbered again."""
    frames = [f for f in (kept, fresh) if f.height]
    if not frames:
        return fresh if fresh.width else kept
    columns = frames[-1].columns
    both = pl.concat(frames, how="diagonal_relaxed").select(columns) if len(frames) > 1 else frames[0]
    return both.drop("_run").sort("startTime", *keys, nulls_last=True).with_row_index("_run")


def reusable_rate_incidents(
    counts: pl.DataFrame,
    *,
    name: str,
    ctx: UnitContext,
    keys: Sequence[str],
    config: RateConfig,
    exposure: pl.LazyFrame | None = None,
    exposure_keys: Sequence[str] = (),
    counters: dict[str, int] | None = None,
) -> pl.DataFrame:
    """``rate_incidents(counts, ...)`` for the unit of ``ctx``, reusing the last run's where it can.

    Parameters
    ----------
    counts, keys, config, exposure, exposure_keys, counters
        As :func:`~insights_kit.detectors._multiscale.rate_incidents`.
    name : str
        The level's name in the unit's history (one per detector and level).
    ctx : UnitContext
        The unit: its window, ``changed_since`` and history; the level's incidents, masked and
        hot minutes and metadata are put in ``ctx.new_history``.

    Returns
    -------
    pl.DataFrame
        The same frame as ``rate_incidents`` over all of ``counts``.
    """
    keys, exposure_keys = list(keys), list(exposure_keys)
    key = _key(keys, exposure_keys, config, ctx)
    score = dict(keys=keys, data_start=ctx.data_start, data_end=ctx.data_end, learning_end=ctx.learning_end,
                 config=config, exposure_keys=exposure_keys, counters=counters)
    minutes = pl.DataFrame(schema={**{k: counts.schema[k] for k in keys}, "minute": UTC_DATETIME})
    kept = _kept(name, key, ctx)
    trace: dict[str, pl.DataFrame] = {}
    if kept is None:
        incidents = rate_incidents(counts, exposure=exposure, trace=trace, **score)
        masked, hot = trace["masked"], trace["hot"]
    else:
        kept_masked, kept_hot = (ctx.history.get(f"{name}_{t}", minutes) for t in ("masked", "hot"))
        open_series = kept.filter(pl.col("endTime").is_null()).select(keys) if kept.height else minutes.select(keys)
        changed = _changed_series(counts, open_series, keys, ctx)
        fresh, fresh_masked, fresh_hot = pl.DataFrame(), minutes, minutes
        mine = counts.join(changed, on=keys, how="semi", nulls_equal=True)
        starts = _query_starts(mine, kept_masked, kept_hot, open_series, keys, ctx, config)
        if changed.height:
            query = _since(mine, starts, keys, "_from")
            # the baselines of minutes from _from on read no further back than the window
            lows = starts.with_columns(pl.col("_from") - timedelta(days=config.baseline_days + 1))
            history = _since(mine, lows, keys, "_from")
            exp = exposure
            if exposure is not None and exposure_keys == keys:  # per series: only those scored
                exp = _since(exposure.join(changed.lazy(), on=keys, how="semi", nulls_equal=True), lows, keys, "_from")
            elif exposure is not None and lows["_from"].null_count() == 0:  # shared: from the earliest
                exp = exposure.filter(pl.col("minute") >= lows["_from"].min())
            fresh = rate_incidents(history, exposure=exp, query=query, trace=trace, **score)
            fresh_masked, fresh_hot = trace["masked"], trace["hot"]

        def carried(frame: pl.DataFrame, column: str) -> list[pl.DataFrame]:
            """``frame``'s rows of the series not scored, and of those scored from ``_from``, before it."""
            unchanged = frame.join(changed, on=keys, how="anti", nulls_equal=True) if frame.height else frame
            return [unchanged, _before(frame, starts, keys, column)]

        incidents = _combined(pl.concat(carried(kept, "firedAt"), how="diagonal_relaxed") if kept.height else kept,
                              fresh, keys)
        masked = pl.concat([*carried(kept_masked, "minute"), fresh_masked])
        hot = pl.concat([*carried(kept_hot, "minute"), fresh_hot])
    ctx.new_history[f"{name}_meta"] = pl.DataFrame({"key": [key], "dataEnd": [ctx.data_end]}, schema=_META_SCHEMA)
    for suffix, frame in (("", incidents), ("_masked", masked), ("_hot", hot)):
        if frame.height:
            ctx.new_history[name + suffix] = (frame if not suffix else
                                              frame.unique().sort(*keys, "minute", nulls_last=True))
    return incidents
