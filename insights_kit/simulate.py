"""Labelled account simulator: ActionTrail management events with injected incidents.

:func:`simulate` writes what an OSS trail of one account would hold, in ActionTrail's own
layout, plus ``labels.json`` naming every injected incident (``"expect": "insight"``) and
every benign look-alike (``"expect": "none"``)::

    OUT/AliyunLogs/Actiontrail/<RegionId>/<YYYY>/<MM>/<DD>/
        Actiontrail_<RegionId>_<YYYYMMDDHHMMSS>_1002_<EventCount>_<FileSizeBytes>_<md5>.gz
    OUT/labels.json

How events are made (no Python loop per event):

1. Background: every *channel* of the account (:mod:`insights_kit.scenarios`; one identity
   using one client) spreads its daily volume over (API, region) series. The per-minute
   intensity follows the channel's pattern (office hours on Asia/Shanghai time with a
   Monday-morning ramp and quiet weekends, constant polling, weekday CI deploy windows,
   auto-scaling peaks ...) times gamma noise per hour and per minute, so counts are
   negative-binomial (over-dispersed like real traffic). Counts per minute are drawn for a
   whole (series x 1440 minutes) matrix at once and expanded with ``np.repeat``.
2. Scripted episodes (nightly jobs, dashboard bursts, identity look-alikes, incidents and
   identity incidents) come from :mod:`insights_kit.scenarios` as small frames; with
   ``stealth=True``, the graded stealth incidents of :mod:`insights_kit.stealth` too.
3. A day's rows are serialised to JSON Lines with Polars string expressions, cut into one
   file per region and ``file_minutes`` window (split above :data:`MAX_EVENTS_PER_FILE`),
   gzipped with ``mtime=0`` and named with their count, size and md5.

Determinism: day *d* uses random streams seeded by ``(seed, d)`` only, and the incident plan
of a longer run extends the shorter one's, so the files of the first *k* days do not depend
on ``days`` and the same arguments give the same bytes.

Examples
--------
>>> result = simulate("/tmp/sim", days=6, seed=7, scale=0.02)       # doctest: +SKIP
>>> result.events, result.files, result.home_region                  # doctest: +SKIP
(20522, 4984, 'cn-hangzhou')

From a shell (the ``insights-kit simulate`` command calls the same function)::

    python -m insights_kit.simulate --out data/sample --days 9 --seed 7 --scale 0.04
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from insights_kit import scenarios as sc
from insights_kit import stealth as st
from insights_kit.scenarios import Account, Channel, LabelSpec, Pick

#: Files hold one region's events of one ``file_minutes`` window; busier windows are split
#: (ActionTrail splits a batch "when volume is high").
MAX_EVENTS_PER_FILE = 2000
#: Share of events delivered twice (at-least-once delivery): the copy lands in the next file.
DUPLICATE_SHARE = 0.01
#: Gzip level of the delivery files: 3 compresses 2.5x faster than zlib's default 6 for ~20% bigger
#: files (benchmarks write gigabytes). Fixed, because it is part of the bytes.
GZIP_LEVEL = 3

_HEX_PAIRS = np.array([f"{i:02X}".encode() for i in range(256)], dtype="S2")


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote.

    ``events`` counts distinct events (what a loader keeps after deduplicating on
    ``eventId``); the files hold ``events`` + ``labels.json["duplicates"]`` records.
    ``start`` is the first simulated midnight (UTC), ``end`` the exclusive end.
    """

    out: Path
    events: int
    files: int
    labels_path: Path
    regions: list[str]
    home_region: str
    start: datetime
    end: datetime


# --------------------------------------------------------------------------------------------
# Activity patterns
# --------------------------------------------------------------------------------------------

