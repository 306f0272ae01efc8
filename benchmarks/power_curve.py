"""Detection-power curve of the rate detectors on synthetic Poisson series (no simulator).

Usage:  python benchmarks/power_curve.py [--trials 10] [--detector call|error] [--seasonal]
        [--baselines 0.02,0.2,1,5,25] [--durations 1,5,15,60,120] [--png docs/power-rate.png]
        [--json FILE] [--seed 0]

For every baseline level *b* (calls/minute, Poisson, flat or with a daily cycle) and burst
duration *d* (minutes), each trial is one API with 8 days of history (so the 7-day baseline is
complete) and, on day 8 at 10:00 UTC, a burst of *excess* rate *e* per minute (Poisson counts)
lasting *d* minutes. A trial is detected when an incident *starts* in [onset, onset + d + 5 min).
For each (b, d) the table gives the smallest *e* of the log grid 0.25 · √2^k (0.25 .. 512)
detected in at least 90 % of the trials, and e / b; burst-free control series (the same
history, no burst) give the false Starts.

All grid values and trials of one (b, d) are distinct APIs (eventName) of one unit, so one
``detect`` call scores them all. The grid is searched in two passes, one call each: every
fourth grid value first (factor 4), then the values between the smallest passing one and the
one below it, which assumes detection power grows with *e*. A Start dated *before* the onset
is not a detection; the burst series that have one are counted and printed.

``--detector error`` does the same for ``ErrorRateDetector``: the API is called at *b*/minute
with a 3 % error share, and the burst is *e* extra failing calls per minute. Each API has its own
error code so that the detector's region-wide per-code series do not pool the trials.

Figures only: nothing here asserts a detection power (tests/test_power_curve.py checks the
machinery on a huge burst).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from insights_kit.detectors.base import Detector, UnitContext
from insights_kit.detectors.call_rate import CallRateDetector
from insights_kit.detectors.error_rate import ErrorRateDetector
from insights_kit.schema import UTC_DATETIME, conform

T0 = datetime(2025, 3, 3, tzinfo=timezone.utc)  # a Monday
HISTORY_DAYS = 8  # one more than the default baseline_days: the 7-day window is complete at the onset
LEARNING_END = T0 + timedelta(days=HISTORY_DAYS)  # Starts are emitted (and counted) on day 8 only
ONSET = LEARNING_END + timedelta(hours=10)
#: Starts up to this many minutes after the burst's end still count (the detector may lag).
GRACE_MINUTES = 5
#: Observed minutes after the burst's end (enough for the grace window and for incidents to end).
TAIL_MINUTES = 30
#: The excess-rate grid: 0.25 · √2^k, 0.25 .. 512 calls/minute.
GRID = tuple(float(0.25 * np.sqrt(2.0) ** k) for k in range(23))
COARSE_STEP = 4  # the first pass tries every 4th grid value (a factor of 4 apart)
ERROR_SHARE = 0.03  # baseline error share of --detector error
SEASON_AMPLITUDE = 0.5  # --seasonal: rate b · (1 + 0.5 cos(2π (hour - 14) / 24)), peak at 14:00 UTC
DEFAULT_BASELINES = (0.02, 0.2, 1.0, 5.0, 25.0)
DEFAULT_DURATIONS = (1, 5, 15, 60, 120)
DETECTORS = {"call": CallRateDetector, "error": ErrorRateDetector}


def _rate(n_minutes: int, b: float, seasonal: bool) -> np.ndarray:
    """Baseline calls per minute for each minute from T0 (flat, or with a daily cycle of mean b)."""
    if not seasonal:
        return np.full(n_minutes, b)
    hour = (np.arange(n_minutes) % 1440) / 60.0
    return b * (1.0 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (hour - 14.0) / 24.0))


def _events(counts: np.ndarray, *, error: np.ndarray | None, detector: str) -> pl.LazyFrame:
    """Canonical events for per-(series, minute) ``counts`` (and ``error`` counts among them).

    Every event is stamped at its minute's start: the detectors count per minute, so where in
    the minute an event falls does not matter, and one ``np.repeat`` builds every row.
    """
    n_series, n_minutes = counts.shape
    cell = np.repeat(np.arange(counts.size, dtype=np.int64), counts.ravel())
    frame = pl.DataFrame({
        "_sid": (cell // n_minutes).astype(np.uint32),
        "eventTime": pl.Series(int(T0.timestamp() * 1e6) + (cell % n_minutes) * 60_000_000).cast(UTC_DATETIME),
    })
    if error is not None:
        # the first error[s, m] events of a cell fail: rank of each row within its cell
        first = np.repeat(np.cumsum(counts.ravel()) - counts.ravel(), counts.ravel())
        frame = frame.with_columns(pl.Series("_failed", (np.arange(cell.size) - first) < error.ravel()[cell]))
    else:
        frame = frame.with_columns(pl.lit(False).alias("_failed"))
    # Lazy on purpose: the detectors read a handful of columns, so projection pushdown never
    # materialises the other canonical ones that conform adds as nulls.
    return conform(frame.lazy().with_columns(
        pl.format("api-{}", "_sid").alias("eventName"),
        pl.lit("Ecs").alias("serviceName"),
        pl.lit("ecs.aliyuncs.com").alias("eventSource"),
        pl.lit("Write" if detector == "call" else "Read").alias("eventRW"),
        pl.lit("Management").alias("eventCategory"),
        pl.when("_failed").then(pl.format("Err.{}", "_sid")).alias("errorCode"),
        pl.format("E{}", pl.int_range(pl.len())).alias("eventId"),
    ))


def simulate_batch(b: float, excess: np.ndarray, duration: np.ndarray, *, detector: str, seasonal: bool,
                   rng: np.random.Generator) -> tuple[pl.LazyFrame, UnitContext]:
    """Events of every series of one ``detect`` call and the unit context to detect them in.

    Parameters
    ----------
    b : float
        Baseline calls per minute (of every series).
    excess, duration : numpy.ndarray
        Per series, the burst's excess rate (0: a control) and its minutes from ``ONSET``;
        series *i* is eventName ``api-i``.
    detector : {"call", "error"}
        Which detector the events are shaped for (write calls, or reads with errors).
    seasonal : bool
        Daily cycle on the baseline rate.
    rng : numpy.random.Generator
        Source of the Poisson counts.

    Returns
    -------
    (pl.LazyFrame, UnitContext)
        Observed until ``TAIL_MINUTES`` after the longest burst.
    """
    onset = int((ONSET - T0) / timedelta(minutes=1))
    n_minutes = onset + int(duration.max(initial=0)) + TAIL_MINUTES
    minute = np.arange(n_minutes)
    burst = (minute[None, :] >= onset) & (minute[None, :] < onset + duration[:, None])
    base = _rate(n_minutes, b, seasonal)[None, :]
    extra = excess[:, None] * burst
    if detector == "call":
        counts, errors = rng.poisson(base + extra), None
    else:
        # baseline errors are 3 % of the baseline calls; every burst call fails
        ok = rng.poisson(base * (1 - ERROR_SHARE), (excess.size, n_minutes))
        errors = rng.poisson(base * ERROR_SHARE + extra)
        counts = ok + errors
    end = T0 + timedelta(minutes=n_minutes)
    ctx = UnitContext("1234567890123456", "cn-hangzhou", T0, end, LEARNING_END)
    return _events(counts, error=errors, detector=detector), ctx


def score_batch(b: float, bursts: dict[int, list[float]], *, trials: int, controls: int, detector: Detector,
                kind: str, seasonal: bool, rng: np.random.Generator) -> tuple[pl.DataFrame, int, float]:
    """Detect one batch: per burst series whether it was found and with what delay.

    Parameters
    ----------
    b : float
        Baseline calls per minute.
    bursts : dict
        Duration (minutes) -> excess rates; ``trials`` series each.
    trials, controls : int
        Series per (duration, excess), and burst-free series.
    detector : Detector
        The detector instance; ``kind`` ("call" or "error") says how to shape its events.
    seasonal, rng
        As in :func:`simulate_batch`.

    Returns
    -------
    (pl.DataFrame, int, float)
        One row per burst series (``d``, ``excess``, ``trial``, ``detected``, ``delay`` in minutes
        from the onset to the first Start in [onset, onset + d + GRACE_MINUTES), null when
        missed, ``early``: a Start before the onset), the Starts on the control series and
        their observed day-8 series-days.
    """
    spec = [(d, e, t) for d, values in bursts.items() for e in values for t in range(trials)]
    spec += [(0, 0.0, t) for t in range(controls)]
    meta = pl.DataFrame(spec, schema={"d": pl.Int64, "excess": pl.Float64, "trial": pl.Int64}, orient="row")
    meta = meta.with_row_index("_sid").with_columns(pl.col("_sid").cast(pl.Int64))
    events, ctx = simulate_batch(b, meta["excess"].to_numpy(), meta["d"].to_numpy(), detector=kind,
                                 seasonal=seasonal, rng=rng)
    found = detector.detect(events, ctx)
    # the API-level incident names the API; an error-code one names the series' own code
    starts = found.select(
        pl.coalesce(pl.col("eventName").str.strip_prefix("api-"), pl.col("errorCode").str.strip_prefix("Err."))
        .cast(pl.Int64).alias("_sid"),
        ((pl.col("startTime") - pl.lit(ONSET).cast(UTC_DATETIME)).dt.total_seconds() / 60).alias("delay"),
    ).join(meta, on="_sid", how="inner")
    hits = (starts.filter((pl.col("delay") >= 0) & (pl.col("delay") < pl.col("d") + GRACE_MINUTES))
            .group_by("_sid").agg(pl.col("delay").min()))
    # a Start dated before the onset cannot be the detector reacting to the burst; kept apart
    # so that a model which backdates its Starts shows up instead of passing silently
    before = starts.filter(pl.col("delay") < 0).select("_sid").unique().with_columns(pl.lit(True).alias("early"))
    rows = (meta.filter(pl.col("excess") > 0).join(hits, on="_sid", how="left").join(before, on="_sid", how="left")
            .with_columns(pl.col("delay").is_not_null().alias("detected"), pl.col("early").fill_null(False))
            .drop("_sid"))
    false_starts = starts.filter(pl.col("excess") == 0).height
    return rows, false_starts, controls * ((ctx.data_end - LEARNING_END) / timedelta(days=1))


def power_curve(baselines=DEFAULT_BASELINES, durations=DEFAULT_DURATIONS, *, trials: int = 10,
                grid=GRID, level: float = 0.9, detector: str = "call", seasonal: bool = False,
                seed: int = 0, controls: int | None = None) -> dict:
    """Smallest detected excess rate per (baseline, duration), false Starts and delays.

    One ``detect`` call per (baseline, duration) and search pass holds every grid value and
    trial as its own API. (Batching every duration of a baseline into one call was slower with
    the multi-scale detector: its cost grows faster than the number of series.)

    Parameters
    ----------
    baselines : sequence of float
        Baseline calls per minute.
    durations : sequence of int
        Burst durations in minutes.
    trials : int, default 10
        Independent series per (b, d, e).
    grid : sequence of float, default GRID
        Excess rates tried (calls/minute); searched coarse-to-fine.
    level : float, default 0.9
        Share of the trials a burst must be detected in.
    detector : {"call", "error"}
        CallRateDetector or ErrorRateDetector, default configuration.
    seasonal : bool, default False
        Daily cycle on the baseline rate.
    seed : int, default 0
        Seed of every Poisson draw (one stream per baseline).
    controls : int, optional
        Burst-free series per (baseline, duration) call (default: ``trials``).

    Returns
    -------
    dict
        ``cells``: a frame (b, d, smallest_e, detected share and median delay at smallest_e,
        ratio = smallest_e / b; smallest_e null when no grid value reaches ``level``);
        ``points``: the detection share and median delay of every (b, d, e) tried;
        ``controls``: series, observed day-8 series-days and false Starts; ``early_starts``: burst
        series whose first Start came before the onset (outside the window: counted as missed);
        ``seconds``.

    Examples
    --------
    >>> power_curve([1.0], [1, 15], trials=2, grid=[200.0])["cells"]  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    grid = sorted(float(g) for g in grid)
    durations = [int(d) for d in durations]
    controls = trials if controls is None else controls
    det = DETECTORS[detector]()
    coarse = sorted(set(range(0, len(grid), COARSE_STEP)) | {len(grid) - 1})
    points, control_series, control_days, false_starts, early = [], 0, 0.0, 0, 0
    for i_b, b in enumerate(baselines):
        for d in durations:
            common = dict(trials=trials, detector=det, kind=detector, seasonal=seasonal,
                          rng=np.random.default_rng([seed, i_b, d]))
            first, n_false, days = score_batch(b, {d: [grid[k] for k in coarse]}, controls=controls, **common)
            control_series, control_days, false_starts = control_series + controls, control_days + days, false_starts + n_false
            tried = [first]
            # second pass: the grid values between the smallest passing coarse value and the one below it
            passing = _smallest_passing(_shares(first), level)
            if passing is not None:
                k_pass = grid.index(passing)
                below = max([k for k in coarse if k < k_pass], default=-1)
                if k_pass - below > 1:
                    tried.append(score_batch(b, {d: grid[below + 1:k_pass]}, controls=0, **common)[0])
            rows = pl.concat(tried)
            early += rows.filter(pl.col("early")).height
            points.append(_shares(rows).with_columns(pl.lit(float(b)).alias("b")))
    points = pl.concat(points).select("b", "d", "excess", "detected", "median_delay")
    best = (points.filter(pl.col("detected") >= level - 1e-9)
            .group_by("b", "d").agg(pl.all().sort_by("excess").first()).rename({"excess": "smallest_e"}))
    cells = (pl.DataFrame([(float(b), d) for b in baselines for d in durations], schema={"b": pl.Float64, "d": pl.Int64},
                          orient="row")
             .join(best, on=["b", "d"], how="left", maintain_order="left")
             .with_columns((pl.col("smallest_e") / pl.col("b")).alias("ratio")))
    return {"cells": cells, "points": points,
            "controls": {"series": control_series, "series_days": round(control_days, 2), "false_starts": false_starts},
            "early_starts": early, "seconds": time.perf_counter() - t_start}


