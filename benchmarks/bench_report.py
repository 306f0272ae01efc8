"""The report step of ``make demo``: ``insights-kit report LAKE`` as a whole process.

Ingests the shipped sample (``data/sample``) into a lake once, then times ``report`` with
each notebook engine, alternated, ``--repeat`` times: ``warm`` (the default: one reused
kernel per worker, :mod:`insights_kit.warm_kernel`) and ``nbclient`` (papermill's own
engine, a fresh kernel per region). Prints the median wall seconds and peak MiB (the
largest sum of the resident sets of the command and every process it started, kernels
included, sampled every 0.1 s) and the ratio.

    .venv/bin/python benchmarks/bench_report.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("insights-kit"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ik-bench-report"))
    args = parser.parse_args(argv)
    lake = args.workdir / "lake"
    if not lake.exists():
        subprocess.run([CLI, "ingest", str(args.source), "--out", str(lake)], check=True, capture_output=True)
    figures: dict[str, list[tuple[float, float]]] = {"warm": [], "nbclient": []}
    for _ in range(args.repeat):
        for engine in figures:
            out = args.workdir / f"report-{engine}"
            shutil.rmtree(out, ignore_errors=True)
            env = dict(os.environ, INSIGHTS_KIT_NOTEBOOK_ENGINE="" if engine == "warm" else engine)
            wall, peak, _ = measure([CLI, "report", str(lake), "--out", str(out), "--jobs", str(args.jobs)], env)
            figures[engine].append((wall, peak))
    medians = {k: (statistics.median(w for w, _ in v), statistics.median(m for _, m in v)) for k, v in figures.items()}
    for engine, (wall, peak) in medians.items():
        print(f"report ({engine:8s}) {wall:6.1f} s  peak {peak:6.0f} MiB   runs: "
              + ", ".join(f"{w:.1f}" for w, _ in figures[engine]))
    print(f"warm / nbclient: {medians['warm'][0] / medians['nbclient'][0]:.2f} x wall, "
          f"{medians['warm'][1] / medians['nbclient'][1]:.2f} x peak")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
