# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: insights-kit
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tune the detectors on labelled simulations
#
# Simulates labelled accounts over several seeds, sweeps detector parameters one at a time
# around the defaults (or over the full grid), scores every run per insight type with
# `evaluate.score`, plots the trade-offs, appends the results to a table (one row per run,
# parameters and type) and writes the chosen config as TOML. The defaults are small so the
# notebook runs in about a minute; raise `days`, `scale` and the seeds for real tuning.

# %% tags=["parameters"]
seeds: str = "1,2"  # simulator seeds, comma-separated (keep 101 and 202 unseen: the end-to-end test uses them)
days: int = 5  # simulated days per seed (incidents start on day 3, so at least 4)
scale: float = 0.02  # simulated volume (1.0 is about 100,000 events per day)
sweep: str = "call_rate.alpha_start:1e-7,1e-5;call_rate.min_count:5,20;ip.threshold:0.5,0.7;ip.if_weight:0.0,0.5;call_rate.baseline_days:3"  # section.field:v1,v2;... values tried
mode: str = "oat"  # oat: one parameter at a time around the defaults; grid: every combination
tolerance_minutes: int = 10  # a Start within this many minutes of a labelled start counts as found
work_dir: str = "out/tune"  # simulations, result table and chosen config (relative: repo root)
results_file: str = "results.csv"  # result table in work_dir, appended on every run (a .parquet copy per run in runs/)
chosen_config: str = "chosen.toml"  # TOML of the best configuration, written in work_dir

# %%
import dataclasses
import itertools
import json
import uuid
import warnings
from datetime import datetime, timezone

import altair as alt
import polars as pl
from IPython.display import HTML, display

from insights_kit import charts, evaluate, htmlsafe, report, store
from insights_kit.config import Config, to_toml
from insights_kit.detect import detect_frame
from insights_kit.simulate import simulate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tqdm.auto's ipywidgets warning
    from insights_kit.readers import load

alt.renderers.enable("svg")
work = report.resolve(work_dir)
work.mkdir(parents=True, exist_ok=True)
run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def parse_sweep(text: str) -> dict[str, list]:
    """``section.field:v1,v2;...`` → {"section.field": [typed values]} (typed like the default)."""
    defaults, out = Config(), {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, values = part.partition(":")
        section, _, name = key.strip().partition(".")
        kind = type(getattr(getattr(defaults, section), name))
        out[key.strip()] = [kind(v) for v in values.split(",") if v.strip()]
    return out


def configs(space: dict[str, list], how: str) -> list[dict]:
    """Parameter sets to try: the defaults first, then one change at a time or the full grid."""
    if how == "grid":
        keys = list(space)
        return [dict(zip(keys, combo)) for combo in itertools.product(*space.values())]
    return [{}] + [{key: value} for key, values in space.items() for value in values]


def build(params: dict) -> Config:
    cfg = Config()
    for key, value in params.items():
        section, name = key.split(".")
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})
    return cfg


space = parse_sweep(sweep)
trials = configs(space, mode)
print(f"{len(trials)} configurations x {len(seeds.split(','))} seeds")

# %%
simulations = {}
for seed in (int(s) for s in seeds.split(",") if s.strip()):
    sim = simulate(work / f"sim-seed{seed}-d{days}-s{scale}", days=days, seed=seed, scale=scale, progress=False)
    simulations[seed] = (load([sim.out], progress=False).events.collect(), evaluate.load_labels(sim.labels_path))

rows = []
for params in trials:
    cfg = build(params)
    for seed, (events, labels) in simulations.items():
        found, _ = detect_frame(events.lazy(), config=cfg)
        scored = evaluate.score(store.events_frame(found), labels, tolerance_minutes=tolerance_minutes)
        for kind, m in sorted(scored["by_type"].items()):
            rows.append({
                "run": run_id, "seed": seed, "days": days, "scale": scale,
                "params": json.dumps(params, sort_keys=True), "insightType": kind,
                "labelled": m.get("labelled"), "starts": m.get("starts"),
                "recall": m.get("recall"), "precision": m.get("precision"), "f1": m.get("f1"),
                "mean_delay": m.get("mean_delay"), "max_delay": m.get("max_delay"),
                "false_per_region_week": m.get("false_starts_per_region_week"),
            })
results = pl.DataFrame(rows, infer_schema_length=None).with_columns(
    pl.col("recall", "precision", "f1", "mean_delay", "max_delay", "false_per_region_week").cast(pl.Float64))

# %% [markdown]
# ## Mean over seeds, per parameter set and insight type

# %%
summary = (
    results.group_by("params", "insightType")
    .agg(pl.col("recall", "precision", "f1", "mean_delay", "false_per_region_week").mean(), pl.col("labelled").sum())
    .sort(["insightType", "params"])
)
display(HTML(htmlsafe.table_html(summary)))

# %%
points = summary.with_columns(pl.col("params").str.replace_all(r'[{}"]', "").replace("", "defaults").alias("change"))
tradeoff = (
    alt.Chart(points).mark_point(filled=True, size=80)
    .encode(x=alt.X("recall:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("precision:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("change:N", legend=alt.Legend(labelLimit=320)), tooltip=["change:N", "recall:Q", "precision:Q", "f1:Q", "mean_delay:Q"])
    .properties(width=220, height=220)
    .facet(column=alt.Column("insightType:N", title=None))
    .properties(title="Precision vs recall per change (mean over seeds)")
)
charts.save_chart(tradeoff, work / "tradeoff")
display(tradeoff)

# %% [markdown]
# ## Save the table and the chosen configuration

# %%
csv_path = work / results_file
header = not csv_path.exists()
with open(csv_path, "a", encoding="utf-8") as handle:  # append: one table across runs
    handle.write(results.write_csv(include_header=header))
(work / "runs").mkdir(exist_ok=True)
results.write_parquet(work / "runs" / f"{run_id}.parquet")

# Best: highest mean F1 over the types with labels (undefined F1 counts 0), then lowest delay.
ranked = (
    summary.filter(pl.col("labelled") > 0)
    .group_by("params")
    .agg(pl.col("f1").fill_null(0).mean().alias("f1"), pl.col("mean_delay").mean().alias("delay"))
    .sort(["f1", "delay", "params"], descending=[True, False, False], nulls_last=True)
)
best = json.loads(ranked["params"][0]) if ranked.height else {}
(work / chosen_config).write_text(to_toml(build(best)), encoding="utf-8")
print("chosen:", best or "defaults", "->", work / chosen_config)
