"""The detect job: canonical events in, ActionTrail Insights events out, per unit.

A *unit* is one (account, analysis region); global events are analysed in the home region.
Units share nothing but the ``--state`` directory, so they could run side by side.

Incremental runs (``--state DIR``) keep the last ``state_days`` of events, each detector's
saved history, and a ledger of the Insights events already emitted. Every run re-runs the
(causal) detectors over state + new input and emits only what the ledger does not hold, so
running day by day gives the same Start events as one run over the whole span, an incident
open at the end of a window is closed by a later run, and late events (re-read through the
``lag_minutes`` margin before ``--since``) still count, without duplicates.

Examples
--------
>>> from insights_kit.simulate import simulate                     # doctest: +SKIP
>>> summary = run_detect(["data/sample"], "out/insights")          # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from insights_kit import insights as insight_events
from insights_kit.config import Config, load_allowlist, load_config
from insights_kit.detectors.base import Allowlist, Detector, UnitContext, empty_incidents
from insights_kit.regions import analysis_events, choose_home_region, in_analysis_region  # noqa: F401 - re-exported
from insights_kit.regions import Home, choose_home_regions, home_of, uniform_home
from insights_kit.schema import EVENT_SCHEMA, conform

STATE_VERSION = 1
#: Canonical columns no detector or attribution reads; not held in memory during detection.
UNUSED_BY_DETECTORS = [
    "eventId", "requestId", "errorMessage", "sourceFile", "sourceFormat", "eventVersion",
    "vpcId", "accountId", "userIdentityType", "eventType",
    # constant within a unit once it is selected
    "acsRegion", "isGlobal", "recipientAccountId", "analysisRegion",
]
from insights_kit.schema import INSIGHT_TYPES  # noqa: E402 - re-exported


def build_detectors(config: Config) -> list[Detector]:
    from insights_kit.detectors.call_rate import CallRateDetector
    from insights_kit.detectors.error_rate import ErrorRateDetector
    from insights_kit.detectors.ip import IpDetector
    from insights_kit.detectors.trail_concealment import TrailConcealmentDetector
    from insights_kit.detectors.ak import AkDetector
    from insights_kit.detectors.password_change import PasswordChangeDetector
    from insights_kit.detectors.policy_change import PolicyChangeDetector

    every = [
        CallRateDetector(config.call_rate),
        ErrorRateDetector(config.error_rate),
        IpDetector(config.ip),
        AkDetector(config.ak),
        PolicyChangeDetector(config.policy_change),
        PasswordChangeDetector(config.password_change),
        TrailConcealmentDetector(config.trail_concealment),
    ]
    # The insight selector ([detect] insight_types, like PutInsightSelectors).
    return [d for d in every if d.insight_type in config.detect.insight_types]


def _minute_ceiling(ts: datetime) -> datetime:
    floor = ts.replace(second=0, microsecond=0)
    return floor if floor == ts else floor + timedelta(minutes=1)


@dataclass
class UnitResult:
    account: str
    region: str
    events: int
    incidents: pl.DataFrame
    insights: list[dict[str, Any]]
    counters: dict[str, int]
    new_history: dict[str, pl.DataFrame]
    data_start: datetime
    learning_end: datetime
    data_end: datetime


def detect_unit(
    events: pl.LazyFrame,
    *,
    account: str,
    region: str,
    config: Config,
    data_start: datetime,
    data_end: datetime,
    history: dict[str, pl.DataFrame] | None = None,
    allowlist: Allowlist | None = None,
    detectors: Sequence[Detector] | None = None,
    changed_since: datetime | None = None,
    emitted: frozenset[str] = frozenset(),
) -> UnitResult:
    """Run every detector on one unit and assemble its Insights events (but those in ``emitted``)."""
    learning_end = data_start + timedelta(hours=config.detect.learning_hours)
    ctx = UnitContext(
        account=account,
        region=region,
        data_start=data_start,
        data_end=data_end,
        learning_end=learning_end,
        history=history or {},
        allowlist=allowlist or Allowlist(),
        changed_since=changed_since,
    )
    frames = [d.detect(events, ctx) for d in (detectors or build_detectors(config))]
    incidents = pl.concat([f for f in frames if f.height] or [empty_incidents()], how="vertical")
    incidents = incidents.sort(["startTime", "insightType", "insightObject", "errorCode"], nulls_last=True)
    # The unit is in memory (see _detect_units): assemble filters it per incident.
    frame = events.collect()
    built = insight_events.assemble(incidents, frame, account=account, region=region, skip=emitted)
    return UnitResult(
        account,
        region,
        frame.height,
        incidents,
        built,
        dict(ctx.counters),
        dict(ctx.new_history),
        data_start,
        learning_end,
        data_end,
    )


def detect_frame(
    events: pl.LazyFrame | pl.DataFrame,
    *,
    config: Config | None = None,
    home_region: Home | None = None,
    allowlist: Allowlist | None = None,
    data_end: datetime | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Detect on canonical events in memory: (Insights events, summary). No files written."""
    config = config or Config()
    lf = conform(events)
    home = resolve_home_regions(lf, requested=home_region or config.detect.home_region or None)
    results = _detect_units(lf, config=config, home_region=home, allowlist=allowlist, data_end=data_end)
    emitted = sorted((e for r in results for e in r.insights), key=lambda e: (e["eventTime"], e["eventId"]))
    return emitted, _summary(results, home_region=home, config=config)


