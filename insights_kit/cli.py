"""The ``insights-kit`` console script: parses arguments and calls the modules.

Every expected failure (wrong path, nothing readable, bad config) prints one line on stderr
and exits 2; problems that lost no data (quarantined records) are warnings with exit 0,
unless ``--strict``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Offline ActionTrail Insights: unusual API call rates, error rates and source IPs.",
)

Sources = Annotated[list[Path], typer.Argument(help="Files or folders of management events (any supported format).")]
Since = Annotated[Optional[str], typer.Option(help="Start of the window, UTC (YYYY-MM-DD or ISO time).")]
Until = Annotated[Optional[str], typer.Option(help="End of the window (exclusive), UTC.")]


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date or ISO time", param_hint=name) from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _fail(message: str) -> None:
    typer.echo(f"insights-kit: error: {message}", err=True)
    raise typer.Exit(2)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from insights_kit.config import ConfigError
    from insights_kit.readers import InputError

    return (InputError, ConfigError, FileNotFoundError, NotADirectoryError)


def _warn_quarantine(records: int, where: str | None) -> None:
    if records:
        typer.echo(f"insights-kit: warning: {records} record(s) quarantined, see {where}", err=True)


@app.command()
def ingest(
    sources: Sources,
    out: Annotated[Path, typer.Option("--out", help="Lake folder to write (Parquet by region and date).")],
    since: Since = None,
    until: Until = None,
    strict: Annotated[bool, typer.Option(help="Fail instead of warning when records are quarantined.")] = False,
) -> None:
    """Load management events into a Parquet lake, with a quarantine file and a summary."""
    from insights_kit.ingest import run_ingest

    try:
        summary = run_ingest(sources, out, since=_time(since, "--since"), until=_time(until, "--until"), strict=strict)
    except _expected_errors() as exc:
        _fail(str(exc))
    stats = summary["stats"]
    typer.echo(
        f"read {stats['records_read']} records from {stats['files_read']} files: "
        f"{stats['loaded']} loaded, {stats['quarantined']} quarantined, {stats['duplicates']} duplicates, "
        f"{stats.get('outside_window', 0)} outside the window; {summary.get('new_rows', 0)} new rows in {out}"
    )
    for warning in summary.get("warnings", []):
        typer.echo(f"insights-kit: warning: {warning}", err=True)
    _warn_quarantine(stats["quarantined"], summary.get("quarantine"))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the OSS delivery tree and labels.json into.")],
    days: Annotated[int, typer.Option(help="Days to simulate.")] = 14,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 1,
    scale: Annotated[float, typer.Option(help="Volume: 1.0 is about 100,000 events a day.")] = 1.0,
    file_minutes: Annotated[int, typer.Option(help="Minutes of events per delivery file (ActionTrail: about 5).")] = 5,
) -> None:
    """Write a realistic account's management events with labelled incidents."""
    from insights_kit.simulate import simulate as run

    result = run(out, days=days, seed=seed, scale=scale, file_minutes=file_minutes)
    typer.echo(f"wrote {result.events} events in {result.files} files to {result.out}; labels: {result.labels_path}")


def print_detect_summary(summary: dict) -> None:
    """The per-region table the detect command prints."""
    header = f"{'region':<18}{'events':>10}{'call-rate':>11}{'error-rate':>12}{'ip':>6}{'open':>6}{'suppressed':>12}  note"
    typer.echo(header)
    for region, entry in summary["regions"].items():
        ins = entry["insights"]
        notes = []
        for account, learning in entry["learning"].items():
            if learning["learningOnly"]:
                notes.append(f"learning only (no insight before {learning['learningUntil']})")
        counters = entry.get("counters", {})
        if counters.get("withheld"):
            notes.append(f"{counters['withheld']} IP candidate(s) withheld during learning, {counters.get('released', 0)} released")
        typer.echo(
            f"{region:<18}{entry['events']:>10}{ins['ApiCallRateInsight']:>11}{ins['ApiErrorRateInsight']:>12}"
            f"{ins['IpInsight']:>6}{entry['open']:>6}{counters.get('suppressed', 0):>12}  {'; '.join(notes)}"
        )
    rec = summary.get("records", {})
    typer.echo(
        f"records: {rec.get('records_read', 0)} read, {rec.get('loaded', 0)} loaded, "
        f"{rec.get('quarantined', 0)} quarantined, {rec.get('duplicates', 0)} duplicates; "
        f"{rec.get('late', 0)} late; home region {summary.get('homeRegion')}"
    )


