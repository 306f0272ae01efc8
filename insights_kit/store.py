"""The Insights store: write, read, query and count ActionTrail Insights events.

Layout (``docs/design.md``, "Store layout"), mirroring the OSS Insights delivery path::

    OUT/AliyunLogs/Actiontrail-Insight/<region>/<YYYY>/<MM>/<DD>/insights_<region>_<YYYYMMDD>.jsonl

One Insights event per line, as compact JSON with sorted keys, lines sorted by
``(eventTime, eventId)``. The day is the UTC date of the event's ``eventTime`` (a Start and its
End can live in different day files). Writes merge into existing day files, deduplicate on
``eventId`` (the event already in the store wins, so re-running a detection never rewrites
history) and replace each file atomically; writing the same events twice gives the same bytes.

Queries follow ActionTrail's console and ``LookupInsightEvents``: exact, case-sensitive filters,
ANDed, one optional value per key, over a time window. The issue asks for a 30-day default
window. **Decision**: the window ends at ``now``, and ``now`` defaults to the newest
``eventTime`` in the store rather than the wall clock, so an archived store (or a simulator run
dated in the past) stays queryable without passing dates; pass ``now=`` or ``until=`` for the
console's wall-clock behaviour.

Examples
--------
>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> ev = {"eventId": "E1", "eventTime": "2025-03-04T08:15:00Z", "acsRegion": "cn-hangzhou",
...       "recipientAccountId": "1", "sharedEventId": "S1",
...       "insightDetails": {"state": "Start", "insightType": "IpInsight", "insightObject": "203.0.113.9"}}
>>> [p.name for p in write_events(out, [ev])]
['insights_cn-hangzhou_20250304.jsonl']
>>> query(out, ip="203.0.113.9")["eventId"].to_list()
['E1']
>>> counts(out).rows()
[('cn-hangzhou', 'IpInsight', 1)]
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import polars as pl

from insights_kit.regions import analysis_events, choose_home_region, in_analysis_region, summary_home
from insights_kit.schema import UTC_DATETIME, check_region

#: Where Insights events live below the output directory (the OSS delivery prefix).
INSIGHT_PREFIX = ("AliyunLogs", "Actiontrail-Insight")

#: Region names become path components, so only this alphabet is accepted.

#: The console and the issue: Insights are looked at over the last 30 days by default.
DEFAULT_WINDOW = timedelta(days=30)

#: One row per Insights event (see :func:`read_events`).
STORE_SCHEMA: dict[str, pl.DataType] = {
    "eventId": pl.String(),
    "eventTime": UTC_DATETIME,
    "acsRegion": pl.String(),
    "recipientAccountId": pl.String(),
    "sharedEventId": pl.String(),
    "state": pl.String(),
    "insightType": pl.String(),
    "insightObject": pl.String(),
    "serviceName": pl.String(),
    "eventSource": pl.String(),
    "eventName": pl.String(),
    "errorCode": pl.String(),
    "sourceIpAddress": pl.String(),
    "baselineAverage": pl.Float64(),
    "insightAverage": pl.Float64(),
    "insightDuration": pl.Int64(),
    "baselineDuration": pl.Int64(),
    "insightCount": pl.Int64(),
    "score": pl.Float64(),
    "raw": pl.String(),
}

#: Columns of the human-readable table (``format_table(..., "table")``).
TABLE_COLUMNS = (
    "eventTime",
    "acsRegion",
    "insightType",
    "state",
    "insightObject",
    "insightCount",
    "score",
    "eventId",
)

#: Columns of :func:`counts`, named as in GetInsightsEventsCount's ``Data`` items.
COUNT_SCHEMA: dict[str, pl.DataType] = {"RegionId": pl.String(), "InsightType": pl.String(), "Count": pl.Int64()}


# --------------------------------------------------------------------------- time helpers


def _parse_time(value: Any, *, end_of_day: bool = False) -> datetime:
    """A UTC datetime from a datetime, a date or ISO text; naive values are taken as UTC.

    A bare date (``2025-03-04``) means the start of that day, or its last microsecond when
    ``end_of_day`` (so ``until=2025-03-04`` includes the whole day, as a user expects).
    """
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, date):
        ts = datetime.combine(value, time.max if end_of_day else time.min)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return _parse_time(date.fromisoformat(text), end_of_day=end_of_day)
        try:
            ts = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"unparsable time {value!r}") from None
    else:
        raise ValueError(f"unparsable time {value!r}")
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- writing


def _insight_root(store: str | Path) -> Path:
    """``OUT/AliyunLogs/Actiontrail-Insight`` for an output directory, or the path itself
    when it already is that folder (users paste either)."""
    path = Path(store)
    if path.name == INSIGHT_PREFIX[-1]:
        return path
    return path.joinpath(*INSIGHT_PREFIX)


def day_file(out: str | Path, region: str, day: date) -> Path:
    """The store file of one region and UTC day.

    Examples
    --------
    >>> day_file("out", "cn-hangzhou", date(2025, 3, 4)).as_posix()
    'out/AliyunLogs/Actiontrail-Insight/cn-hangzhou/2025/03/04/insights_cn-hangzhou_20250304.jsonl'
    """
    check_region(region)
    return (
        Path(out).joinpath(*INSIGHT_PREFIX)
        / region
        / f"{day:%Y}"
        / f"{day:%m}"
        / f"{day:%d}"
        / f"insights_{region}_{day:%Y%m%d}.jsonl"
    )


def _dumps(event: dict) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _atomic_write(path: Path, text: str) -> None:
    # Readers (query, report) may run while detect writes: they must see the old file or the
    # new one, never half of it.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _event_key(event: dict, where: str) -> tuple[str, datetime, str]:
    """(region, eventTime, eventId) of an event, validated; ``where`` names it in errors."""
    event_id = event.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError(f"{where}: missing eventId")
    region = event.get("acsRegion")
    try:
        check_region(region)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if "eventTime" not in event:
        raise ValueError(f"{where}: missing eventTime")
    try:
        ts = _parse_time(event["eventTime"])
    except ValueError:
        raise ValueError(f"{where}: unparsable eventTime {event['eventTime']!r}") from None
    return region, ts, event_id


def _read_lines(path: Path) -> list[tuple[int, str, dict]]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            text = line.rstrip("\n")
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
            if not isinstance(event, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            out.append((number, text, event))
    return out


def write_events(out: str | Path, events: Iterable[dict]) -> list[Path]:
    """Merge Insights events into the store under ``out``; the day files touched.

    Every event is validated before any file is written, so a bad event (no ``eventId``,
    an unparsable ``eventTime``, a region outside ``[a-z0-9-]+``) raises ``ValueError`` and
    leaves the store as it was. Per day file: existing events are kept, new ``eventId`` values
    added (first occurrence wins), lines sorted by ``(eventTime, eventId)`` and the file
    replaced atomically (``name.tmp-<pid>`` then ``os.replace``). A file whose bytes would not
    change is left alone.

    Parameters
    ----------
    out
        The output directory (``OUT``); the events go below ``OUT/AliyunLogs/Actiontrail-Insight``.
    events
        Insights events as dicts in the design-doc layout.

    Returns
    -------
    list of Path
        The day files the events belong to, sorted.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> ev = {"eventId": "E1", "eventTime": "2025-03-04T23:59:00Z", "acsRegion": "cn-beijing"}
    >>> write_events(out, [ev, ev])[0].read_text().count("\\n")
    1
    """
    by_file: dict[Path, dict[str, tuple[datetime, dict]]] = {}
    for position, event in enumerate(events):
        if not isinstance(event, dict):
            raise ValueError(f"event {position}: expected a dict, got {type(event).__name__}")
        region, ts, event_id = _event_key(event, f"event {position} ({event.get('eventId')!r})")
        bucket = by_file.setdefault(day_file(out, region, ts.date()), {})
        bucket.setdefault(event_id, (ts, event))

    for path, new in sorted(by_file.items()):
        merged: dict[str, tuple[datetime, dict]] = {}
        if path.exists():
            for number, _text, event in _read_lines(path):
                _region, ts, event_id = _event_key(event, f"{path}:{number}")
                merged.setdefault(event_id, (ts, event))
        for event_id, item in new.items():
            merged.setdefault(event_id, item)
        ordered = sorted(merged.items(), key=lambda kv: (kv[1][0], kv[0]))
        text = "".join(_dumps(event) + "\n" for _id, (_ts, event) in ordered)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        _atomic_write(path, text)
    return sorted(by_file)


# --------------------------------------------------------------------------- reading


def _number(value: Any, kind: type) -> float | int | None:
    if isinstance(value, dict):  # AWS-style {"average": x} (the design decision)
        value = value.get("average")
    if isinstance(value, bool) or value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _row(event: dict, raw: str, where: str) -> tuple:
    _region, ts, event_id = _event_key(event, where)
    details = event.get("insightDetails") if isinstance(event.get("insightDetails"), dict) else {}
    context = details.get("insightContext") if isinstance(details.get("insightContext"), dict) else {}
    stats = context.get("statistics") if isinstance(context.get("statistics"), dict) else {}
    model = context.get("model") if isinstance(context.get("model"), dict) else {}
    kind = _text(details.get("insightType"))
    obj = _text(details.get("insightObject"))
    # IpInsight's address is its object; the old format also had insightDetails.sourceIpAddress.
    ip = _text(details.get("sourceIpAddress")) or (obj if kind == "IpInsight" else None)
    return (
        event_id,
        ts,
        event["acsRegion"],
        _text(event.get("recipientAccountId")),
        _text(event.get("sharedEventId")),
        _text(details.get("state")),
        kind,
        obj,
        _text(details.get("serviceName")),
        _text(details.get("eventSource")),
        _text(details.get("eventName")),
        _text(details.get("errorCode")),
        ip,
        _number(stats.get("baseline"), float),
        _number(stats.get("insight"), float),
        _number(stats.get("insightDuration"), int),
        _number(stats.get("baselineDuration"), int),
        _number(stats.get("insightCount"), int),
        # rate models report a pValue instead; only the score-based types have a score
        None if kind in ("ApiCallRateInsight", "ApiErrorRateInsight") else _number(model.get("score"), float),
        raw,
    )


def store_files(store: str | Path) -> list[Path]:
    """The day files of a store (an output directory, its Actiontrail-Insight folder, or one
    ``.jsonl`` file), sorted. Temporary ``*.tmp-<pid>`` files of a running writer are skipped."""
    path = Path(store)
    if path.is_file():
        return [path]
    root = _insight_root(path)
    if not root.is_dir():
        return []
    return sorted(root.glob("*/[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/insights_*.jsonl"))


def empty_store() -> pl.DataFrame:
    """An empty frame with :data:`STORE_SCHEMA`."""
    return pl.DataFrame(schema=STORE_SCHEMA)


def read_events(store: str | Path) -> pl.DataFrame:
    """All Insights events of a store as a flat table, one row per event.

    Columns are :data:`STORE_SCHEMA`: ids, ``eventTime`` (UTC), region, account, the
    ``insightDetails`` keys, the statistics (``baselineAverage``/``insightAverage`` read from
    ``{"average": x}`` or a plain number), ``score`` (``insightContext.model.score``:
    IpInsight's heterogeneity, the change models' evidence sum, 1.0 for AkInsight's first use
    and a destructive trail call; null for the rate models, which report a ``pValue``) and ``raw``, the event's JSON text as stored. Rows are
    sorted by ``(eventTime, eventId)``, unique on ``eventId``. A missing or empty store gives an
    empty frame with the same schema; a corrupt line raises ``ValueError`` naming file and line.

    Examples
    --------
    >>> read_events("/nonexistent").columns[:3]
    ['eventId', 'eventTime', 'acsRegion']
    """
    rows = [
        _row(event, text, f"{path}:{number}")
        for path in store_files(store)
        for number, text, event in _read_lines(path)
    ]
    return _frame(rows)


def events_frame(events: Iterable[dict]) -> pl.DataFrame:
    """In-memory Insights events (e.g. from ``detect.detect_frame``) as :func:`read_events`' table.

    ``raw`` is the JSON text :func:`write_events` would store.
    """
    return _frame([_row(event, _dumps(event), f"event {i}") for i, event in enumerate(events)])


def _frame(rows: list[tuple]) -> pl.DataFrame:
    if not rows:
        return empty_store()
    frame = pl.DataFrame(rows, schema=STORE_SCHEMA, orient="row")
    return frame.unique("eventId", keep="first", maintain_order=True).sort(["eventTime", "eventId"])


def home_region(store: str | Path) -> str | dict[str, str] | None:
    """The home region the store's last detect run used (its ``summary.json``), if known: one
    region, or one per account when an organisation's accounts differ."""
    summary = Path(store) / "summary.json"
    if not summary.is_file():
        return None
    return summary_home(json.loads(summary.read_text()))


