"""The Parquet lake: atomic writes, layout, scanning.

Layout (hive-partitioned; every part file also stores all canonical columns, so a single
part file is self-describing)::

    LAKE/events/acsRegion=<region>/date=<YYYY-MM-DD>/part-<hash16>.parquet
    LAKE/quarantine/<run_id>.jsonl
    LAKE/summaries/<run_id>.json

Every write goes to ``name.tmp-<pid>`` first and is renamed with ``os.replace``: a reader
never sees half a file, and a crash leaves only a ``.tmp-`` file that scanners skip.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from insights_kit.schema import EVENT_SCHEMA, conform, empty_events

EVENTS_DIR = "events"
QUARANTINE_DIR = "quarantine"
SUMMARIES_DIR = "summaries"


@contextmanager
def _replacing(path: str | Path) -> Iterator[Path]:
    """Yield ``path.tmp-<pid>`` (parents created) to write; when the block ends, sync it and
    rename it over `path`. On an error nothing is renamed and the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via ``path.tmp-<pid>`` + ``os.replace`` (parents created).

    Examples
    --------
    >>> atomic_write_bytes("/tmp/example.bin", b"abc")  # doctest: +SKIP
    """
    with _replacing(path) as tmp:
        tmp.write_bytes(data)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(root: str | Path) -> int:
    """Delete ``*.tmp-<pid>`` files and ingest's ``.staging-<pid>`` folders of dead writers under `root`.

    A run killed between writing and renaming leaves its temporary file behind; scanners
    skip it, but it would pile up. A live writer's file (its pid still runs) is kept.
    Returns how many files were removed.
    """
    removed = 0
    root = Path(root)
    if not root.is_dir():
        return 0
    for staging in root.glob(".staging-*"):  # ingest's staging folder of a killed run
        pid = staging.name.rsplit("-", 1)[1]
        if staging.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
            removed += 1
    for tmp in root.rglob("*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if tmp.is_file() and pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(df: pl.DataFrame, path: str | Path) -> None:
    """Write `df` as Parquet (zstd, statistics on) atomically.

    The bytes depend only on the frame's content, so the same rows give the same file.

    Examples
    --------
    >>> atomic_write_parquet(pl.DataFrame({"a": [1]}), "/tmp/a.parquet")  # doctest: +SKIP
    """
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=True)
    atomic_write_bytes(path, buf.getvalue())


def atomic_sink_parquet(lf: pl.LazyFrame, path: str | Path) -> None:
    """Stream `lf` to Parquet (zstd, statistics on) at `path` atomically, never whole in memory.

    `lf` may scan `path` itself: the old file is read to the end before the rename.
    """
    with _replacing(path) as tmp:
        lf.sink_parquet(tmp, compression="zstd", statistics=True)


def events_root(path: str | Path) -> Path:
    """``LAKE/events`` for a lake root, or `path` itself if it already is that folder."""
    path = Path(path)
    return path if path.name == EVENTS_DIR or not (path / EVENTS_DIR).exists() else path / EVENTS_DIR


def partition_dir(lake: str | Path, region: str, day: str) -> Path:
    """Folder of one (region, date) partition: ``LAKE/events/acsRegion=R/date=D``."""
    return Path(lake) / EVENTS_DIR / f"acsRegion={region}" / f"date={day}"


def part_files(root: str | Path) -> list[Path]:
    """Committed part files under `root`, sorted (``.tmp-`` leftovers are ignored)."""
    return sorted(p for p in Path(root).rglob("*.parquet") if ".tmp-" not in p.name)


def scan_lake(path: str | Path) -> pl.LazyFrame:
    """Scan a lake (root or its ``events`` folder) as a canonical LazyFrame.

    Filters on ``eventTime``/``acsRegion`` are pushed into the Parquet scan (row-group
    statistics), so a narrow query reads little. An empty or missing lake gives an empty
    frame with the canonical schema.

    Examples
    --------
    >>> scan_lake("out").filter(pl.col("acsRegion") == "cn-hangzhou").collect()  # doctest: +SKIP
    """
    files = part_files(events_root(path)) if Path(path).exists() else []
    if not files:
        return empty_events().lazy()
    # Part files hold every column, so the path's key=value segments are not needed.
    # missing_columns: a lake written before a canonical column was added still reads (as nulls)
    lf = pl.scan_parquet(files, hive_partitioning=False, schema=EVENT_SCHEMA, missing_columns="insert")
    return conform(lf)