@dataclass(frozen=True)
class UnitTask:
    """One unit as a task for an engine worker: where its events are, and what it knows.

    ``lake`` (sources, since, until) when the worker reads its slice of a Parquet lake
    itself; otherwise ``frame`` holds the unit's events.
    """

    account: str | None
    region: str
    home_region: str
    config: Config
    data_start: datetime
    data_end: datetime
    history: dict[str, pl.DataFrame]
    allowlist: Allowlist | None
    lake: tuple[tuple[str, ...], datetime | None, datetime | None] | None = None
    frame: pl.DataFrame | None = None
    keep_history: bool = False  # only a --state run keeps what the detectors learned
    changed_since: datetime | None = None  # a --state run: the unit's oldest event new to the state
    emitted: frozenset[str] = frozenset()  # a --state run: the ledger (events not made again)


def _unit_frame(lf: pl.LazyFrame, account: str | None, region: str, home_region: str, *,
                by_id: bool = False) -> pl.DataFrame:
    """One unit's events (of :func:`analysis_events` output), materialised and time-ordered.

    ``by_id``: ordered by (eventTime, eventId), whatever order ``lf`` is in (a state's
    events followed by the new ones).
    """
    unit = (
        lf.filter((pl.col("recipientAccountId") == account) if account is not None
                  else pl.col("recipientAccountId").is_null())
        .filter(in_analysis_region(region, home_region=home_region))
    )  # fmt: skip
    if by_id:
        unit = unit.sort("eventTime", "eventId")
    # One chunk: the streaming engine's output is chunked by how its threads ran, and a float
    # sum over a chunked frame adds in that order (ip_minutes differed in the last bit run to run).
    unit_df = unit.drop(UNUSED_BY_DETECTORS).collect().rechunk()
    if not unit_df["eventTime"].is_sorted():  # a lake region is usually in order already
        unit_df = unit_df.sort("eventTime", maintain_order=True)
    return unit_df


def run_unit_task(task: UnitTask, detectors: Sequence[Detector] | None = None) -> UnitResult:
    """Run one unit where the engine put it (a worker process, or here)."""
    frame = task.frame
    if frame is None:
        from insights_kit.readers import scan_lake

        assert task.lake is not None
        sources, since, until = task.lake
        events = scan_lake(list(sources), since=since, until=until)
        frame = _unit_frame(analysis_events(events, home_region=task.home_region), task.account, task.region,
                            task.home_region)
    result = detect_unit(
        frame.lazy(),
        account=task.account or "",
        region=task.region,
        config=task.config,
        data_start=task.data_start,
        data_end=task.data_end,
        history=task.history,
        allowlist=task.allowlist,
        detectors=detectors,
        changed_since=task.changed_since,
        emitted=task.emitted,
    )
    if not task.keep_history:
        # A run without state would hold every unit's per-address tables until the end (and
        # ship them back from engine workers) only to drop them.
        result.new_history = {}
    return result


