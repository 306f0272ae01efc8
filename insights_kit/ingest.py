"""The ``ingest`` job: load -> dedupe against the lake -> write partitions, quarantine, summary.

Idempotent and deterministic: ingesting the same files again adds no rows (an anti-join on
``eventId`` against the affected partitions), and the same input written into two fresh
lakes gives byte-identical files (content-derived names, sorted rows, sorted JSON keys,
paths stored relative to the lake).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Sequence

import polars as pl

from insights_kit import lake
from insights_kit.schema import REGION_PATTERN
from insights_kit.readers import InputError, load
from insights_kit.schema import EVENT_COLUMNS, QUARANTINE_SCHEMA


def _digest(parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


def _region_problems(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off events whose acsRegion cannot name a lake folder; return (ok, quarantine)."""
    bad_mask = pl.col("acsRegion").is_null() | ~pl.col("acsRegion").str.contains(REGION_PATTERN)
    bad = events.filter(bad_mask)
    if not len(bad):
        return events, pl.DataFrame(schema=QUARANTINE_SCHEMA)
    raws = [json.dumps(r, sort_keys=True, default=str) for r in bad.drop("sourceFile").iter_rows(named=True)]
    reasons = [
        "missing acsRegion: no lake partition to write to" if r is None else f"invalid region name '{r[:80]}' (expected 1-63 characters of a-z, 0-9 and -)"
        for r in bad.get_column("acsRegion").to_list()
    ]
    q = pl.DataFrame(
        {"sourceFile": bad.get_column("sourceFile"), "position": [f"eventId {i}" for i in bad.get_column("eventId")],
         "reason": reasons, "raw": raws, "records": [1] * len(raws)},
        schema=QUARANTINE_SCHEMA,
    )  # fmt: skip
    return events.filter(~bad_mask), q


def _lake_ids(out: Path, keys: list[tuple[str, str]], accounts: list[str | None]) -> pl.DataFrame:
    """eventIds already stored in the (region, date) partitions the new rows touch, of the
    accounts the new rows belong to.

    A re-delivered event keeps its account, so only that account's rows can hold it; an
    ingest run writes one account's rows per part file (one run per member is the usual way
    to fill an organisation's lake), so the account filter skips the other members' files by
    their statistics instead of reading every id of the organisation's partitions.
    """
    files = [f for region, day in keys for f in lake.part_files(lake.partition_dir(out, region, day))]
    if not files:
        return pl.DataFrame(schema={"eventId": pl.String})
    named = [a for a in accounts if a is not None]
    mine = pl.col("recipientAccountId").is_in(named)
    if len(named) < len(accounts):
        mine = mine | pl.col("recipientAccountId").is_null()
    scan = pl.scan_parquet(files, hive_partitioning=False)
    return scan.filter(mine).select("eventId").unique().collect()


