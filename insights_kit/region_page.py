"""One region's report page: the data the report notebook shows and the cells' display helpers.

``notebooks/insights_report.ipynb`` (run by :func:`insights_kit.report.run_report`, once per
region) stays short: :func:`load_region` gathers the data of one region, :func:`show_summary`,
:func:`show_timeline` and :func:`show_incident` display the parts. Every value put into HTML
goes through :mod:`insights_kit.htmlsafe`; each incident links to its detail in the console.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from insights_kit import charts
from insights_kit.htmlsafe import check_region, esc, json_block, table_html, text_table
from insights_kit.regions import format_home, parse_home
from insights_kit.report import _in_window, _iso, parse_time, resolve, split_sources
from insights_kit.schema import INSIGHT_TYPES

RELATED_ROWS = 50
RELATED_COLUMNS = ("eventTime", "eventName", "serviceName", "eventRW", "sourceIpAddress", "principalId",
                   "userName", "userAgent", "errorCode", "eventId")
#: Minutes of context shown around a rate incident.
CONTEXT_MINUTES = 120


# --------------------------------------------------------------------------- one region's data


@dataclass
class RegionContext:
    """Everything the report notebook shows for one region."""

    region: str
    since: datetime | None
    until: datetime | None
    home_region: str | None
    config: Any
    events: pl.DataFrame  # canonical events analysed in the region (history before `since` included)
    insights: pl.DataFrame  # flat Insights events (store.STORE_SCHEMA) of incidents starting in the window
    out_dir: Path
    source: str = ""
    from_store: bool = False
    charts: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the region's learning status from detect's summary (account -> dataStart/learningUntil/...)
    learning: dict[str, Any] = field(default_factory=dict)

    @property
    def data_end(self) -> datetime | None:
        last = self.events["eventTime"].max() if self.events.height else None
        return self.until or (last + timedelta(minutes=1) if last else None)

    @property
    def data_start(self) -> datetime | None:
        return self.events["eventTime"].min() if self.events.height else None


def load_region(
    *,
    source: str,
    store: str = "",
    region: str = "",
    since: str = "",
    until: str = "",
    config: str = "",
    home_region: str = "",
    out_dir: str = "",
) -> RegionContext:
    """Load one region's events and Insights for the report notebook (its parameters as given).

    ``store`` empty: detection runs in memory on ``source`` (``detect.detect_frame``).
    ``region`` empty: the region with the most insights (then the most events).
    """
    import warnings

    from insights_kit import detect
    from insights_kit import store as st
    from insights_kit.config import load_config

    with warnings.catch_warnings():  # tqdm.auto warns about ipywidgets in kernels; no bars here anyway
        warnings.simplefilter("ignore")
        from insights_kit.readers import load

    cfg = load_config(str(resolve(config)) if config else None)
    t_since, t_until = parse_time(since), parse_time(until)
    # Rate baselines and IP history look back before the window: load that history too.
    load_since = t_since - timedelta(days=cfg.state_days) if t_since else None
    loaded = load(split_sources(source), since=load_since, until=t_until, progress=False)
    events = loaded.events
    store_dir = resolve(store) if store else None
    home = (
        parse_home(home_region)
        or (st.home_region(store_dir) if store_dir is not None else None)
        or cfg.detect.home_region
        or detect.choose_home_region(events)
    )
    if store_dir is not None:
        insights = st.read_events(store_dir)
        summary_file = store_dir / "summary.json"
        run_summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    else:
        found, run_summary = detect.detect_frame(events, config=cfg, home_region=home)
        insights = st.events_frame(found)
    insights = _in_window(insights, t_since, t_until)

    analysed = detect.analysis_events(events, home_region=home or "") if home else events.with_columns(
        pl.col("acsRegion").alias("analysisRegion"))
    if not region:
        region = _busiest_region(insights, analysed)
    check_region(region)
    region_events = (
        analysed.filter(detect.in_analysis_region(region, home_region=home)).sort(["eventTime", "eventId"]).collect()
    )
    out = resolve(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix=f"ik-report-{region}-"))
    out.mkdir(parents=True, exist_ok=True)
    return RegionContext(
        region=region,
        since=t_since,
        until=t_until,
        home_region=home,
        config=cfg,
        events=region_events,
        insights=insights.filter(pl.col("acsRegion") == region),
        out_dir=out,
        source=source,
        from_store=store_dir is not None,
        learning=dict(((run_summary.get("regions") or {}).get(region) or {}).get("learning") or {}),
    )


def _busiest_region(insights: pl.DataFrame, analysed: pl.LazyFrame) -> str:
    if insights.height:
        top = insights.group_by("acsRegion").len().sort(["len", "acsRegion"], descending=[True, False])
        return top["acsRegion"][0]
    top = analysed.group_by("analysisRegion").len().drop_nulls().sort(["len", "analysisRegion"], descending=[True, False]).collect()
    if not top.height:
        raise ValueError("no events: cannot choose a region")
    return top["analysisRegion"][0]


# --------------------------------------------------------------------------- tables


def summary_by_day(insights: pl.DataFrame) -> pl.DataFrame:
    """Incidents (Start events) per UTC day and type, with a total column and a total row."""
    starts = insights.filter(pl.col("state") == "Start")
    days = starts.select(pl.col("eventTime").dt.strftime("%Y-%m-%d").alias("day"), "insightType")
    rows = []
    for day in sorted(set(days["day"].to_list())):
        sub = days.filter(pl.col("day") == day)
        counts = {t: sub.filter(pl.col("insightType") == t).height for t in INSIGHT_TYPES}
        rows.append({"day": day, **counts, "total": sum(counts.values())})
    totals = {t: sum(r[t] for r in rows) for t in INSIGHT_TYPES}
    rows.append({"day": "total", **totals, "total": sum(totals.values())})
    return pl.DataFrame(rows, schema={"day": pl.String, **{t: pl.Int64 for t in INSIGHT_TYPES}, "total": pl.Int64})


def summary_text(ctx: RegionContext) -> str:
    """The deterministic plain-text summary checked by nbval (``NBVAL_CHECK_OUTPUT``)."""
    ends = ctx.insights.filter(pl.col("state") == "End")["sharedEventId"]
    starts = ctx.insights.filter(pl.col("state") == "Start")
    still_open = starts.filter(~pl.col("sharedEventId").is_in(ends.implode())).height
    head = (f"region {ctx.region}: {ctx.events.height} management events analysed, "
            f"{starts.height} incidents ({still_open} open)")
    return head + "\n\n" + text_table(summary_by_day(ctx.insights))


def incidents(ctx: RegionContext) -> list[dict[str, Any]]:
    """One dict per incident of the region: ``start``/``end`` events (parsed JSON) and key fields."""
    inc = charts.incidents_frame(ctx.insights)
    raw = {row["eventId"]: row for row in ctx.insights.iter_rows(named=True)}
    by_shared: dict[str, dict[str, Any]] = {}
    for row in raw.values():
        entry = by_shared.setdefault(row["sharedEventId"], {})
        entry[row["state"].lower()] = json.loads(row["raw"])
    out = []
    for n, row in enumerate(inc.iter_rows(named=True), start=1):
        pair = by_shared.get(row["sharedEventId"], {})
        out.append({
            "number": n,
            "sharedEventId": row["sharedEventId"],
            "insightType": row["insightType"],
            "insightObject": row["insightObject"],
            "startTime": row["start"],
            "endTime": row["end"],
            "start": pair.get("start"),
            "end": pair.get("end"),
        })
    return out


def attribution_table(event: dict[str, Any]) -> pl.DataFrame:
    """Attributions of an Insights event as rows (attribute, window, value, average)."""
    from insights_kit.console.data import attributions

    return pl.DataFrame(attributions(event), schema={"attribute": pl.String, "window": pl.String,
                                                     "value": pl.String, "average": pl.Float64})


def related(ctx: RegionContext, inc: dict[str, Any]) -> pl.DataFrame:
    """The management events behind an incident (``store.related_events``), display columns."""
    from insights_kit import store

    pair = {"start": inc["start"], "end": inc["end"]}
    frame = store.related_events(ctx.events.lazy(), pair, home_region=ctx.home_region)
    return frame.select([c for c in RELATED_COLUMNS if c in frame.columns])


# --------------------------------------------------------------------------- display (notebook)


def _display(*objs: Any) -> None:
    from IPython.display import display

    display(*objs)


def _html(markup: str) -> Any:
    from IPython.display import HTML

    return HTML(markup)


def show_chart(ctx: RegionContext, chart: Any, name: str) -> dict[str, str]:
    """Save ``chart`` as PNG+SVG in the region folder and display the SVG (offline)."""
    paths = charts.save_chart(chart, ctx.out_dir / name)
    ctx.charts[name] = paths
    # An <img> with real alt text: nbconvert's own SVG output says "No description has been provided".
    svg = base64.b64encode(Path(paths["svg"]).read_bytes()).decode("ascii")
    _display(_html(f'<img class="ik-chart" alt="{esc(chart_alt_text(chart, region=ctx.region))}" '
                   f'src="data:image/svg+xml;base64,{svg}">'))
    return paths


def chart_alt_text(chart: Any, *, region: str | None = None) -> str:
    """A chart's alt text: its title and subtitle (what it shows and how), and the region."""
    title = chart.to_dict(validate=False).get("title") if hasattr(chart, "to_dict") else None
    if isinstance(title, dict):
        sub = title.get("subtitle")
        sub = " ".join(sub) if isinstance(sub, list) else sub
        title = f"{title.get('text')}" + (f" ({sub})" if sub else "")
    text = str(title or "chart")
    return f"{text}, region {region}" if region else text


