"""insights-kit against its peers: the batched reader floor and a plain pandas notebook.

Usage:  python benchmarks/bench_peers.py [--events 400000] [--days 14] [--format arrays|lines]
        [--repeat 3] [--workdir /tmp/ik-peers]

Data: a simulated account (``insights_kit.simulate``, 4 regions, 5-minute delivery files, so
14 days are about 16,100 files), rewritten as JSON arrays (``--format arrays``, as OSS
deliveries are) or kept as JSON Lines; cached in ``--workdir``. Every contender runs as a cold
process of its own, alternated over ``--repeat`` rounds; the figures are the medians of wall
time (measured from outside) and of the process's peak RSS (``VmHWM``):

* ``floor``: the batched floor. Read and gunzip every file (two threads: zlib releases the
  GIL), join the texts, and one ``pl.read_ndjson`` with the readers' explicit raw schema (JSON
  arrays: each file becomes one line ``{"Records": [...]}``, exploded after the read). Nothing
  is validated, normalised or deduplicated.
* ``ingest``: ``insights-kit ingest TREE --out LAKE``.
* ``detect TREE``: ``insights-kit detect TREE`` (reads, normalises and detects all 7 types).
* ``detect LAKE``: ``insights-kit detect LAKE`` on the lake ``ingest`` wrote.
* ``pandas``: the notebook an analyst would write: ``gzip`` + ``json`` per file, one
  DataFrame, per-(region, API) minute counts of writes with a rolling 7-day z-score (z > 4
  flags a minute), and a first-seen rule for addresses (an address first seen after day one).
  Needs pandas (``pip install pandas``, or ``pip install -e '.[bench]'``); skipped without it.

Prints each contender's figures and its ratios to the floor and to pandas. Figures only:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENTS_PER_SCALE_DAY = 100_000

PEAK = ('import atexit\n'
        'atexit.register(lambda: print("PEAK_KIB", next(int(l.split()[1]) for l in open("/proc/self/status") '
        'if l.startswith("VmHWM:")), flush=True))\n')

FLOOR = PEAK + r"""
import sys, gzip
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import polars as pl
from insights_kit.normalize import RAW_SCHEMA
root, fmt = Path(sys.argv[1]), sys.argv[2]
files = sorted(root.rglob("*.gz"))
with ThreadPoolExecutor(2) as pool:
    texts = list(pool.map(lambda p: gzip.decompress(p.read_bytes()), files))
if fmt == "lines":
    frame = pl.read_ndjson(b"\n".join(t.rstrip(b"\n") for t in texts), schema=RAW_SCHEMA)
else:  # each file's array becomes one NDJSON line {"Records": [...]}: one read, then explode
    body = b"\n".join(b'{"Records":' + t.strip() + b"}" for t in texts if t.strip())
    frame = pl.read_ndjson(body, schema={"Records": pl.List(pl.Struct(RAW_SCHEMA))}).explode("Records").unnest("Records")
print("ROWS", frame.height)
"""

PANDAS = PEAK + r"""
import sys, gzip, json
from pathlib import Path
import numpy as np
import pandas as pd
root, fmt = Path(sys.argv[1]), sys.argv[2]
rows = []
for path in sorted(root.rglob("*.gz")):
    text = gzip.decompress(path.read_bytes()).decode()
    rows.extend(json.loads(text) if fmt == "arrays" else [json.loads(line) for line in text.splitlines() if line])
cols = ["eventTime", "acsRegion", "eventName", "eventRW", "sourceIpAddress", "errorCode"]
df = pd.DataFrame.from_records(rows, columns=cols)
df["eventTime"] = pd.to_datetime(df["eventTime"], utc=True)
df["minute"] = df["eventTime"].dt.floor("min")
writes = df[df["eventRW"] == "Write"]
counts = writes.groupby(["acsRegion", "eventName", "minute"]).size().rename("n").reset_index()
flagged = 0
for _, group in counts.groupby(["acsRegion", "eventName"]):
    series = group.set_index("minute")["n"].asfreq("min", fill_value=0)
    past = series.shift(1).rolling("7D", min_periods=60)
    z = (series - past.mean()) / past.std().replace(0, np.nan)
    flagged += int((z > 4).sum())