# --------------------------------------------------------------------------- querying


def _window(
    frame: pl.DataFrame, *, since: Any, until: Any, now: Any
) -> tuple[datetime | None, datetime | None]:
    """The inclusive [since, until] window; see the module docstring for the defaults."""
    if until is not None:
        end = _parse_time(until, end_of_day=True)
    elif now is not None:
        end = _parse_time(now)
    elif frame.height:
        end = frame["eventTime"].max()
    else:
        end = datetime.now(timezone.utc)
    start = _parse_time(since) if since is not None else end - DEFAULT_WINDOW
    return start, end


def _filter_window(frame: pl.DataFrame, *, since: Any, until: Any, now: Any) -> pl.DataFrame:
    start, end = _window(frame, since=since, until=until, now=now)
    return frame.filter(pl.col("eventTime").is_between(start, end, closed="both"))


def query(
    store: str | Path | pl.DataFrame,
    *,
    region: str | None = None,
    insight_type: str | None = None,
    ip: str | None = None,
    event_id: str | None = None,
    insight_object: str | None = None,
    service_name: str | None = None,
    event_name: str | None = None,
    account: str | None = None,
    since: Any = None,
    until: Any = None,
    now: Any = None,
    states: Iterable[str] | None = ("Start", "End"),
) -> pl.DataFrame:
    """Insights events matching every given filter, like the console / LookupInsightEvents.

    Filters are exact and ANDed: ``region`` (acsRegion), ``insight_type``, ``ip``
    (sourceIpAddress: IpInsight's address), ``event_id`` (matches ``eventId`` *or*
    ``sharedEventId``, so one id finds both halves of an incident), ``insight_object``,
    ``service_name``, ``event_name``, ``account`` (recipientAccountId: one member of an
    organisation trail), ``states`` (None = any). The time window is inclusive:
    ``since`` ≤ eventTime ≤ ``until``. Defaults: ``until`` = ``now``; ``since`` = ``until`` −
    30 days; ``now`` = the newest eventTime in the store (wall clock for an empty store).
    Times may be datetimes, dates or ISO text; naive ones are UTC, and a bare date as
    ``until`` includes that whole day. The window applies to ``event_id`` look-ups too (as
    LookupInsightEvents does); :func:`incident` finds an id at any time.

    Parameters
    ----------
    store
        An output directory, its Actiontrail-Insight folder, a ``.jsonl`` file, or a frame
        from :func:`read_events` (to query one store many times without re-reading it).

    Returns
    -------
    polars.DataFrame
        :data:`STORE_SCHEMA` rows, sorted by ``(eventTime, eventId)``.

    Examples
    --------
    >>> query("/nonexistent", insight_type="IpInsight").height
    0
    """
    frame = store if isinstance(store, pl.DataFrame) else read_events(store)
    frame = _filter_window(frame, since=since, until=until, now=now)
    exact = {
        "acsRegion": region,
        "insightType": insight_type,
        "sourceIpAddress": ip,
        "insightObject": insight_object,
        "serviceName": service_name,
        "eventName": event_name,
        "recipientAccountId": account,
    }
    predicate = pl.lit(True)
    for column, value in exact.items():
        if value is not None:
            predicate &= pl.col(column) == value
    if event_id is not None:
        predicate &= (pl.col("eventId") == event_id) | (pl.col("sharedEventId") == event_id)
    if states is not None:
        predicate &= pl.col("state").is_in(list(states))
    return frame.filter(predicate).sort(["eventTime", "eventId"])


