"""The scheduled hourly run: ``detect --state`` over the last hour of a long history.

Usage:  python benchmarks/bench_hourly.py [--days 7 --days 30] [--scale 1.0] [--repeat 3]
        [--workdir /tmp/ik-bench-hourly]

For each history length it simulates ``--days`` days (``simulate --scale``, about 100,000
events a day at 1.0; cached in --workdir), ingests them into a lake, fills a state with one
``detect --state`` run up to the last hour (timed once), then times ``--repeat`` runs of the
last hour, each on a fresh copy of the filled state, as whole processes. Prints the median
wall seconds and peak MiB (the process's resident set, sampled every 0.1 s), against one run
without state over the whole span. The Insights store of the hourly runs is compared with the
one-run store: a mismatch is reported, not hidden.

Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import measure  # noqa: E402

CLI = str(Path(sys.executable).with_name("insights-kit"))
START = datetime(2025, 3, 3, tzinfo=timezone.utc)  # the simulator's first day


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare(workdir: Path, days: int, scale: float) -> tuple[Path, datetime]:
    lake = workdir / f"lake-{days}d-{scale:g}"
    if not (lake / "done").exists():
        sim = workdir / "sim"
        shutil.rmtree(sim, ignore_errors=True)
        shutil.rmtree(lake, ignore_errors=True)
        subprocess.run([CLI, "simulate", "--out", str(sim), "--days", str(days), "--scale", str(scale), "--seed", "7"],
                       check=True, capture_output=True)
        subprocess.run([CLI, "ingest", str(sim), "--out", str(lake)], check=True, capture_output=True)
        shutil.rmtree(sim)
        (lake / "done").write_text("")
    return lake, START + timedelta(days=days) - timedelta(hours=1)


def _store(out: Path) -> list[str]:
    root = out / "AliyunLogs"
    return sorted(line for f in root.rglob("*.jsonl") for line in f.read_text().splitlines()) if root.exists() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, action="append")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--home-region", default="cn-hangzhou")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ik-bench-hourly"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    home = ["--home-region", args.home_region]
    for days in args.days or [7, 30]:
        lake, last_hour = prepare(args.workdir, days, args.scale)
        end = last_hour + timedelta(hours=1)
        run = args.workdir / f"run-{days}d"
        shutil.rmtree(run, ignore_errors=True)
        whole_s, whole_mib, _ = measure([CLI, "detect", str(lake), "--out", str(run / "whole"), "--until", _iso(end), *home])
        fill_s, fill_mib, _ = measure([CLI, "detect", str(lake), "--out", str(run / "filled"), "--state", str(run / "state0"),
                                       "--until", _iso(last_hour), *home])
        hourly = []
        for i in range(args.repeat):
            state, out = run / f"state{i + 1}", run / f"out{i + 1}"
            shutil.copytree(run / "state0", state)
            shutil.copytree(run / "filled", out)
            hourly.append(measure([CLI, "detect", str(lake), "--out", str(out), "--state", str(state),
                                   "--since", _iso(last_hour), "--until", _iso(end), *home])[:2])
        summary = json.loads((run / "out1" / "summary.json").read_text())
        same = _store(run / "out1") == _store(run / "whole")
        print(f"{days:3d} days, {summary['records']['analysed']:,} events in the state window")
        print(f"    one run, no state, whole span   {whole_s:7.2f} s  {whole_mib:7.0f} MiB")
        print(f"    filling the state (one run)     {fill_s:7.2f} s  {fill_mib:7.0f} MiB")
        print(f"    hourly run (median of {args.repeat})       {statistics.median(h[0] for h in hourly):7.2f} s  "
              f"{statistics.median(h[1] for h in hourly):7.0f} MiB   runs: {', '.join(f'{h[0]:.1f}' for h in hourly)}")
        print(f"    files read by the hourly run: {summary['records']['files_read']} "
              f"(already read: {summary['records']['files_already_read']}); "
              f"store {'identical to' if same else 'DIFFERS from'} the one-run store")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