def _shares(rows: pl.DataFrame) -> pl.DataFrame:
    """Detection share and median delay per (d, excess)."""
    return (rows.group_by("d", "excess")
            .agg(pl.col("detected").mean(), pl.col("delay").median().alias("median_delay"))
            .sort("d", "excess"))


def _smallest_passing(shares: pl.DataFrame, level: float) -> float | None:
    """The smallest excess detected in at least ``level`` of its trials, if any."""
    return shares.filter(pl.col("detected") >= level - 1e-9)["excess"].min()


def format_table(result: dict) -> str:
    """The power table as text: rows b, columns d, cells ``smallest e (e/b)``, then delays."""
    cells = result["cells"]
    durations = cells["d"].unique(maintain_order=True).to_list()

    def grid_text(value) -> list[str]:
        head = f"{'b (/min)':>9} | " + " | ".join(f"{f'd={d} min':>15}" for d in durations)
        lines = [head, "-" * len(head)]
        for b in cells["b"].unique(maintain_order=True):
            row = cells.filter(pl.col("b") == b)
            lines.append(f"{b:>9g} | " + " | ".join(f"{value(r):>15}" for r in row.iter_rows(named=True)))
        return lines

    def excess(r) -> str:
        return "none" if r["smallest_e"] is None else f"{r['smallest_e']:.3g} ({r['ratio']:.3g}x)"

    def delay(r) -> str:
        return "-" if r["median_delay"] is None else f"{r['median_delay']:.0f} min"

    c = result["controls"]
    return "\n".join([
        "smallest excess rate e (calls/min) detected in >= 90 % of trials, and e/b:",
        *grid_text(excess), "", "median Start delay after the onset at that e:", *grid_text(delay), "",
        f"control series: {c['series']} ({c['series_days']} series-days of day 8 observed), "
        f"false Starts: {c['false_starts']}",
        f"burst series with a Start dated before the onset (not counted as detections): {result.get('early_starts', 0)}",
    ])