def counts(
    store: str | Path | pl.DataFrame, *, since: Any = None, until: Any = None, now: Any = None,
    account: str | None = None,
) -> pl.DataFrame:
    """Incidents per region and type, like GetInsightsEventsCount's ``Data``.

    An incident is counted once, by its Start event, when the Start falls in the window (the
    same window and defaults as :func:`query`: the 30 days up to the newest event). Only
    (region, type) pairs with at least one incident appear. Columns ``RegionId``,
    ``InsightType``, ``Count``, sorted by region then type; ``{"Data": df.to_dicts()}`` is
    the API's response shape.

    Examples
    --------
    >>> counts("/nonexistent").columns
    ['RegionId', 'InsightType', 'Count']
    """
    frame = store if isinstance(store, pl.DataFrame) else read_events(store)
    frame = _filter_window(frame, since=since, until=until, now=now).filter(pl.col("state") == "Start")
    if account is not None:
        frame = frame.filter(pl.col("recipientAccountId") == account)
    if frame.is_empty():
        return pl.DataFrame(schema=COUNT_SCHEMA)
    return (
        frame.group_by(pl.col("acsRegion").alias("RegionId"), pl.col("insightType").alias("InsightType"))
        .agg(pl.len().cast(pl.Int64).alias("Count"))
        .sort(["RegionId", "InsightType"])
    )