def _detect_units(
    lf: pl.LazyFrame,
    *,
    config: Config,
    home_region: Home | None,
    allowlist: Allowlist | None,
    data_end: datetime | None,
    unit_meta: dict[str, Any] | None = None,
    histories: dict[tuple[str, str], dict[str, pl.DataFrame]] | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    lake: tuple[tuple[str, ...], datetime | None, datetime | None] | None = None,
    keep_history: bool = False,
    changed: dict[tuple[str, str], datetime] | None = None,
    emitted: frozenset[str] = frozenset(),
) -> list[UnitResult]:
    """Every unit of ``lf``, in (account, region) order, on ``executor``.

    With ``lake`` (the sources and window that ``lf`` was scanned from) an engine's workers
    read their own slices; without it they are sent their unit's events.
    """
    if not home_region:
        return []
    lf = analysis_events(lf, home_region=home_region)
    units = (
        lf.group_by(["recipientAccountId", "analysisRegion"])
        .agg(pl.col("eventTime").min().alias("first"), pl.col("eventTime").max().alias("last"))
        .drop_nulls("analysisRegion")
        .sort(["recipientAccountId", "analysisRegion"], nulls_last=True)
        .collect()
    )
    detectors = build_detectors(config) if executor == "local" else None
    results, tasks = [], []
    for account, region, first, last in units.iter_rows():
        key = f"{account}/{region}"
        known_start = (unit_meta or {}).get(key)
        start = min(first, datetime.fromisoformat(known_start)) if known_start else first
        start = start.replace(second=0, microsecond=0)
        end = data_end or _minute_ceiling(last + timedelta(microseconds=1))
        history = (histories or {}).get((account or "", region), {})
        home = home_of(home_region, account)
        task = UnitTask(account, region, home, config, start, end, history, allowlist, lake=lake,
                        keep_history=keep_history, changed_since=(changed or {}).get((account or "", region)),
                        emitted=emitted)
        if executor == "local" or not lake:
            # One materialised frame per unit: every detector reads it, and a lake is scanned once.
            # keep_history is a --state run, whose lf is the state's events then the new ones
            task = replace(task, lake=None, frame=_unit_frame(lf, account, region, home, by_id=keep_history))
        if executor == "local":
            results.append(run_unit_task(task, detectors))
        else:
            tasks.append(task)
    if tasks:
        from insights_kit.engine import run_tasks

        results = run_tasks(run_unit_task, tasks, executor=executor, scheduler=scheduler)
    return results


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_home_regions(
    events: pl.LazyFrame,
    *,
    requested: Home | None,
    recorded: Home | None = None,
    change: bool = False,
    state: Any = None,
) -> dict[str, str]:
    """Each account's home region: the requested one, else the recorded one, else its busiest.

    A requested region that differs from an account's recorded one is an error unless
    ``change``: moving it would move every global event's insights between regions.
    """
    from insights_kit.config import ConfigError

    homes = {} if recorded is None or isinstance(recorded, str) else dict(recorded)
    several = len(homes) > 1  # the message names the account only when the state has several
    for account, busiest in choose_home_regions(events).items():
        before, asked = home_of(recorded, account), home_of(requested, account)
        if before and asked and asked != before and not change:
            whose = f" for account {account}" if several else ""
            raise ConfigError(
                f"state {state} analyses global events{whose} in {before}, not {asked}; "
                "pass --change-home-region to move them there (or leave --home-region out)"
            )
        homes[account] = asked or before or busiest
    return dict(sorted(homes.items()))


def _tally(entry: dict[str, Any], r: UnitResult) -> int:
    """Add a unit's events, Starts by type and open incidents to a summary entry; its End count.

    Counted from the incidents (one Start each, and an End once closed), emitted before or not.
    """
    entry["events"] += r.events
    for kind in r.incidents["insightType"].to_list():
        entry["insights"][kind] += 1
    entry["open"] += int(r.incidents["endTime"].is_null().sum())
    return _closed(r.incidents)


