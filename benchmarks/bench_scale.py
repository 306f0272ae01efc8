"""Scale: an organisation's lake of 10 M, 30 M or 100 M events, detected locally and on Dask.

Builds (once, cached in ``--workdir``) a Parquet lake of ``--accounts`` simulated accounts
with ``--events`` events in all over ``--days`` days: each account is simulated (its own
seed), ingested into the shared lake by one ``insights-kit ingest`` process, and its JSON
tree deleted. Then times whole ``insights-kit detect LAKE`` processes with each executor.

    .venv/bin/python benchmarks/bench_scale.py --events 10000000 --accounts 10
    .venv/bin/python benchmarks/bench_scale.py --events 10000000 --accounts 10 --copies 5 --shifts 2

The last makes 100 M events over 50 accounts (each 2 M events over 28 days) out of the 10 M
lake without simulating 100 M events (hours here): every account of it becomes 5 accounts,
each holding its 14 days twice, back to back. Detection treats them as 50 accounts.

Peak memory is the largest *sum* of the resident sets of the command and every process it
started (the Dask scheduler, nannies and workers included), sampled every 0.1 s from /proc.
Prints, per step: wall seconds, events/s and peak MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).with_name("insights-kit"))]
EVENTS_PER_SCALE_DAY = 100_000  # simulate's scale 1.0 (about; see insights_kit/simulate.py)


def _tree_rss_kib(root: int) -> int:
    """Resident KiB of ``root`` and all its descendants, now."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(stat[1]), []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak MiB of the process tree, and stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak[0] / 1024, out


def build_lake(workdir: Path, events: int, accounts: int, days: int) -> tuple[Path, list[tuple[float, float, int]]]:
    lake = workdir / f"lake-{events}-{accounts}-{days}"
    steps: list[tuple[float, float, int]] = []
    if (lake / "done.json").exists():
        return lake, json.loads((lake / "done.json").read_text())["ingest"]
    shutil.rmtree(lake, ignore_errors=True)
    scale = events / (accounts * days * EVENTS_PER_SCALE_DAY)
    for i in range(accounts):
        tree = workdir / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(CLI + ["simulate", "--out", str(tree), "--days", str(days), "--seed", str(1000 + i),
                              "--scale", f"{scale:.6f}", "--file-minutes", "60"], check=True, capture_output=True)
        n = json.loads((tree / "labels.json").read_text())["events"]
        wall, peak, _ = measure(CLI + ["ingest", str(tree), "--out", str(lake)])
        steps.append((wall, peak, n))
        print(f"  account {i + 1}/{accounts}: {n} events ingested in {wall:.1f} s, peak {peak:.0f} MiB", flush=True)
    shutil.rmtree(workdir / "tree", ignore_errors=True)
    (lake / "done.json").write_text(json.dumps({"ingest": steps}) + "\n")
    return lake, steps


def replicate(source: Path, lake: Path, *, copies: int, shifts: int, days: int) -> list[tuple[float, float, int]]:
    """A bigger organisation lake made of a built one, without simulating again.

    Every account of ``source`` becomes ``copies`` accounts (new recipientAccountId and
    accountId, eventIds prefixed), each with ``shifts`` back-to-back copies of its ``days``
    (so an account holds ``shifts`` times the history). Written one (account, copy) at a
    time, one part file per (region, day) as ``ingest`` would, so memory stays one account's.
    """
    import polars as pl

    if (lake / "done.json").exists():
        return json.loads((lake / "done.json").read_text())["ingest"]
    shutil.rmtree(lake, ignore_errors=True)
    scan = pl.scan_parquet(str(source / "events" / "**" / "*.parquet"), hive_partitioning=False)
    accounts = scan.select(pl.col("recipientAccountId").unique().sort()).collect().to_series().to_list()
    t0, rows = time.perf_counter(), 0
    for account in accounts:
        frame = scan.filter(pl.col("recipientAccountId") == account).collect()
        for copy in range(copies):
            new_id = f"{copy:02d}{account[2:]}"
            parts = [
                frame.with_columns(
                    pl.lit(new_id).alias("recipientAccountId"),
                    pl.when(pl.col("accountId") == account).then(pl.lit(new_id)).otherwise(pl.col("accountId"))
                    .alias("accountId"),
                    (pl.lit(f"c{copy}s{shift}-") + pl.col("eventId")).alias("eventId"),
                    pl.col("eventTime") + pl.duration(days=shift * days),
                )
                for shift in range(shifts)
            ]
            out = pl.concat(parts).with_columns(pl.col("eventTime").dt.date().cast(pl.String).alias("_date"))
            for (region, day), grp in out.group_by("acsRegion", "_date"):
                folder = lake / "events" / f"acsRegion={region}" / f"date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                grp.drop("_date").sort("eventTime", "eventId").write_parquet(folder / f"part-{new_id}.parquet")
            rows += out.height
        print(f"  replicated account {account}: {rows} rows so far", flush=True)
    steps = [(time.perf_counter() - t0, float("nan"), rows)]
    (lake / "done.json").write_text(json.dumps({"ingest": steps, "replicatedFrom": str(source)}) + "\n")
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ik-bench-scale"))
    parser.add_argument("--executors", default="local,dask")
    parser.add_argument("--copies", type=int, default=1,
                        help="replicate: each built account becomes this many accounts (new ids)")
    parser.add_argument("--shifts", type=int, default=1,
                        help="replicate: each account holds this many back-to-back copies of its days")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"building the lake: {args.events} events, {args.accounts} accounts, {args.days} days", flush=True)
    lake, ingest = build_lake(args.workdir, args.events, args.accounts, args.days)
    total = sum(n for _, _, n in ingest)
    wall = sum(w for w, _, _ in ingest)
    print(f"ingest   {wall:8.1f} s {total / wall:10.0f} events/s  peak {max(p for _, p, _ in ingest):6.0f} MiB "
          f"(largest of {len(ingest)} runs, one per account)")
    if args.copies > 1 or args.shifts > 1:
        source = lake
        lake = args.workdir / f"{source.name}-x{args.copies}-s{args.shifts}"
        print(f"replicating: {args.copies} copies of each account, {args.shifts} x {args.days} days each", flush=True)
        total = replicate(source, lake, copies=args.copies, shifts=args.shifts, days=args.days)[0][2]
        print(f"replicated lake: {total} events", flush=True)
    for executor in args.executors.split(","):
        out = args.workdir / f"out-{lake.name}-{executor}"
        shutil.rmtree(out, ignore_errors=True)
        wall, peak, stdout = measure(CLI + ["detect", str(lake), "--out", str(out), "--executor", executor])
        summary = json.loads((out / "summary.json").read_text())
        units = sum(len(a["regions"]) for a in summary["accounts"].values())
        print(f"detect {executor:<6} {wall:6.1f} s {total / wall:10.0f} events/s  peak {peak:6.0f} MiB "
              f"({units} units, {summary['emitted']['events']} Insights events)", flush=True)
    outs = [args.workdir / f"out-{lake.name}-{e}" for e in args.executors.split(",")]
    if len(outs) > 1:
        same = all(subprocess.run(["diff", "-rq", str(outs[0]), str(o)], capture_output=True).returncode == 0
                   for o in outs[1:])
        print(f"outputs byte-identical across executors: {same}")


if __name__ == "__main__":
    main()
