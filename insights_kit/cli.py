"""The ``insights-kit`` console script: parses arguments and calls the modules.

Every value the user gives is checked here, at the boundary, before any module runs; path
options and arguments are made absolute against the current working directory. Failures are
one line on stderr (``insights-kit: error: ...``) and an exit code:

* 0: done (problems that lost no data, such as quarantined records, are warnings, unless
  ``--strict``);
* 1: an expected runtime failure: disk full, permission denied, a missing or read-only
  file, a report region that failed, a ``--state`` still in use by another run after
  ``[detect] lock_timeout_seconds``;
* 2: bad input or usage: a malformed value, ``--since`` not before ``--until``, a wrong
  path, a bad config, a region not in the data;
* 70: a bug (EX_SOFTWARE): the traceback, then a line asking to report it;
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
try:  # typer >= 0.20 vendors Click: its exceptions are its own classes
    from typer._click import exceptions as click_errors
except ImportError:  # older typer uses the click package
    from click import exceptions as click_errors
from typer.core import TyperGroup

from insights_kit.validate import check_region_name

BUG_REPORT_LINE = (
    "insights-kit: this is a bug; please report it at https://github.com/insights-kit/insights-kit/issues"
    " with the command you ran"
)
EX_SOFTWARE = 70
EX_INTERRUPTED = 130

#: OSError numbers that are the environment's fault, not ours: exit 1 with one line.
EXPECTED_OS_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "not found",
    errno.ENOTDIR: "not a folder",
    errno.EISDIR: "is a folder",
}


def _one_line(text: str) -> str:
    # One line is the contract: a message must never hide a second line (or spoof one).
    return " ".join(str(text).split())


class OneLineErrorsGroup(TyperGroup):
    """Click's usage errors as one ``insights-kit: error:`` line instead of a usage box.

    Runs Click in non-standalone mode so that its exceptions reach us; ``--help``,
    ``typer.Exit`` and the exit codes of usage errors (2) are kept.
    """

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # the help text, as Click prints it
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            typer.echo(f"insights-kit: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("insights-kit: interrupted", err=True)
            sys.exit(EX_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrorsGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Offline ActionTrail Insights: unusual API call rates, error rates and source IPs.",
)

Sources = Annotated[
    list[str],
    typer.Argument(help="Files or folders of management events (any supported format), or s3:// or oss:// URLs."),
]
Executor = Annotated[
    str, typer.Option(help="Where the (account, region) units run: local (this process) or dask (a Dask "
                      "cluster: --scheduler, INSIGHTS_KIT_SCHEDULER, or a 2-worker local cluster started for the run).")
]
Scheduler = Annotated[Optional[str], typer.Option(help="Dask scheduler address (tcp://host:8786) for --executor dask.")]
EndpointUrl = Annotated[
    Optional[str],
    typer.Option("--endpoint-url", help="S3-compatible endpoint for s3:// and oss:// sources (e.g. "
                 "https://s3.oss-cn-hangzhou.aliyuncs.com, or a local server)."),
]
Since = Annotated[Optional[str], typer.Option(help="Start of the window, UTC (YYYY-MM-DD or ISO time).")]
Until = Annotated[Optional[str], typer.Option(help="End of the window (exclusive), UTC.")]
Jobs = Annotated[int, typer.Option(min=1, help="Regions executed in parallel (at least 1).")]
Notify = Annotated[Optional[str], typer.Option("--notify", help="Webhook for new Start events (http/https).")]
NotifyFormat = Annotated[Optional[str], typer.Option(help="generic, dingtalk or slack (default: the config's).")]

Command = TypeVar("Command", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"insights-kit: error: {_one_line(message)}", err=True)
    raise typer.Exit(code)


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors the modules raise for bad input: exit 2 with their message."""
    from insights_kit.config import ConfigError
    from insights_kit.objects import StorageError
    from insights_kit.readers import InputError

    return (InputError, ConfigError, StorageError)