def _closed(incidents: pl.DataFrame) -> int:
    """Incidents with an End (each has a Start too)."""
    return int(incidents["endTime"].is_not_null().sum())


def _summary(results: list[UnitResult], *, home_region: Home | None, config: Config) -> dict[str, Any]:
    regions: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = regions.setdefault(
            r.region,
            {
                "accounts": [],
                "events": 0,
                "insights": {t: 0 for t in INSIGHT_TYPES},
                "ends": 0,
                "open": 0,
                "counters": {},
                "learning": {},
            },
        )
        entry["accounts"].append(r.account)
        entry["ends"] += _tally(entry, r)
        for k, v in sorted(r.counters.items()):
            entry["counters"][k] = entry["counters"].get(k, 0) + int(v)
        entry["learning"][r.account] = {
            "dataStart": _iso(r.data_start),
            "learningUntil": _iso(r.learning_end),
            "dataEnd": _iso(r.data_end),
            # the summary must say when a unit had nothing but learning data
            "learningOnly": r.learning_end >= r.data_end,
        }
    accounts: dict[str, dict[str, Any]] = {}
    for r in results:  # an organisation trail's members, each over its regions
        entry = accounts.setdefault(r.account, {"regions": [], "events": 0, "insights": {t: 0 for t in INSIGHT_TYPES},
                                                "open": 0, "homeRegion": home_of(home_region, r.account)})  # fmt: skip
        entry["regions"].append(r.region)
        _tally(entry, r)
    return {
        "homeRegion": uniform_home(home_region),  # None when the accounts' home regions differ
        "accounts": dict(sorted(accounts.items())),
        "regions": dict(sorted(regions.items())),
        "totals": {
            "events": sum(r.events for r in results),
            "insights": {t: sum(v["insights"][t] for v in regions.values()) for t in INSIGHT_TYPES},
            "suppressed": sum(v["counters"].get("suppressed", 0) for v in regions.values()),
        },
        "config": {
            "learningHours": config.detect.learning_hours,
            "stateDays": config.state_days,
            "insightTypes": list(config.detect.insight_types),
        },
    }


# --------------------------------------------------------------------------- state and runs


class StateBusy(RuntimeError):
    """Another run holds the ``--state`` folder's lock for longer than the timeout."""