def chart(result: dict, *, title: str):
    """Altair line chart: smallest detected excess rate vs duration, one line per baseline, log axes."""
    import altair as alt

    cells = result["cells"]
    order = [f"{b:g}" for b in cells["b"].unique(maintain_order=True)]
    data = cells.drop_nulls("smallest_e").with_columns(
        pl.col("b").map_elements(lambda b: f"{b:g}", return_dtype=pl.String).alias("baseline"))
    # equal thresholds (the low baselines are all held by min_count) draw on top of each other:
    # dashes tell the lines apart
    legend = dict(title="baseline (calls/min)", sort=order)
    return (
        alt.Chart(data).mark_line(point=True)
        .encode(x=alt.X("d:Q", scale=alt.Scale(type="log", domain=[cells["d"].min(), cells["d"].max()], nice=False),
                        title="burst duration (minutes)"),
                y=alt.Y("smallest_e:Q", scale=alt.Scale(type="log"), title="smallest excess detected (calls/min)"),
                color=alt.Color("baseline:N", **legend), strokeDash=alt.StrokeDash("baseline:N", sort=order, legend=None),
                tooltip=["baseline:N", "d:Q", "smallest_e:Q", "ratio:Q", "median_delay:Q"])
        .properties(width=420, height=300, title=title)
    )