def incident(store: str | Path | pl.DataFrame, event_id: str) -> dict[str, dict | None]:
    """The Start and End events of one incident, by either ``eventId`` or ``sharedEventId``.

    Returns ``{"start": <Start event>, "end": <End event or None while open>}`` (the parsed
    original JSON). If the store only holds the End (its Start was pruned), ``start`` is None.
    No time window applies. Raises ``KeyError`` when no event has that id.

    Examples
    --------
    >>> incident("/nonexistent", "E1")
    Traceback (most recent call last):
    ...
    KeyError: "no Insights event with eventId or sharedEventId 'E1'"
    """
    frame = store if isinstance(store, pl.DataFrame) else read_events(store)
    hit = frame.filter((pl.col("eventId") == event_id) | (pl.col("sharedEventId") == event_id))
    if hit.is_empty():
        raise KeyError(f"no Insights event with eventId or sharedEventId {event_id!r}")
    shared = hit["sharedEventId"][0]
    # An event without a sharedEventId cannot be paired: it is its own incident.
    pair = frame.filter(pl.col("sharedEventId") == shared) if shared is not None else hit.head(1)
    result: dict[str, dict | None] = {"start": None, "end": None}
    for state, raw in pair.select("state", "raw").iter_rows():
        key = "start" if state == "Start" else "end" if state == "End" else None
        if key and result[key] is None:
            result[key] = json.loads(raw)
    if result["start"] is None and result["end"] is None:  # an unknown state: still show it
        result["start"] = json.loads(hit["raw"][0])
    return result


