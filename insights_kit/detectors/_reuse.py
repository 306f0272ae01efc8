"""Rate incidents of a ``--state`` run: score only what new events can change.

:func:`~insights_kit.detectors._multiscale.rate_incidents` judges each series on its own
(its baselines, masks and incident bounds read no other series) and causally (minute *m* is
judged on the minutes before it). A ``--state`` run keeps, per level (``name``), the
incidents and the masked minutes (those the baselines left out) of its last run, and:

* a series with no minute at or after the run's first new event (``UnitContext.changed_since``)
  and no open incident keeps its incidents: a later run can only add minutes after its last;
* a series with new minutes is scored from ``T``, the last hour boundary at or before the
  first new event that follows ``QUIET_GAP`` without a minute of the series, when no masked
  minute lies in the baseline window before ``T`` (``baseline_days`` + 1 day) and it has no
  open incident. Before ``T`` its incidents and masks are kept. From ``T`` on the rows are
  scored against the series' whole history, exactly as one run would. Nothing before ``T``
  can reach past it: no incident spans the gap, no trim or mask reaches back across it
  (2 buckets of 60 minutes at most), and no mask lies in any baseline window after ``T``;
* any other series is scored again over all the history the state holds.

What is kept: ``history[name]`` (incidents), ``history[name + "_masked"]`` and one row of
metadata ``history[name + "_meta"]``: a key of everything that shapes the incidents (the
detector's parameters, the series keys, the unit's first minute and learning end) and the
``data_end`` they were computed to. They are used only when the key is the same and this run
ends at or after that ``data_end`` (a rerun of an earlier window scores everything). The
``learning`` counter counts the minutes this run scored.

Examples
--------
>>> inc = reusable_rate_incidents(counts, name="rate_api_calls", ctx=ctx, keys=API_KEYS,
...                               config=CallRateConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from insights_kit.detectors._multiscale import rate_incidents
from insights_kit.detectors._rate import RateConfig
from insights_kit.detectors.base import UnitContext
from insights_kit.schema import UTC_DATETIME

#: Bumped when the incidents a level keeps change meaning: older kept incidents are ignored.
REUSE_VERSION = 1
#: Minutes without a row of a series that nothing before them can reach across (see above).
QUIET_GAP = timedelta(hours=4)

_META_SCHEMA = {"key": pl.String(), "dataEnd": UTC_DATETIME}


def _key(keys: list[str], exposure_keys: list[str], config: RateConfig, ctx: UnitContext) -> str:
    return json.dumps([REUSE_VERSION, keys, exposure_keys, repr(config), ctx.data_start.isoformat(),
                       ctx.learning_end.isoformat()])


def _kept(name: str, key: str, ctx: UnitContext) -> pl.DataFrame | None:
    """Last run's incidents of this level, when they can be reused (else None)."""
    meta = ctx.history.get(f"{name}_meta")
    if meta is None or meta.height != 1 or meta["key"][0] != key or meta["dataEnd"][0] > ctx.data_end:
        return None
    return ctx.history.get(name, pl.DataFrame())


def _changed_series(counts: pl.DataFrame, kept: pl.DataFrame, keys: list[str], ctx: UnitContext) -> pl.DataFrame:
    """Series with a minute at or after the first new event, or with an incident still open."""
    parts = []
    if ctx.changed_since is not None:
        since = ctx.changed_since.replace(second=0, microsecond=0)
        parts.append(counts.lazy().filter(pl.col("minute") >= since).select(keys))
    if kept.height:
        parts.append(kept.lazy().filter(pl.col("endTime").is_null()).select(keys))
    if not parts:
        return counts.select(keys).clear()
    return pl.concat(parts, how="vertical_relaxed").unique().collect()


