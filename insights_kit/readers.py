"""Find delivered files, read every shape, and return one canonical event table.

``load()`` is the only entry point most callers need. Per file it picks a reader from the
path and the first bytes (gzip/zip/Parquet magic, JSON array, ``{"Records": ...}``,
LookupEvents page, JSON Lines, SLS export), reads it with Polars' own JSON readers and an
explicit raw schema (:mod:`insights_kit.normalize`), and normalises it with expressions.
Only when Polars rejects a file does a per-record Python *salvage* path run for that file,
which quarantines exactly the bad records (with their position) and loads the rest.

Every record is accounted for::

    records_read == loaded + quarantined + duplicates + outside_window

Decisions not fixed by docs/design.md
-------------------------------------
* ``until`` is exclusive, ``since`` inclusive; naive datetimes are UTC.
* Positions are 1-based (``line 3`` is the third physical line, ``record 3`` the third
  array element); ``byte N`` is an offset in the *decompressed* stream.
* A zip member is named ``archive.zip!member`` in ``sourceFile``.
* otrf/Logstash CloudTrail without ``eventTime`` uses ``@timestamp`` (same ISO format).
* A record whose ``acsRegion`` is not ``^[a-z0-9-]+$`` is quarantined here (it would
  otherwise become a lake path); records in the SLS Logstore that are Insights events
  (``eventType == ActionTrailInsight``) are quarantined as not management events.
* A file in which no line is JSON becomes one ``file`` quarantine row, not one per line.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import polars as pl
from tqdm.auto import tqdm

from insights_kit import objects, salvage
from insights_kit.normalize import DOCUMENT_SCHEMA, RAW_SCHEMA, SLS_SCHEMA, normalize, sls_to_raw
from insights_kit.normalize import is_ip_address as is_ip_address  # re-exported API
from insights_kit.schema import EVENT_COLUMNS, QUARANTINE_SCHEMA, UTC_DATETIME, conform, empty_events

FORMATS = ("actiontrail", "sls", "lookupevents", "cloudtrail", "parquet")

#: File name endings picked up when walking a directory (anything else is skipped).
EVENT_SUFFIXES = (".gz", ".json", ".jsonl", ".ndjson", ".log", ".zip", ".parquet")
_INSIGHT_DIR = "Actiontrail-Insight"
_DATE_DIRS = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")
_DATE_HIVE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")


class InputError(Exception):
    """A user-facing input problem (wrong path, nothing readable, strict-mode failure)."""


@dataclass
class LoadStats:
    """Counts of one ``load()``; ``records_read == loaded + quarantined + duplicates + outside_window``."""

    files_found: int = 0
    files_pruned: int = 0  # skipped by --since/--until from the date in the path
    files_read: int = 0
    files_skipped: int = 0  # not event files (Actiontrail-Insight, README.md, ...)
    folders_pruned: int = 0  # object-storage date folders never listed (outside --since/--until)
    files_already_read: int = 0  # files a --state run read before (same key and ETag; path, size, mtime)
    records_read: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    outside_window: int = 0
    by_format: dict[str, int] = field(default_factory=dict)  # loaded rows per sourceFormat
    # Records kept although a text field held invalid UTF-8 (replaced by U+FFFD), per field.
    repaired: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadResult:
    events: pl.LazyFrame  # canonical, deduplicated, sorted by (eventTime, eventId); a lake: lake order
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    stats: LoadStats
    warnings: list[str] = field(default_factory=list)
    # read_key of each file read whose events all lie before `until` (local ones with track_read).
    objects: list[str] = field(default_factory=list)
    scanned: bool = False  # events is a lazy scan of Parquet files (a lake), not a frame in memory


@dataclass
class _Part:
    """What one file (or zip member) contributed, before the load-wide normalisation."""

    name: str
    fmt: str | None = None  # reader format (FORMATS); None when nothing was read
    # RAW_SCHEMA rows (canonical ones for "parquet"). Batched NDJSON files share one frame:
    # the first part of a batch holds it, the next ones None; `rows` says each part's share.
    raw: pl.DataFrame | None = None
    rows: int = -1
    locate: Callable[[list[int]], list[tuple[str, str]]] | None = None  # row -> (position, raw)
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (position, reason, raw)
    outside: int = 0  # Parquet rows the pushed-down time window left out
    file_records: int = 0  # records a "file" quarantine row stands for, when countable
    repaired: Counter = field(default_factory=Counter)  # see LoadStats.repaired

    def __post_init__(self) -> None:
        if self.rows < 0:
            self.rows = len(self.raw) if self.raw is not None else 0


# --------------------------------------------------------------------------- discovery
def read_key(file: Path | objects.RemoteFile) -> str:
    """What a ``--state`` remembers of a file it read in full: ``url#etag``, or a local file's
    absolute path with its size and modification time (a rewritten file is read again)."""
    if isinstance(file, objects.RemoteFile):
        return f"{file}#{file.etag}"
    st = os.stat(file)
    return f"{Path(file).resolve()}#{st.st_size}-{st.st_mtime_ns}"


def path_date(path: str) -> date | None:
    """The delivery day in a path (`YYYY/MM/DD` or `date=YYYY-MM-DD` folders), or None."""
    m = _DATE_HIVE.search(path)
    if m:
        return date.fromisoformat(m.group(1))
    m = _DATE_DIRS.search(path)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    return None


def _discover(
    sources: Sequence[str | Path],
    warnings: list[str],
    stats: LoadStats,
    problems: list[_Part],
    *,
    days: tuple[date | None, date | None] = (None, None),
    already_read: frozenset[str] = frozenset(),
) -> list:
    """Event files of all sources, sorted per source (the order decides duplicate winners).

    A folder that cannot be listed (permissions) becomes a warning and a ``file`` quarantine
    row in `problems`: its records are unknown, but the user must hear of it. Object-storage
    sources (``s3://``, ``oss://``) are listed with their date folders outside `days` pruned
    and without the objects in `already_read` (``url#etag``).
    """
    files: list = []

    def unreadable(exc: OSError) -> None:
        where = exc.filename or "?"
        problems.append(_file_problem(str(where), f"unreadable folder ({exc.strerror}): its files were not read"))
        warnings.append(f"{where}: unreadable folder ({exc.strerror}), skipped")

    for src in sources:
        if objects.is_remote(src):
            files.extend(_discover_remote(str(src), warnings, stats, days=days, already_read=already_read))
            continue
        p = Path(src)
        if not p.exists():
            raise InputError(f"no such file or directory: {src}")
        if p.is_file():
            files.append(p)
            continue
        lake_events = p / "events" if (p / "events").is_dir() else None
        root = lake_events if lake_events and any(lake_events.glob("acsRegion=*")) else p
        found, skipped, insight = [], 0, 0
        if (p / "AliyunLogs").is_dir():
            # An OSS bucket (or simulate output): events live under AliyunLogs only;
            # loose files beside it (labels.json, manifests) are not deliveries.
            root = p / "AliyunLogs"
            skipped += sum(1 for f in p.iterdir() if f.is_file())
        for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                f = Path(dirpath, name)
                if _INSIGHT_DIR in f.parts:
                    insight += 1
                elif name.startswith(".") or ".tmp-" in name or not name.lower().endswith(EVENT_SUFFIXES):
                    skipped += 1
                else:
                    found.append(f)
        stats.files_skipped += skipped + insight
        if insight:
            warnings.append(f"{src}: skipped {insight} file(s) under {_INSIGHT_DIR} (Insights, not management events)")
        if not found:
            warnings.append(f"{src}: no event files found")
        files.extend(sorted(found))
    if not files and not stats.files_already_read:
        why = f" ({problems[0].bad[0][1]}: {problems[0].name})" if problems else ""
        raise InputError(f"no event files found in {', '.join(map(str, sources))}{why}")
    return files


def _discover_remote(
    url: str, warnings: list[str], stats: LoadStats, *, days: tuple[date | None, date | None],
    already_read: frozenset[str],
) -> list[objects.RemoteFile]:
    """The local folder rules, applied to keys: a lake's ``events/``, an ``AliyunLogs/`` tree."""
    try:
        listing = objects.list_objects(
            url, first_day=days[0], last_day=days[1], skip_folder=lambda f: f"/{_INSIGHT_DIR}/" in f"/{f}"
        )
    except objects.StorageError as exc:
        raise InputError(str(exc)) from None
    stats.folders_pruned += listing.folders_pruned
    prefix = objects.parse(url).prefix
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    rel = {f: f.key[len(base):] if f.key.startswith(base) else f.name for f in listing.files}
    found = listing.files
    if any(r.startswith("events/acsRegion=") for r in rel.values()):
        found = [f for f in found if rel[f].startswith("events/acsRegion=")]
    elif any(r.startswith("AliyunLogs/") for r in rel.values()):
        found = [f for f in found if rel[f].startswith("AliyunLogs/")]
    kept = [f for f in found if not f.name.startswith(".") and ".tmp-" not in f.name
            and f.name.lower().endswith(EVENT_SUFFIXES)]  # fmt: skip
    stats.files_skipped += len(listing.files) - len(kept)
    fresh = [f for f in kept if f"{f}#{f.etag}" not in already_read]
    stats.files_already_read += len(kept) - len(fresh)
    if not kept:
        warnings.append(f"{url}: no event files found")
    return fresh


# --------------------------------------------------------------------------- per file
def _quarantine(name: str, rows: list[tuple[str, str, str]], file_records: int = 0) -> pl.DataFrame:
    cols = list(zip(*rows)) if rows else [[], [], []]
    records = [file_records if pos == "file" else 1 for pos in cols[0]] if rows else []
    return pl.DataFrame(
        {"sourceFile": [name] * len(rows), "position": list(cols[0]), "reason": list(cols[1]), "raw": list(cols[2]),
         "records": records},
        schema=QUARANTINE_SCHEMA,
    )  # fmt: skip


def _file_problem(name: str, reason: str, raw: str = "", records: int = 0) -> _Part:
    return _Part(name, bad=[("file", reason, raw)], file_records=records)


def _ndjson_locate(reload: Callable[[], bytes]):
    # Files are re-read only when one of their records is quarantined, so a load never
    # keeps decompressed bytes alive just in case.
    def locate(idx: list[int]) -> list[tuple[str, str]]:
        # Polars skips blank lines, so row k is the k-th non-blank physical line.
        lines = [(i, ln) for i, ln in enumerate(reload().split(b"\n"), 1) if ln.strip()]
        return [(f"line {lines[k][0]}", salvage.text(lines[k][1].strip())) for k in idx]

    return locate


def _kind(raw: pl.DataFrame, fmt: str) -> str:
    if fmt == "actiontrail":  # decided per file from the keys: eventID/awsRegion => CloudTrail
        if raw.get_column("eventID").null_count() < len(raw) or raw.get_column("awsRegion").null_count() < len(raw):
            return "cloudtrail"
    return fmt


def _with_kind(name: str, raw: pl.DataFrame, fmt: str, locate) -> _Part:
    return _Part(name, _kind(raw, fmt), raw, locate=locate)


def _fast(name: str, data: bytes, reload: Callable[[], bytes]) -> _Part:
    """Polars' own readers with explicit schemas; raises on anything they reject."""
    shape = salvage.sniff(data)
    buf = io.BytesIO(data)
    if shape == "array":
        return _with_kind(name, pl.read_json(buf, schema=RAW_SCHEMA), "actiontrail", salvage.document_locate(reload))
    if shape == "document":
        doc = pl.read_json(buf, schema=DOCUMENT_SCHEMA)
        records, events = doc.get_column("Records")[0], doc.get_column("Events")[0]
        if len(doc) != 1 or (records is None and events is None):
            raise ValueError("not a Records/Events document")
        fmt, rows = ("actiontrail", records) if records is not None else ("lookupevents", events)
        return _with_kind(name, rows.struct.unnest(), fmt, salvage.document_locate(reload))
    if shape == "sls":  # decoded per file, so a bad "event" string sends only this file to salvage
        return _Part(name, "sls", sls_to_raw(pl.read_ndjson(buf, schema=SLS_SCHEMA)), locate=_ndjson_locate(reload))
    return _with_kind(name, pl.read_ndjson(buf, schema=RAW_SCHEMA), "actiontrail", _ndjson_locate(reload))


def _read_objects(objs: list[dict], sls: bool) -> pl.DataFrame:
    data = "\n".join(json.dumps(o) for o in objs).encode()
    if sls:
        return sls_to_raw(pl.read_ndjson(io.BytesIO(data), schema=SLS_SCHEMA))
    return pl.read_ndjson(io.BytesIO(data), schema=RAW_SCHEMA)


def _salvaged(name: str, data: bytes, problem: str | None) -> list[_Part]:
    """Slow path for a file Polars rejected: record by record, quarantining exactly the bad ones."""
    found = salvage.split_records(data, problem)
    bad = list(found.bad)
    if not found.objects and len(bad) > 1 and all(b[1].startswith("invalid JSON") for b in bad):
        # Nothing in it is JSON: one file-level row says more than one row per line, and
        # it counts as the records (lines) it held.
        raw = salvage.text(data[:_RAW_FILE_CHARS])
        return [_file_problem(name, f"not JSON ({bad[0][1]} at {bad[0][0]})", raw, records=len(bad))]
    parts = [_Part(name, bad=bad, repaired=found.repaired)]
    for sls in (False, True):
        sel = [i for i, o in enumerate(found.objects) if salvage.is_sls(o) == sls]
        if not sel:
            continue
        fmt = "sls" if sls else ("lookupevents" if found.lookup else "actiontrail")
        try:
            groups = [(sel, _read_objects([found.objects[i] for i in sel], sls))]
        except Exception:  # noqa: BLE001 - a record check_record missed: read one by one
            groups = []
            for i in sel:
                try:
                    groups.append(([i], _read_objects([found.objects[i]], sls)))
                except Exception as exc:  # noqa: BLE001
                    parts[0].bad.append((found.positions[i], _first_line(exc), found.raws[i]))
        for rows, raw in groups:
            where = [(found.positions[i], found.raws[i]) for i in rows]
            parts.append(_with_kind(name, raw, fmt, lambda idx, where=where: [where[k] for k in idx]))
    return parts


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _read_blob(name: str, blob: bytes, reload: Callable[[], bytes], limit: int) -> list[_Part]:
    if name.lower().endswith((".csv", ".tsv")):
        head = blob.split(b"\n", 1)[0][:200]
        why = f"CSV file, not CloudTrail/ActionTrail JSON (header: {salvage.text(head).strip()})"
        return [_file_problem(name, why, salvage.text(blob[:_RAW_FILE_CHARS]))]
    opened = _decompressed(name, blob, limit)
    if isinstance(opened, _Part):
        return [opened]
    return _read_data(name, *opened, reload)


def _decompressed(name: str, blob: bytes, limit: int) -> tuple[bytes, str | None] | _Part:
    """``salvage.decompress`` of a file, or its ``file`` problem when it is over `limit`."""
    try:
        return salvage.decompress(blob, limit)
    except salvage.TooLarge as exc:
        return _file_problem(name, str(exc))


def _read_data(name: str, data: bytes, problem: str | None, reload: Callable[[], bytes]) -> list[_Part]:
    if not data.strip():
        return [_file_problem(name, f"{problem}: nothing recovered" if problem else "empty file", "")]
    if problem is None:
        try:
            return [_fast(name, data, reload)]
        except Exception:  # noqa: BLE001 - any rejection by Polars sends the file to salvage
            pass
    return _salvaged(name, data, problem)


def _read_zip(name: str, blob: bytes, limit: int, source: Path | objects.RemoteFile | None = None) -> list[_Part]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
        members = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename)
    except zipfile.BadZipFile as exc:
        return [_file_problem(name, f"unreadable zip ({exc})")]
    parts = []
    for info in members:
        base = info.filename.rsplit("/", 1)[-1]
        if base.startswith(".") or info.filename.startswith("__MACOSX/"):
            continue
        member = f"{name}!{info.filename}"
        if not base.lower().endswith(EVENT_SUFFIXES + (".csv", ".tsv", ".txt")):
            continue
        if info.file_size > limit:  # zipfile never reads past the declared size
            parts.append(_file_problem(member, str(salvage.TooLarge(limit))))
            continue
        reload = partial(_zip_member, source or Path(name), info.filename, limit)
        parts.extend(_read_blob(member, zf.read(info), reload, limit))
    if not parts:
        return [_file_problem(name, "zip holds no event files")]
    return parts


def _zip_member(source: Path | objects.RemoteFile, member: str, limit: int) -> bytes:
    with zipfile.ZipFile(io.BytesIO(source.read_bytes())) as zf:
        return salvage.decompress(zf.read(member), limit)[0]


def _reload(path: Path | objects.RemoteFile, limit: int) -> bytes:
    return salvage.decompress(path.read_bytes(), limit)[0]


def _read_bytes(path: Path, limit: int) -> bytes | _Part:
    """The file's bytes, or a ``file`` problem if it cannot be read or is over `limit`."""
    try:
        if path.stat().st_size > limit:
            return _file_problem(str(path), f"file larger than {limit >> 20} MiB (the per-file limit): not read")
        return path.read_bytes()
    except OSError as exc:
        return _file_problem(str(path), f"unreadable file ({exc.strerror})")


_PARTITION = re.compile(r"acsRegion=[^/]*/date=[^/]*/")


def _partition_key(path) -> str | None:
    """The lake partition (``acsRegion=R/date=D/``) a part file belongs to, or None."""
    found = _PARTITION.search(path.as_posix())
    return found.group(0) if found else None


def _distinct_ids(files: list, window: pl.Expr | None) -> tuple[int, int]:
    """(rows in the window, distinct eventId hashes among them) over ``files``."""
    counts = _kept(files, window).select(pl.len().alias("n"), pl.col("eventId").hash().n_unique().alias("u"))
    return counts.collect().row(0)


def _load_parquet_lazily(files: list[Path], window: pl.Expr | None, stats: LoadStats) -> pl.LazyFrame | None:
    """A lake stays a lazy scan, so detectors decode only the columns and rows they use.

    Only the eventId and eventTime columns are read here (for the accounting). Returns None
    (the caller then reads file by file, with per-file quarantine) when a file is unreadable
    or a partition holds duplicate eventIds, e.g. two overlapping lakes.

    A re-delivered event keeps its time and region, so its copies share a (region, date)
    partition: ids are checked partition by partition (the same partition of two sources
    together), which bounds the check's memory by the largest partition, not the lake's
    size. Part files outside the lake layout are checked all together.
    """
    groups: dict[str | None, list] = {}
    for f in files:
        groups.setdefault(_partition_key(f), []).append(f)
    try:
        total = _scan_files(files).select(pl.len()).collect().item()
        n = 0
        for group in groups.values():
            # Distinct 64-bit hashes prove distinct ids, at half the cost of hashing the strings
            # into a set; a collision (or a real duplicate) only sends us down the exact path.
            rows, unique = _distinct_ids(group, window)
            if rows != unique:
                return None
            n += rows
    except Exception:  # noqa: BLE001
        return None
    stats.files_read = len(files)
    stats.records_read = total
    stats.outside_window = total - n
    stats.loaded = n
    stats.by_format = {"parquet": n} if n else {}
    # Not sorted here: a global sort would materialise every column of the whole lake. Rows
    # come in lake order (partition, then eventTime, eventId), which is deterministic.
    return _as_loaded(_kept(files, window))


def _in_days(files: list, lo: date | None, hi: date | None) -> list:
    """Files whose date folder (if any) lies in ``[lo, hi]``."""
    def inside(f) -> bool:
        d = path_date(f.as_posix())
        return d is None or not ((lo and d < lo) or (hi and d > hi))

    return [f for f in files if inside(f)]


def _scan_files(files: list) -> pl.LazyFrame:
    if any(isinstance(f, objects.RemoteFile) for f in files):
        urls, options = objects.polars_scan_args(files)
        return conform(pl.scan_parquet(urls, storage_options=options, missing_columns="insert", extra_columns="ignore"))
    return conform(pl.scan_parquet([str(f) for f in files], missing_columns="insert", extra_columns="ignore"))


def _kept(files: list, window: pl.Expr | None) -> pl.LazyFrame:
    scan = _scan_files(files)
    return scan.filter(window) if window is not None else scan


def _as_loaded(scan: pl.LazyFrame) -> pl.LazyFrame:
    return scan.with_columns(pl.col("sourceFormat").fill_null("parquet"))


def scan_lake(
    sources: Sequence[str | Path], *, since: datetime | None = None, until: datetime | None = None
) -> pl.LazyFrame:
    """The rows :func:`load` gives for a Parquet lake, as a lazy scan, without its accounting.

    For an engine's workers: the driver's :func:`load` already counted and checked the lake
    (and found it duplicate-free), so a task only needs the same rows in the same order, not
    another pass over every eventId. Raises :class:`InputError` if a source is not a lake.
    """
    since, until = _utc(since), _utc(until)
    stats, warnings, problems = LoadStats(), [], []
    lo = since.date() if since else None
    hi = until.date() + timedelta(days=1) if until else None
    files = _discover(sources, warnings, stats, problems, days=(lo, hi))
    files = _in_days(files, lo, hi)
    if problems or not files or not all(f.suffix.lower() == ".parquet" for f in files):
        raise InputError(f"not a Parquet lake: {', '.join(map(str, sources))}")
    return _as_loaded(_kept(files, _window(since, until)))


def _read_parquet(path: Path | objects.RemoteFile, window: pl.Expr | None) -> _Part:
    name = str(path)
    try:
        if isinstance(path, objects.RemoteFile):
            lf = conform(pl.read_parquet(io.BytesIO(path.read_bytes())).lazy())
        else:
            lf = conform(pl.scan_parquet(path))
        total = lf.select(pl.len()).collect().item()  # from the footer, no data read
        # The window is pushed into the scan: row groups outside it are never decoded.
        df = (lf.filter(window) if window is not None else lf).collect()
    except Exception as exc:  # noqa: BLE001
        return _file_problem(name, f"not an insights-kit events Parquet file ({_first_line(exc)})")
    # Lake rows keep their provenance (sourceFormat/sourceFile of the original delivery).
    df = df.with_columns(pl.col("sourceFormat").fill_null("parquet"), pl.col("sourceFile").fill_null(name))
    return _Part(name, "parquet", df, outside=total - len(df))


def _read_path(path: Path, window: pl.Expr | None, limit: int) -> list[_Part]:
    if path.suffix.lower() == ".parquet":
        return [_read_parquet(path, window)]
    blob = _read_bytes(path, limit)
    if isinstance(blob, _Part):
        return [blob]
    if blob[:4] == b"PK\x03\x04":
        return _read_zip(str(path), blob, limit, path)
    if blob[:4] == b"PAR1":
        return [_read_parquet(path, window)]
    return _read_blob(str(path), blob, partial(_reload, path, limit), limit)


_BATCH_BYTES = 64 << 20
_RAW_FILE_CHARS = 1 << 20  # a file-level quarantine row keeps this much of the file


def _read_chunk(paths: list[Path], window: pl.Expr | None, limit: int) -> list[_Part]:
    """Read consecutive files; plain JSON Lines files are parsed in one Polars call per batch.

    Delivery files are small (one per region and ~5 minutes), so one ``read_ndjson`` per
    file is dominated by per-call overhead. Consecutive NDJSON files are concatenated and
    read at once; each file's share of rows is its line count. If the batch read fails or
    the row count does not add up (blank lines), the batch falls back to per-file reads.
    """
    out: list[_Part] = []
    pending: list[tuple[str, bytes, int, Callable[[], bytes]]] = []

    def flush() -> None:
        if not pending:
            return
        frame = None
        if len(pending) > 1:
            try:
                frame = pl.read_ndjson(io.BytesIO(b"".join(p[1] for p in pending)), schema=RAW_SCHEMA)
            except Exception:  # noqa: BLE001 - some file in it is bad: per file below
                frame = None
            if frame is not None and len(frame) != sum(p[2] for p in pending):
                frame = None
        if frame is None:
            for name, data, _, reload in pending:
                out.extend(_read_data(name, data, None, reload))
        else:
            offset = 0
            for k, (name, _, n, reload) in enumerate(pending):
                fmt = _kind(frame.slice(offset, n), "actiontrail")
                out.append(_Part(name, fmt, frame if k == 0 else None, n, _ndjson_locate(reload)))
                offset += n
        pending.clear()

    size = 0
    for path in paths:
        if path.suffix.lower() in (".parquet", ".zip", ".csv", ".tsv"):
            flush()
            out.extend(_read_path(path, window, limit))
            continue
        blob = _read_bytes(path, limit)
        if isinstance(blob, _Part):
            out.append(blob)
            continue
        if blob[:4] in (b"PK\x03\x04", b"PAR1"):
            flush()
            out.extend(_read_path(path, window, limit))
            continue
        opened = _decompressed(str(path), blob, limit)
        if isinstance(opened, _Part):
            out.append(opened)
            continue
        data, problem = opened
        del blob  # a 9 MB gzip of 500 MB must not be held twice
        reload = partial(_reload, path, limit)
        if problem is None and data.strip() and salvage.sniff(data) == "ndjson":
            if not data.endswith(b"\n"):
                data += b"\n"
            pending.append((str(path), data, data.count(b"\n"), reload))
            size += len(data)
            if size >= _BATCH_BYTES:
                flush()
                size = 0
        else:
            flush()
            out.extend(_read_data(str(path), data, problem, reload))
    flush()
    return out


# --------------------------------------------------------------------------- load
def _assemble(parts: list[_Part]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Normalise all files' raw rows in one pass; return (events in file order, quarantine).

    Events carry a helper column ``_fmt`` (the reader format, for ``by_format``).
    """
    names = pl.Series([p.name for p in parts], dtype=pl.String)
    fmts = pl.Series([p.fmt or "" for p in parts], dtype=pl.String)
    raw_ids = [i for i, p in enumerate(parts) if p.rows and p.fmt != "parquet"]
    pq_ids = [i for i, p in enumerate(parts) if p.rows and p.fmt == "parquet"]

    def stacked(ids: list[int]) -> pl.DataFrame:
        lengths = np.array([parts[i].rows for i in ids], dtype=np.int64)
        file_ix = np.repeat(np.array(ids, dtype=np.uint32), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        frames = [parts[i].raw for i in ids if parts[i].raw is not None]
        frame = pl.concat(frames, how="vertical", rechunk=False)
        if frame.n_chunks() > 64:  # many small files: string kernels pay per chunk
            frame = frame.rechunk()
        return frame.with_columns(
            pl.Series("_file", file_ix), pl.Series("_row", (np.arange(len(file_ix)) - starts).astype(np.uint32))
        )

    frames = [stacked(raw_ids)] if raw_ids else []
    bad_rows: list[tuple[int, pl.DataFrame]] = []
    good: list[pl.DataFrame] = []
    if frames:
        raw = pl.concat(frames, how="vertical")
        ct = pl.Series([p.fmt == "cloudtrail" for p in parts], dtype=pl.Boolean)
        now = datetime.now(timezone.utc)
        latest = pl.Series([_latest_event_time(p.name, now) for p in parts], dtype=UTC_DATETIME)
        file_col = raw.get_column("_file")
        norm = normalize(raw.with_columns(ct.gather(file_col).alias("_ct"), latest.gather(file_col).alias("_latest"))).collect()
        is_bad = norm.get_column("_reason").is_not_null()
        if is_bad.any():
            bad = norm.filter(is_bad).select("_file", "_row", "_reason")
            for (f,), grp in bad.group_by("_file", maintain_order=True):
                where = parts[f].locate(grp.get_column("_row").to_list())
                rows = [(pos, why, txt) for (pos, txt), why in zip(where, grp.get_column("_reason").to_list())]
                bad_rows.append((f, _quarantine(parts[f].name, rows)))
            norm = norm.filter(~is_bad)
        good.append(norm.drop("_reason", "_row"))
    for i in pq_ids:
        good.append(parts[i].raw.with_columns(pl.lit(i, pl.UInt32).alias("_file")))
    if good:
        events = pl.concat(good, how="diagonal") if len(good) > 1 else good[0]
        if len(good) > 1:
            events = events.sort("_file", maintain_order=True)  # back to sorted file order
        file_ix = events.get_column("_file")
        given = set(events.columns)
        # Parquet rows keep the stored provenance; JSON rows get their file's name/format.
        events = events.with_columns(
            (pl.coalesce(pl.col(col), fill) if col in given else fill).alias(col)
            for col, fill in (("sourceFile", names.gather(file_ix)), ("sourceFormat", fmts.gather(file_ix)))
        )
        events = events.select(*EVENT_COLUMNS, fmts.gather(file_ix).alias("_fmt"))
    else:
        events = empty_events().with_columns(pl.lit(None, pl.String).alias("_fmt"))
    bad_rows += [(i, _quarantine(p.name, p.bad, p.file_records)) for i, p in enumerate(parts) if p.bad]
    if not bad_rows:
        return events, pl.DataFrame(schema=QUARANTINE_SCHEMA)
    # File order, then position order inside a file ("file" rows first); a salvaged file
    # has several parts, all sorted under the first.
    first_part: dict[str, int] = {}
    for i, p in enumerate(parts):
        first_part.setdefault(p.name, i)
    quarantine = (
        pl.concat([q.with_columns(pl.lit(first_part[parts[i].name], pl.UInt32).alias("_file")) for i, q in bad_rows])
        .with_columns(pl.col("position").str.extract(r"(\d+)$").cast(pl.Int64).fill_null(-1).alias("_pos"))
        .sort("_file", "_pos", maintain_order=True)
        .drop("_file", "_pos")
    )
    return events, quarantine


#: How far past its file's delivery day (or past now) an event may be before it is "from the
#: future": a clock that is off by minutes is tolerated; a year-2099 event is not.
FUTURE_TOLERANCE = timedelta(hours=1)


def _latest_event_time(name: str, now: datetime) -> datetime:
    """The latest plausible eventTime in a file: the end of its date folder's UTC day (ActionTrail
    and CloudTrail folders are delivery dates), and never later than ``now``, plus the tolerance."""
    day = path_date(name)
    if day is None or day >= now.date():  # a folder dated 9999/12/31 says nothing either
        return now + FUTURE_TOLERANCE
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1) + FUTURE_TOLERANCE


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None or ts.tzinfo is not None:
        return ts.astimezone(timezone.utc) if ts is not None else None
    return ts.replace(tzinfo=timezone.utc)  # naive means UTC


def _window(since: datetime | None, until: datetime | None) -> pl.Expr | None:
    conds = []
    if since is not None:
        conds.append(pl.col("eventTime") >= since)
    if until is not None:
        conds.append(pl.col("eventTime") < until)
    return pl.all_horizontal(conds) if conds else None


def load(
    sources: Sequence[str | Path],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    strict: bool = False,
    progress: bool | None = None,
    max_file_bytes: int = salvage.MAX_FILE_BYTES,
    list_since: datetime | None = None,
    already_read: Sequence[str] = (),
    track_read: bool = False,
) -> LoadResult:
    """Read management events from files, folders, zips and Parquet lakes.

    Parameters
    ----------
    sources
        Files or directories (walked recursively; ``Actiontrail-Insight`` folders and
        non-event files are skipped). Files are read in sorted path order per source,
        which decides which copy of a duplicated ``eventId`` wins (the first).
    since, until
        Keep events with ``since <= eventTime < until`` (naive = UTC). Files in a dated
        folder (``.../YYYY/MM/DD/...`` or ``date=YYYY-MM-DD``) outside
        ``[since.date(), until.date() + 1 day]`` are never opened (a late delivery of an
        event from just before ``until`` is filed in the next day's folder).
    strict
        Raise :class:`InputError` naming the first problem if anything was quarantined.
    progress
        Show a progress bar over files; None = only when stderr is a terminal.
    max_file_bytes
        Cap on one file's (or zip member's) decompressed size; a file past it is
        quarantined unread (a decompression bomb costs at most this much memory).
    list_since
        Object storage only: list date folders from this day on (default: ``since``'s); a
        ``--state`` run lists from its watermark, not from the oldest event it keeps.
    already_read
        :func:`read_key` of the files read in full before (``LoadResult.objects`` of earlier
        runs: ``url#etag``, or a local path with size and mtime); they are neither read nor
        counted again (``files_already_read``).
    track_read
        Return the :func:`read_key` of every local file read in full too (a ``--state`` run
        remembers them); objects' keys are always returned.

    Returns
    -------
    LoadResult
        ``events`` (canonical LazyFrame, deduplicated on eventId, sorted by
        ``eventTime, eventId``), ``quarantine``, ``stats``, ``warnings``.

    Examples
    --------
    >>> res = load(["logs/AliyunLogs/Actiontrail"], since=datetime(2025, 3, 1))  # doctest: +SKIP
    >>> res.stats.records_read == (res.stats.loaded + res.stats.quarantined
    ...     + res.stats.duplicates + res.stats.outside_window)  # doctest: +SKIP
    True
    """
    since, until = _utc(since), _utc(until)
    stats, warnings = LoadStats(), []
    problems: list[_Part] = []
    list_since = _utc(list_since) or since
    lo = since.date() if since else None
    # Folders are dated by delivery: an event just before `until` may sit in the next day's folder.
    hi = until.date() + timedelta(days=1) if until else None
    listed_days = (list_since.date() if list_since else lo, hi)
    files = _discover(sources, warnings, stats, problems, days=listed_days, already_read=frozenset(already_read))
    stats.files_found = len(files)
    if lo or hi:
        kept = _in_days(files, lo, hi)
        stats.files_pruned = len(files) - len(kept)
        files = kept
    # Keys are taken before reading: a file that grows while it is read gets a new key, and is
    # read again next time rather than remembered as read in full.
    keys = {str(f): read_key(f) for f in files} if track_read or already_read else {}
    key_of = lambda f: keys.get(str(f)) or read_key(f)  # noqa: E731 - objects' keys cost nothing
    if already_read:  # local files a --state run read in full before (objects were left out when listed)
        known = frozenset(already_read)
        unread = [f for f in files if isinstance(f, objects.RemoteFile) or keys[str(f)] not in known]
        stats.files_already_read += len(files) - len(unread)
        files = unread
    window = _window(since, until)
    remote = [f for f in files if isinstance(f, objects.RemoteFile)]
    if files and not problems and all(f.suffix.lower() == ".parquet" for f in files):
        lazy = _load_parquet_lazily(files, window, stats)
        if lazy is not None:
            # A lake's files are complete when their date partition ends by `until`.
            complete = [key_of(f) for f in (files if track_read else remote) if until is None
                        or ((d := path_date(f.key if isinstance(f, objects.RemoteFile) else str(f))) is not None
                            and d + timedelta(days=1) <= until.date())]
            return LoadResult(lazy, pl.DataFrame(schema=QUARANTINE_SCHEMA), stats, warnings, complete, True)

    parts: list[_Part] = list(problems)
    # Objects are fetched over the network: more requests in flight than cores.
    workers = objects.CONCURRENCY if remote else min(8, os.cpu_count() or 1)
    # Contiguous chunks keep sorted file order (duplicate winners) and let NDJSON batch up.
    size = max(1, min(512, -(-len(files) // (workers * 4))))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    bar = tqdm(total=len(files), desc="reading", unit="file", disable=None if progress is None else not progress)
    with ThreadPoolExecutor(max_workers=workers) as pool, bar:
        # Polars and zlib release the GIL, so chunks are parsed side by side; map keeps order.
        for chunk, res in zip(chunks, pool.map(lambda c: _read_chunk(c, window, max_file_bytes), chunks)):
            parts.extend(res)
            bar.update(len(chunk))
    stats.files_read = len(files)

    events, quarantine = _assemble(parts)
    pre_outside = sum(p.outside for p in parts)
    stats.quarantined = int(quarantine.get_column("records").sum())
    repaired = sum((p.repaired for p in parts), Counter())
    stats.repaired = dict(sorted(repaired.items()))
    stats.records_read = len(events) + stats.quarantined + pre_outside
    # Files with no event at or after `until` are complete: a later run need not read them
    # again. The others hold events this window left out.
    beyond = set() if until is None else set(
        events.filter(pl.col("eventTime") >= until).get_column("sourceFile").str.replace(r"!.*$", "").unique()
    )
    read_objects = [key_of(f) for f in (files if track_read else remote) if str(f) not in beyond]
    before = len(events)
    if window is not None:
        events = events.filter(window)
    stats.outside_window = before - len(events) + pre_outside
    before = len(events)
    # Rows are in sorted file order here, so keep="first" is the documented winner.
    events = events.unique(subset="eventId", keep="first", maintain_order=True)
    stats.duplicates = before - len(events)
    events = events.sort("eventTime", "eventId")
    stats.loaded = len(events)
    if len(events):
        stats.by_format = dict(sorted(events.group_by("_fmt").len().iter_rows()))
    events = events.drop("_fmt")

    if repaired:
        fields = ", ".join(f"{k}: {v}" for k, v in stats.repaired.items())
        warnings.append(f"invalid UTF-8 replaced by U+FFFD and the events kept ({fields})")
    if len(quarantine):
        first = quarantine.row(0, named=True)
        msg = f"{stats.quarantined} record(s) quarantined; first: {first['sourceFile']} {first['position']}: {first['reason']}"
        if strict:
            raise InputError(msg)
        warnings.append(msg)
    return LoadResult(events.lazy(), quarantine, stats, warnings, read_objects)