# --------------------------------------------------------------------------- output


def _cell(value: Any) -> str:
    """One table cell: no control characters (a hostile value must not break the layout)."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return "".join(_escape(ch) for ch in str(value))


def _escape(ch: str) -> str:
    # Control and format characters (newlines, ANSI escapes, bidi overrides) would let a
    # hostile value fake rows or recolour the terminal; show them as escapes instead.
    if not unicodedata.category(ch).startswith("C"):
        return ch
    return f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}"


def _width(text: str) -> int:
    # East Asian wide characters take two columns in a terminal.
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def format_table(df: pl.DataFrame, fmt: Literal["table", "json", "csv"] = "table") -> str:
    """Render query results for the CLI.

    ``table``: aligned columns of :data:`TABLE_COLUMNS` (all columns for other frames, e.g.
    :func:`counts`), control characters escaped. ``json``: for store rows, the original events,
    one per line, byte for byte as stored; other frames as NDJSON. ``csv``: every column but
    ``raw``, times as ``YYYY-MM-DDThh:mm:ssZ``, quoted by Polars where needed; a text cell
    that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    ``'`` (OWASP CSV injection rule: a spreadsheet would run it as a formula). Only String
    columns are touched: a negative number is not a formula. The text ends with a newline
    unless empty.

    Examples
    --------
    >>> print(format_table(pl.DataFrame({"RegionId": ["cn-hangzhou"], "Count": [3]}), "table"))
    RegionId     Count
    -----------  -----
    cn-hangzhou  3
    <BLANKLINE>
    """
    if fmt == "json":
        if "raw" in df.columns:
            return "".join(f"{raw}\n" for raw in df["raw"].to_list())
        return _times_as_text(df).write_ndjson() if df.height else ""
    if fmt == "csv":
        return _defuse_formulas(_times_as_text(df.drop("raw", strict=False))).write_csv()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: expected table, json or csv")
    columns = [c for c in TABLE_COLUMNS if c in df.columns] if "raw" in df.columns else df.columns
    body = [[_cell(v) for v in row] for row in df.select(columns).iter_rows()]
    widths = [max([_width(c)] + [_width(r[i]) for r in body]) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *body]
    return "".join("  ".join(_pad(c, w) for c, w in zip(line, widths)).rstrip() + "\n" for line in lines)


#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection").
FORMULA_TRIGGERS = "=+-@\t\r"


def _defuse_formulas(df: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to every String cell starting with a :data:`FORMULA_TRIGGERS` character."""
    # Runs after _times_as_text, so formatted times are String too; they start with a digit.
    starts_like_formula = r"^[=+\-@\t\r]"  # FORMULA_TRIGGERS in Polars' (Rust) regex syntax
    return df.with_columns(
        pl.when(pl.col(name).str.contains(starts_like_formula))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in df.schema.items()
        if dtype == pl.String
    )