def _query_starts(series: pl.DataFrame, masked: pl.DataFrame, open_series: pl.DataFrame, keys: list[str],
                  ctx: UnitContext, config: RateConfig) -> pl.DataFrame:
    """``keys..., _from``: where each series with new minutes is scored from (null: everything)."""
    out = series.select(keys).unique()
    if ctx.changed_since is None or series.is_empty():
        return out.with_columns(pl.lit(None, UTC_DATETIME).alias("_from"))
    first_new = ctx.changed_since.replace(second=0, microsecond=0)
    after_gap = pl.col("_prev") + QUIET_GAP + timedelta(minutes=1)
    hour_up = pl.when(after_gap.dt.truncate("1h") == after_gap).then(after_gap).otherwise(
        after_gap.dt.truncate("1h") + timedelta(hours=1))
    starts = (
        series.lazy().select(*keys, "minute").sort(*keys, "minute")
        .with_columns(pl.col("minute").shift().over(keys).alias("_prev"))
        .filter(pl.col("_prev").is_not_null())
        .with_columns(hour_up.alias("_from"))
        .filter((pl.col("_from") <= pl.col("minute")) & (pl.col("_from") <= first_new))
        .group_by(keys).agg(pl.col("_from").max())
        .join(open_series.lazy(), on=keys, how="anti", nulls_equal=True)
    )
    window = timedelta(days=config.baseline_days + 1)
    near_mask = (
        starts.join(masked.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("_from") - window) & (pl.col("minute") < pl.col("_from")))
        .select(keys)
    )
    starts = starts.join(near_mask.unique(), on=keys, how="anti", nulls_equal=True).collect()
    return out.join(starts, on=keys, how="left", nulls_equal=True)


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
        The unit: its window, ``changed_since`` and history; the level's incidents and
        metadata are put in ``ctx.new_history``.

    Returns
    -------
    pl.DataFrame
        The same frame as ``rate_incidents`` over all of ``counts``.
    """
    keys, exposure_keys = list(keys), list(exposure_keys)
    key = _key(keys, exposure_keys, config, ctx)
    score = dict(keys=keys, data_start=ctx.data_start, data_end=ctx.data_end, learning_end=ctx.learning_end,
                 config=config, exposure_keys=exposure_keys, counters=counters)
    kept = _kept(name, key, ctx)
    if kept is None:
        masks: list[pl.DataFrame] = []
        incidents = rate_incidents(counts, exposure=exposure, masks_out=masks, **score)
        masked = masks[0]
    else:
        kept_masked = ctx.history.get(f"{name}_masked", pl.DataFrame())
        if kept_masked.is_empty():
            kept_masked = pl.DataFrame(schema={**{k: counts.schema[k] for k in keys}, "minute": UTC_DATETIME})
        open_series = (kept.filter(pl.col("endTime").is_null()).select(keys) if kept.height
                       else counts.select(keys).clear())
        changed = _changed_series(counts, kept, keys, ctx)
        fresh, fresh_masked = pl.DataFrame(), kept_masked.clear()
        mine = counts.join(changed, on=keys, how="semi", nulls_equal=True)
        starts = _query_starts(mine, kept_masked, open_series, keys, ctx, config)
        if changed.height:
            query = (mine.join(starts, on=keys, how="left", nulls_equal=True)
                     .filter(pl.col("_from").is_null() | (pl.col("minute") >= pl.col("_from"))).drop("_from"))
            # a per-series exposure is read only for the series scored (a shared one stays whole)
            exp = (exposure.join(changed.lazy(), on=keys, how="semi", nulls_equal=True)
                   if exposure is not None and exposure_keys == keys else exposure)
            masks = []
            fresh = rate_incidents(mine, exposure=exp, query=query, masks_out=masks, **score)
            fresh_masked = masks[0]
        unchanged = lambda f: f.join(changed, on=keys, how="anti", nulls_equal=True) if f.height else f  # noqa: E731
        incidents = _combined(pl.concat([unchanged(kept), _before(kept, starts, keys, "firedAt")],
                                        how="diagonal_relaxed") if kept.height else kept, fresh, keys)
        masked = pl.concat([unchanged(kept_masked), _before(kept_masked, starts, keys, "minute"), fresh_masked])
    ctx.new_history[f"{name}_meta"] = pl.DataFrame({"key": [key], "dataEnd": [ctx.data_end]}, schema=_META_SCHEMA)
    if incidents.height:
        ctx.new_history[name] = incidents
    if masked.height:
        ctx.new_history[f"{name}_masked"] = masked.unique().sort(*keys, "minute", nulls_last=True)
    return incidents