#: Relative activity of a person per local hour (09-18 busy, lunch dip, evenings quiet).
_OFFICE_HOURS = np.array(
    [0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.04, 0.15, 0.5, 1.0, 1.0, 1.0,
     0.6, 1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.3, 0.25, 0.2, 0.08, 0.04]
)
WEEKEND_FACTOR = 0.2
#: Mondays 09:00-11:00 local: people catch up on the week's requests (a benign look-alike).
MONDAY_RAMP = 2.2
#: CI: expected deploys per weekday and minutes per deploy (for normalising its profile).
_CI_DEPLOYS, _CI_MINUTES = 4.5, 11.0


def _local_clock(day_index: int, start_weekday: int) -> tuple[np.ndarray, np.ndarray]:
    """Local hour and local weekday (0 = Monday) of each UTC minute of the day."""
    local = np.arange(1440) + sc.LOCAL_UTC_OFFSET_MINUTES
    weekday = (start_weekday + day_index + local // 1440) % 7
    return (local % 1440) // 60, weekday


def _profile(pattern: str, rng: np.random.Generator, day_index: int, start_weekday: int) -> np.ndarray:
    """Expected share of an ordinary weekday's volume in each UTC minute of the day.

    An ordinary weekday sums to ~1; weekends, Mondays and noise move it up or down.
    """
    hour, weekday = _local_clock(day_index, start_weekday)
    weekend = weekday >= 5
    if pattern == "office":
        shape = _OFFICE_HOURS[hour] * np.where(weekend, WEEKEND_FACTOR, 1.0)
        shape = shape * np.where((weekday == 0) & (hour >= 9) & (hour < 11), MONDAY_RAMP, 1.0)
        base = shape / (_OFFICE_HOURS.sum() * 60)
        noise_hour, noise_minute = 4.0, 2.0
    elif pattern == "poll":
        base = np.full(1440, 1 / 1440)
        noise_hour, noise_minute = 50.0, 30.0
    elif pattern == "automation":
        busy = (hour >= 9) & (hour < 19)
        base = np.where(busy, 1.3, 0.85)
        base = base / (10 * 60 * 1.3 + 14 * 60 * 0.85)
        noise_hour, noise_minute = 8.0, 5.0
    elif pattern == "ci":
        base = np.zeros(1440)
        deploys = rng.poisson(_CI_DEPLOYS) + 1 if not weekend[600] else int(rng.random() < 0.15)
        for _ in range(deploys):  # loop per deploy, not per event
            first = int(rng.integers(2 * 60, 11 * 60))  # 10:00-19:00 local
            base[first : first + int(rng.integers(6, 17))] = 1.0
        base = base / (_CI_DEPLOYS * _CI_MINUTES)
        noise_hour, noise_minute = 10.0, 3.0
    elif pattern == "scaling":
        local_minute = (np.arange(1440) + sc.LOCAL_UTC_OFFSET_MINUTES) % 1440
        peaks = np.exp(-0.5 * ((local_minute - 9 * 60) / 25) ** 2) + np.exp(-0.5 * ((local_minute - 21 * 60) / 25) ** 2)
        base = (0.05 + peaks) / (0.05 * 1440 + 2 * 25 * np.sqrt(2 * np.pi))
        noise_hour, noise_minute = 5.0, 3.0
    elif pattern == "none":
        return np.zeros(1440)
    else:
        raise ValueError(f"unknown activity pattern {pattern!r}")
    day_factor = rng.gamma(20.0, 1 / 20.0)
    per_hour = np.repeat(rng.gamma(noise_hour, 1 / noise_hour, 24), 60)
    per_minute = rng.gamma(noise_minute, 1 / noise_minute, 1440)
    return base * day_factor * per_hour * per_minute


# --------------------------------------------------------------------------------------------
# Background traffic
# --------------------------------------------------------------------------------------------


def _series(channel: Channel, home: str) -> tuple[list[str], list[str], np.ndarray]:
    """The channel's (API, region) series and their share of its volume."""
    names, regions, weights = [], [], []
    for api, api_weight in channel.apis:
        if sc.is_global(api):  # global events are delivered in the home region's folder
            names.append(api), regions.append(home), weights.append(api_weight)
            continue
        for region, region_weight in channel.region_weights:
            names.append(api), regions.append(region), weights.append(api_weight * region_weight)
    w = np.array(weights, dtype=float)
    return names, regions, w / w.sum()


def sts_keys(seed: int, day_index: int, channel_index: int) -> list[str]:
    """A role's 24 hourly STS AccessKeys of a day (a session lasts an hour)."""
    rng = np.random.default_rng([seed, 3, day_index, channel_index])
    return ["STS.NT" + sc.random_token(rng, 23) for _ in range(24)]


def _active_addresses(channel: Channel, day_index: int, start_weekday: int):
    return [a for a in channel.addresses if sc.first_day_of(channel.key, a, start_weekday) <= day_index]


def background(
    channel: Channel, account: Account, rng: np.random.Generator, *, day_index: int, day_start: int,
    start_weekday: int, scale: float, keys: list[str] | None,
) -> pl.DataFrame:
    """One channel's steady traffic for one UTC day (vectorised over series and minutes)."""
    names, regions, weights = _series(channel, account.home_region) if channel.apis else ([], [], np.zeros(0))
    profile = _profile(channel.pattern, rng, day_index, start_weekday)
    if not names or not profile.any():
        return sc.empty_frame()
    lam = (scale * channel.per_day) * np.outer(weights, profile)
    counts = rng.poisson(lam)
    series_of, minute_of = np.nonzero(counts)
    repeat = counts[series_of, minute_of]
    series_idx = np.repeat(series_of, repeat)
    n = len(series_idx)
    if n == 0:
        return sc.empty_frame()
    minutes = np.repeat(minute_of, repeat)
    t = day_start + minutes * 60 + rng.integers(0, 60, n)

    pool = _active_addresses(channel, day_index, start_weekday)
    address_weights = np.array([a.weight for a in pool])
    address_idx = rng.choice(len(pool), n, p=address_weights / address_weights.sum())
    ua_weights = np.array([w for _, w in channel.user_agents])
    ua_idx = rng.choice(len(channel.user_agents), n, p=ua_weights / ua_weights.sum())
    ident = channel.identity
    if ident.sts:
        access_key = Pick(keys, minutes // 60)
    else:
        access_key = ident.access_key if channel.with_key else None
    errors = sc.draw_errors(rng, series_idx, names, channel.error_boost)
    return sc.events_frame(
        t,
        eventType=channel.event_type,
        eventName=Pick(names, series_idx),
        acsRegion=Pick(regions, series_idx),
        sourceIpAddress=Pick([a.ip for a in pool], address_idx),
        vpcId=Pick([a.vpc_id for a in pool], address_idx),
        userAgent=Pick([u for u, _ in channel.user_agents], ua_idx),
        idType=ident.type,
        principalId=ident.principal_id,
        accountId=None if ident.type == "system" else account.account_id,
        accessKeyId=access_key,
        userName=ident.user_name,
        errorCode=Pick(sc.ERROR_PICK_VALUES, errors),
    )


# --------------------------------------------------------------------------------------------
# Serialisation and delivery files
# --------------------------------------------------------------------------------------------


def guids(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` uppercase random (version 4) GUIDs, built in numpy without a per-event loop.

    Examples
    --------
    >>> g = guids(np.random.default_rng(0), 2)
    >>> len(g[0]), g[0][8], g[0][14]
    (36, '-', '4')
    """
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_chars = _HEX_PAIRS[raw].view("S1").reshape(n, 32)
    dash = np.full((n, 1), b"-", dtype="S1")
    parts = [hex_chars[:, :8], dash, hex_chars[:, 8:12], dash, hex_chars[:, 12:16], dash,
             hex_chars[:, 16:20], dash, hex_chars[:, 20:]]
    text = np.ascontiguousarray(np.concatenate(parts, axis=1)).view("S36").ravel()
    return pl.Series(text).cast(pl.String)


def _optional(key: str, column: str) -> pl.Expr:
    """``,"key":"value"`` when the column is set, nothing otherwise (absent, not null)."""
    return (
        pl.when(pl.col(column).is_not_null())
        .then(pl.concat_str([pl.lit(f',"{key}":"'), pl.col(column), pl.lit('"')]))
        .otherwise(pl.lit(""))
    )


def _json_line(account_id: str) -> pl.Expr:
    # Values come from the simulator's own tables (no quotes, backslashes or control
    # characters), so no escaping is needed; a test parses every line back with json.
    # requestParameters is the exception: it is JSON text made by json.dumps, inserted verbatim.
    return pl.concat_str(
        [
            pl.lit('{"eventVersion":"1","eventId":"'), pl.col("eventId"),
            pl.lit('","eventTime":"'), pl.col("eventTime"),
            pl.lit('","eventType":"'), pl.col("eventType"),
            pl.lit('","eventCategory":"Management","eventRW":"'), pl.col("eventRW"),
            pl.lit('","eventName":"'), pl.col("eventName"),
            pl.lit('","eventSource":"'), pl.col("eventSource"),
            pl.lit('","serviceName":"'), pl.col("serviceName"), pl.lit('"'),
            _optional("apiVersion", "apiVersion"),
            pl.lit(',"acsRegion":"'), pl.col("acsRegion"),
            pl.lit('","isGlobal":'), pl.when(pl.col("isGlobal")).then(pl.lit("true")).otherwise(pl.lit("false")),
            pl.lit(f',"recipientAccountId":"{account_id}","requestId":"'), pl.col("requestId"),
            pl.lit('","sourceIpAddress":"'), pl.col("sourceIpAddress"),
            pl.lit('","userAgent":"'), pl.col("userAgent"), pl.lit('"'),
            _optional("vpcId", "vpcId"),
            pl.lit(',"userIdentity":{"type":"'), pl.col("idType"), pl.lit('"'),
            _optional("principalId", "principalId"),
            _optional("accountId", "accountId"),
            _optional("accessKeyId", "accessKeyId"),
            pl.lit(',"userName":"'), pl.col("userName"), pl.lit('"}'),
            _optional("errorCode", "errorCode"),
            _optional("errorMessage", "errorMessage"),
            # already JSON object text (built with json.dumps by the scenarios): written as is
            pl.when(pl.col("requestParameters").is_not_null())
            .then(pl.concat_str([pl.lit(',"requestParameters":'), pl.col("requestParameters")]))
            .otherwise(pl.lit("")),
            pl.when(pl.col("sensitive")).then(pl.lit(',"eventAttributes":{"SensitiveAction":"true"}')).otherwise(pl.lit("")),
            pl.lit("}"),
        ]
    )


def render(day: pl.DataFrame, api_table: pl.DataFrame, account_id: str, rng: np.random.Generator) -> pl.DataFrame:
    """Complete a day's rows (API-derived fields, ids, messages) and add the JSON ``line``.

    Rows are ordered by time (ties keep generation order) before ids are drawn, so ids
    are a function of the seed and the rows alone.
    """
    day = day.sort("t", maintain_order=True)
    n = day.height
    messages = pl.DataFrame({"errorCode": list(sc.ERROR_MESSAGES), "errorMessage": list(sc.ERROR_MESSAGES.values())})
    day = (
        day.join(api_table, on=["eventName", "acsRegion"], how="left", maintain_order="left")
        .join(messages, on="errorCode", how="left", maintain_order="left")
        .with_columns(
            eventId=guids(rng, n),
            requestId=guids(rng, n),
            eventTime=pl.from_epoch("t", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            eventType=pl.when(pl.col("eventName") == "ConsoleSignin")
            .then(pl.lit("ConsoleSignin"))
            .otherwise(pl.col("eventType")),
        )
        .with_columns(apiVersion=pl.when(pl.col("eventType") == "ApiCall").then(pl.col("apiVersion")))
    )
    return day.with_columns(line=_json_line(account_id))


def _write_delivery(out: Path, region: str, stamp: datetime, count: int, text: str) -> None:
    """Gzip one file's text (``mtime=0``: same input, same bytes) and write it under its OSS name."""
    data = gzip.compress(text.encode(), compresslevel=GZIP_LEVEL, mtime=0)
    md5 = hashlib.md5(data).hexdigest()
    folder = out / "AliyunLogs" / "Actiontrail" / region / stamp.strftime("%Y/%m/%d")
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / f"Actiontrail_{region}_{stamp:%Y%m%d%H%M%S}_1002_{count}_{len(data)}_{md5}.gz", data)


def deliver(
    day: pl.DataFrame, out: Path, day_start: int, file_minutes: int, rng: np.random.Generator,
    pool: ThreadPoolExecutor,
) -> tuple[list[Future], int]:
    """Cut a rendered day into OSS delivery files and queue their compression and writing.

    Returns the queued jobs (one per file) and the number of duplicate records. The jobs run
    on ``pool`` (zlib releases the GIL) while the caller generates the next day.
    """
    window_seconds = file_minutes * 60
    last_window = (86400 - 1) // window_seconds
    rows = day.select("acsRegion", "t", "eventId", "line").with_columns(
        window=((pl.col("t") - day_start) // window_seconds).cast(pl.Int64)
    )
    # at-least-once delivery: a small share is delivered again in the region's next file
    again = (rng.random(rows.height) < DUPLICATE_SHARE) & (rows["window"].to_numpy() < last_window)
    duplicates = rows.filter(pl.Series(again)).with_columns(pl.col("window") + 1)
    rows = (
        pl.concat([rows, duplicates])
        .sort("acsRegion", "window", "t", "eventId")
        .with_columns(part=(pl.int_range(pl.len()).over("acsRegion", "window") // MAX_EVENTS_PER_FILE))
    )
    files = (
        rows.group_by("acsRegion", "window", "part", maintain_order=True)
        .agg(text=pl.col("line").str.join("\n"), count=pl.len())
        .with_columns(text=pl.col("text") + "\n")
    )
    jobs = []
    for (region, window, part, count), text in zip(
        files.select("acsRegion", "window", "part", "count").iter_rows(), files["text"], strict=True
    ):
        # the name's timestamp is the window's start (+1 s per extra part of a split window)
        stamp = datetime.fromtimestamp(day_start + window * window_seconds + part, tz=timezone.utc)
        jobs.append(pool.submit(_write_delivery, out, region, stamp, count, text))
    return jobs, duplicates.height


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def _iso(t: int) -> str:
    return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _measure(day: pl.DataFrame, spec: LabelSpec) -> dict | None:
    """Start, end and count of a label's rows in the day's frame (None when it has none)."""
    cond = pl.col("acsRegion") == spec.region
    if spec.tag is not None:
        cond &= pl.col("tag") == spec.tag
    for column, value in spec.match.items():
        cond &= pl.col(column).is_in(list(value)) if isinstance(value, tuple) else pl.col(column) == value
    if spec.window is not None:
        cond &= pl.col("t").is_between(spec.window[0], spec.window[1], closed="left")
    stats = day.filter(cond).select(first=pl.col("t").min(), last=pl.col("t").max(), n=pl.len()).row(0)
    if stats[2] == 0:
        return None
    entry = {
        "scenario": spec.scenario, "expect": spec.expect, "type": spec.type, "region": spec.region,
        "object": spec.object, "start": _iso(stats[0]), "end": _iso(stats[1]), "events": stats[2],
    }
    entry.update(spec.extra)
    entry["note"] = spec.note
    return entry


_NEW_ADDRESS_SCENARIOS = {
    "bob-cli": "new_address_same_subnet",
    "ops-automation": "new_private_vpc_address",
    "ci-deployer": "new_ci_runner",
}


class _Labeller:
    """Collects label entries day by day (labels may depend on ``days``; files may not)."""

    def __init__(self, account: Account, start_weekday: int) -> None:
        self.account = account
        self.start_weekday = start_weekday
        self.incidents: list[dict] = []
        self.benign: list[dict] = []
        self.seen_new: set[tuple[str, str]] = set()
        self.services: dict[tuple[str, str], dict] = {}
        self.watch = {
            a.ip: (key, a) for key, ch in account.channels.items() for a in ch.addresses if a.first_day < 0
        }

    def add(self, day: pl.DataFrame, specs: Iterable[LabelSpec]) -> None:
        for spec in specs:
            entry = _measure(day, spec)
            if entry is not None:
                (self.incidents if spec.expect in ("insight", "may") else self.benign).append(entry)

    def observe(self, day: pl.DataFrame, day_index: int, day_start: int) -> None:
        """Labels measured on the whole day: new benign addresses, services, Monday mornings."""
        new = (
            day.filter(pl.col("sourceIpAddress").is_in(list(self.watch)))
            .group_by("acsRegion", "sourceIpAddress")
            .agg(first=pl.col("t").min(), last=pl.col("t").max(), n=pl.len(), principal=pl.col("principalId").first())
            .sort("acsRegion", "sourceIpAddress")
        )
        for region, ip, first, last, n, principal in new.iter_rows():
            if (region, ip) in self.seen_new:
                continue
            self.seen_new.add((region, ip))
            key, address = self.watch[ip]
            self.benign.append({
                "scenario": _NEW_ADDRESS_SCENARIOS[key], "expect": "none", "type": "IpInsight", "region": region,
                "object": ip, "start": _iso(first), "end": _iso(last), "events": n, "principalId": principal,
                "note": f"{address.note}: same principal and user agent, ordinary APIs (first day in {region})",
            })
        services = (
            day.filter(pl.col("idType") == "system")
            .group_by("acsRegion", "sourceIpAddress")
            .agg(first=pl.col("t").min(), last=pl.col("t").max(), n=pl.len())
        )
        for region, source, first, last, n in services.iter_rows():
            entry = self.services.setdefault((region, source), {
                "scenario": "cloud_service_calls", "expect": "none", "type": "IpInsight", "region": region,
                "object": source, "start": _iso(first), "end": _iso(last), "events": 0,
                "note": "calls made by Alibaba Cloud services (AliyunServiceEvent): a service domain or Internal, not an IP",
            })
            entry["end"] = _iso(last)
            entry["events"] += n
        hour, weekday = _local_clock(day_index, self.start_weekday)
        monday_morning = np.nonzero((weekday == 0) & (hour >= 9) & (hour < 11))[0]
        if day_index >= 1 and len(monday_morning):
            window = (day_start + int(monday_morning[0]) * 60, day_start + int(monday_morning[-1] + 1) * 60)
            spec = LabelSpec("monday", "monday_morning", "none", "ApiCallRateInsight", self.account.home_region, "*",
                             None, {}, f"Monday 09:00-11:00 local: people work through the week's backlog "
                             f"(x{MONDAY_RAMP} usual activity); any API", window=window)
            self.add(day, [spec])

    def entries(self) -> list[dict]:
        """All labels: incidents first (inc-01 ...), then benign (benign-01 ...), each by start."""
        order = lambda e: (e["start"], e["region"], e["type"], e["object"])  # noqa: E731
        out = []
        for prefix, group in (("inc", self.incidents), ("benign", self.benign + list(self.services.values()))):
            for i, entry in enumerate(sorted(group, key=order), start=1):
                out.append({"id": f"{prefix}-{i:02d}", **entry})
        return out


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _finish(jobs: list[Future]) -> None:
    wait(jobs)
    for job in jobs:
        job.result()  # re-raise a failed write


def _remove_stale_deliveries(out: Path) -> None:
    # a rerun into the same folder must not leave an older run's files next to the new ones
    root = out / "AliyunLogs" / "Actiontrail"
    if root.is_dir():
        for stale in root.rglob("Actiontrail_*.gz"):
            stale.unlink()


def simulate(
    out: str | Path,
    *,
    days: int,
    seed: int,
    scale: float = 1.0,
    start: date = date(2025, 3, 3),
    file_minutes: int = 5,
    progress: bool | None = None,
    stealth: bool = False,
) -> SimulationResult:
    """Simulate ``days`` days of one account's management events into ``out``.

    Parameters
    ----------
    out
        Folder for ``AliyunLogs/Actiontrail/...`` and ``labels.json`` (created; earlier
        ``Actiontrail_*.gz`` files under it are removed first).
    days
        Number of UTC days from ``start``. Incidents need ``days >= 4`` and start on day 3.
    seed
        Random seed: same arguments, same bytes.
    scale
        Volume: 1.0 is about 100,000 events per day over all regions. Incidents and
        scripted jobs keep their absolute size.
    start
        First day (UTC midnight). The default is a Monday.
    file_minutes
        Width of a delivery file's window.
    progress
        Show a progress bar over days (default: when stderr is a terminal).
    stealth
        Add the graded stealth incidents of :mod:`insights_kit.stealth` (one a night from
        day 3; off by default: many are meant to be too weak to find, so they belong in
        detection-power benchmarks, not in runs whose every incident must be found).

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> r = simulate("/tmp/sim", days=5, seed=1, scale=0.01)             # doctest: +SKIP
    >>> r.labels_path.name, r.regions[0]                                 # doctest: +SKIP
    ('labels.json', 'cn-hangzhou')
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if not 0 < scale < float("inf"):  # also rejects NaN, for which every comparison is false
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    if file_minutes < 1 or 1440 % file_minutes:
        raise ValueError("file_minutes must divide a day (1, 5, 10, 15, 30, 60 ...)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_deliveries(out)
    account = sc.build_account(seed)
    regions = list(account.regions)
    api_table = sc.api_table(regions)
    start_weekday = start.weekday()
    plan = sc.incident_plan(seed, days - 1) if days >= sc.MIN_DAYS_FOR_INCIDENTS else []
    # a plan of its own (own seed streams): the incident plan above is the same with or without it
    id_plan = sc.identity_plan(seed, days - 1, account) if days >= sc.MIN_DAYS_FOR_INCIDENTS else []
    stealth_plan = st.stealth_plan(seed, days - 1, account) if stealth and days >= sc.MIN_DAYS_FOR_INCIDENTS else []
    labeller = _Labeller(account, start_weekday)
    channel_index = {key: i for i, key in enumerate(account.channels)}
    show = sys.stderr.isatty() if progress is None else progress
    events = files = duplicates = 0
    day_indexes: Iterable[int] = range(days)
    if show:
        from tqdm import tqdm

        day_indexes = tqdm(day_indexes, desc="simulate", unit="day")
    first_midnight = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for d in day_indexes:
            day_start = int((first_midnight + timedelta(days=d)).timestamp())
            rng = np.random.default_rng([seed, 1, d])
            keys = {key: sts_keys(seed, d, i) for key, i in channel_index.items() if account.channels[key].identity.sts}
            frames = [
                background(ch, account, rng, day_index=d, day_start=day_start, start_weekday=start_weekday,
                           scale=scale, keys=keys.get(key))
                for key, ch in account.channels.items()
            ]
            specs: list[LabelSpec] = []
            benign_rng = np.random.default_rng([seed, 5, d])
            nightly, nightly_labels = sc.nightly_jobs(benign_rng, account, d, day_start, keys["backup-job"])
            burst, burst_labels = sc.dashboard_burst(benign_rng, account, d, day_start, (start_weekday + d) % 7)
            signins = sc.console_signins(benign_rng, account, d, day_start, (start_weekday + d) % 7)
            # Its own generator: adding this look-alike leaves every other stream as it was.
            pipeline, pipeline_labels = sc.trail_pipeline(
                np.random.default_rng([seed, 8, d]), account, d, day_start, (start_weekday + d) % 7, keys["ci-deployer"]
            )
            # Identity look-alikes, each on its own generator too.
            weekday = (start_weekday + d) % 7
            release, release_labels = sc.policy_release(
                np.random.default_rng([seed, 12, d]), account, d, day_start, weekday, keys["ci-deployer"]
            )
            rotation, rotation_labels = sc.password_rotation(
                np.random.default_rng([seed, 13, d]), account, d, day_start
            )
            key_rot, key_rot_labels = sc.key_rotation(
                np.random.default_rng([seed, 14, d]), account, d, day_start, start_weekday, keys["ops-automation"]
            )
            frames += [nightly, burst, signins, pipeline, release, rotation, key_rot]
            specs += nightly_labels + burst_labels + pipeline_labels + release_labels + rotation_labels + key_rot_labels
            for slot in (s for s in plan if s.day == d):
                hour = slot.minute // 60
                frame, labels = sc.incident_events(
                    slot, account, day_start, keys.get(slot.actor, [None] * 24)[hour]
                )
                frames.append(frame)
                specs += labels
            for slot in (s for s in id_plan if s.day == d):
                frame, labels = sc.identity_events(slot, account, day_start)
                frames.append(frame)
                specs += labels
            # after every other episode of the day: its baselines are measured on their background
            for slot in (s for s in stealth_plan if s.day == d):
                frame, labels = st.stealth_events(slot, account, day_start, keys.get(slot.actor), pl.concat(frames))
                frames.append(frame)
                specs += labels
            day = render(pl.concat(frames), api_table, account.account_id, np.random.default_rng([seed, 6, d]))
            # at most one day in flight: its files are compressed while the next day is generated
            _finish(pending)
            pending, n_dups = deliver(day, out, day_start, file_minutes, np.random.default_rng([seed, 7, d]), pool)
            n_files = len(pending)
            labeller.add(day, specs)
            labeller.observe(day, d, day_start)
            events += day.height
            files += n_files
            duplicates += n_dups
        _finish(pending)
    end = first_midnight + timedelta(days=days)
    labels = {
        "generator": "insights-kit simulate",
        "seed": seed,
        "days": days,
        "scale": scale,
        "start": _iso(int(first_midnight.timestamp())),
        "end": _iso(int(end.timestamp())),
        "account": account.account_id,
        "regions": regions,
        "home_region": account.home_region,
        "file_minutes": file_minutes,
        "events": events,
        "duplicates": duplicates,
        "records": events + duplicates,
        "files": files,
        # only when asked for: labels of runs without it stay byte for byte as they were
        **({"stealth": True} if stealth_plan else {}),
        "incidents": labeller.entries(),
    }
    if not plan:
        labels["note"] = (
            f"no incidents injected: days={days} < {sc.MIN_DAYS_FOR_INCIDENTS} leaves the detectors no baseline "
            f"(incidents start on day {sc.FIRST_INCIDENT_DAY}, 0-based)"
        )
    labels_path = out / "labels.json"
    _write_atomic(labels_path, (json.dumps(labels, indent=1) + "\n").encode())
    return SimulationResult(out, events, files, labels_path, regions, account.home_region, first_midnight, end)


def main(argv: list[str] | None = None) -> int:
    """``python -m insights_kit.simulate --out DIR --days N --seed S [--scale X]``."""
    parser = argparse.ArgumentParser(prog="python -m insights_kit.simulate", description=main.__doc__)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 3, 3))
    parser.add_argument("--file-minutes", type=int, default=5)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--stealth", action="store_true", help="add the graded stealth incidents")
    args = parser.parse_args(argv)
    result = simulate(args.out, days=args.days, seed=args.seed, scale=args.scale, start=args.start,
                      file_minutes=args.file_minutes, progress=args.progress, stealth=args.stealth)
    print(f"wrote {result.events} events in {result.files} files to {result.out}; labels: {result.labels_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