def show_header(ctx: RegionContext) -> None:
    # An open window is named by the data it covered, never as "start of data".
    window = f"{_iso(ctx.since or ctx.data_start) or '?'} → {_iso(ctx.data_end) or '?'}"
    origin = "Insights store" if ctx.from_store else "in-memory detection"
    learning = "; ".join(
        f"data since {e.get('dataStart')}, learning until {e.get('learningUntil')}"
        + (" — this window is learning only: no rate or IP insight yet" if e.get("learningOnly") else "")
        for e in ctx.learning.values()
    )
    _display(_html(
        f'<p class="ik-nav"><a href="../index.html">← the console (all regions and incidents)</a></p>'
        f"<h1>ActionTrail Insights — {esc(ctx.region)}</h1>"
        f"<p>Window (UTC): {esc(window)}. Home region: {esc(format_home(ctx.home_region))}. Source: {esc(origin)}.</p>"
        + (f'<p class="ik-learning">Learning: {esc(learning)}.</p>' if learning else "")
    ))


def show_summary(ctx: RegionContext) -> None:
    """Insights per day and type: a chart (the table is printed by the nbval-checked cell)."""
    if ctx.insights.height:
        show_chart(ctx, charts.summary_by_day_chart(ctx.insights), "summary-by-day")


def show_timeline(ctx: RegionContext) -> None:
    since = ctx.since or ctx.data_start
    show_chart(ctx, charts.timeline_chart(ctx.insights, since=since, until=ctx.data_end), "timeline")


