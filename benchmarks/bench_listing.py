"""Listing a bucket of many delivery objects: a full listing against one day's, pruned.

Starts moto's S3 server (as the suite does), fills a bucket with ``--keys`` empty objects in
ActionTrail's layout (4 regions, ``--keys`` spread over as many days as it takes at 288
files per region and day, i.e. one every 5 minutes), then times
:func:`insights_kit.objects.list_objects` over the whole bucket and over one day.

    .venv/bin/python benchmarks/bench_listing.py --keys 100000

Prints keys listed, LIST requests, wall seconds and keys/s. moto answers more slowly than
S3 or OSS do (it is a Python server), so the figures are an upper bound on the time spent in
requests; the ratio between the full and the pruned listing is the point.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import s3server  # noqa: E402

from insights_kit import objects  # noqa: E402

REGIONS = ("cn-hangzhou", "cn-beijing", "cn-shanghai", "ap-southeast-1")
PER_DAY = 288


def keys(n: int, start: date) -> list[str]:
    out = []
    i = 0
    while len(out) < n:
        day = start + timedelta(days=i // PER_DAY)
        slot = i % PER_DAY
        for region in REGIONS:
            stamp = f"{day:%Y%m%d}{slot * 5 // 60:02d}{slot * 5 % 60:02d}00"
            out.append(f"AliyunLogs/Actiontrail/{region}/{day:%Y/%m/%d}/Actiontrail_{region}_{stamp}_1002_1_2_x.gz")
        i += 1
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    server = s3server.start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bench-bucket")
        names = keys(args.keys, date(2024, 1, 1))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket="bench-bucket", Key=k, Body=b""), names))
        print(f"uploaded {len(names)} keys in {time.perf_counter() - t0:.1f} s")
        os.environ.update(server.env())
        days = {"/".join(k.split("/")[3:6]) for k in names}
        last = date(2024, 1, 1) + timedelta(days=(len(names) // len(REGIONS) - 1) // PER_DAY)
        for label, first, final in (("full", None, None), ("one day", last, last)):
            t0 = time.perf_counter()
            listing = objects.list_objects("s3://bench-bucket/", first_day=first, last_day=final)
            wall = time.perf_counter() - t0
            print(f"{label:>8}: {len(listing.files):>7} keys, {listing.requests:>5} LIST requests, "
                  f"{listing.folders_pruned:>4} date folders pruned, {wall:6.2f} s, {len(listing.files) / wall:9.0f} keys/s")
        print(f"({len(days)} days x {len(REGIONS)} regions in the bucket)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