class StateLock:
    """An exclusive lock on a ``--state`` folder, held for a whole run (``STATE/.lock``).

    ``flock`` on an open file: the kernel releases it when the holder exits, even by kill -9,
    so a crashed run never leaves a stale lock. A second run waits up to ``timeout`` seconds,
    then raises :class:`StateBusy` naming the holder's pid.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self._file: Any = None

    def __enter__(self) -> "StateLock":
        import fcntl
        import os
        import time

        self.path.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path / ".lock", "a+", encoding="utf-8")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._file.seek(0)
                    holder = self._file.read().strip() or "unknown"
                    self._file.close()
                    raise StateBusy(
                        f"state {self.path} is in use by another run (pid {holder}); waited {self.timeout:g} s "
                        "([detect] lock_timeout_seconds)"
                    ) from None
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


#: Columns of STATE/events.parquet: what the units read (UNUSED_BY_DETECTORS are dropped when
#: a unit is selected), plus the eventId (deduplication, order) and the unit's own keys.
STATE_EVENT_COLUMNS = [c for c in EVENT_SCHEMA if c not in UNUSED_BY_DETECTORS
                       or c in ("eventId", "acsRegion", "isGlobal", "recipientAccountId")]


class State:
    """The ``--state`` directory: recent events, detector histories, emitted ledger, meta.

    Layout: ``meta.json``, ``events.parquet``, ``ledger.parquet``, ``objects.parquet`` (the
    files and objects read in full, :func:`insights_kit.readers.read_key`: never read again)
    and ``history/<account>/<region>/<name>.parquet``.
    Written atomically, file by file, at the end of a run; ``meta.json`` last, so a crashed
    run leaves the previous state usable. ``events`` is a lazy scan, never read whole: the
    units read their own slices of it and the next state's events are streamed to disk.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.meta: dict[str, Any] = {"version": STATE_VERSION, "units": {}, "watermark": None, "homeRegion": None}
        self.events: pl.LazyFrame = pl.LazyFrame(schema=EVENT_SCHEMA)
        self.ledger = pl.DataFrame(schema={"eventId": pl.String(), "eventTime": pl.String()})
        self.histories: dict[tuple[str, str], dict[str, pl.DataFrame]] = {}
        self.objects: list[str] = []  # read_key of every file and object read in full
        from insights_kit.readers import InputError

        try:
            if self.path and (self.path / "meta.json").exists():
                self._read()
            self.event_count, self.events_since = self.events.select(
                pl.len(), pl.col("eventTime").min()).collect().row(0)  # fmt: skip
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # JSON errors are ValueErrors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"state {self.path} is unreadable ({first}); restore it from a backup, or start "
                             "a new state folder (the Insights already emitted stay in the store)") from exc

    def _read(self) -> None:
        assert self.path is not None
        meta = json.loads((self.path / "meta.json").read_text())
        if meta.get("version") != STATE_VERSION:
            raise ValueError(f"state version {meta.get('version')} is not {STATE_VERSION}")
        self.meta = meta
        if (self.path / "events.parquet").exists():
            # conform: a state written before a canonical column existed gets it as nulls
            self.events = conform(pl.scan_parquet(self.path / "events.parquet"))
        if (self.path / "ledger.parquet").exists():
            self.ledger = pl.read_parquet(self.path / "ledger.parquet")
        if (self.path / "objects.parquet").exists():
            self.objects = pl.read_parquet(self.path / "objects.parquet")["object"].to_list()
        for file in sorted((self.path / "history").glob("*/*/*.parquet")):
            key = (file.parent.parent.name, file.parent.name)
            self.histories.setdefault(key, {})[file.stem] = pl.read_parquet(file)

    def write(self) -> None:
        from insights_kit.lake import atomic_sink_parquet, atomic_write_parquet, atomic_write_text

        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_sink_parquet(self.events.select(STATE_EVENT_COLUMNS), self.path / "events.parquet")
        atomic_write_parquet(self.ledger, self.path / "ledger.parquet")
        if self.objects:
            atomic_write_parquet(pl.DataFrame({"object": self.objects}, schema={"object": pl.String()}),
                                 self.path / "objects.parquet")
        for (account, region), tables in sorted(self.histories.items()):
            folder = self.path / "history" / (account or "_") / region
            folder.mkdir(parents=True, exist_ok=True)
            for name, frame in sorted(tables.items()):
                atomic_write_parquet(frame, folder / f"{name}.parquet")
            # A table the unit's detectors no longer keep (a level with no incidents left, a type
            # no longer selected) must not come back as the next run's history.
            for stale in sorted(folder.glob("*.parquet")):
                if stale.stem not in tables:
                    stale.unlink()
        atomic_write_text(self.path / "meta.json", json.dumps(self.meta, indent=2, sort_keys=True) + "\n")


    def remember_objects(self, read: Sequence[str], *, keep_from: datetime) -> None:
        """Add the objects of this run; forget those in date folders older than the state keeps."""
        from insights_kit.readers import path_date

        cutoff = keep_from.date() - timedelta(days=1)
        kept = {o for o in self.objects if (path_date(o) or cutoff) >= cutoff}
        self.objects = sorted(kept | set(read))


def _window_name(since: datetime | None, until: datetime | None) -> str:
    def fmt(ts: datetime | None) -> str:
        return ts.astimezone(timezone.utc).strftime("%Y%m%dT%H%MZ") if ts else "open"

    return f"{fmt(since)}_{fmt(until)}"