def _incident_heading(inc: dict[str, Any]) -> str:
    start = inc["start"] or inc["end"] or {}
    stats = ((start.get("insightDetails") or {}).get("insightContext") or {}).get("statistics") or {}
    end_stats = (((inc["end"] or {}).get("insightDetails") or {}).get("insightContext") or {}).get("statistics") or stats
    end = _iso(inc["endTime"]) if inc["endTime"] else "open"
    base = (end_stats.get("baseline") or {}).get("average")
    during = (end_stats.get("insight") or {}).get("average")
    return (
        f'<h2 id="incident-{inc["number"]}">{inc["number"]}. {esc(inc["insightType"])}: {esc(inc["insightObject"])}</h2>'
        f"<p>Start {esc(_iso(inc['startTime']))}, end {esc(end)}; "
        f"baseline average {esc(base)}, insight average {esc(during)}, "
        f"{esc(end_stats.get('insightCount'))} events; sharedEventId <code>{esc(inc['sharedEventId'])}</code>; "
        f'<a href="../index.html#incident={esc(quote(inc["sharedEventId"], safe=""))}">open in the console</a></p>'
    )


def show_incident(ctx: RegionContext, inc: dict[str, Any]) -> None:
    """Chart(s), attributions, related events and the original JSON of one incident."""
    _display(_html(_incident_heading(inc)))
    event = inc["start"] or inc["end"]
    details = event.get("insightDetails") or {}
    account = event.get("recipientAccountId")
    name = f"incident-{inc['number']:03d}"
    if inc["insightType"] == "IpInsight":  # the End's dimensions cover the whole incident
        _show_ip(ctx, inc, (inc["end"] or inc["start"]).get("insightDetails") or {}, name)
    elif inc["insightType"] in ("TrailConcealmentInsight", "PolicyChangeInsight", "PasswordChangeInsight", "AkInsight"):
        _show_related_calls(ctx, inc, details, name)
        if inc["insightType"] == "TrailConcealmentInsight":
            _show_concealment(details)
        elif inc["insightType"] == "AkInsight":
            _show_key(details)
        else:
            _show_change(details)
    else:
        _show_rate(ctx, inc, details, account, name)
    latest = inc["end"] or inc["start"]
    _display(_html("<h3>Attributions</h3>" + table_html(attribution_table(latest))))
    rel = related(ctx, inc)
    shown = f"first {RELATED_ROWS} of {rel.height}" if rel.height > RELATED_ROWS else f"all {rel.height}"
    _display(_html(f"<h3>Related management events ({shown}; every one in the console)</h3>"
                   + table_html(rel, max_rows=RELATED_ROWS)))
    body = "".join(json_block(e) for e in (inc["start"], inc["end"]) if e is not None)
    _display(_html(f"<details><summary>Original Insights event JSON</summary>{body}</details>"))