def write_png(figure, path: Path) -> None:
    """Render ``figure`` to the PNG ``path`` with :func:`insights_kit.charts.save_chart` (offline).

    save_chart writes an SVG next to the PNG; it is rendered in a scratch folder so that only
    the PNG asked for lands in docs/.
    """
    import shutil
    import tempfile

    from insights_kit.charts import save_chart

    with tempfile.TemporaryDirectory() as scratch:
        written = save_chart(figure, Path(scratch) / "chart")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written["png"], path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="series per (b, d, e) (default 10)")
    parser.add_argument("--detector", choices=sorted(DETECTORS), default="call")
    parser.add_argument("--baselines", default=",".join(f"{b:g}" for b in DEFAULT_BASELINES))
    parser.add_argument("--durations", default=",".join(str(d) for d in DEFAULT_DURATIONS))
    parser.add_argument("--seasonal", action="store_true", help="daily cycle on the baseline rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, help="write the chart here (and an .svg next to it)")
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]), flush=True)
    result = power_curve([float(b) for b in args.baselines.split(",")], [int(d) for d in args.durations.split(",")],
                         trials=args.trials, detector=args.detector, seasonal=args.seasonal, seed=args.seed)
    name = {"call": "CallRateDetector", "error": "ErrorRateDetector"}[args.detector]
    print(f"{name}, defaults, {args.trials} trials per cell{', seasonal baseline' if args.seasonal else ''}")
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": sys.argv, "detector": name, "trials": args.trials, "seasonal": args.seasonal,
            "level": 0.9, "grid": list(GRID), "cells": result["cells"].to_dicts(),
            "points": result["points"].to_dicts(), "controls": result["controls"], "early_starts": result["early_starts"],
        }, indent=1), encoding="utf-8")
    if args.png:
        write_png(chart(result, title=f"{name}: smallest excess detected in 90 % of {args.trials} trials"), args.png)
    print(f"wall time {result['seconds']:.1f} s")


if __name__ == "__main__":
    main()
