"""The console at scale: write it for N incidents and M related events, then time its first render.

Builds a synthetic window (default 10,000 incidents over 4 regions and 30 days, 100 related
management events each: a million), writes the console with ``console.write_console`` and
prints the time to write it, the page weight (index.html, the Vega bundle, the detail files)
and, when Chromium is found, the first render in headless Chromium (navigation start to the
list and counts drawn) and the time to open one incident's detail with its charts.

    .venv/bin/python benchmarks/bench_console.py                      # 10,000 incidents, 1 M events
    .venv/bin/python benchmarks/bench_console.py --incidents 1000 --per-incident 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from insights_kit import store  # noqa: E402
from insights_kit.console import write_console  # noqa: E402
from insights_kit.schema import conform  # noqa: E402

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
REGIONS = ("cn-hangzhou", "cn-beijing", "cn-shanghai", "ap-southeast-1")
ACCOUNT = "1234567890123456"
APIS = ("DeleteInstance", "StopInstance", "DescribeInstances", "RunInstances", "CreateSnapshot", "AttachDisk",
        "DetachDisk", "ModifyInstanceAttribute", "DescribeRegions", "ListUsers")


def synthetic(n_incidents: int, per_incident: int, days: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(flat Insights events, canonical management events) with a known number of each."""
    rng = np.random.default_rng(seed)
    starts = [T0 + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, days * 1440 - 120, n_incidents))]
    kinds = rng.choice(["IpInsight", "AkInsight", "ApiCallRateInsight"], n_incidents, p=[0.8, 0.15, 0.05])
    insights, events = [], []
    for n, (start, kind) in enumerate(zip(starts, kinds)):
        region = REGIONS[n % len(REGIONS)]
        ip = f"198.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        key = f"LTAI{n:020d}"
        api = APIS[n % len(APIS)]
        obj = ip if kind == "IpInsight" else key if kind == "AkInsight" else api
        minutes = int(rng.integers(5, 90))
        end = start + timedelta(minutes=minutes)
        shared = f"{n:08X}-0000-4000-8000-{n:012X}"
        for state, when in (("Start", start), ("End", end)):
            insights.append({
                "eventVersion": "1", "eventType": "ActionTrailInsight", "eventCategory": "Insight",
                "eventId": f"{shared}-{state}", "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "acsRegion": region,
                "recipientAccountId": ACCOUNT, "sharedEventId": shared,
                "insightDetails": {
                    "state": state, "insightType": kind, "insightObject": obj, "sourceIpAddress": ip,
                    "eventName": api if kind == "ApiCallRateInsight" else None, "serviceName": "Ecs",
                    "insightContext": {
                        "statistics": {"baseline": {"average": 0.5}, "insight": {"average": 8.0},
                                       "insightDuration": minutes, "insightCount": per_incident},
                        "model": {"score": 0.8, "threshold": 0.6, "dimensions": [
                            {"name": d, "verdict": "UNSEEN", "score": 1.0, "detail": "synthetic"}
                            for d in ("network", "asn", "country")]},
                        "attributions": [{"attribute": "userIdentity.principalId",
                                          "insight": [{"value": "p1", "average": 1.0}],
                                          "baseline": [{"value": "p2", "average": 0.1}]}],
                    },
                },
            })
        offsets = rng.integers(0, minutes * 60, per_incident)
        events.append(pl.DataFrame({
            "eventId": [f"{shared}-{k}" for k in range(per_incident)],
            "eventTime": [start + timedelta(seconds=int(s)) for s in offsets],
            "eventName": [api if kind == "ApiCallRateInsight" else APIS[(n + k) % len(APIS)] for k in range(per_incident)],
            "serviceName": "Ecs", "eventRW": "Write", "acsRegion": region, "isGlobal": False,
            "recipientAccountId": ACCOUNT, "sourceIpAddress": ip, "accessKeyId": key, "userName": "alice",
            "userAgent": "bench/1.0",
        }))
    return store.events_frame(insights), conform(pl.concat(events).lazy()).collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--per-incident", type=int, default=100, help="related management events per incident")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the console here (default: a temp folder)")
    args = parser.parse_args()

    t = time.perf_counter()
    insights, events = synthetic(args.incidents, args.per_incident, args.days, args.seed)
    print(f"synthetic window: {insights.height} Insights events, {events.height:,} management events "
          f"({time.perf_counter() - t:.1f} s to make)")
    out = args.out or Path(tempfile.mkdtemp(prefix="ik-console-bench-"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    regions = [{"region": r, "status": "ok", "error": None, "events": None, "learning": "", "page": None}
               for r in REGIONS]
    t = time.perf_counter()
    result = write_console(out, insights=insights, events=events.lazy(), window="bench", since=T0,
                           until=T0 + timedelta(days=args.days), regions=regions, home_region=REGIONS[0])
    wrote = time.perf_counter() - t
    index = out / "index.html"
    vega = out / "console" / "vega.js"
    details = [p for p in (out / "console" / "d").iterdir()]
    biggest = max(p.stat().st_size for p in details)
    print(f"write_console: {wrote:.1f} s for {result['incidents']:,} incidents "
          f"({result['incidents'] / wrote:,.0f} incidents/s, {events.height / wrote:,.0f} events/s)")
    print(f"page weight: index.html {index.stat().st_size / 1e6:.2f} MB, vega.js {vega.stat().st_size / 1e6:.2f} MB "
          f"(loaded on the first chart), {len(details):,} detail/page files totalling "
          f"{sum(p.stat().st_size for p in details) / 1e6:.1f} MB (largest {biggest / 1e3:.0f} kB)")
    render(index, first_id=insights["sharedEventId"][0])
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


def render(index: Path, *, first_id: str) -> None:
    """First render and one detail in headless Chromium, measured in the page (performance.now)."""
    try:
        from test_browser import CHROMIUM, Chromium
    except ImportError as exc:  # websocket-client missing
        print(f"no browser measurement: {exc}")
        return
    if CHROMIUM is None:
        print("no browser measurement: chromium not found")
        return
    profile = Path(tempfile.mkdtemp(prefix="ik-console-chromium-"))
    browser = Chromium(profile)
    try:
        for attempt in range(3):
            browser.open("about:blank")
            browser.open(index.as_uri())
            # __ikReady: performance.now() when the list and counts are drawn (ms since navigation)
            ready = browser.evaluate("JSON.stringify(window.__ikReady || null)")
            rows = browser.evaluate("JSON.stringify(document.querySelectorAll('#ik-list tbody tr').length)")
            print(f"first render (run {attempt + 1}): {ready / 1000:.2f} s after navigation start; {rows} rows drawn"
                  if ready else f"first render (run {attempt + 1}): not reported")
        browser.open("about:blank")
        t = time.perf_counter()
        browser.open(index.as_uri() + "#incident=" + first_id)
        deadline = time.time() + 30
        while time.time() < deadline and not browser.evaluate(
                "JSON.stringify(document.querySelectorAll('#ik-detail svg').length > 0)"):
            time.sleep(0.05)
        print(f"deep link to one incident, charts drawn: {time.perf_counter() - t:.2f} s (page load, detail file "
              "and the Vega bundle included)")
        errors = browser.errors()
        print(f"console errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