first = df.groupby(["acsRegion", "sourceIpAddress"])["eventTime"].min()
new_ips = int((first > df["eventTime"].min() + pd.Timedelta(days=1)).sum())
print("ROWS", len(df), "FLAGGED", flagged, "NEW_IPS", new_ips)
"""


def prepare(workdir: Path, events: int, days: int, fmt: str) -> Path:
    """The cached delivery tree of about ``events`` events in ``fmt`` (JSON arrays or Lines)."""
    lines = workdir / f"lines-{events}-{days}"
    if not (lines / "labels.json").exists():
        from insights_kit.simulate import simulate

        shutil.rmtree(lines, ignore_errors=True)
        simulate(lines, days=days, seed=11, scale=events / (EVENTS_PER_SCALE_DAY * days), progress=False)
    if fmt == "lines":
        return lines
    arrays = workdir / f"arrays-{events}-{days}"
    if not (arrays / "done").exists():
        shutil.rmtree(arrays, ignore_errors=True)
        for path in sorted(lines.rglob("*.gz")):
            records = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines() if line]
            target = arrays / path.relative_to(lines)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gzip.compress(json.dumps(records, separators=(",", ":")).encode(), mtime=0))
        (arrays / "done").write_text("ok\n")
    return arrays


def run(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak MiB and stdout of one cold process."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{argv[:3]} failed:\n{done.stderr[-2000:]}")
    peak = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK_KIB")]
    return wall, (peak[-1] / 1024 if peak else float("nan")), done.stdout


def cli_peak(args: list[str]) -> list[str]:
    """``insights-kit ARGS`` in a process that reports its own peak RSS."""
    code = PEAK + "import sys\nfrom insights_kit.cli import main\nsys.argv = ['insights-kit', *sys.argv[1:]]\nmain()\n"
    return [sys.executable, "-c", code, *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--format", choices=("arrays", "lines"), default="arrays")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ik-peers"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    tree = prepare(args.workdir, args.events, args.days, args.format)
    files = sum(1 for _ in tree.rglob("*.gz"))
    lake, out = args.workdir / "lake", args.workdir / "out"
    try:
        import pandas  # noqa: F401

        have_pandas = True
    except ImportError:
        have_pandas = False
        print("pandas is not installed (pip install pandas): the pandas notebook is skipped")

    contenders = {
        "floor": lambda: [sys.executable, "-c", FLOOR, str(tree), args.format],
        "ingest": lambda: cli_peak(["ingest", str(tree), "--out", str(lake)]),
        "detect TREE": lambda: cli_peak(["detect", str(tree), "--out", str(out / "tree")]),
        "detect LAKE": lambda: cli_peak(["detect", str(lake), "--out", str(out / "lake")]),
    }
    if have_pandas:
        contenders["pandas"] = lambda: [sys.executable, "-c", PANDAS, str(tree), args.format]
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, argv_of in contenders.items():  # alternated: a slow minute hurts every contender alike
            if name == "ingest":
                shutil.rmtree(lake, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            wall, peak, _ = run(argv_of())
            figures[name].append((wall, peak))
    median = {name: (statistics.median(w for w, _ in runs), statistics.median(p for _, p in runs))
              for name, runs in figures.items()}
    print(f"{args.events} events requested, {files} {args.format} files, {args.days} days; "
          f"medians of {args.repeat} cold processes")
    floor_wall, floor_peak = median["floor"]
    pandas_wall = median["pandas"][0] if have_pandas else None
    print(f"{'':14} {'wall s':>8} {'peak MiB':>9} {'wall/floor':>11} {'peak/floor':>11} {'pandas/this':>12}")
    for name, (wall, peak) in median.items():
        vs_pandas = f"{pandas_wall / wall:12.2f}" if pandas_wall else f"{'-':>12}"
        print(f"{name:14} {wall:8.2f} {peak:9.0f} {wall / floor_wall:11.2f} {peak / floor_peak:11.2f} {vs_pandas}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