@app.command()
def detect(
    sources: Sources,
    out: Annotated[Path, typer.Option("--out", help="Insights store folder to write.")],
    since: Since = None,
    until: Until = None,
    home_region: Annotated[Optional[str], typer.Option(help="Region that analyses global events.")] = None,
    state: Annotated[Optional[Path], typer.Option(help="State folder for incremental runs.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML config (see `insights-kit config`).")] = None,
    allowlist: Annotated[Optional[Path], typer.Option(help="Addresses/CIDRs and principal:<id> lines.")] = None,
    strict: Annotated[bool, typer.Option(help="Fail when records are quarantined.")] = False,
) -> None:
    """Detect unusual call rates, error rates and source IPs; write Insights events."""
    from insights_kit.detect import run_detect

    try:
        summary = run_detect(
            sources,
            out,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            home_region=home_region,
            state=state,
            config=config,
            allowlist=allowlist,
            strict=strict,
        )
    except _expected_errors() as exc:
        _fail(str(exc))
    print_detect_summary(summary)
    _warn_quarantine(summary["quarantine"]["records"], summary["quarantine"]["file"])
    typer.echo(f"Insights events in {out} ({summary['emitted']['events']} new)")


@app.command()
def query(
    store: Annotated[Path, typer.Argument(help="Insights store folder (the detect --out).")],
    region: Annotated[Optional[str], typer.Option(help="Region id.")] = None,
    type_: Annotated[Optional[str], typer.Option("--type", help="Insight type.")] = None,
    ip: Annotated[Optional[str], typer.Option(help="Source IP address (IpInsight).")] = None,
    event_id: Annotated[Optional[str], typer.Option(help="eventId or sharedEventId.")] = None,
    object_: Annotated[Optional[str], typer.Option("--object", help="insightObject.")] = None,
    since: Since = None,
    until: Until = None,
    format_: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    counts: Annotated[bool, typer.Option("--counts", help="Counts by type and region instead.")] = False,
) -> None:
    """Query Insights events (default: the last 30 days of the store)."""
    from insights_kit import store as st

    if format_ not in ("table", "json", "csv"):
        _fail("--format must be table, json or csv")
    if not store.is_dir():
        _fail(f"no Insights store at {store}")
    s, u = _time(since, "--since"), _time(until, "--until")
    if counts:
        typer.echo(st.format_table(st.counts(store, since=s, until=u), format_))
        return
    found = st.query(store, region=region, insight_type=type_, ip=ip, event_id=event_id, insight_object=object_, since=s, until=u)
    typer.echo(st.format_table(found, format_))


@app.command()
def show(
    event_id: Annotated[str, typer.Argument(help="eventId or sharedEventId of an Insights event.")],
    store: Annotated[Path, typer.Option(help="Insights store folder.")],
    source: Annotated[Optional[list[Path]], typer.Option(help="Management events behind the insight.")] = None,
    home_region: Annotated[Optional[str], typer.Option(help="Home region of global events.")] = None,
) -> None:
    """Print an Insights event (Start and End) and the management events behind it."""
    from insights_kit import store as st

    try:
        pair = st.incident(store, event_id)
    except KeyError:
        _fail(f"no Insights event {event_id} in {store}")
    for part in ("start", "end"):
        if pair.get(part):
            typer.echo(json.dumps(pair[part], indent=2, sort_keys=True, ensure_ascii=False))
    if source:
        from insights_kit.readers import load

        try:
            events = load(source).events
        except _expected_errors() as exc:
            _fail(str(exc))
        home = home_region or st.home_region(store)
        related = st.related_events(events, pair, home_region=home)
        typer.echo(f"{related.height} management events behind it:")
        with_cols = [c for c in ("eventTime", "eventName", "sourceIpAddress", "principalId", "userAgent", "errorCode") if c in related.columns]
        typer.echo(st.format_table(related.select(with_cols), "csv"))


@app.command()
def report(
    sources: Sources,
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    regions: Annotated[str, typer.Option(help="all, or r1,r2")] = "all",
    since: Since = None,
    until: Until = None,
    jobs: Annotated[int, typer.Option(help="Regions executed in parallel.")] = 2,
    config: Annotated[Optional[Path], typer.Option(help="TOML config.")] = None,
    home_region: Annotated[Optional[str], typer.Option(help="Region that analyses global events.")] = None,
) -> None:
    """Detect, then run the report notebook per region and write DIR/index.html."""
    from insights_kit.report import run_report

    chosen = "all" if regions == "all" else [r.strip() for r in regions.split(",") if r.strip()]
    try:
        result = run_report(
            sources, out, regions=chosen, since=_time(since, "--since"), until=_time(until, "--until"),
            jobs=jobs, config=config, home_region=home_region,
        )
    except _expected_errors() as exc:
        _fail(str(exc))
    typer.echo(f"report: {result['index']}")
    if result.get("failed"):
        typer.echo(f"insights-kit: error: region(s) failed: {', '.join(result['failed'])}", err=True)
        raise typer.Exit(1)


@app.command("config")
def show_config(
    path: Annotated[Optional[Path], typer.Argument(help="A config to check; omitted: print the defaults.")] = None,
) -> None:
    """Print the full configuration (defaults, or a file merged over them) as TOML."""
    from insights_kit.config import load_config, to_toml

    try:
        typer.echo(to_toml(load_config(path)), nl=False)
    except _expected_errors() as exc:
        _fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
