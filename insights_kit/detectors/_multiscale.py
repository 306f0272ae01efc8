"""Multi-scale rate tests, incident bounds, and baselines that never learn from an incident.

The seasonal count model of :mod:`insights_kit.detectors._rate` is tested on buckets of
several widths ``w`` (``scales``, default 1, 5, 15 and 60 minutes, aligned to the hour): a
one-minute spike and a sustained one-call-a-minute shift are both found. Per scale:

* the bucket's expected count λ_w and dispersion φ_w come from the same model fitted on
  bucket counts (means and variances per bucket, so the within-bucket clustering of a series
  is in φ_w), with ``min_expected`` × w as the floor;
* the **false-alarm rate is split evenly across the k scales** (Bonferroni): each is tested at
  ``alpha_start / k`` and ``alpha_continue / k``, so the chance that a calm series starts an
  incident at any scale in a given bucket stays at most ``alpha_start``;
* the test is **causal inside the bucket**: at minute *m*, the bucket's count so far is
  compared with λ_w (for errors, λ_w also grows with the calls so far: p_base · calls).
  Minute *m* is *hot* at scale w when that partial count reaches the band's top and *m*'s own
  count is above the expected count per minute (λ_w/w), and it *starts* an incident
  when the partial count first reaches ``min_count``, ``min_ratio`` · λ_w and the
  ``alpha_start / k`` quantile. Above one minute, the partial count must also exceed
  ``history_max_factor`` times the largest bucket of that width in the series' baseline window
  at any hour (irregular routine work, such as deployments, is not an anomaly at that scale),
  the bucket must average ``scale_min_rate`` calls a minute (a few more calls in an hour than
  usual is not an incident), and the window must hold ``scale_learning_hours`` of history.

Incidents: hot minutes of all scales are merged per series; a minute hot at scale w lets the
incident survive max(``end_quiet_minutes``, w/3) quiet minutes (sparse low-rate activity
has gaps). The Start fires at the earliest crossing (``firedAt``); ``startTime`` is moved back,
by up to two buckets of the crossing scale, to where the excess began, and the End forward to where it ended,
both by the maximum of the cumulative excess Σ(count − λ − ``trim_allowance`` · sd) (a CUSUM
estimate of the change points), so ``insightCount`` counts the incident's calls, not the
background around them.

Baselines exclude incidents: after a first pass, the minutes of each incident's first
``accept_after_hours`` (from one bucket before its start) leave the series' history and the series is scored again (up to
``mask_passes`` passes, until no incident grows). A level that stays up longer than that
becomes the new normal, and the End then says so (``endReason``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from scipy import special

from insights_kit.detectors._rate import RateConfig, _sf, _sig, _upper, exposure_by_hour, score_minutes
from insights_kit.features import window_sums
from insights_kit.schema import UTC_DATETIME

#: Threads that score the scales of one series set side by side.
SCALE_THREADS = 4

_STATS = ["season", "recur", "recent", "baselineAverage", "baselineDuration", "dispersion"]


def _row_columns(keys: list[str]) -> list[str]:
    """The row layout of every test (count and share) at every scale."""
    return [*keys, "minute", "count", "scale", "test", "windowCount", "windowExpected", "expected", "pValue",
            "hot", "start", *_STATS]


def _bucketed(frame: pl.DataFrame | pl.LazyFrame, keys: list[str], w: int) -> pl.LazyFrame:
    """Sparse counts rolled up to w-minute buckets (``minute`` = the bucket's start)."""
    lf = frame.lazy()
    if w == 1:
        return lf
    return lf.group_by(*keys, pl.col("minute").dt.truncate(f"{w}m")).agg(pl.col("count").sum())


def _scale_config(config: RateConfig, w: int, k: int) -> RateConfig:
    return dataclasses.replace(config, min_expected=config.min_expected * w,
                               alpha_start=config.alpha_start / k, alpha_continue=config.alpha_continue / k)


def _prior_max(history: pl.DataFrame, rows: pl.DataFrame, *, keys: list[str], w: int, days: int) -> pl.DataFrame:
    """The largest w-minute bucket count of each series in the ``days`` before each row's hour."""
    hours = rows.select(*keys, "_H").unique()
    seen = (
        _bucketed(history.lazy().join(hours.lazy().select(keys).unique(), on=keys, how="semi", nulls_equal=True),
                  keys, w)
        .group_by(*keys, pl.col("minute").dt.truncate("1h").alias("_H")).agg(pl.col("count").max().alias("_m"))
    )
    return (
        pl.concat([seen, hours.lazy().with_columns(pl.lit(0, pl.Int64).alias("_m"))], how="vertical_relaxed")
        .group_by(*keys, "_H").agg(pl.col("_m").max())
        .sort(*keys, "_H")
        .with_columns(pl.col("_m").rolling_max_by("_H", window_size=f"{days}d", closed="left").over(keys)
                      .alias("_prior"))
        .join(hours.lazy(), on=[*keys, "_H"], how="semi", nulls_equal=True)
        .select(*keys, "_H", "_prior")
        .collect()
    )


def _calls_so_far(exposure: pl.LazyFrame, exposure_keys: list[str], need: pl.DataFrame, w: int) -> pl.DataFrame:
    """Calls per minute (``_calls``) and so far in their w-minute bucket (``_calls_cum``), for ``need``'s buckets."""
    return (
        exposure.with_columns(pl.col("minute").dt.truncate(f"{w}m").alias("_bucket"))
        .join(need.lazy().select(*exposure_keys, "_bucket").unique(), on=[*exposure_keys, "_bucket"], how="semi",
              nulls_equal=True)
        .group_by(*exposure_keys, "_bucket", "minute").agg(pl.col("count").sum().alias("_calls"))
        .sort(*exposure_keys, "minute")
        .with_columns(pl.col("_calls").cum_sum().over(*exposure_keys, "_bucket").alias("_calls_cum"))
        .select(*exposure_keys, "minute", "_calls", "_calls_cum")
        .collect()
    )


def _first_in_bucket(rows: pl.DataFrame, crossed: np.ndarray, keys: list[str]) -> np.ndarray:
    """``crossed`` only at the first crossing minute of each bucket (rows sorted by keys, minute)."""
    x = pl.col("_x")
    return rows.with_columns(pl.Series("_x", crossed)).select(
        x & ~x.cum_max().shift(1, fill_value=False).over(*keys, "_bucket"))["_x"].to_numpy()


def _minute_rows(
    hot: pl.DataFrame, query: pl.DataFrame, history: pl.DataFrame, *, keys: list[str], w: int, config: RateConfig,
    k: int, exposure: pl.LazyFrame | None, exposure_keys: list[str],
) -> pl.DataFrame:
    """The nonzero minutes of the hot buckets at scale ``w``, with causal partial-bucket flags."""
    bucket = pl.col("minute").dt.truncate(f"{w}m").alias("_bucket")
    cols = [*keys, pl.col("minute").alias("_bucket"), *_STATS]
    if "p_base" in hot.columns:
        cols.append("p_base")
    rows = (
        query.lazy().with_columns(bucket, pl.col("minute").dt.truncate("1h").alias("_H"))
        .join(hot.lazy().select(cols), on=[*keys, "_bucket"], how="inner", nulls_equal=True)
        .sort(*keys, "minute")
        .with_columns(pl.col("count").cum_sum().over(*keys, "_bucket").alias("_cum"))
        .collect()
    )
    if rows.is_empty():
        return rows
    base = pl.max_horizontal("season", "recent", "recur", pl.lit(config.min_expected * w))
    if "p_base" in rows.columns and exposure is not None:
        # errors: λ_w at minute m also grows with the calls made in the bucket so far
        calls = _calls_so_far(exposure, exposure_keys, rows, w)
        rows = rows.join(calls.drop("_calls"), on=[*exposure_keys, "minute"], how="left", nulls_equal=True)
        base = pl.max_horizontal(base, pl.col("p_base") * pl.col("_calls_cum").fill_null(0))
    rows = rows.with_columns(base.alias("_lam"))
    lam, phi, cum = rows["_lam"].to_numpy(), rows["dispersion"].to_numpy(), rows["_cum"].to_numpy()
    upper = _upper(lam, phi, config.alpha_continue / k)
    first = _upper(lam, phi, config.alpha_start / k)
    floor = max(config.min_count, math.ceil(config.scale_min_rate * w - 1e-9)) if w > 1 else config.min_count
    need_start = np.maximum.reduce([first, np.full_like(first, floor),
                                    np.ceil(config.min_ratio * lam - 1e-9).astype(np.int64)])
    per_minute = lam / w
    elevated = rows["count"].to_numpy() > per_minute
    if w > 1:  # a series that has done this before, at any hour of the window, is not unusual at this scale
        prior = rows.join(_prior_max(history, rows, keys=keys, w=w, days=config.baseline_days),
                          on=[*keys, "_H"], how="left", nulls_equal=True)["_prior"].fill_null(0).to_numpy()
        need_start = np.maximum(need_start, np.floor(config.history_max_factor * prior).astype(np.int64) + 1)
        # ... and a day of history says little about which hours are busy: wait for more
        young = rows["baselineDuration"].to_numpy() < config.scale_learning_hours * 60
        need_start = np.where(young, np.iinfo(np.int64).max, need_start)
    # the first minute of the bucket whose partial count crosses (one start per bucket)
    start = _first_in_bucket(rows, cum >= need_start, keys)
    return rows.with_columns(
        pl.lit(w, pl.Int32).alias("scale"),
        pl.lit("count").alias("test"),
        pl.Series("windowExpected", lam),
        pl.Series("pValue", _sf(cum, lam, phi)),
        pl.Series("hot", (cum >= upper) & elevated),
        pl.Series("start", start),
        pl.Series("expected", per_minute),
    ).rename({"_cum": "windowCount"}).select(*_row_columns(keys))


def _binom_sf(x: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(X >= x) for X ~ Binomial(n, p), 1 where x <= 0 (scipy.special only)."""
    x, n, p = (np.asarray(a, dtype=float) for a in (x, n, p))
    out = np.ones_like(x)
    ok = (x > 0) & (x <= n)
    out[ok] = special.betainc(x[ok], n[ok] - x[ok] + 1, p[ok])
    out[x > n] = 0.0
    return out


def _share_rows(
    history: pl.DataFrame, query: pl.DataFrame, *, keys: list[str], w: int, config: RateConfig, k: int,
    exposure: pl.LazyFrame, exposure_keys: list[str], data_start: datetime, exposure_hourly: pl.DataFrame,
) -> pl.DataFrame:
    """The error **share** test at scale ``w``: errors so far in the bucket given the calls so far.

    X ~ Binomial(calls, p_base), with p_base the series' error share over the baseline window
    (Beta prior ``prior_errors`` / ``prior_calls``, incidents masked like every baseline). A
    creeping failure of a busy API raises the share long before the error count looks unusual
    against a baseline that has been absorbing the ramp; a burst of calls with the usual share
    stays quiet. No dispersion is fitted: ``min_ratio`` x p_base is the guard against a share
    that merely wobbles.
    """
    bucket = pl.col("minute").dt.truncate(f"{w}m").alias("_bucket")
    hour = pl.col("minute").dt.truncate("1h").alias("_H")
    errs = _bucketed(query, keys, w).filter(pl.col("count") >= config.min_count).collect()
    if errs.is_empty():
        return pl.DataFrame()
    hours = errs.select(*keys, pl.col("minute").dt.truncate("1h").alias("hour")).unique()
    win = {"win": timedelta(days=config.baseline_days)}
    need_exp = hours.select(exposure_keys).unique() if exposure_keys else None

    def windowed(frame: pl.LazyFrame, by: list[str], name: str) -> pl.LazyFrame:
        hourly = frame.group_by(*by, pl.col("minute").dt.truncate("1h").alias("hour")).agg(
            pl.col("count").sum().cast(pl.Int64).alias("s1"))
        q = hours.lazy().select(*by, "hour").unique()
        return window_sums(q, hourly, by=by, at="hour", windows=win, values=["s1"]).rename({"s1_win": name})

    exp = exposure if need_exp is None else exposure.join(need_exp.lazy(), on=exposure_keys, how="semi",
                                                          nulls_equal=True)
    exp_hourly = exposure_hourly.lazy() if need_exp is None else exposure_hourly.lazy().join(
        need_exp.lazy(), on=exposure_keys, how="semi", nulls_equal=True)
    calls_win = window_sums(hours.lazy().select(*exposure_keys, "hour").unique(), exp_hourly, by=exposure_keys,
                            at="hour", windows=win, values=["s1"]).rename({"s1_win": "_c_win"})
    hist = history.lazy().join(hours.lazy().select(keys).unique(), on=keys, how="semi", nulls_equal=True)
    base = (
        hours.lazy()
        .join(windowed(hist, keys, "_e_win"), on=[*keys, "hour"], how="left", nulls_equal=True)
        .join(calls_win, on=[*exposure_keys, "hour"], how="left", nulls_equal=True)
        .with_columns(((pl.col("_e_win").fill_null(0) + config.prior_errors)
                       / (pl.col("_c_win").fill_null(0) + config.prior_calls)).alias("p_base"),
                      (pl.col("_e_win").fill_null(0)).alias("_e_win"))
        .rename({"hour": "_H"})
        .collect()
    )
    rows = (
        query.lazy().with_columns(bucket, hour)
        .join(errs.lazy().select(*keys, pl.col("minute").alias("_bucket")), on=[*keys, "_bucket"], how="semi",
              nulls_equal=True)
        .join(base.lazy(), on=[*keys, "_H"], how="left", nulls_equal=True)
        .sort(*keys, "minute")
        .with_columns(pl.col("count").cum_sum().over(*keys, "_bucket").alias("windowCount"))
        .collect()
    )
    rows = rows.join(_calls_so_far(exp, exposure_keys, rows, w), on=[*exposure_keys, "minute"],
                     how="left", nulls_equal=True).with_columns(pl.col("_calls", "_calls_cum").fill_null(0))
    e, c, p = (rows[col].to_numpy() for col in ("windowCount", "_calls_cum", "p_base"))
    c = np.maximum(c, e)  # every error is a call
    sf = _binom_sf(e, c, p)
    expected = p * c
    ok_ratio = e >= config.min_ratio * expected
    hot = (sf <= config.alpha_continue / k) & ok_ratio & (rows["count"].to_numpy() > p * rows["_calls"].to_numpy())
    crossed = (sf <= config.alpha_start / k) & ok_ratio & (e >= config.min_count)
    first = _first_in_bucket(rows, crossed, keys)
    window_minutes = ((rows["minute"] - data_start).dt.total_minutes().clip(upper_bound=config.baseline_days * 1440)
                      - (rows["minute"] - rows["_H"]).dt.total_minutes())
    elapsed = ((rows["minute"] - rows["_bucket"]).dt.total_minutes() + 1).to_numpy()
    return rows.with_columns(
        pl.lit(w, pl.Int32).alias("scale"), pl.lit("share").alias("test"),
        pl.Series("windowExpected", expected), pl.Series("expected", expected / elapsed),
        pl.Series("pValue", sf), pl.Series("hot", hot | first), pl.Series("start", first),
        pl.lit(0.0).alias("season"), pl.lit(0.0).alias("recur"), pl.lit(0.0).alias("recent"),
        (pl.col("_e_win") / window_minutes.clip(lower_bound=1) * w).alias("baselineAverage"),
        window_minutes.clip(lower_bound=0).cast(pl.Int64).alias("baselineDuration"),
        pl.lit(1.0).alias("dispersion"),
    ).select(*_row_columns(keys))


def scan_scales(
    history: pl.DataFrame,
    query: pl.DataFrame,
    *,
    keys: Sequence[str],
    data_start: datetime,
    config: RateConfig,
    exposure: pl.LazyFrame | None = None,
    exposure_keys: Sequence[str] = (),
) -> pl.DataFrame:
    """Hot and start minutes of every series at every scale of ``config.scales``.

    Parameters
    ----------
    history : pl.DataFrame
        Sparse minute counts ``keys..., minute, count`` the baselines are fitted on.
    query : pl.DataFrame
        Sparse minute counts to evaluate (the detector passes all of them).
    keys, data_start, config
        As :func:`insights_kit.detectors._rate.score_minutes`; ``config.scales`` lists the
        bucket widths (minutes dividing 60).
    exposure, exposure_keys
        Calls per minute for error series (raw rows allowed), as in ``score_minutes``.

    Returns
    -------
    pl.DataFrame
        One row per (series, minute, scale) that is hot or starts: ``keys..., minute, count,
        scale, windowCount, windowExpected, expected`` (per minute), ``pValue, hot, start``
        and the baseline components.

    Examples
    --------
    >>> scan_scales(c, c, keys=API_KEYS, data_start=t0, config=CallRateConfig())  # doctest: +SKIP
    """
    keys, exposure_keys = list(keys), list(exposure_keys)
    share = exposure is not None and getattr(config, "share_test", False)
    k = len(config.scales) * (2 if share else 1)  # the share test is a second family of tests
    exposure = None if exposure is None else exposure.lazy()
    # Calls per hour are the same at every scale (buckets divide hours): rolled up once here.
    exposure_hourly = None if exposure is None else exposure_by_hour(exposure, exposure_keys)

    def one_scale(w: int) -> list[pl.DataFrame]:
        out = []
        if share:
            rows = _share_rows(history, query, keys=keys, w=w, config=config, k=k, exposure=exposure,
                               exposure_keys=exposure_keys, data_start=data_start, exposure_hourly=exposure_hourly)
            if rows.height:
                out.append(rows.filter(pl.col("hot") | pl.col("start")))
        cfg = _scale_config(config, w, k)
        exp_w = None if exposure is None else _bucketed(exposure, exposure_keys, w)
        hist_w = _bucketed(history, keys, w).collect()
        query_w = hist_w if query is history else _bucketed(query, keys, w).collect()  # the first pass
        scored = score_minutes(hist_w, query_w,
                               keys=keys, data_start=data_start, config=cfg, exposure=exp_w,
                               exposure_keys=exposure_keys, block_minutes=w, exposure_hourly=exposure_hourly)
        hot = scored.filter("hot")
        if hot.height:
            rows = _minute_rows(hot, query, history, keys=keys, w=w, config=config, k=k, exposure=exposure,
                                exposure_keys=exposure_keys)
            out.append(rows.filter(pl.col("hot") | pl.col("start")))
        return out

    # The scales are independent and each is many small Polars queries (whose collect releases
    # the GIL): run them side by side. Results are gathered in scale order, so the output is the
    # same as a sequential run.
    with ThreadPoolExecutor(max_workers=min(len(config.scales), SCALE_THREADS)) as pool:
        frames = [f for part in pool.map(one_scale, config.scales) for f in part]
    if not frames:
        return pl.DataFrame()
    # stable: at one minute and scale the share test's row stays before the count test's, whatever
    # the frames' sizes (an unstable sort let a --state run's smaller frames pick the other one)
    return pl.concat(frames, how="vertical_relaxed").sort(*keys, "minute", "scale", nulls_last=True,
                                                          maintain_order=True)


def _allowed_gap(config: RateConfig) -> pl.Expr:
    return pl.max_horizontal(pl.lit(config.end_quiet_minutes), pl.col("scale") // 3)


def segment(
    scanned: pl.DataFrame,
    query: pl.DataFrame,
    *,
    keys: Sequence[str],
    config: RateConfig,
    data_end: datetime,
    learning_end: datetime,
    counters: dict[str, int] | None = None,
) -> pl.DataFrame:
    """Incidents (INCIDENT_SCHEMA statistics) from the rows of :func:`scan_scales`.

    A run of hot minutes is cut where more quiet minutes pass than the last hot minute's
    scale allows; it holds an incident from its first start minute at or after
    ``learning_end``. The incident is open (``endTime`` null) while its quiet allowance has
    not passed before ``data_end``.
    """
    keys = list(keys)
    if scanned.is_empty():
        return pl.DataFrame()
    if counters is not None:
        learning = scanned.filter(pl.col("start") & (pl.col("minute") < learning_end))
        counters["learning"] = counters.get("learning", 0) + learning.select(*keys, "minute").unique().height
    per_minute = (
        scanned.lazy()
        .with_columns(pl.col("start") & (pl.col("minute") >= learning_end))
        # the start row of the smallest scale speaks for the minute, else its smallest hot scale
        .sort(*keys, "minute", pl.col("start").not_(), "scale", nulls_last=True, maintain_order=True)
        .group_by(*keys, "minute", maintain_order=True)
        .agg(pl.all().first(), pl.col("hot").any().alias("_hot"), pl.col("start").any().alias("_start"),
             _allowed_gap(config).max().alias("_gap"))
        .drop("hot", "start").rename({"_hot": "hot", "_start": "start"})
        .filter(pl.col("hot") | pl.col("start"))
    )
    runs = (
        per_minute.sort(*keys, "minute")
        .with_columns(
            (pl.col("minute").diff().dt.total_minutes() - 1).over(keys).alias("_quiet"),
            pl.col("_gap").shift().over(keys).alias("_prev_gap"),
        )
        .with_columns((pl.col("_quiet").is_null() | (pl.col("_quiet") >= pl.col("_prev_gap"))).cum_sum().alias("_run"))
        .with_columns(pl.col("minute").filter("start").min().over("_run").alias("firedAt"))
        .filter(pl.col("minute") >= pl.col("firedAt"))
        .group_by("_run")
        .agg(*[pl.col(c).first() for c in keys], pl.col("firedAt").first(),
             (pl.col("minute").max() + timedelta(minutes=1)).alias("_stop"),
             pl.col("_gap").last().alias("_last_gap"),
             *[pl.col(c).filter(pl.col("minute") == pl.col("firedAt")).first()
               for c in ["count", "scale", "test", "windowCount", "windowExpected", "expected", "pValue", *_STATS]])
        .collect()
    )
    if runs.is_empty():
        return runs
    closed = pl.col("_stop") + pl.duration(minutes=pl.col("_last_gap")) <= pl.lit(data_end).cast(UTC_DATETIME)
    return _trim(runs.with_columns(closed.alias("_closed")), query, keys=keys, config=config, data_end=data_end)


def _trim(runs: pl.DataFrame, query: pl.DataFrame, *, keys: list[str], config: RateConfig,
          data_end: datetime) -> pl.DataFrame:
    """startTime and End at the extremes of the cumulative excess; the incident's own counts."""
    drift = pl.col("expected") + config.trim_allowance * (pl.col("dispersion") * pl.col("expected")).sqrt()
    # the onset may precede the crossing bucket by up to one bucket (a bucket that did not cross)
    lookback = pl.duration(minutes=2 * pl.col("scale") - 1)
    bounds = runs.lazy().select("_run", *keys, "firedAt", "_stop", "scale", drift.alias("_d"))
    minutes = (
        bounds.join(query.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("firedAt") - lookback) & (pl.col("minute") < pl.col("_stop")))
        .sort("_run", "minute")
    )
    # Onset: the minute m in the crossing bucket that maximises Σ_{m..firedAt} (count - drift).
    before = (
        minutes.filter(pl.col("minute") <= pl.col("firedAt"))
        .with_columns(
            (pl.col("count").reverse().cum_sum().reverse().over("_run")
             - pl.col("_d") * ((pl.col("firedAt") - pl.col("minute")).dt.total_minutes() + 1)).alias("_excess"))
        .group_by("_run").agg(pl.col("minute").sort_by("_excess", "minute", descending=[True, False]).first()
                              .alias("startTime"))
    )
    # End: one past the minute m after firedAt that maximises Σ_{firedAt..m} (count - drift).
    after = (
        minutes.filter(pl.col("minute") >= pl.col("firedAt"))
        .with_columns((pl.col("count").cum_sum().over("_run")
                       - pl.col("_d") * ((pl.col("minute") - pl.col("firedAt")).dt.total_minutes() + 1))
                      .alias("_excess"))
        .group_by("_run").agg(pl.col("minute").sort_by("_excess", "minute", descending=[True, False]).first()
                              .alias("_peak"))
    )
    out = runs.join(before.collect(), on="_run", how="left").join(after.collect(), on="_run", how="left")
    # never before the previous incident of the series stopped (runs do not overlap)
    prev_stop = pl.col("_stop").shift().over(keys, order_by="firedAt")
    out = out.with_columns(
        pl.max_horizontal(pl.col("startTime").fill_null(pl.col("firedAt")), prev_stop).alias("startTime"),
        pl.when("_closed").then(pl.col("_peak") + timedelta(minutes=1)).otherwise(None).alias("endTime"),
    ).with_columns(
        pl.when("_closed").then(pl.col("endTime")).otherwise(pl.lit(data_end).cast(UTC_DATETIME)).alias("_until"),
    )
    counted = (
        out.lazy().select("_run", *keys, "startTime", "firedAt", "_until")
        .join(query.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_until")))
        .group_by("_run")
        .agg(pl.col("count").sum().alias("insightCount"),
             pl.col("count").filter(pl.col("minute") <= pl.col("firedAt")).sum().alias("_start_count"))
        .collect()
    )
    out = out.join(counted, on="_run", how="left").with_columns(pl.col("insightCount", "_start_count").fill_null(0))
    span = lambda a, b: ((pl.col(b) - pl.col(a)).dt.total_minutes()).clip(lower_bound=1)  # noqa: E731
    return out.with_columns(
        span("startTime", "_until").cast(pl.Int64).alias("insightDuration"),
        (pl.col("_start_count") / ((pl.col("firedAt") - pl.col("startTime")).dt.total_minutes() + 1)).alias("startAverage"),
    ).with_columns((pl.col("insightCount") / pl.col("insightDuration")).alias("insightAverage")).drop(
        "_stop").rename({"_until": "_stop"})  # downstream (dominant error code) reads the trimmed span


def rate_incidents(
    counts: pl.DataFrame,
    *,
    keys: Sequence[str],
    data_start: datetime,
    data_end: datetime,
    learning_end: datetime,
    config: RateConfig,
    exposure: pl.LazyFrame | None = None,
    exposure_keys: Sequence[str] = (),
    counters: dict[str, int] | None = None,
    query: pl.DataFrame | None = None,
    trace: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Every incident of the series in ``counts``, with baselines that exclude incidents.

    Returns the incident rows of :func:`segment` plus ``model`` (JSON) and ``endReason``.
    ``query``: the rows scored (default: all of ``counts``, which stays the history); a
    ``--state`` run passes each series' minutes from where new events can change its incidents
    (:mod:`insights_kit.detectors._reuse`). ``trace``: a dict that receives the minutes the
    baselines left out (``"masked"``) and those hot or starting at any scale in any pass
    (``"hot"``), as ``keys..., minute``.

    Examples
    --------
    >>> rate_incidents(c, keys=API_KEYS, data_start=t0, data_end=t1, learning_end=tl,
    ...                config=CallRateConfig())  # doctest: +SKIP
    """
    keys = list(keys)
    query = counts if query is None else query
    common = dict(keys=keys, data_start=data_start, config=config, exposure=exposure, exposure_keys=exposure_keys)
    seg = dict(keys=keys, config=config, data_end=data_end, learning_end=learning_end)
    masked = pl.DataFrame(schema={**{k: counts.schema[k] for k in keys}, "minute": UTC_DATETIME})
    hot = [masked]  # the (empty) frame gives the schema when nothing is hot

    def scan(history: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
        rows = scan_scales(history, scored, **common)
        if trace is not None and rows.height:
            hot.append(rows.select(*keys, "minute"))
        return rows

    inc = segment(scan(counts, query), query, counters=counters, **seg)
    accept = timedelta(hours=config.accept_after_hours)
    for _ in range(config.mask_passes if config.accept_after_hours > 0 else 0):
        if inc.is_empty():
            break
        until = pl.min_horizontal(pl.coalesce(pl.col("endTime"), pl.lit(data_end).cast(UTC_DATETIME)),
                                  pl.col("startTime") + accept)
        inside = (
            # from one bucket before the start: calls before the estimated onset are the incident's too
            inc.lazy().select(*keys, (pl.col("startTime") - pl.duration(minutes=pl.col("scale"))).alias("startTime"),
                              until.alias("_until"))
            .join(query.lazy().select(*keys, "minute"), on=keys, how="inner", nulls_equal=True)
            .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_until")))
            .select(*keys, "minute").unique().collect()
        )
        grown = inside.join(masked, on=[*keys, "minute"], how="anti", nulls_equal=True)
        if grown.is_empty():
            break
        masked = pl.concat([masked, grown])
        again = masked.select(keys).unique()
        history = counts.join(again, on=keys, how="semi", nulls_equal=True).join(
            masked, on=[*keys, "minute"], how="anti", nulls_equal=True)
        scored = query.join(again, on=keys, how="semi", nulls_equal=True)
        redone = segment(scan(history, scored), scored, **seg)
        kept = inc.join(again, on=keys, how="anti", nulls_equal=True)
        inc = pl.concat([kept, redone], how="diagonal_relaxed") if redone.height else kept
    if trace is not None:
        trace["masked"], trace["hot"] = masked, pl.concat(hot, how="vertical_relaxed").unique()
    if inc.is_empty():
        return inc
    # run ids of different passes collide: renumber (the error detector joins on them)
    inc = inc.drop("_run").sort("startTime", *keys, nulls_last=True).with_row_index("_run")
    tests = len(config.scales) * (2 if exposure is not None and getattr(config, "share_test", False) else 1)
    return _with_model(inc, config, config.alpha_start / tests)


def _with_model(inc: pl.DataFrame, config: RateConfig, alpha: float) -> pl.DataFrame:
    accepted_after = config.accept_after_hours * 60
    models, reasons = [], []
    for r in inc.iter_rows(named=True):  # one dict per incident, not per event
        models.append(json.dumps({
            "scale": int(r["scale"]), "test": r["test"], "windowCount": int(r["windowCount"]),
            "windowExpected": _sig(r["windowExpected"]), "expected": _sig(r["expected"]),
            "pValue": _sig(r["pValue"]), "dispersion": _sig(r["dispersion"]),
            "ratio": _sig(r["windowCount"] / r["windowExpected"]) if r["windowExpected"] else None,
            "alpha": _sig(alpha), "scales": list(config.scales),
            "components": {c: _sig(r[c] / r["scale"]) for c in ("season", "recur", "recent")},
        }, sort_keys=True))
        if r["endTime"] is None:
            reasons.append(None)
        elif accepted_after and r["insightDuration"] >= accepted_after:
            reasons.append(f"accepted as the new normal: the level stayed up for {config.accept_after_hours:g} h "
                           "(accept_after_hours) and now feeds the baseline")
        else:
            reasons.append(f"the rate returned to its expected band: no unusual minute at any scale within the "
                           f"{int(r['_last_gap'])}-minute quiet allowance")
    per_minute = pl.col("baselineAverage") / pl.col("scale")
    return inc.with_columns(
        pl.Series("model", models, dtype=pl.String), pl.Series("endReason", reasons, dtype=pl.String),
        per_minute.alias("baselineAverage"), (pl.col("windowCount") / pl.col("windowExpected")).alias("ratio"),
    )