def _webhook(url: str | None, fmt: str | None) -> str | None:
    """Check --notify and --notify-format at the boundary; the URL as given (or None)."""
    from insights_kit.notify import FORMATS, check_target

    if fmt is not None and fmt not in FORMATS:
        _fail(f"--notify-format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if url is not None:
        try:
            check_target(url, fmt or "generic")
        except ValueError as exc:
            _fail(f"--notify: {exc}")
    return url


def _warn_notify(result: dict | None) -> None:
    if result and not result.get("delivered"):
        typer.echo(f"insights-kit: warning: webhook not reached after {result.get('attempts')} attempt(s) "
                   f"({result.get('error')}); the message is in notify-dead-letter.jsonl", err=True)


def _busy_errors() -> tuple[type[BaseException], ...]:
    """A resource in use by another run, or a cluster out of reach: exit 1 (try again later)."""
    from insights_kit.detect import StateBusy
    from insights_kit.engine import EngineError

    return (StateBusy, EngineError)


def _os_error_line(exc: OSError) -> str:
    what = EXPECTED_OS_ERRORS[exc.errno]
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{what}: {exc.strerror or exc}{where}"


def _exit_as_bug() -> None:
    """Print the traceback of the exception being handled, then ask for a report."""
    traceback.print_exc(file=sys.stderr)
    typer.echo(BUG_REPORT_LINE, err=True)
    raise typer.Exit(EX_SOFTWARE)


def guarded(function: Command) -> Command:
    """Turn what a command raises into the exit codes of the module docstring."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort, click_errors.ClickException, SystemExit):
            raise  # Click's and typer's own exits keep their meaning
        except KeyboardInterrupt:
            typer.echo("insights-kit: interrupted", err=True)
            raise typer.Exit(EX_INTERRUPTED) from None
        except _expected_errors() as exc:
            _fail(str(exc))
        except _busy_errors() as exc:
            _fail(str(exc), code=1)
        except OSError as exc:
            if exc.errno in EXPECTED_OS_ERRORS:
                _fail(_os_error_line(exc), code=1)
            _exit_as_bug()
        except Exception:
            _exit_as_bug()

    return run  # type: ignore[return-value]


def command(*args: Any, **kwargs: Any) -> Callable[[Command], Command]:
    """``app.command`` with the :func:`guarded` exit codes."""

    def register(function: Command) -> Command:
        return app.command(*args, **kwargs)(guarded(function))

    return register


# --------------------------------------------------------------------------- input checks


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{name}: {value!r} is not a date or ISO time")
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` as UTC times; an empty or reversed window is bad input."""
    start, end = _time(since, "--since"), _time(until, "--until")
    if start is not None and end is not None and start >= end:
        _fail(f"--since must be before --until (got {start.isoformat()} and {end.isoformat()})")
    return start, end


def _absolute(path: Path) -> Path:
    # Resolved here, against the user's cwd: modules and notebook kernels run elsewhere.
    return Path(os.path.abspath(path.expanduser()))


def _optional_absolute(path: Path | None) -> Path | None:
    return None if path is None else _absolute(path)


def _existing_sources(sources: list[str], endpoint_url: str | None = None) -> list[Path | str]:
    """Local paths made absolute (and checked); ``s3://``/``oss://`` URLs checked for shape.

    ``--endpoint-url`` goes into the environment, so notebook kernels and engine workers
    started by this command reach the same endpoint.
    """
    from insights_kit import objects

    if endpoint_url:
        if not endpoint_url.startswith(("http://", "https://")):
            _fail(f"--endpoint-url: {endpoint_url!r} is not an http(s) URL")
        os.environ[objects.ENDPOINT_ENV] = endpoint_url
    checked: list[Path | str] = []
    for given in sources:
        if objects.is_remote(given):
            try:
                objects.parse(given)
            except objects.StorageError as exc:
                _fail(str(exc))
            checked.append(given)
            continue
        path = _absolute(Path(given))
        if not path.exists():
            _fail(f"no such file or folder: {given}")
        checked.append(path)
    return checked


def _executor(executor: str, scheduler: str | None) -> None:
    from insights_kit.engine import EXECUTORS

    if executor not in EXECUTORS:
        _fail(f"--executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if scheduler and executor != "dask":
        _fail("--scheduler needs --executor dask")
    if scheduler and not scheduler.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")):
        _fail(f"--scheduler: {scheduler!r} is not a scheduler address (tcp://host:8786)")


def _out_folder(out: Path, option: str = "--out") -> Path:
    """An output folder: may not exist yet, must not be a file."""
    path = _absolute(out)
    if path.exists() and not path.is_dir():
        _fail(f"{option}: {out} is a file, expected a folder")
    return path


def _region(name: str | None, option: str) -> str | None:
    if name is None or name == "":
        return name
    try:
        check_region_name(name)
    except ValueError as exc:
        _fail(f"{option}: {exc}")
    return name


def _home_region(text: str | None) -> str | dict[str, str] | None:
    """``--home-region``: one region for every account, or ``account=region,...`` per account."""
    from insights_kit.regions import parse_home

    if not text:
        return None
    home = parse_home(text)
    for name in [home] if isinstance(home, str) else list((home or {}).values()):
        _region(name, "--home-region")
    return home


def _regions(text: str) -> str | list[str]:
    if text.strip() == "all":
        return "all"
    chosen = list(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if not chosen:
        _fail("--regions: expected all, or a comma-separated list of regions")
    for name in chosen:
        _region(name, "--regions")
    return chosen


def _warn_quarantine(records: int, where: str | None) -> None:
    if records:
        typer.echo(f"insights-kit: warning: {records} record(s) quarantined, see {where}", err=True)


@command()
def ingest(
    sources: Sources,
    out: Annotated[Path, typer.Option("--out", help="Lake folder to write (Parquet by region and date).")],
    since: Since = None,
    until: Until = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of warning when records are quarantined.")] = False,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Load management events into a Parquet lake, with a quarantine file and a summary."""
    from insights_kit.ingest import run_ingest

    start, end = _window(since, until)
    paths, lake = _existing_sources(sources, endpoint_url), _out_folder(out)
    summary = run_ingest(paths, lake, since=start, until=end, strict=strict)
    stats = summary["stats"]
    typer.echo(
        f"read {stats['records_read']} records from {stats['files_read']} files: "
        f"{stats['loaded']} loaded, {stats['quarantined']} quarantined, {stats['duplicates']} duplicates, "
        f"{stats.get('outside_window', 0)} outside the window; {summary.get('new_rows', 0)} new rows in {out}"
    )
    for warning in summary.get("warnings", []):
        typer.echo(f"insights-kit: warning: {warning}", err=True)
    _warn_quarantine(stats["quarantined"], summary.get("quarantine"))


@command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the OSS delivery tree and labels.json into.")],
    days: Annotated[int, typer.Option(min=1, help="Days to simulate (at least 1).")] = 14,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 1,
    scale: Annotated[float, typer.Option(help="Volume (> 0): 1.0 is about 100,000 events a day.")] = 1.0,
    file_minutes: Annotated[int, typer.Option(min=1, max=1440, help="Minutes of events per delivery file "
                                              "(a divisor of 1440; ActionTrail: about 5).")] = 5,
    stealth: Annotated[bool, typer.Option("--stealth", help="Add the graded stealth incidents (quiet "
                                          "strangers, low-rate writes, error creep, ...), one a night.")] = False,
    accounts: Annotated[int, typer.Option(min=1, help="Accounts of one organisation (seeds seed, seed+1, ...), "
                                          "in the multi-account layout AliyunLogs/Actiontrail/<rd_id>/<account>/"
                                          "<region>/...; 1: a single account's trail.")] = 1,
) -> None:
    """Write a realistic account's management events with labelled incidents."""
    from insights_kit.simulate import simulate as run

    if not (math.isfinite(scale) and scale > 0):
        _fail(f"--scale must be a number > 0, got {scale}")
    if 1440 % file_minutes:
        _fail(f"--file-minutes must divide a day (1, 5, 10, 15, 30, 60 ...), got {file_minutes}")
    if accounts > 1:
        from insights_kit.simulate_org import simulate_organisation

        folder = _out_folder(out)
        labels = simulate_organisation(folder, accounts=accounts, seed=seed, days=days, scale=scale,
                                       file_minutes=file_minutes, stealth=stealth)
        typer.echo(f"wrote {labels['events']} events of {accounts} accounts in {labels['files']} files to {folder}; "
                   f"labels: {folder / 'labels.json'}")
        return
    result = run(_out_folder(out), days=days, seed=seed, scale=scale, file_minutes=file_minutes, stealth=stealth)
    typer.echo(f"wrote {result.events} events in {result.files} files to {result.out}; labels: {result.labels_path}")


def print_detect_summary(summary: dict) -> None:
    """The per-region table the detect command prints."""
    header = (f"{'region':<18}{'events':>10}{'call-rate':>11}{'error-rate':>12}{'ip':>6}{'ak':>5}{'policy':>8}"
              f"{'password':>10}{'trail':>7}{'open':>6}{'suppressed':>12}  note")
    typer.echo(header)
    for region, entry in summary["regions"].items():
        ins = entry["insights"]
        notes = []
        for account, learning in entry["learning"].items():
            if learning["learningOnly"]:
                notes.append(f"learning only (no rate or IP insight before {learning['learningUntil']})")
        counters = entry.get("counters", {})
        if counters.get("withheld"):
            notes.append(f"{counters['withheld']} IP candidate(s) withheld during learning, {counters.get('released', 0)} released")
        typer.echo(
            f"{region:<18}{entry['events']:>10}{ins['ApiCallRateInsight']:>11}{ins['ApiErrorRateInsight']:>12}"
            f"{ins['IpInsight']:>6}{ins.get('AkInsight', 0):>5}{ins.get('PolicyChangeInsight', 0):>8}"
            f"{ins.get('PasswordChangeInsight', 0):>10}{ins.get('TrailConcealmentInsight', 0):>7}{entry['open']:>6}"
            f"{counters.get('suppressed', 0):>12}  {'; '.join(notes)}"
        )
    rec = summary.get("records", {})
    typer.echo(
        f"records: {rec.get('records_read', 0)} read, {rec.get('loaded', 0)} loaded, "
        f"{rec.get('quarantined', 0)} quarantined, {rec.get('duplicates', 0)} duplicates; "
        f"{rec.get('late', 0)} late; home region {summary.get('homeRegion') or 'per account (below)'}"
    )
    accounts = summary.get("accounts") or {}
    if len(accounts) > 1:  # an organisation: one line per member account
        typer.echo(f"{'account':<20}{'home region':<18}{'regions':>8}{'events':>10}{'insights':>10}{'open':>6}")
        for account, entry in accounts.items():
            typer.echo(f"{account or '(none)':<20}{entry.get('homeRegion') or '':<18}{len(entry['regions']):>8}"
                       f"{entry['events']:>10}{sum(entry['insights'].values()):>10}{entry['open']:>6}")


@command()
def detect(
    sources: Sources,
    out: Annotated[Path, typer.Option("--out", help="Insights store folder to write.")],
    since: Since = None,
    until: Until = None,
    home_region: Annotated[Optional[str], typer.Option(help="Region that analyses global events (or account=region,...).")] = None,
    state: Annotated[Optional[Path], typer.Option(help="State folder for incremental runs.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML config (see `insights-kit config`).")] = None,
    allowlist: Annotated[Optional[Path], typer.Option(help="Addresses/CIDRs and principal:<id> lines.")] = None,
    strict: Annotated[bool, typer.Option(help="Fail when records are quarantined.")] = False,
    change_home_region: Annotated[
        bool, typer.Option(help="Move the --state's recorded home region to --home-region.")
    ] = False,
    notify: Notify = None,
    notify_format: NotifyFormat = None,
    endpoint_url: EndpointUrl = None,
    executor: Executor = "local",
    scheduler: Scheduler = None,
) -> None:
    """Detect unusual call rates, error rates and source IPs; write Insights events."""
    from insights_kit.detect import run_detect

    start, end = _window(since, until)
    _executor(executor, scheduler)
    summary = run_detect(
        _existing_sources(sources, endpoint_url),
        _out_folder(out),
        since=start,
        until=end,
        home_region=_home_region(home_region),
        state=None if state is None else _out_folder(state, "--state"),
        config=_optional_absolute(config),
        allowlist=_optional_absolute(allowlist),
        strict=strict,
        change_home_region=change_home_region,
        notify_url=_webhook(notify, notify_format),
        notify_format=notify_format,
        executor=executor,
        scheduler=scheduler,
    )
    print_detect_summary(summary)
    _warn_notify(summary.get("notify"))
    _warn_quarantine(summary["quarantine"]["records"], summary["quarantine"]["file"])
    typer.echo(f"Insights events in {out} ({summary['emitted']['events']} new)")


@command()
def query(
    store: Annotated[Path, typer.Argument(help="Insights store folder (the detect --out).")],
    region: Annotated[Optional[str], typer.Option(help="Region id.")] = None,
    type_: Annotated[Optional[str], typer.Option("--type", help="Insight type.")] = None,
    ip: Annotated[Optional[str], typer.Option(help="Source IP address (IpInsight).")] = None,
    event_id: Annotated[Optional[str], typer.Option(help="eventId or sharedEventId.")] = None,
    object_: Annotated[Optional[str], typer.Option("--object", help="insightObject.")] = None,
    account: Annotated[Optional[str], typer.Option(help="recipientAccountId (one account of an organisation).")] = None,
    since: Since = None,
    until: Until = None,
    format_: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    counts: Annotated[bool, typer.Option("--counts", help="Counts by type and region instead.")] = False,
) -> None:
    """Query Insights events (default: the last 30 days of the store)."""
    from insights_kit import store as st

    if format_ not in ("table", "json", "csv"):
        _fail("--format must be table, json or csv")
    s, u = _window(since, until)
    folder = _absolute(store)
    if not folder.is_dir():
        _fail(f"no Insights store at {store}")
    if counts:
        typer.echo(st.format_table(st.counts(folder, since=s, until=u, account=account), format_))
        return
    found = st.query(folder, region=region, insight_type=type_, ip=ip, event_id=event_id, insight_object=object_,
                     account=account, since=s, until=u)
    typer.echo(st.format_table(found, format_))


@command()
def show(
    event_id: Annotated[str, typer.Argument(help="eventId or sharedEventId of an Insights event.")],
    store: Annotated[Path, typer.Option(help="Insights store folder.")],
    source: Annotated[Optional[list[str]], typer.Option(help="Management events behind the insight.")] = None,
    home_region: Annotated[Optional[str], typer.Option(help="Home region of global events.")] = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Print an Insights event (Start and End) and the management events behind it."""
    from insights_kit import store as st

    folder = _absolute(store)
    home_region = _home_region(home_region)
    sources = _existing_sources(source, endpoint_url) if source else []
    try:
        pair = st.incident(folder, event_id)
    except KeyError:
        _fail(f"no Insights event {event_id} in {store}")
    for part in ("start", "end"):
        if pair.get(part):
            typer.echo(json.dumps(pair[part], indent=2, sort_keys=True, ensure_ascii=False))
    if sources:
        from insights_kit.readers import load

        events = load(sources).events
        home = home_region or st.home_region(folder)
        related = st.related_events(events, pair, home_region=home)
        typer.echo(f"{related.height} management events behind it:")
        with_cols = [c for c in ("eventTime", "eventName", "sourceIpAddress", "principalId", "userAgent", "errorCode") if c in related.columns]
        typer.echo(st.format_table(related.select(with_cols), "csv"))


@command()
def report(
    sources: Sources,
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    regions: Annotated[str, typer.Option(help="all, or r1,r2")] = "all",
    since: Since = None,
    until: Until = None,
    jobs: Jobs = 2,
    config: Annotated[Optional[Path], typer.Option(help="TOML config.")] = None,
    home_region: Annotated[Optional[str], typer.Option(help="Region that analyses global events (or account=region,...).")] = None,
    state: Annotated[
        Optional[Path], typer.Option(help="detect's state folder: a scheduled window continues from it.")
    ] = None,
    notify: Notify = None,
    notify_format: NotifyFormat = None,
    endpoint_url: EndpointUrl = None,
    executor: Executor = "local",
    scheduler: Scheduler = None,
) -> None:
    """Detect, then run the report notebook per region and write DIR/index.html."""
    from insights_kit.report import run_report

    start, end = _window(since, until)
    _executor(executor, scheduler)
    result = run_report(
        _existing_sources(sources, endpoint_url), _out_folder(out), regions=_regions(regions), since=start, until=end,
        jobs=jobs, config=_optional_absolute(config), home_region=_home_region(home_region),
        state=None if state is None else _out_folder(state, "--state"),
        notify_url=_webhook(notify, notify_format), notify_format=notify_format,
        executor=executor, scheduler=scheduler,
    )
    _warn_notify((result.get("summary") or {}).get("notify"))
    typer.echo(f"report: {result['index']}")
    if result.get("failed"):
        _fail(f"region(s) failed: {', '.join(result['failed'])}", code=1)


@command("export")
def export_findings(
    store_dir: Annotated[Path, typer.Argument(metavar="STORE", help="Insights store folder.")],
    out: Annotated[Path, typer.Option("--out", help="File to write (JSON Lines).")],
    fmt: Annotated[str, typer.Option("--format", help="ocsf: OCSF 1.3 Detection Findings (class 2004).")] = "ocsf",
) -> None:
    """Export Insights events for a SIEM (OCSF Detection Findings, one JSON object per line)."""
    from insights_kit import ocsf
    from insights_kit import store as st

    if fmt != "ocsf":
        _fail(f"--format: expected ocsf, got {fmt!r}")
    if not Path(store_dir).exists():
        _fail(f"STORE: no such folder {str(store_dir)!r}")
    target = Path(os.path.abspath(out))
    if target.is_dir():
        _fail(f"--out: {str(out)!r} is a folder; give a file name")
    count = ocsf.export(st.read_events(Path(os.path.abspath(store_dir))), target)
    typer.echo(f"{count} OCSF Detection Findings in {target}")


@command("config")
def show_config(
    path: Annotated[Optional[Path], typer.Argument(help="A config to check; omitted: print the defaults.")] = None,
) -> None:
    """Print the full configuration (defaults, or a file merged over them) as TOML."""
    from insights_kit.config import load_config, to_toml

    typer.echo(to_toml(load_config(_optional_absolute(path))), nl=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