def _times_as_text(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        for name, dtype in df.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


# --------------------------------------------------------------------------- related events


def _insight_window(insight: dict) -> tuple[dict, datetime, datetime]:
    """(an event of the incident, start, end) for an Insights event or an :func:`incident` pair.

    A pair spans Start to End (or the Start's own duration while open). A single Start spans
    ``insightDuration`` minutes from its eventTime; a single End's eventTime is the incident's
    end and its ``insightDuration`` the whole incident, so it spans back from there.
    """
    if "start" in insight and "end" in insight and "insightDetails" not in insight:
        start_ev, end_ev = insight["start"], insight["end"]
        if start_ev is None and end_ev is None:
            raise ValueError("empty incident")
        if start_ev is not None and end_ev is not None:
            return start_ev, _parse_time(start_ev["eventTime"]), _parse_time(end_ev["eventTime"])
        return _insight_window(start_ev if start_ev is not None else end_ev)
    details = insight.get("insightDetails") or {}
    stats = (details.get("insightContext") or {}).get("statistics") or {}
    minutes = timedelta(minutes=max(_number(stats.get("insightDuration"), int) or 1, 1))
    when = _parse_time(insight["eventTime"])
    if details.get("state") == "End":
        return insight, when - minutes, when
    return insight, when, when + minutes


def _series(details: dict) -> pl.Expr:
    """The management events an Insights event is about (shared with the detector when possible)."""
    from insights_kit.insights import series_predicate

    kind = details.get("insightType")
    obj = details.get("insightObject")
    incident_like = {k: details.get(k) for k in ("serviceName", "eventSource", "eventName", "errorCode")}
    incident_like.update(insightType=kind, insightObject=obj)
    if kind == "ApiCallRateInsight" and not incident_like["eventName"]:
        # Alibaba allows a service-level object; our detector always names the API.
        if incident_like["serviceName"] and incident_like["serviceName"] == obj:
            return (pl.col("eventRW") == "Write") & (pl.col("serviceName") == obj)
        incident_like["eventName"] = obj
    if kind == "ApiErrorRateInsight" and not incident_like["eventName"] and not incident_like["errorCode"]:
        incident_like["errorCode"] = obj  # a code-level insight written without errorCode
    return series_predicate(incident_like)


def related_events(
    events: pl.LazyFrame | pl.DataFrame,
    insight: dict,
    *,
    home_region: str | None = None,
    margin_minutes: int = 0,
) -> pl.DataFrame:
    """The management events behind an Insights event.

    Kept: events of the insight's account (``recipientAccountId``; an empty account matches
    null or empty) and analysis region (``acsRegion``, or ``home_region`` for ``isGlobal``
    events), in ``[start − margin, end + margin)``, and about the insight's series:
    ApiCallRateInsight → Write calls of the API; ApiErrorRateInsight → failed calls
    (``errorCode`` set) of the API and/or of the error code; IpInsight → calls from the address.

    Parameters
    ----------
    events
        Canonical events (:data:`insights_kit.schema.EVENT_SCHEMA`).
    insight
        A Start or End event, or the ``{"start", "end"}`` pair from :func:`incident` (which
        spans the whole incident, Start to End).
    home_region
        The detection's home region. None: the region with the most events, as ``detect``
        chooses it by default (the store's ``summary.json`` has the one actually used).
    margin_minutes
        Widen the window on both sides, to show the lead-up and the tail.

    Returns
    -------
    polars.DataFrame
        Canonical events, sorted by ``(eventTime, eventId)``.

    Examples
    --------
    >>> from insights_kit.schema import empty_events
    >>> ev = {"eventTime": "2025-03-04T08:15:00Z", "acsRegion": "cn-hangzhou", "recipientAccountId": "1",
    ...       "insightDetails": {"state": "Start", "insightType": "IpInsight", "insightObject": "203.0.113.9"}}
    >>> related_events(empty_events().lazy(), ev, home_region="cn-hangzhou").height
    0
    """
    lf = events.lazy()
    anchor, start, end = _insight_window(insight)
    margin = timedelta(minutes=margin_minutes)
    details = anchor.get("insightDetails") or {}
    region = anchor.get("acsRegion")
    account = anchor.get("recipientAccountId")

    # The same region assignment detect used (global events belong to the home region);
    # a home region is None only when there are no events at all.
    home = home_region or choose_home_region(lf) or ""
    lf = analysis_events(lf, home_region=home)
    same_account = (
        pl.col("recipientAccountId") == account
        if account
        else pl.col("recipientAccountId").is_null() | (pl.col("recipientAccountId") == "")
    )
    return (
        lf.filter(
            same_account
            & in_analysis_region(region, home_region=home)
            & pl.col("eventTime").is_between(start - margin, end + margin, closed="left")
            & _series(details)
        )
        .sort(["eventTime", "eventId"])
        .drop("analysisRegion")
        .collect()
    )