def run_detect(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    home_region: Home | None = None,
    state: str | Path | None = None,
    config: Config | str | Path | None = None,
    allowlist: str | Path | None = None,
    strict: bool = False,
    progress: bool | None = None,
    change_home_region: bool = False,
    notify_url: str | None = None,
    notify_format: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Load ``sources``, detect per unit, write the Insights store under ``out``; the summary.

    With ``state``, the run holds the state's lock (:class:`StateLock`) from reading it to
    writing it, so two runs on one state run one after the other and never lose a window.
    ``executor="dask"`` runs the units as tasks on the Dask cluster at ``scheduler`` (or a
    local one started for the run; see :mod:`insights_kit.engine`): same output, byte for byte.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    notify = (notify_url or cfg.detect.notify_url, notify_format or cfg.detect.notify_format)
    if notify[0]:
        from insights_kit.config import ConfigError
        from insights_kit.notify import check_target

        try:
            check_target(*notify)  # a bad URL is an error before any work, not after it
        except ValueError as exc:
            raise ConfigError(f"notify: {exc}") from None
    options = dict(since=since, until=until, home_region=home_region, cfg=cfg, allowlist=allowlist, strict=strict,
                   progress=progress, change_home_region=change_home_region, notify=notify,
                   executor=executor, scheduler=scheduler)  # fmt: skip
    if state is None:
        return _run_detect(sources, out, state=None, **options)
    with StateLock(Path(state), cfg.detect.lock_timeout_seconds):
        try:
            return _run_detect(sources, out, state=state, **options)
        finally:
            _spill_path(Path(state)).unlink(missing_ok=True)


def _spill_path(state: Path) -> Path:
    """This run's new events, beside the state (``*.tmp-<pid>``: a killed run's is removed by the next)."""
    import os

    return state / f"fresh.parquet.tmp-{os.getpid()}"


def _run_detect(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    since: datetime | None,
    until: datetime | None,
    home_region: Home | None,
    state: str | Path | None,
    cfg: Config,
    allowlist: str | Path | None,
    strict: bool,
    progress: bool | None,
    change_home_region: bool,
    notify: tuple[str, str],
    executor: str,
    scheduler: str | None,
) -> dict[str, Any]:
    from insights_kit import store
    from insights_kit.lake import atomic_write_text, remove_stale_temps
    from insights_kit.readers import load

    remove_stale_temps(out)
    allow = load_allowlist(allowlist or cfg.detect.allowlist_file)
    lag = timedelta(minutes=cfg.detect.lag_minutes)
    if state is not None:
        remove_stale_temps(state)
    st = State(state)

    read_since = (since - lag) if since else None
    if read_since is not None and st.events_since is not None:
        # Late deliveries: events of an earlier window that arrive in this run's files are
        # analysed with their true times, as far back as the state remembers.
        read_since = min(read_since, st.events_since)
    watermark = datetime.fromisoformat(st.meta["watermark"]) if st.meta.get("watermark") else None
    # Object storage: list only the date folders since the watermark (late deliveries are filed
    # under their delivery day) and fetch only objects this state has not read.
    list_since = read_since if watermark is None else min(watermark - lag, since - lag if since else watermark)
    loaded = load(sources, since=read_since, until=until, strict=strict, progress=progress,
                  list_since=list_since, already_read=st.objects, track_read=st.path is not None)
    already = late = 0
    if st.path is None:
        # Without state nothing needs to be in memory at once: detectors project what they use.
        events_lf = loaded.events
    else:
        # The events new to the state are streamed to a spill file beside it (the first run over
        # a lake is all new); neither they nor the state's are ever whole in memory.
        spill = _spill_path(st.path)
        loaded.events.join(st.events.select("eventId"), on="eventId", how="anti").sink_parquet(spill)
        loaded.events = pl.LazyFrame(schema=EVENT_SCHEMA)  # an in-memory load is released here
        fresh = conform(pl.scan_parquet(spill))
        already = loaded.stats.loaded - fresh.select(pl.len()).collect().item()
        # Late events: new to us, but older than the end of what the previous run saw.
        late = fresh.filter(pl.col("eventTime") < watermark).select(pl.len()).collect().item() if watermark else 0
        events_lf = pl.concat([st.events, fresh], how="vertical")

    requested = home_region or cfg.detect.home_region or None
    # A state of an older version records one region for every account.
    recorded = st.meta.get("homeRegions") or st.meta.get("homeRegion")
    home = resolve_home_regions(events_lf, requested=requested, recorded=recorded, change=change_home_region,
                                state=st.path)
    changed = None
    if st.path is not None:  # each unit's oldest new event: a detector reworks nothing older
        changed = {(account or "", region): first for account, region, first in (
            analysis_events(fresh, home_region=home).drop_nulls("analysisRegion")
            .group_by("recipientAccountId", "analysisRegion").agg(pl.col("eventTime").min())
            .collect().iter_rows())}  # fmt: skip
    last_event = events_lf.select(pl.col("eventTime").max()).collect().item()
    data_end = until or (_minute_ceiling(last_event + timedelta(microseconds=1)) if last_event else None)
    unit_meta = {k: v["dataStart"] for k, v in st.meta["units"].items()}
    seen = frozenset(st.ledger["eventId"].to_list())
    results = _detect_units(
        events_lf,
        config=cfg,
        home_region=home,
        allowlist=allow,
        data_end=data_end,
        unit_meta=unit_meta,
        histories=st.histories,
        executor=executor,
        scheduler=scheduler,
        # A lake scanned lazily, without state: workers read their own slices of it.
        lake=(tuple(map(str, sources)), read_since, until) if loaded.scanned and st.path is None else None,
        keep_history=st.path is not None,
        changed=changed,
        emitted=seen,
    )

    # the units made only the events the ledger does not hold
    emitted = sorted((e for r in results for e in r.insights), key=lambda e: (e["eventTime"], e["eventId"]))
    produced = sum(r.incidents.height + _closed(r.incidents) for r in results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.write_events(out, emitted)
    alert = None
    if notify[0]:
        from insights_kit.notify import notify_new_starts

        # Only newly emitted events: a rerun of the same window announces nothing again.
        alert = notify_new_starts(emitted, notify[0], fmt=notify[1], dead_letter=out / "notify-dead-letter.jsonl",
                                  retries=cfg.detect.notify_retries)

    summary = _summary(results, home_region=home, config=cfg)
    stats = loaded.stats.to_dict()
    summary["window"] = {
        "since": _iso(since) if since else None,
        "until": _iso(until) if until else None,
        "lagMinutes": cfg.detect.lag_minutes,
    }
    summary["records"] = {
        **stats,
        "alreadyInState": already,
        "late": late,
        "fromState": st.event_count,
        "analysed": sum(r.events for r in results),
    }
    summary["emitted"] = {"events": len(emitted), "alreadyEmitted": produced - len(emitted)}
    summary["notify"] = alert  # None: nothing to announce (or no webhook); else delivered/attempts/...
    if loaded.quarantine.height:
        qfile = out / "quarantine" / f"{_window_name(since, until)}.jsonl"
        qfile.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(qfile, loaded.quarantine.write_ndjson())
        summary["quarantine"] = {"records": loaded.stats.quarantined, "file": str(qfile)}
    else:
        summary["quarantine"] = {"records": 0, "file": None}

    if st.path is not None and data_end is not None:
        keep_from = data_end - timedelta(days=cfg.state_days)
        st.events = events_lf.filter(pl.col("eventTime") >= keep_from)
        ledger_new = pl.DataFrame(
            {"eventId": [e["eventId"] for e in emitted], "eventTime": [e["eventTime"] for e in emitted]},
            schema=st.ledger.schema,
        )
        st.ledger = (
            pl.concat([st.ledger, ledger_new])
            .filter(pl.col("eventTime") >= _iso(keep_from))
            .unique("eventId", keep="first")
            .sort(["eventTime", "eventId"])
        )
        for r in results:
            if r.new_history:
                st.histories[(r.account, r.region)] = r.new_history
            st.meta["units"][f"{r.account}/{r.region}"] = {"dataStart": _iso(r.data_start)}
        st.remember_objects(loaded.objects, keep_from=keep_from)
        st.meta["watermark"] = _iso(data_end)
        st.meta["homeRegion"] = uniform_home(home)
        st.meta["homeRegions"] = home
        st.write()

    text = json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_text(out / "summary.json", text)
    (out / "runs").mkdir(exist_ok=True)
    atomic_write_text(out / "runs" / f"{_window_name(since, until)}.json", text)
    return summary
