"""Throughput and peak memory of ``load()``, ``run_ingest()`` and a bare Polars read.

Usage::

    python benchmarks/bench_ingest.py --events 1000000 [--data DIR] [--keep] [--repeat N]

Data: simulated OSS delivery (``insights_kit.simulate.simulate``; ``--private-generator``
or a missing simulate module uses a small generator in this file). The bare baseline
reads the *same* files already decompressed to disk, with the same explicit raw schema,
``pl.read_ndjson`` per file and ``pl.concat``. Each measurement runs in a fresh
subprocess, so peak RSS (``VmHWM`` of that child) is its own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGIONS = ("cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1")
APIS = [("Ecs", "ecs.aliyuncs.com", n) for n in ("DescribeInstances", "StartInstance", "StopInstance", "DeleteInstance")]
APIS += [("Ram", "ram.aliyuncs.com", n) for n in ("ListUsers", "CreateAccessKey")]
APIS += [("Oss", "oss.aliyuncs.com", n) for n in ("GetObject", "PutObject")]


def private_generate(out: Path, events: int, seed: int = 1) -> None:
    """OSS-like tree of JSON Lines .gz files (5-minute files per region), ~`events` events."""
    rng = random.Random(seed)
    t0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
    per_file = 150
    n_files = max(1, events // per_file)
    for f in range(n_files):
        region = REGIONS[f % len(REGIONS)]
        start = t0 + timedelta(minutes=5 * (f // len(REGIONS)))
        lines = []
        for i in range(per_file if f < n_files - 1 else events - per_file * (n_files - 1)):
            svc, src, name = rng.choice(APIS)
            ts = start + timedelta(seconds=rng.randrange(300))
            ev = {
                "eventVersion": "1", "eventId": str(uuid.UUID(int=rng.getrandbits(128))).upper(),
                "eventTime": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventType": "ApiCall",
                "eventCategory": "Management", "eventRW": "Read" if name.startswith(("Describe", "List", "Get")) else "Write",
                "eventName": name, "eventSource": src, "serviceName": svc, "apiVersion": "2014-05-26",
                "acsRegion": region, "isGlobal": False, "recipientAccountId": "1234567890123456",
                "requestId": str(uuid.UUID(int=rng.getrandbits(128))).upper(),
                "sourceIpAddress": f"203.0.113.{rng.randrange(1, 255)}", "userAgent": "aliyun-sdk-java/2.0",
                "userIdentity": {"type": "ram-user", "principalId": str(27650000 + rng.randrange(50)),
                                 "accountId": "1234567890123456", "accessKeyId": "LTAI5tExample", "userName": "ops"},
                "requestParameters": {"InstanceId": f"i-bp{rng.randrange(10**8)}", "RegionId": region},
                "responseElements": {"RequestId": "x"},
            }  # fmt: skip
            if rng.random() < 0.03:
                ev["errorCode"], ev["errorMessage"] = "Forbidden.RAM", "not authorized"
            lines.append(json.dumps(ev))
        d = out / "AliyunLogs" / "Actiontrail" / region / start.strftime("%Y/%m/%d")
        d.mkdir(parents=True, exist_ok=True)
        name = f"Actiontrail_{region}_{start:%Y%m%d%H%M%S}_1002_{len(lines)}_{f}.gz"
        (d / name).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0))


def generate(out: Path, events: int, private: bool) -> str:
    if not private:
        try:
            from insights_kit.simulate import simulate
        except ImportError:
            private = True
    if private:
        private_generate(out, events)
        return "private generator"
    days = max(1, round(events / 100_000))
    simulate(out, days=days, seed=1, scale=events / (100_000 * days))
    return f"insights_kit.simulate (days={days})"


def decompress_tree(src: Path, dst: Path) -> tuple[int, int]:
    """Plain NDJSON copies of every .gz under `src`; returns (files, lines)."""
    files = lines = 0
    for p in sorted(src.rglob("*.gz")):
        if "Actiontrail-Insight" in p.parts:
            continue
        data = gzip.decompress(p.read_bytes())
        target = dst / p.relative_to(src).with_suffix(".jsonl")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files += 1
        lines += sum(1 for ln in data.split(b"\n") if ln.strip())
    return files, lines


# ----------------------------------------------------------------------------- children
def child(kind: str, data: Path, work: Path) -> None:
    import polars as pl

    t = time.perf_counter()
    if kind == "load":
        from insights_kit.readers import load

        res = load([data], progress=False)
        n = res.events.select(pl.len()).collect().item()
        extra = {"stats": res.stats.to_dict()}
    elif kind == "ingest":
        from insights_kit.ingest import run_ingest

        out = work / "lake"
        shutil.rmtree(out, ignore_errors=True)
        summary = run_ingest([data], out, progress=False)
        n = summary["stats"]["new_rows"]
        extra = {"partitions": len(summary["partitions"])}
    elif kind == "bare":
        from insights_kit.normalize import RAW_SCHEMA

        files = sorted(data.rglob("*.jsonl"))
        df = pl.concat([pl.read_ndjson(f, schema=RAW_SCHEMA) for f in files])
        n = df.height
        extra = {"files": len(files)}
    else:
        raise SystemExit(f"unknown child {kind}")
    seconds = time.perf_counter() - t
    # VmHWM (KiB), not ru_maxrss, which Linux carries over from the parent across fork and exec
    rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"kind": kind, "events": n, "seconds": seconds, "peak_rss_mib": rss / 1024, **extra}))


def measure(kind: str, data: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(data), "--work", str(work)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, help="existing delivery tree to reuse (else generated)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs per measurement; the best is kept")
    ap.add_argument("--private-generator", action="store_true", help="do not use insights_kit.simulate")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.data, args.work)

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        src = args.data
        if src is None:
            src = work / "delivery"
            t = time.perf_counter()
            how = generate(src, args.events, args.private_generator)
            print(f"generated with {how} in {time.perf_counter() - t:.1f}s")
        plain = work / "plain"
        files, lines = decompress_tree(src, plain)
        gz_mib = sum(p.stat().st_size for p in src.rglob("*.gz")) / 2**20
        print(f"data: {files} .gz files, {lines} events, {gz_mib:.1f} MiB compressed; cpus={os.cpu_count()}")
        results: dict[str, dict] = {}
        for _ in range(args.repeat):  # interleaved, best of N: the machine may be shared
            for kind in ("load", "ingest", "bare"):
                r = measure(kind, src if kind != "bare" else plain, work)
                if kind not in results or r["seconds"] < results[kind]["seconds"]:
                    results[kind] = r
        for kind, r in results.items():
            rate = r["events"] / r["seconds"]
            print(f"{kind:>7}: {r['events']:>9} events in {r['seconds']:6.2f}s = {rate:>10,.0f} events/s, "
                  f"peak RSS {r['peak_rss_mib']:7.0f} MiB")  # fmt: skip
        load_rate = results["load"]["events"] / results["load"]["seconds"]
        bare_rate = results["bare"]["events"] / results["bare"]["seconds"]
        print(f"load/bare throughput ratio: {load_rate / bare_rate:.2f} (target >= 0.70)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
