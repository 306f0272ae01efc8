"""Detect throughput and peak memory on simulated data read from Parquet.

Usage:  python benchmarks/bench_detect.py --events 1000000 [--events 10000000] [--workdir /tmp/ik-bench]
        [--insight-types ApiCallRateInsight,ApiErrorRateInsight,IpInsight]   (the insight selector)

For each size it simulates 30 days over 4 regions (cached in --workdir), ingests them into a
Parquet lake (not timed), then runs ``run_detect`` on the lake in a fresh subprocess and
prints two rates and the child's peak RSS:

* ``detect``: the ``run_detect`` call, from reading the lake to writing the Insights events,
  in a process whose libraries (polars, numpy, scipy, scikit-learn) are already imported, as
  in a JupyterLab kernel or a long-lived scheduler worker. The offline IP database is *not*
  preloaded: its first lookup (about 0.3 s) is inside the time.
* ``whole process``: the same run as a cold ``python -c`` command, interpreter start-up and
  imports included, timed from outside.

Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

EVENTS_PER_SCALE_DAY = 100_000  # the simulator's scale 1.0 is about 100k events a day

CHILD = r"""
import json, sys, time
t_import = time.perf_counter()
import sklearn.ensemble  # imported lazily by the IP detector; loaded here to time detection itself
from insights_kit.detect import run_detect
import_seconds = time.perf_counter() - t_import
lake, out, types = sys.argv[1], sys.argv[2], sys.argv[3]
config = None
if types:
    from insights_kit.config import config_from_dict
    config = config_from_dict({"detect": {"insight_types": types.split(",")}})
t0 = time.perf_counter()
summary = run_detect([lake], out, config=config, progress=False)
elapsed = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss across
# fork and exec, so a child started by a parent that has just simulated 10M events would
# report the parent's memory as its own.
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": elapsed, "imports": import_seconds, "events": summary["records"]["analysed"], "peak_mib": peak_kib / 1024,
                  "insights": summary["totals"]["insights"]}))
"""


def prepare(workdir: Path, events: int, days: int) -> Path:
    from insights_kit.ingest import run_ingest
    from insights_kit.simulate import simulate

    scale = events / (EVENTS_PER_SCALE_DAY * days)
    sim = workdir / f"sim-{events}"
    lake = workdir / f"lake-{events}"
    if not (lake / "events").exists():
        if not (sim / "labels.json").exists():
            t0 = time.perf_counter()
            result = simulate(sim, days=days, seed=3, scale=scale, progress=False)
            print(f"  simulated {result.events:,} events in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        run_ingest([sim], lake, progress=False)
        print(f"  ingested into {lake} in {time.perf_counter() - t0:.1f} s", flush=True)
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="approximate events (repeatable)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/insights-kit-bench"))
    parser.add_argument("--insight-types", default="", help="comma-separated types to analyse (default: all)")
    args = parser.parse_args()
    sizes = args.events or [1_000_000]
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        print(f"size {size:,}:", flush=True)
        lake = prepare(args.workdir, size, args.days)
        out = args.workdir / f"out-{size}-{abs(hash(args.insight_types)) % 10_000}"
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, str(lake), str(out), args.insight_types], capture_output=True, text=True)
        whole = time.perf_counter() - t0
        if done.returncode:
            sys.exit(done.stderr)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        events = figures["events"]
        rate = events / figures["seconds"]
        rows.append((events, figures["seconds"], rate, figures["peak_mib"], figures["insights"]))
        print(
            f"  detect: {events:,} events in {figures['seconds']:.2f} s = {rate:,.0f} events/s, "
            f"peak RSS {figures['peak_mib']:,.0f} MiB; insights {figures['insights']}\n"
            f"  whole process (start-up and {figures['imports']:.1f} s of imports included): "
            f"{whole:.2f} s = {events / whole:,.0f} events/s",
            flush=True,
        )
    if len(rows) > 1:
        (e0, s0, *_), (e1, s1, *_) = rows[0], rows[-1]
        print(f"cost growth: {e1 / e0:.1f}x events took {s1 / s0:.1f}x time")


if __name__ == "__main__":
    main()
