"""Shared seasonal count model and incident segmentation of the rate detectors.

Model (per series, per minute *t* in UTC hour *H*; see docs and :class:`RateConfig`):

* baseline window = the ``baseline_days`` x 24 complete hours before *H*, clipped at
  ``data_start`` (``baselineDuration`` = its observed minutes);
* ``season`` = mean count/minute in the local hour-of-day ±1 h on days of the same day type
  (weekday/weekend) in the window, falling back to all days, then to the window mean;
* ``recur`` = median over the window's days of the max count within ±``recur_window_minutes``
  of the same minute of day (a scheduled job that runs on most days is expected);
* ``recent`` = mean count/minute over the last ``recent_hours`` complete hours (adaptation to a
  persistent level shift);
* λ = max(season, recur, recent, ``min_expected``); for errors λ = max(λ, p_base · calls(t));
* dispersion φ = max(1, var/mean) of the per-minute counts in the hour-of-day ±1 h
  neighbourhood of the window; p = P(X ≥ x) under NB(mean λ, variance φλ) (Poisson if φ = 1).

A minute is **hot** when p ≤ ``alpha_continue`` and x ≥ λ + 1, and a **start** when it is hot,
p ≤ ``alpha_start``, x ≥ ``min_count`` and x ≥ ``min_ratio`` · λ. Only upward anomalies are
modelled: below-baseline insights are not emitted, so only nonzero minutes are evaluated.

Cost control: the baseline components depend only on (series, hour), so they are computed on
distinct (series, hour) pairs from hourly cumulative sums (``features.window_sums``); minutes
that cannot be hot even with the smallest possible λ are dropped before any of that, and the
recurring-job component (the only per-minute lookback) is computed for the few minutes that
are still hot without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from scipy import special

from insights_kit.features import hour_calendar, hourly_sums, minute_counts, window_sums, with_local_calendar
from insights_kit.schema import UTC_DATETIME
from insights_kit.validate import check_rate_config

API_KEYS = ["serviceName", "eventSource", "eventName"]


@dataclass(frozen=True)
class RateConfig:
    """Parameters of the seasonal count model and of the incident rules.

    Parameters
    ----------
    baseline_days : int, default 7
        Length of the rolling baseline window (days of complete hours before the minute's hour).
    timezone : str, default "UTC"
        IANA zone whose clock defines hour-of-day and weekday/weekend (e.g. "Asia/Shanghai").
    recur_window_minutes : int, default 10
        Half-width of the same-minute-of-day window used for recurring jobs.
    recent_hours : int, default 6
        Complete hours averaged for the recent level (how fast a level shift stops alarming).
    min_expected : float, default 0.05
        Floor of the expected count per minute (a never-called API is not "infinitely" rare).
    alpha_start : float, default 1e-6
        p-value at or below which a minute may start an incident.
    alpha_continue : float, default 1e-3
        p-value at or below which a minute keeps an incident going ("hot").
    min_count : int, default 10
        Smallest count of a start minute (errors: 5).
    min_ratio : float, default 3.0
        Smallest count / expected ratio of a start minute.
    end_quiet_minutes : int, default 5
        Consecutive non-hot minutes that end an incident.
    event_categories : tuple of str, default ("Management", "Data")
        eventCategory values analysed (null counts as Management).
    event_rw : tuple of str, default ()
        eventRW values analysed (empty: all; call rate uses ("Write",)).
    prior_errors, prior_calls : float, default 1 and 50
        Beta prior of the baseline error share p_base (error rate only).
    """

    baseline_days: int = 7
    timezone: str = "UTC"
    recur_window_minutes: int = 10
    recent_hours: int = 6
    min_expected: float = 0.05
    alpha_start: float = 1e-6
    alpha_continue: float = 1e-3
    min_count: int = 10
    min_ratio: float = 3.0
    end_quiet_minutes: int = 5
    event_categories: tuple[str, ...] = ("Management", "Data")
    event_rw: tuple[str, ...] = ()
    prior_errors: float = 1.0
    prior_calls: float = 50.0

    def __post_init__(self) -> None:
        # Ranges documented in insights_kit.validate.check_rate_config; subclasses inherit it.
        check_rate_config(self)


@dataclass(frozen=True)
class ScaledRateConfig(RateConfig):
    """The rate model tested at several time scales (:mod:`insights_kit.detectors._multiscale`).

    Parameters
    ----------
    scales : tuple of int, default (1, 5, 15, 60)
        Bucket widths in minutes (each divides 60). The false-alarm rate ``alpha_start`` is
        split evenly across them.
    accept_after_hours : float, default 6
        An incident's minutes feed the baseline again only after this long: a level that
        stays up longer becomes the new normal (0 disables the exclusion).
    mask_passes : int, default 3
        Passes of "find incidents, remove them from the baseline, score again" at most.
    trim_allowance : float, default 0.5
        Standard deviations per minute subtracted from the cumulative excess that places
        ``startTime`` and the End (a CUSUM reference value).
    history_max_factor : float, default 2.0
        Above one minute, a start bucket must also exceed this many times the largest bucket
        of its width in the baseline window, at any hour of day.
    scale_learning_hours : int, default 48
        Above one minute, no start before the baseline window holds this many hours.
    scale_min_rate : float, default 0.4
        Above one minute, a start bucket must hold at least this many calls per minute of its
        width (and ``min_count``).
    """

    scales: tuple[int, ...] = (1, 5, 15, 60)
    accept_after_hours: float = 6.0
    mask_passes: int = 3
    trim_allowance: float = 0.5
    history_max_factor: float = 2.0
    scale_learning_hours: int = 48
    scale_min_rate: float = 0.4


@dataclass(frozen=True)
class CallRateConfig(ScaledRateConfig):
    """ApiCallRateInsight defaults: write events only, ``min_count`` 10."""

    min_count: int = 10
    event_rw: tuple[str, ...] = ("Write",)


@dataclass(frozen=True)
class ErrorRateConfig(ScaledRateConfig):
    """ApiErrorRateInsight defaults: read and write, ``min_count`` 5, ``scale_min_rate`` 0.2.

    Parameters
    ----------
    share_test : bool, default True
        Also test the series' error share against its baseline share (Binomial(calls, p_base)
        at every scale; the false-alarm rate is then split over twice as many tests).
    code_level : bool, default True
        Also run region-wide series per errorCode (catches probing spread over many APIs).
    dominant_share : float, default 0.8
        Share of an API-level incident's errors one code needs to be named in ``errorCode``.
    merge_share : float, default 0.8
        A code-level incident is dropped when an API-level incident with the same code overlaps
        it and that API has at least this share of the code's errors during it.
    caller_level : bool, default True
        Also test each caller's (principalId, else accessKeyId) errors, by count and by share
        of its own calls; an unusual caller's errors raise an incident on each API where it
        collected ``caller_api_min_count`` of them.
    caller_api_min_count : int, default 3
        Errors of an unusual caller on one API that make that API's incident: a probe that
        tries thirty APIs twice each is one code-level insight, not thirty API insights.
    """

    min_count: int = 5
    scale_min_rate: float = 0.2  # errors are rarer than calls: a denial every few minutes is a pattern
    share_test: bool = True
    code_level: bool = True
    dominant_share: float = 0.8
    merge_share: float = 0.8
    caller_level: bool = True
    caller_api_min_count: int = 3


def select_events(events: pl.LazyFrame, config: RateConfig) -> pl.LazyFrame:
    """Keep the analysed categories (and read/write kinds) of ``config``."""
    cat = pl.col("eventCategory").fill_null("Management").is_in(list(config.event_categories))
    if config.event_rw:
        cat = cat & pl.col("eventRW").is_in(list(config.event_rw))
    return events.filter(cat)


# ---------------------------------------------------------------- distributions (numpy)


def _sf(x: np.ndarray, lam: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """P(X ≥ x) under NB(mean λ, var φλ), Poisson where φ = 1."""
    x, lam, phi = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, lam, phi)))
    k = np.floor(x) - 1  # P(X ≥ x) = P(X > k)
    out = np.ones_like(lam)
    poisson = phi <= 1.0 + 1e-9
    pois, nb = (k >= 0) & poisson, (k >= 0) & ~poisson
    out[pois] = special.pdtrc(k[pois], lam[pois])
    # NB with n = λ/(φ-1) and p = 1/φ: P(X > k) = I_{1-p}(k + 1, n), the regularised beta
    out[nb] = special.betainc(k[nb] + 1, lam[nb] / (phi[nb] - 1), 1 - 1 / phi[nb])
    return out


def _upper(lam: np.ndarray, phi: np.ndarray, alpha: float) -> np.ndarray:
    """Smallest integer count x with P(X ≥ x) ≤ alpha and x ≥ λ + 1 (the band's top)."""
    lam, phi = np.asarray(lam, dtype=float), np.asarray(phi, dtype=float)
    scale = np.maximum(phi, 1.0)
    # A gamma law with the same mean and variance gives a guess a few counts off; stepping
    # with _sf itself then makes it exact (scipy.special only: scipy.stats costs 0.5 s to import).
    with np.errstate(all="ignore"):
        guess = special.gammaincinv(lam / scale, 1 - alpha) * scale
    x = np.ceil(np.nan_to_num(guess, nan=0.0, posinf=0.0)).clip(0) + 1
    todo = np.flatnonzero(np.isfinite(lam) & np.isfinite(phi))  # an infinite λ would step forever
    while todo.size:
        xs, ls, ps = x[todo], lam[todo], phi[todo]
        step = (_sf(xs, ls, ps) > alpha).astype(float)
        step -= (step == 0) & (xs > 1) & (_sf(xs - 1, ls, ps) <= alpha)
        x[todo] = xs + step
        todo = todo[step != 0]
    return np.maximum(x, np.ceil(lam + 1)).astype(np.int64)


def _min_hot_count(config: RateConfig) -> int:
    """No minute below this count can be hot: λ ≥ min_expected and φ ≥ 1 only raise the bar."""
    return int(_upper(np.array([config.min_expected]), np.array([1.0]), config.alpha_continue)[0])


# ---------------------------------------------------------------- baseline components


def _expand_neighbourhood(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Each (…, qhod, qwe) row -> 6 rows: hod ∈ qhod±1 (mod 24) × weekend ∈ {F, T}."""
    nb = pl.LazyFrame({"_dh": [-1, 0, 1]}, schema={"_dh": pl.Int8})
    we = pl.LazyFrame({"weekend": [False, True]})
    return (
        frame.join(nb, how="cross")
        .join(we, how="cross")
        .with_columns(((pl.col("qhod") + pl.col("_dh") + 24) % 24).cast(pl.Int8).alias("hod"))
        .with_columns((pl.col("weekend") == pl.col("qwe")).alias("_same"))
    )


def _hour_components(
    qh: pl.LazyFrame, hourly: pl.LazyFrame, calendar: pl.LazyFrame, config: RateConfig
) -> pl.LazyFrame:
    """season, recent, dispersion, baseline average/duration per (``_sid``, ``H``)."""
    win = {"win": timedelta(days=config.baseline_days)}
    both = win | {"rec": timedelta(hours=config.recent_hours)}
    totals = window_sums(qh, hourly, by=["_sid"], at="H", windows=both, values=["s1"])
    cls = (
        window_sums(_expand_neighbourhood(qh), hourly, by=["_sid", "hod", "weekend"], at="H",
                    windows=win, values=["s1", "s2"])
        .group_by("_sid", "H")
        .agg(pl.col("s1_win").filter("_same").sum().alias("s1_same"),
             pl.col("s1_win").sum().alias("s1_nb"), pl.col("s2_win").sum().alias("s2_nb"))
    )
    hours = qh.select("H", "qhod", "qwe").unique()
    cal = calendar.rename({"minutes": "n"})
    n_tot = window_sums(hours, cal, by=[], at="H", windows=both, values=["n"])
    n_cls = (
        window_sums(_expand_neighbourhood(hours), cal, by=["hod", "weekend"], at="H",
                    windows=win, values=["n"])
        .group_by("H")
        .agg(pl.col("n_win").filter("_same").sum().alias("n_same"), pl.col("n_win").sum().alias("n_nb"))
    )
    out = (
        totals.join(cls, on=["_sid", "H"], how="left")
        .join(n_tot.select("H", "n_win", "n_rec"), on="H", how="left")
        .join(n_cls, on="H", how="left")
        .fill_null(0)
    )
    ratio = lambda a, b: pl.when(pl.col(b) > 0).then(pl.col(a) / pl.col(b)).otherwise(0.0)  # noqa: E731
    mean_nb = ratio("s1_nb", "n_nb")
    var_nb = ratio("s2_nb", "n_nb") - mean_nb**2
    return out.with_columns(
        pl.col("n_win").alias("baselineDuration"),
        ratio("s1_win", "n_win").alias("baselineAverage"),
        ratio("s1_rec", "n_rec").alias("recent"),
        pl.when(pl.col("n_same") > 0).then(ratio("s1_same", "n_same"))
        .when(pl.col("n_nb") > 0).then(ratio("s1_nb", "n_nb"))
        .otherwise(ratio("s1_win", "n_win")).alias("season"),
        pl.when(mean_nb > 0).then(pl.max_horizontal(pl.lit(1.0), var_nb / mean_nb))
        .otherwise(1.0).alias("dispersion"),
    )


def _recur(rows: pl.DataFrame, counts: pl.DataFrame, *, data_start: datetime, config: RateConfig) -> pl.DataFrame:
    """Median over the window's days of the max count within ±R minutes of the same minute of day.

    One probe row per (minute, day back) is merged into the series' own sparse minutes and a
    backward rolling max of width 2R+1 ending at ``probe + R`` reads the day's max; days with
    no activity give 0, days before ``data_start`` are not part of the window.
    """
    r = config.recur_window_minutes
    q = rows.select("_sid", "minute").unique().sort("_sid", "minute").with_row_index("_qid")
    days = pl.LazyFrame({"_d": list(range(1, config.baseline_days + 1))})
    center = pl.col("minute") - pl.duration(days=pl.col("_d"))
    probes = (
        q.lazy().join(days, how="cross")
        .filter(center >= data_start)
        .select("_sid", (center + timedelta(minutes=r)).alias("minute"),
                pl.lit(0, pl.Int64).alias("count"), "_qid", pl.lit(True).alias("_probe"))
    )
    hist = counts.lazy().join(q.lazy().select("_sid").unique(), on="_sid", how="semi").select(
        "_sid", "minute", "count", pl.lit(None, pl.UInt32).alias("_qid"), pl.lit(False).alias("_probe"))
    day_max = (
        pl.concat([hist, probes])
        .sort("_sid", "minute", "_probe")  # probes after real rows of the same minute
        .with_columns(pl.col("count").rolling_max_by("minute", window_size=f"{2 * r + 1}m").over("_sid").alias("_max"))
        .filter("_probe")
        .group_by("_qid")
        .agg(pl.col("_max").median().alias("recur"))
    )
    return (
        q.lazy().join(day_max, on="_qid", how="left")
        .select("_sid", "minute", pl.col("recur").fill_null(0.0).cast(pl.Float64))
        .collect()
    )


def score_minutes(
    counts: pl.DataFrame,
    query: pl.DataFrame,
    *,
    keys: Sequence[str],
    data_start: datetime,
    config: RateConfig,
    exposure: pl.LazyFrame | pl.DataFrame | None = None,
    exposure_keys: Sequence[str] = (),
    prefilter: bool = True,
    block_minutes: int = 1,
    exposure_hourly: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Expected count, p-value and hot/start flags for the ``query`` minutes of each series.

    Parameters
    ----------
    counts : pl.DataFrame
        Sparse history ``keys..., minute, count`` of the series (nonzero minutes).
    query : pl.DataFrame
        ``keys..., minute, count`` rows to evaluate (the detector passes ``counts``; charts
        pass a zero-filled grid).
    keys : sequence of str
        Series key columns.
    data_start : datetime
        First observed minute of the unit (baseline windows are clipped there).
    config : RateConfig
    exposure : pl.LazyFrame or pl.DataFrame, optional
        ``exposure_keys..., minute, count`` calls for error series (p_base · calls(t) term);
        may be raw (one row per event, count 1) and lazy: only the series still evaluated
        are rolled up.
    exposure_keys : sequence of str
        Keys linking a series to its exposure (empty: one unit-wide exposure series).
    prefilter : bool, default True
        Drop minutes that cannot be hot (the detector); False evaluates every query row.
    block_minutes : int, default 1
        Width of the time buckets in ``counts`` and ``query`` (their ``minute`` column holds
        each bucket's start, aligned to the hour): every mean and variance is then per bucket.
        ``config.min_expected`` is per bucket too (the multi-scale caller scales it).
    exposure_hourly : pl.DataFrame, optional
        ``exposure``'s calls per hour (``exposure_keys..., hour, s1``; :func:`exposure_by_hour`),
        when the caller scores several scales of one exposure: the baseline window's calls are
        read from it instead of rolling ``exposure`` up again (the same sums: buckets divide hours).

    Returns
    -------
    pl.DataFrame
        ``_sid, keys..., minute, count, expected, pValue, dispersion, ratio, season, recur,
        recent, baselineAverage, baselineDuration, upper, hot, start`` (+ ``calls, p_base``).
        ``baselineDuration`` stays in minutes.

    Examples
    --------
    >>> c = minute_counts(ev, by=API_KEYS).collect()  # doctest: +SKIP
    >>> score_minutes(c, c, keys=API_KEYS, data_start=t0, config=CallRateConfig())  # doctest: +SKIP
    """
    keys = list(keys)
    if prefilter:
        query = query.filter(pl.col("count") >= _min_hot_count(config))
    # integer ids for the series still under test; the history of other series is never touched
    dim = query.select(keys).unique(maintain_order=True).with_row_index("_sid")
    hist = counts.join(dim, on=keys, how="inner", nulls_equal=True).select("_sid", "minute", "count").sort("_sid", "minute")
    q = query.join(dim, on=keys, how="left", nulls_equal=True).select("_sid", "minute", "count")
    out_schema_cols = ["_sid", *keys, "minute", "count", "expected", "pValue", "dispersion", "ratio", "season",
                       "recur", "recent", "baselineAverage", "baselineDuration", "upper", "hot", "start"]
    if q.height == 0:
        return _empty_scored(dim, out_schema_cols, with_calls=exposure is not None)
    tz = config.timezone
    qh = with_local_calendar(q.lazy().select("_sid", pl.col("minute").dt.truncate("1h").alias("H")).unique(),
                             time_col="H", timezone=tz, prefix="q").rename({"qweekend": "qwe"})
    calendar = hour_calendar(data_start, q["minute"].max() + timedelta(minutes=block_minutes), timezone=tz)
    if block_minutes > 1:  # observed buckets per hour (a partial first hour counts a partial bucket)
        calendar = calendar.with_columns(pl.col("minutes") / block_minutes)
    comps = _hour_components(qh, hourly_sums(hist.lazy(), by=["_sid"], timezone=tz), calendar, config)
    if block_minutes > 1:
        comps = comps.with_columns((pl.col("baselineDuration") * block_minutes).round().cast(pl.Int64))
    comps = comps.with_columns(pl.max_horizontal("season", "recent", pl.lit(config.min_expected)).alias("_lam1"))
    comps = comps.collect()
    comps = comps.with_columns(pl.Series("_up1", _upper(comps["_lam1"].to_numpy(), comps["dispersion"].to_numpy(),
                                                       config.alpha_continue)))
    rows = q.with_columns(pl.col("minute").dt.truncate("1h").alias("H")).join(comps, on=["_sid", "H"], how="left")
    if prefilter:  # λ only grows from here on (recur, error share), so these can never be hot
        rows = rows.filter(pl.col("count") >= pl.col("_up1"))
    lam = pl.col("_lam1")
    if exposure is not None:
        comps = _with_exposure_window(comps.filter(pl.col("_sid").is_in(rows["_sid"].unique().implode())), dim,
                                      exposure, list(exposure_keys), config, hourly=exposure_hourly)
        rows = rows.join(comps.select("_sid", "H", "p_base"), on=["_sid", "H"], how="left")
        rows = rows.with_columns(pl.col("p_base").fill_null(config.prior_errors / config.prior_calls))
        rows = _with_exposure_minute(rows, dim, exposure, list(exposure_keys))
        lam = pl.max_horizontal(lam, pl.col("p_base") * pl.col("calls"))
    rows = rows.join(_recur(rows, hist, data_start=data_start, config=config), on=["_sid", "minute"], how="left")
    rows = rows.with_columns(pl.max_horizontal(lam, "recur").alias("expected"))
    x, lam_np, phi = (rows[c].to_numpy() for c in ("count", "expected", "dispersion"))
    rows = rows.with_columns(
        pl.Series("pValue", _sf(x, lam_np, phi)),
        pl.Series("upper", _upper(lam_np, phi, config.alpha_continue)),
        (pl.col("count") / pl.col("expected")).alias("ratio"),
    ).with_columns((pl.col("count") >= pl.col("upper")).alias("hot"))
    rows = rows.with_columns(
        (pl.col("hot") & (pl.col("pValue") <= config.alpha_start) & (pl.col("count") >= config.min_count)
         & (pl.col("count") >= config.min_ratio * pl.col("expected"))).alias("start")
    )
    cols = out_schema_cols + (["calls", "p_base"] if exposure is not None else [])
    return rows.join(dim, on="_sid", how="left").select(cols).sort("_sid", "minute")


def _empty_scored(dim: pl.DataFrame, cols: list[str], *, with_calls: bool) -> pl.DataFrame:
    types = {"_sid": pl.UInt32, "minute": UTC_DATETIME, "count": pl.Int64, "baselineDuration": pl.Int64,
             "upper": pl.Int64, "hot": pl.Boolean, "start": pl.Boolean, "calls": pl.Int64}
    schema = {c: types.get(c, dim.schema.get(c, pl.Float64)) for c in cols + (["calls", "p_base"] if with_calls else [])}
    return pl.DataFrame(schema=schema)


def _exposure_ids(dim: pl.DataFrame, exposure: pl.LazyFrame | pl.DataFrame, exp_keys: list[str],
                  sids: pl.Series, *, at: str = "minute", value: str = "count") -> tuple[pl.DataFrame, pl.LazyFrame]:
    """Exposure of the series ``sids`` only, as (``_sid -> _eid`` map, ``_eid, <at>, <value>``).

    With keys, each series gets its own exposure (``_eid = _sid``), restricted to the few series
    still being evaluated so the roll-up of all calls is never materialised; an empty key list
    means one unit-wide exposure series (``_eid = 0``) shared by all. ``at``/``value``: the
    exposure's time and count columns (``hour``/``s1`` for :func:`exposure_by_hour`'s).
    """
    need = dim.filter(pl.col("_sid").is_in(sids.implode()))
    if not exp_keys:  # rolled up here too: a caller may pass bucketed minutes with several rows each
        return need.select("_sid", pl.lit(0, pl.UInt32).alias("_eid")), exposure.lazy().group_by(
            pl.lit(0, pl.UInt32).alias("_eid"), at).agg(pl.col(value).sum())
    exp = exposure.lazy().join(need.lazy().select("_sid", *exp_keys), on=exp_keys, how="inner", nulls_equal=True)
    exp = exp.group_by(pl.col("_sid").alias("_eid"), at).agg(pl.col(value).sum())  # raw rows allowed
    return need.select("_sid", pl.col("_sid").alias("_eid")), exp


def exposure_by_hour(exposure: pl.LazyFrame | pl.DataFrame, exposure_keys: Sequence[str]) -> pl.DataFrame:
    """Calls per (exposure key, UTC hour): ``exposure_keys..., hour, s1`` (see ``score_minutes``)."""
    return hourly_sums(exposure.lazy(), by=list(exposure_keys)).select(*exposure_keys, "hour", "s1").collect()


def _with_exposure_window(comps: pl.DataFrame, dim: pl.DataFrame, exposure: pl.LazyFrame | pl.DataFrame,
                          exp_keys: list[str], config: RateConfig, *,
                          hourly: pl.DataFrame | None = None) -> pl.DataFrame:
    """p_base = (errors + prior_errors) / (calls + prior_calls) over the baseline window.

    ``hourly``: :func:`exposure_by_hour` of ``exposure``, when the caller has it already.
    """
    hourly = exposure_by_hour(exposure, exp_keys) if hourly is None else hourly
    sid2eid, by_hour = _exposure_ids(dim, hourly, exp_keys, comps["_sid"].unique(), at="hour", value="s1")
    c = comps.lazy().join(sid2eid.lazy(), on="_sid", how="left")
    calls = window_sums(c.select("_eid", "H").unique(), by_hour, by=["_eid"], at="H",
                        windows={"win": timedelta(days=config.baseline_days)}, values=["s1"])
    return c.join(calls.rename({"s1_win": "calls_win"}), on=["_eid", "H"], how="left").with_columns(
        ((pl.col("s1_win") + config.prior_errors) / (pl.col("calls_win").fill_null(0) + config.prior_calls))
        .alias("p_base")
    ).drop("_eid").collect()


def _with_exposure_minute(rows: pl.DataFrame, dim: pl.DataFrame, exposure: pl.LazyFrame | pl.DataFrame,
                          exp_keys: list[str]) -> pl.DataFrame:
    """calls(t): the exposure count in each row's minute."""
    sid2eid, exp = _exposure_ids(dim, exposure, exp_keys, rows["_sid"].unique())
    exp = exp.join(rows.lazy().select("minute").unique(), on="minute", how="semi")
    return (rows.join(sid2eid, on="_sid", how="left")
            .join(exp.rename({"count": "calls"}).collect(), on=["_eid", "minute"], how="left")
            .with_columns(pl.col("calls").fill_null(0)).drop("_eid"))


# ---------------------------------------------------------------- incidents


def _sig(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def segment_incidents(
    scored: pl.DataFrame,
    counts: pl.DataFrame,
    *,
    keys: Sequence[str],
    config: RateConfig,
    data_end: datetime,
    learning_end: datetime,
    counters: dict[str, int] | None = None,
) -> pl.DataFrame:
    """Turn scored minutes into incidents (one row each, statistics of INCIDENT_SCHEMA).

    Hot minutes of a series are cut into runs wherever ``end_quiet_minutes`` or more
    consecutive minutes are not hot; a run holds an incident from its first start minute
    (at or after ``learning_end``) to its last hot minute + 1. The incident is open (endTime
    null) when fewer than ``end_quiet_minutes`` minutes have been observed after it.

    Examples
    --------
    >>> segment_incidents(s, c, keys=API_KEYS, config=cfg, data_end=t1, learning_end=tl)  # doctest: +SKIP
    """
    keys, quiet = list(keys), config.end_quiet_minutes
    learning = pl.col("start") & (pl.col("minute") < learning_end)
    if counters is not None:
        counters["learning"] = counters.get("learning", 0) + int(scored.select(learning.sum()).item() or 0)
    start = pl.col("start") & (pl.col("minute") >= learning_end)
    stats_cols = ["count", "expected", "pValue", "dispersion", "ratio", "season", "recur", "recent",
                  "baselineAverage", "baselineDuration"]
    runs = (
        scored.lazy().filter("hot").sort("_sid", "minute")
        .with_columns((pl.col("minute").diff().over("_sid").dt.total_minutes() - 1).alias("_quiet"))
        .with_columns((pl.col("_quiet").is_null() | (pl.col("_quiet") >= quiet)).cum_sum().alias("_run"))
        .with_columns(pl.col("minute").filter(start).min().over("_run").alias("startTime"))
        .filter(pl.col("minute") >= pl.col("startTime"))
        .group_by("_run")
        .agg(*[pl.col(k).first() for k in keys], pl.col("startTime").first(),
             (pl.col("minute").max() + timedelta(minutes=1)).alias("_stop"),
             *[pl.col(c).filter(pl.col("minute") == pl.col("startTime")).first() for c in stats_cols])
    )
    end_ok = pl.col("_stop") <= pl.lit(data_end - timedelta(minutes=quiet)).cast(UTC_DATETIME)
    inc = runs.with_columns(
        pl.when(end_ok).then(pl.col("_stop")).otherwise(None).alias("endTime"),
        pl.when(end_ok).then(pl.col("_stop")).otherwise(pl.lit(data_end).cast(UTC_DATETIME)).alias("_stop"),
    ).collect()
    inc = inc.with_columns(
        pl.col("startTime").alias("firedAt"),
        pl.col("count").cast(pl.Float64).alias("startAverage"),
        ((pl.col("_stop") - pl.col("startTime")).dt.total_minutes()).cast(pl.Int64).alias("insightDuration"),
    )
    inc = inc.join(_interval_counts(inc, counts, keys), on="_run", how="left").with_columns(
        pl.col("insightCount").fill_null(0),
    ).with_columns((pl.col("insightCount") / pl.col("insightDuration")).alias("insightAverage"))
    models = [
        json.dumps({"expected": _sig(r["expected"]), "pValue": _sig(r["pValue"]),
                    "dispersion": _sig(r["dispersion"]), "ratio": _sig(r["ratio"]),
                    "components": {"season": _sig(r["season"]), "recur": _sig(r["recur"]),
                                   "recent": _sig(r["recent"])}}, sort_keys=True)
        for r in inc.select("expected", "pValue", "dispersion", "ratio", "season", "recur", "recent").iter_rows(named=True)
    ]  # one dict per incident, not per event
    return inc.with_columns(pl.Series("model", models, dtype=pl.String)).sort("startTime", *keys, nulls_last=True)


def _interval_counts(inc: pl.DataFrame, counts: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Events of each incident's series in [startTime, _stop)."""
    return (
        inc.lazy().select("_run", *keys, "startTime", "_stop")
        .join(counts.lazy(), on=keys, how="inner", nulls_equal=True)
        .filter((pl.col("minute") >= pl.col("startTime")) & (pl.col("minute") < pl.col("_stop")))
        .group_by("_run").agg(pl.col("count").sum().cast(pl.Int64).alias("insightCount"))
        .collect()
    )


# ---------------------------------------------------------------- charts


def rate_series(
    events: pl.LazyFrame,
    *,
    insight_type: str,
    since: datetime,
    until: datetime,
    service_name: str | None = None,
    event_name: str | None = None,
    error_code: str | None = None,
    config: RateConfig | None = None,
    data_start: datetime | None = None,
    masks: Sequence[tuple[datetime, datetime | None]] = (),
) -> pl.DataFrame:
    """Per-minute count, expected count and band top of one series, zero-filled on [since, until).

    ``masks`` are the series' incidents (start, end; None: open): their minutes, up to
    ``accept_after_hours`` after each start, are left out of the baseline as the detector
    leaves them out (:func:`~insights_kit.detectors._multiscale.rate_incidents`), so the band
    after an attack is not widened by it.

    ``upper`` is the smallest count that would be hot, computed by :func:`score_minutes`, the
    detector's own code path. For ``ApiErrorRateInsight`` the series is the errors of the API
    (``event_name``/``service_name`` given; ``error_code`` narrows to one code) with the API's
    calls as exposure, or, without an API, the unit-wide errors of ``error_code``.

    Examples
    --------
    >>> rate_series(ev, insight_type="ApiCallRateInsight", since=t0, until=t1,
    ...             event_name="DeleteInstance")  # doctest: +SKIP
    """
    error = insight_type == "ApiErrorRateInsight"
    cfg = config or (ErrorRateConfig() if error else CallRateConfig())
    if data_start is None:
        data_start = events.select(pl.col("eventTime").min().dt.truncate("1m")).collect().item() or since
    # The model reads baseline_days of complete hours before a minute's hour: older events do not count.
    oldest = since - timedelta(days=cfg.baseline_days, hours=1)
    ev = select_events(events, cfg).filter((pl.col("eventTime") >= oldest) & (pl.col("eventTime") < until))
    api = pl.lit(True)
    if service_name is not None:
        api = api & (pl.col("serviceName") == service_name)
    if event_name is not None:
        api = api & (pl.col("eventName") == event_name)
    api_level = service_name is not None or event_name is not None
    mine = ev.filter(api) if api_level or not error else ev
    exposure = None
    if error:
        exposure = minute_counts(mine, by=[]).collect()
        mine = mine.filter(pl.col("errorCode").is_not_null())
        if error_code is not None:
            mine = mine.filter(pl.col("errorCode") == error_code)
    counts = minute_counts(mine.with_columns(pl.lit("s").alias("_series")), by=["_series"]).collect()
    grid = pl.DataFrame({"minute": pl.datetime_range(since, until, "1m", closed="left", time_zone="UTC",
                                                     time_unit="us", eager=True)})
    query = grid.join(counts.select("minute", "count"), on="minute", how="left").select(
        pl.lit("s").alias("_series"), "minute", pl.col("count").fill_null(0))
    history = counts
    if masks and getattr(cfg, "accept_after_hours", 0) > 0:
        accept = timedelta(hours=cfg.accept_after_hours)
        hidden = pl.lit(False)
        for start, end in masks:
            stop = min(end or until, start + accept)
            hidden = hidden | pl.col("minute").is_between(start - timedelta(minutes=1), stop, closed="left")
        history = counts.filter(~hidden)
    scored = score_minutes(history, query, keys=["_series"], data_start=data_start, config=cfg,
                           exposure=exposure, exposure_keys=[], prefilter=False)
    return scored.select("minute", "count", "expected", "upper").sort("minute")
