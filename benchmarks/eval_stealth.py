"""Detection power on graded stealth incidents: recall by kind and by intensity, delays, Ends.

Simulates each (seed, scale) with the stealth plan (:mod:`insights_kit.stealth`), runs
``detect`` with the defaults and scores the Insights against the labels
(:mod:`insights_kit.evaluate`). Prints, pooled over every run:

* recall, precision and false Starts per region-day per insight type;
* recall, Start delay (mean/max), End lag and insightCount error per scenario kind;
* recall per intensity bin (fixed bins, :data:`insights_kit.evaluate.INTENSITY_BINS`) per kind
  and type, and the stealth labels missed with their intensity.

    python benchmarks/eval_stealth.py --seeds 404,505 --scales 0.02,0.1,0.3 --days 14 \\
        --png docs/detection-power.png --json out/stealth.json

Runs go to at most two worker processes (``--workers``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl

from insights_kit import evaluate
from insights_kit.schema import INSIGHT_TYPES
from insights_kit.stealth import KINDS

_COUNTS = ("labelled", "detected", "starts", "true_starts", "false_starts")


def run_one(seed: int, scale: float, days: int) -> dict:
    """Simulate, detect and score one (seed, scale); small JSON-ready figures only."""
    from insights_kit import store
    from insights_kit.detect import run_detect
    from insights_kit.simulate import simulate

    work = Path(tempfile.mkdtemp(prefix=f"stealth-{seed}-"))
    try:
        result = simulate(work / "tree", days=days, seed=seed, scale=scale, progress=False, stealth=True)
        labels = evaluate.load_labels(work / "tree" / "labels.json")
        run_detect([work / "tree"], work / "out", home_region=labels["home_region"], progress=False)
        insights = store.read_events(work / "out")
        scored = evaluate.score(insights, labels)
        rows = evaluate.outcomes(insights, labels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    graded = {e["id"]: e for e in labels["incidents"] if e.get("intensity") and e["expect"] == "insight"}
    missed = [{"seed": seed, "scale": scale, **{k: graded[r["id"]][k] for k in ("scenario", "type", "region", "object",
                                                                               "start", "intensity")}}
              for r in rows.filter(~pl.col("detected")).iter_rows(named=True) if r["id"] in graded]
    return {
        "seed": seed, "scale": scale, "events": result.events, "region_days": len(labels["regions"]) * days,
        "by_type": {t: {k: m[k] for k in _COUNTS} for t, m in scored["by_type"].items()},
        "outcomes": rows.with_columns(pl.lit(seed).alias("seed"), pl.lit(scale).alias("scale")).to_dicts(),
        "missed": missed,
        "false": [{"seed": seed, "scale": scale, **f} for f in scored["overall"]["false"]],
    }


def pooled(runs: list[dict]) -> dict:
    """Figures over every run: per type, per kind, per intensity bin, Ends."""
    by_type: dict[str, dict] = {}
    region_days = sum(r["region_days"] for r in runs)
    for kind in sorted({t for r in runs for t in r["by_type"]} | set(INSIGHT_TYPES)):
        c = {k: sum(r["by_type"].get(kind, {}).get(k, 0) for r in runs) for k in _COUNTS}
        c["recall"] = round(c["detected"] / c["labelled"], 3) if c["labelled"] else None
        c["precision"] = round(c["true_starts"] / c["starts"], 3) if c["starts"] else None
        c["false_starts_per_region_day"] = round(c["false_starts"] / region_days, 4) if region_days else None
        by_type[kind] = c
    rows = pl.DataFrame([o for r in runs for o in r["outcomes"]],
                        schema={**evaluate.OUTCOME_SCHEMA, "seed": pl.Int64, "scale": pl.Float64})
    return {"runs": [{k: r[k] for k in ("seed", "scale", "events")} for r in runs], "region_days": region_days,
            "by_type": by_type, **evaluate.summarize_outcomes(rows),
            "stealth_recall_by_scale": {
                str(scale): round(float(group["detected"].mean()), 3)
                for (scale,), group in sorted(rows.filter(pl.col("scenario").is_in(KINDS)).group_by("scale"))},
            "missed": [m for r in runs for m in r["missed"]], "false": [f for r in runs for f in r["false"]]}


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report(figures: dict) -> str:
    runs = ", ".join(f"seed {r['seed']} scale {r['scale']} ({r['events']} events)" for r in figures["runs"])
    lines = [f"runs: {runs}", f"region-days: {figures['region_days']}", "", "per insight type (pooled):"]
    for kind, c in figures["by_type"].items():
        per_day = _fmt(c["false_starts_per_region_day"], 4)
        lines.append(f"  {kind:24} recall {_fmt(c['recall'])} ({c['detected']}/{c['labelled']})  precision "
                     f"{_fmt(c['precision'])}  false Starts {c['false_starts']} ({per_day} per region-day)")
    lines += ["", "per scenario kind (stealth kinds marked *): recall, Start delay mean/max, End lag mean/max, "
              "insightCount error mean (|mean|), min"]
    for kind, m in figures["by_scenario"].items():
        star = "*" if kind in KINDS else " "
        lines.append(f" {star}{kind:22} {_fmt(m['recall'])} ({m['detected']}/{m['labelled']})  delay "
                     f"{_fmt(m['mean_delay'], 1)}/{_fmt(m['max_delay'], 1)}  End lag {_fmt(m['mean_end_lag'], 1)}/"
                     f"{_fmt(m['max_end_lag'], 1)} ({m['with_end']} Ends)  count error {_fmt(m['mean_count_error'])} "
                     f"({_fmt(m['mean_abs_count_error'])})")
    lines += ["", "recall by intensity bin (detected/labelled per bin):"]
    for kind, types in figures["by_intensity"].items():
        for type_, measures in types.items():
            for measure, bins in measures.items():
                cells = "  ".join(f"{b['bin']}: {b['detected']}/{b['labelled']}" for b in bins if b["labelled"])
                lines.append(f"  {kind:17} {type_:24} {measure:15} {cells}")
    by_scale = ", ".join(f"scale {k}: {v}" for k, v in figures["stealth_recall_by_scale"].items())
    lines += ["", f"recall of the stealth labels by scale: {by_scale}"]
    ends = figures["ends"]["overall"]
    lines += ["", f"Ends: {ends['with_end']} of {ends['matched']} detections closed; End lag mean "
              f"{_fmt(ends['mean_end_lag'], 1)} max {_fmt(ends['max_end_lag'], 1)} min; insightCount error mean "
              f"{_fmt(ends['mean_count_error'])} (mean |error| {_fmt(ends['mean_abs_count_error'])})"]
    lines += ["", f"stealth labels missed ({len(figures['missed'])}):"]
    for m in figures["missed"]:
        i = m["intensity"]
        shown = ", ".join(f"{k} {v}" for k, v in i.items() if k in ("calls", "duration_minutes", "rate_per_minute",
                                                                     "baseline_per_minute", "error_share"))
        lines.append(f"  seed {m['seed']} scale {m['scale']} {m['scenario']:16} {m['type']:22} {m['region']:14} "
                     f"{m['object']}: {shown}")
    false = pl.DataFrame(figures["false"], schema={"type": pl.String, "object": pl.String,
                                                    "lookalikeScenario": pl.String})
    lines += ["", f"false Starts ({false.height}) by type, object and the look-alike they hit:"]
    for type_, obj, lookalike, n in (false.group_by("type", "object", "lookalikeScenario").len()
                                     .sort("len", "type", "object", descending=[True, False, False]).iter_rows()):
        lines.append(f"  {n:3} {type_:24} {obj:28} {lookalike or '(none)'}")
    return "\n".join(lines)


def chart(figures: dict):
    """Recall per intensity bin, one panel per kind, one line per label type."""
    import altair as alt

    from insights_kit.charts import TYPE_COLORS

    measures_order = list(evaluate.INTENSITY_BINS)
    rows = [{"kind": kind, "type": type_, "measure": measure, "bin": b["bin"],
             "order": measures_order.index(measure) * 100 + i, "recall": b["recall"], "labelled": b["labelled"]}
            for kind, types in figures["by_intensity"].items() if kind in KINDS
            for type_, measures in types.items() for measure, bins in measures.items()
            for i, b in enumerate(bins) if b["labelled"]]
    data = pl.DataFrame(rows, schema={"kind": pl.String, "type": pl.String, "measure": pl.String, "bin": pl.String,
                                      "order": pl.Int64, "recall": pl.Float64, "labelled": pl.Int64})
    data = data.with_columns(x=pl.col("measure") + " " + pl.col("bin"))
    base = alt.Chart(data).encode(
        x=alt.X("x:N", sort=alt.EncodingSortField("order"), title="intensity bin"),
        y=alt.Y("recall:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("type:N", scale=alt.Scale(domain=list(TYPE_COLORS), range=list(TYPE_COLORS.values()))),
        tooltip=["kind", "type", "measure", "bin", "recall", "labelled"],
    )
    # one line per (type, measure): bins of different measures are not on one scale
    layered = alt.layer(base.mark_line().encode(detail="measure:N"),
                        base.mark_point(filled=True).encode(size=alt.Size("labelled:Q", title="labels")))
    return layered.properties(width=220, height=160).facet(
        facet=alt.Facet("kind:N", title=None), columns=4
    ).resolve_scale(x="independent").properties(title="Detection power: recall per intensity bin")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="404,505")
    parser.add_argument("--scales", default="0.02,0.1,0.3")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (at most 2)")
    parser.add_argument("--png", type=Path, help="write the recall-vs-intensity chart (PNG and SVG)")
    parser.add_argument("--json", type=Path, help="write the pooled figures as JSON")
    args = parser.parse_args(argv)
    jobs = [(int(seed), float(scale), args.days) for scale in args.scales.split(",") for seed in args.seeds.split(",")]
    workers = max(1, min(2, args.workers, len(jobs)))
    # spawn: Polars' thread pool does not survive a fork
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(run_one, *zip(*jobs, strict=True)))
    figures = pooled(runs)
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    if args.png:
        from insights_kit.charts import save_chart

        written = save_chart(chart(figures), args.png.with_suffix(""))
        print(f"\nchart: {', '.join(written.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