def _show_concealment(details: dict) -> None:
    # No rate to chart: the first concealing call is the signal. Say which calls and by whom.
    model = (details.get("insightContext") or {}).get("model") or {}
    names = ", ".join(model.get("eventNames") or []) or "?"
    who = ", ".join(model.get("principals") or []) or "unknown principal"
    _display(_html(
        f"<p>Concealing calls watched for this service: {esc(names)} (the chart and the related events "
        f"show which were made); the first by {esc(who)}. Raised on the first such call, with no "
        f"learning period (score {esc(model.get('score'))}: 1 = a trail stopped or deleted, 0.7 = "
        "a trail or its selectors changed outside set-up and routine).</p>"
    ))


#: What each piece of change evidence means, in the analyst's words (detectors/_change.py).
CHANGE_EVIDENCE = {
    "newPrincipal": "a principal first seen in the last hours",
    "newChanger": "a principal that had not made such changes",
    "newNetwork": "from a network (/24 and ASN) the principal does not use",
    "newTool": "with a client (user-agent family) the principal does not use",
    "firstAdminGrant": "the principal's first grant of admin rights",
    "outsideTrust": "the principal's first role trust for another account (or anyone)",
    "otherUser": "on another user's credentials",
    "burst": "a burst: many more changes in an hour than the principal's busiest hour",
}


def _show_related_calls(ctx: RegionContext, inc: dict[str, Any], details: dict, name: str) -> None:
    from insights_kit.insights import series_predicate

    model = (details.get("insightContext") or {}).get("model") or {}
    where = series_predicate({"insightType": inc["insightType"], "insightObject": inc["insightObject"],
                              "model": json.dumps(model)})  # fmt: skip
    end = inc["endTime"] or ctx.data_end or inc["startTime"] + timedelta(minutes=1)
    since = inc["startTime"] - timedelta(minutes=CONTEXT_MINUTES)
    until = end + timedelta(minutes=CONTEXT_MINUTES)
    what = "AccessKey" if inc["insightType"] == "AkInsight" else "Watched calls of"
    chart = charts.related_calls_chart(ctx.events.lazy(), where=where, since=since, until=until,
                                       title=f"{what} {inc['insightObject']}", incident=(inc["startTime"], end))
    show_chart(ctx, chart, name)


def _show_change(details: dict) -> None:
    # A history-novelty score: say which evidence made it, against the threshold.
    model = (details.get("insightContext") or {}).get("model") or {}
    why = "; ".join(CHANGE_EVIDENCE.get(e, e) for e in model.get("evidence") or []) or "?"
    who = ", ".join(model.get("principals") or []) or "unknown principal"
    _display(_html(
        f"<p>Unusual change by {esc(who)}: {esc(why)}. Score {esc(model.get('score'))} against the "
        f"threshold {esc(model.get('threshold'))} (the sum of the evidence weights; higher = more "
        "anomalous).</p>"
    ))