def _write_parts(out: Path, jobs: list) -> None:
    """Write every new part file, or none: into a staging folder first, then renamed into place.

    A full disk or a permission error strikes while writing, so it leaves nothing in the lake
    (the staging folder is removed); the renames that follow need no space. A run killed
    between two renames leaves only complete part files, which a rerun completes.
    """
    staging = out / f".staging-{os.getpid()}"
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:  # Parquet encoding releases the GIL
            list(pool.map(lambda j: lake.atomic_write_parquet(j[2], staging / f"{j[0]}-{j[1]}-{j[3].name}"), jobs))
        for region, day, _, path in jobs:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / f"{region}-{day}-{path.name}", path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_ingest(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    strict: bool = False,
    progress: bool | None = None,
) -> dict:
    """Load `sources` into the Parquet lake `out` and return the run summary.

    Writes ``out/events/acsRegion=R/date=D/part-<hash16>.parquet`` (new rows only, sorted
    by ``eventTime, eventId``; the hash is of the sorted new eventIds),
    ``out/quarantine/<run_id>.jsonl`` (only when something was quarantined) and
    ``out/summaries/<run_id>.json``. ``run_id`` is derived from the loaded content and the
    window, so the same input gives the same paths and bytes.

    Parameters
    ----------
    sources, since, until, strict, progress
        As for :func:`insights_kit.readers.load`. Events without a usable ``acsRegion``
        are quarantined here (with ``strict`` they raise :class:`InputError`).
    out
        Lake root folder (created if missing).

    Returns
    -------
    dict
        ``run_id``, ``sources``, ``window``, ``stats`` (load stats plus ``new_rows``,
        ``already_in_lake``), ``new_rows``, ``partitions`` (``acsRegion``, ``date``,
        ``path``, ``rows``), ``quarantine`` (path or None), ``summary`` (its own path),
        ``warnings``. The file stores paths relative to `out`; the returned dict joins
        them to `out`.

    Examples
    --------
    >>> summary = run_ingest(["sim/AliyunLogs"], "lake")  # doctest: +SKIP
    >>> summary["stats"]["new_rows"]  # doctest: +SKIP
    1234
    """
    out = Path(out)
    lake.remove_stale_temps(out)
    result = load(sources, since=since, until=until, strict=strict, progress=progress)
    events, region_q = _region_problems(result.events.collect())
    quarantine = pl.concat([result.quarantine, region_q])
    stats = result.stats.to_dict()
    warnings = list(result.warnings)
    if len(region_q):
        stats["loaded"] -= len(region_q)
        stats["quarantined"] += len(region_q)
        first = region_q.row(0, named=True)
        msg = f"{len(region_q)} event(s) without a usable region quarantined; first: {first['position']}: {first['reason']}"
        if strict:
            raise InputError(msg)
        warnings.append(msg)

    run_id = "ingest-" + _digest(
        [_iso(since) or "", _iso(until) or "", *sorted(events.get_column("eventId").to_list())]
        + [f"{r[0]}\t{r[1]}\t{r[2]}" for r in quarantine.select("sourceFile", "position", "reason").iter_rows()]
    )[:16]

    events = events.with_columns(pl.col("eventTime").dt.date().cast(pl.String).alias("_date"))
    keys = sorted(events.select("acsRegion", "_date").unique().iter_rows())
    accounts = events.get_column("recipientAccountId").unique().sort(nulls_last=True).to_list()
    new = events.join(_lake_ids(out, keys, accounts), on="eventId", how="anti")
    stats["already_in_lake"] = len(events) - len(new)
    stats["new_rows"] = len(new)

    jobs = []
    for (region, day), grp in new.group_by("acsRegion", "_date"):
        grp = grp.sort("eventTime", "eventId").select(EVENT_COLUMNS)
        name = f"part-{_digest(sorted(grp.get_column('eventId').to_list()))[:16]}.parquet"
        jobs.append((region, day, grp, lake.partition_dir(out, region, day) / name))
    jobs.sort(key=lambda j: (j[0], j[1]))
    _write_parts(out, jobs)
    partitions = [
        {"acsRegion": r, "date": d, "path": p.relative_to(out).as_posix(), "rows": len(g)} for r, d, g, p in jobs
    ]

    q_rel = None
    if len(quarantine):
        q_rel = f"{lake.QUARANTINE_DIR}/{run_id}.jsonl"
        lines = [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in quarantine.iter_rows(named=True)]
        lake.atomic_write_text(out / q_rel, "\n".join(lines) + "\n")
    s_rel = f"{lake.SUMMARIES_DIR}/{run_id}.json"
    summary = {
        "run_id": run_id,
        "sources": [str(s) for s in sources],
        "window": {"since": _iso(since), "until": _iso(until)},
        "stats": stats,
        "new_rows": stats["new_rows"],
        "partitions": partitions,
        "quarantine": q_rel,
        "summary": s_rel,
        "warnings": warnings,
    }
    lake.atomic_write_text(out / s_rel, json.dumps(summary, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    returned = dict(summary, quarantine=str(out / q_rel) if q_rel else None, summary=str(out / s_rel))
    returned["partitions"] = [dict(p, path=str(out / p["path"])) for p in partitions]
    return returned