def _show_key(details: dict) -> None:
    model = (details.get("insightContext") or {}).get("model") or {}
    if model.get("rule") == "rate":
        text = (f"The key's calls per minute left its own seasonal pattern: expected {esc(model.get('expected'))}, "
                f"p-value {esc(model.get('pValue'))} (small = anomalous), ratio {esc(model.get('ratio'))}.")
    else:
        text = (f"First use (at {esc(model.get('firstUse'))}) of a never-seen AccessKey of "
                f"{esc(model.get('owner') or 'an unknown owner')} from a network its owner does not use.")
    _display(_html(f"<p>{text}</p>"))


def _show_rate(ctx: RegionContext, inc: dict[str, Any], details: dict, account: str | None, name: str) -> None:
    from insights_kit.detectors._rate import rate_series

    kind = inc["insightType"]
    section = ctx.config.call_rate if kind == "ApiCallRateInsight" else ctx.config.error_rate
    unit = ctx.events.filter(pl.col("recipientAccountId") == account) if account else ctx.events
    end = inc["endTime"] or ctx.data_end or inc["startTime"] + timedelta(minutes=1)
    since = inc["startTime"] - timedelta(minutes=CONTEXT_MINUTES)
    until = end + timedelta(minutes=CONTEXT_MINUTES)
    data_start = unit["eventTime"].min().replace(second=0, microsecond=0) if unit.height else None
    series = rate_series(
        unit.lazy(), insight_type=kind, since=since, until=until,
        service_name=details.get("serviceName"), event_name=details.get("eventName"),
        error_code=details.get("errorCode"), config=section, data_start=data_start,
        masks=_series_incidents(ctx, inc),
    )
    what = details.get("eventName") or details.get("insightObject")
    label = "errors" if kind == "ApiErrorRateInsight" else "write calls"
    title = f"{what}: {label} per minute" + (f" ({details['errorCode']})" if details.get("errorCode") else "")
    show_chart(ctx, charts.rate_chart(series, incident_start=inc["startTime"], incident_end=inc["endTime"], title=title), name)


def _series_incidents(ctx: RegionContext, inc: dict[str, Any]) -> list[tuple[datetime, datetime | None]]:
    """(start, end) of every incident of the same type and object: the chart's baseline leaves them out."""
    same = [i for i in incidents(ctx) if i["insightType"] == inc["insightType"]
            and i["insightObject"] == inc["insightObject"]]
    return [(i["startTime"], i["endTime"]) for i in same]


def _show_ip(ctx: RegionContext, inc: dict[str, Any], details: dict, name: str) -> None:
    ip = details.get("sourceIpAddress") or details.get("insightObject")
    since = ctx.since or ctx.data_start
    until = ctx.data_end
    show_chart(ctx, charts.ip_trend_chart(ctx.events.lazy(), ip=ip, since=since, until=until), name)
    calls, _ = charts.api_calls(ctx.events.lazy(), ip=ip, since=since, until=until, top=1000)
    apis = calls.group_by("api").agg(pl.col("calls").sum()).sort(["calls", "api"], descending=[True, False])
    _display(_html(f"<h3>APIs called from {esc(ip)}</h3>" + table_html(apis, max_rows=20)))
    model = (details.get("insightContext") or {}).get("model") or {}
    score, threshold = model.get("score"), model.get("threshold")
    from insights_kit.console.data import dimensions

    dims = pl.DataFrame(dimensions(model), schema={"name": pl.String, "verdict": pl.String, "score": pl.Float64,
                                                   "detail": pl.String}).rename({"name": "dimension"})
    scope = "over the whole incident" if inc["end"] is not None else "so far (the incident is open)"
    _display(_html(f"<h3>Heterogeneity score {esc(score)} (threshold {esc(threshold)}), {scope}</h3>"
                   + table_html(dims)))
    if dims.height:
        show_chart(ctx, charts.dimension_chart(model), f"{name}-dimensions")


def show_incidents(ctx: RegionContext) -> int:
    """Every incident of the region, in start order; returns how many."""
    found = incidents(ctx)
    if not found:
        _display(_html("<p>No Insights in this region and window.</p>"))
    for inc in found:
        show_incident(ctx, inc)
    return len(found)
