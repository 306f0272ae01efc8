"""The Insights console in JupyterLab: the same data as the page, as ipywidgets and Altair.

:class:`Console` wraps an Insights store and the management events behind it. It lists the
incidents with the page's search rules (:func:`insights_kit.console.data.search`), computes one
incident's detail (:func:`insights_kit.console.data.incident_detail`, cached per incident, the
region's events cached per region), draws its charts and builds an ipywidgets UI around them.

Offline and safe by construction:

* charts are rendered to SVG in the kernel by vl-convert (no CDN, no JavaScript needed in the
  front end), and put into ``Output`` widgets as ``image/svg+xml`` (Vega escapes every text);
* every HTML value a widget shows is built here with :func:`insights_kit.htmlsafe.esc`,
  :func:`~insights_kit.htmlsafe.table_html` or :func:`~insights_kit.htmlsafe.json_block`:
  user agents, event names and principals are attacker-chosen.

Examples
--------
>>> console = Console("out/demo/report/insights", "out/demo/lake")  # doctest: +SKIP
>>> hits = console.search(text="203.0.113.9")  # doctest: +SKIP
>>> charts = console.charts(hits["id"][0], api="Ecs/DeleteInstance")  # doctest: +SKIP
>>> console.widget()  # doctest: +SKIP
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import altair as alt
import ipywidgets as w
import polars as pl

from insights_kit import charts as ik_charts
from insights_kit import htmlsafe
from insights_kit.console import data
from insights_kit.schema import INSIGHT_TYPES

__all__ = ["Console", "ConsoleWidget", "chart_svg", "focus", "open_store", "option_label", "parse_range_text", "pick_bucket", "trend_chart"]

#: Columns the incident list shows (all of them stay in :attr:`Console.incidents`).
LIST_COLUMNS = ("start", "end", "type", "object", "region", "insightCount", "score", "ratio", "id")
#: Incidents drawn in the list's HTML table (the Select holds every hit).
LIST_ROWS = 200
ALL = "all"


# --------------------------------------------------------------------------- helpers


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def parse_range_text(text: str) -> datetime | None:
    """A range box's text as a UTC datetime (``2025-03-07``, ``2025-03-07T10:00Z``); empty: None.

    Raises ``ValueError`` for anything else.

    Examples
    --------
    >>> parse_range_text("2025-03-07T10:00Z").isoformat()
    '2025-03-07T10:00:00+00:00'
    >>> parse_range_text("  ") is None
    True
    """
    text = (text or "").strip()
    if not text:
        return None
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _range_text(ts: datetime | None, *, up: bool = False) -> str:
    """``2025-03-07T10:02Z``; ``up``: rounded up to the minute (an exclusive end keeps its last second)."""
    if ts is None:
        return ""
    ts = ts.astimezone(timezone.utc)
    if up and (ts.second or ts.microsecond):
        ts = ts.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return ts.strftime("%Y-%m-%dT%H:%MZ")


_LABEL_CHARS = str.maketrans({"<": "‹", ">": "›", "&": "＆", "\n": " ", "\r": " ", "\t": " "})


def option_label(text: Any, *, limit: int = 140) -> str:
    """A Dropdown/Select label: plain text with no markup characters, at most ``limit`` long.

    Widgets show labels as text, but saved widget state ends up in HTML exports inside a
    ``<script>`` element that nbconvert escapes only for ``</``; so ``<``, ``>`` and ``&`` become
    look-alikes (the exact values stay in the kernel, and escaped in the HTML tables).

    Examples
    --------
    >>> option_label("Ecs/<script>alert(1)</script>")
    'Ecs/‹script›alert(1)‹/script›'
    """
    label = str(text).translate(_LABEL_CHARS)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def chart_svg(chart: alt.TopLevelMixin) -> str:
    """The chart as SVG text, rendered offline by vl-convert (Vega escapes every label).

    Examples
    --------
    >>> chart = alt.Chart(pl.DataFrame({"x": [1]})).mark_point().encode(x="x:Q")
    >>> chart_svg(chart).startswith("<svg")
    True
    """
    buf = io.StringIO()
    chart.save(buf, format="svg")
    return buf.getvalue()


def _empty(message: str) -> alt.Chart:
    return (alt.Chart(pl.DataFrame({"text": [message]})).mark_text(fontSize=13, color="#666")
            .encode(text="text:N").properties(width=640, height=40))


def pick_bucket(buckets: Sequence[dict[str, Any]], since: datetime, until: datetime) -> dict[str, Any]:
    """The finest trend bucket of a detail that covers ``[since, until)``; else the widest one.

    Examples
    --------
    >>> coarse = {"bucketMinutes": 60, "since": "2025-03-01T00:00:00Z", "until": "2025-03-08T00:00:00Z"}
    >>> fine = {"bucketMinutes": 1, "since": "2025-03-07T08:00:00Z", "until": "2025-03-07T12:00:00Z"}
    >>> t = lambda s: _parse_iso(s)
    >>> pick_bucket([coarse, fine], t("2025-03-07T09:00:00Z"), t("2025-03-07T10:00:00Z"))["bucketMinutes"]
    1
    >>> pick_bucket([coarse, fine], t("2025-03-02T00:00:00Z"), t("2025-03-07T10:00:00Z"))["bucketMinutes"]
    60
    """
    covering = [b for b in buckets if _parse_iso(b["since"]) <= since and _parse_iso(b["until"]) >= until]
    if covering:
        return min(covering, key=lambda b: b["bucketMinutes"])
    return max(buckets, key=lambda b: (_parse_iso(b["until"]) - _parse_iso(b["since"]), -b["bucketMinutes"]))


def _top_apis(rows: pl.DataFrame, keep: str | None, top: int) -> list[str]:
    ranked = rows.group_by("api").agg(pl.col("calls").sum()).sort(["calls", "api"], descending=[True, False])
    names = ranked["api"].to_list()[:top]
    if keep and keep not in names and keep in ranked["api"].to_list():
        names = names[: top - 1] + [keep]
    return names


def _trend_rows(bucket: dict[str, Any], since: datetime, until: datetime) -> pl.DataFrame:
    schema = {"t": pl.String(), "api": pl.String(), "calls": pl.Int64()}
    rows = pl.DataFrame(bucket["rows"], schema=schema, orient="row") if bucket["rows"] else pl.DataFrame(schema=schema)
    times = rows["t"].str.to_datetime(time_zone="UTC", time_unit="us")
    step = timedelta(minutes=bucket["bucketMinutes"])
    return rows.with_columns(times.alias("start")).filter(
        (pl.col("start") + step > since) & (pl.col("start") < until))


def _incident_shade(start: datetime, end: datetime) -> alt.Chart:
    shade = pl.DataFrame({"start": [ik_charts._iso_value(start)], "end": [ik_charts._iso_value(end)],
                          "label": ["incident"]})
    return alt.Chart(shade).mark_rect(opacity=0.15, color="#e45756").encode(
        x=alt.X("start:T", scale=alt.Scale(type="utc")), x2="end:T", tooltip=["label:N"])


def trend_chart(
    trend: dict[str, Any],
    *,
    since: datetime,
    until: datetime,
    incident: tuple[datetime, datetime],
    api: str | None = None,
    api_times: Sequence[str] = (),
    api_total: int | None = None,
    top: int = ik_charts.TOP_APIS,
) -> alt.LayerChart:
    """A detail's trend over ``[since, until)``: stacked bars by API (top ``top`` + other).

    Parameters
    ----------
    trend
        ``detail["trend"]`` (``title``, ``buckets``); the finest bucket covering the range is used.
    since, until
        The range drawn (the x axis).
    incident
        (start, end) shaded in red.
    api
        Highlight this API (the others fade) and draw ``api_times`` as a rug along the axis; its
        call count in the range goes into the title.
    api_times
        ISO times of ``api``'s calls (``detail["apis"][i]["times"]``).
    api_total
        ``api``'s calls in the whole report window (``detail["apis"][i]["calls"]``), named in the
        subtitle when it differs from the range's count.

    Examples
    --------
    >>> trend = {"title": "Calls from 203.0.113.9", "buckets": [{"bucketMinutes": 1,
    ...     "since": "2025-03-07T08:00:00Z", "until": "2025-03-07T09:00:00Z",
    ...     "rows": [{"t": "2025-03-07T08:10:00Z", "api": "Ecs/DeleteInstance", "calls": 3}]}]}
    >>> t0 = _parse_iso("2025-03-07T08:00:00Z")
    >>> chart = trend_chart(trend, since=t0, until=t0 + timedelta(hours=1), incident=(t0, t0),
    ...                     api="Ecs/DeleteInstance", api_times=["2025-03-07T08:10:05Z"] * 3)
    >>> chart.to_dict()["title"]["text"]
    'Ecs/DeleteInstance: 3 calls'
    """
    bucket = pick_bucket(trend["buckets"], since, until)
    size = bucket["bucketMinutes"]
    rows = _trend_rows(bucket, since, until)
    names = _top_apis(rows, api, top)
    rows = rows.with_columns(pl.when(pl.col("api").is_in(names)).then("api").otherwise(pl.lit("other")).alias("api"))
    order = names + (["other"] if "other" in rows["api"].to_list() else [])
    frame = rows.select(
        ik_charts._iso(pl.col("start")).alias("t"),
        ik_charts._iso(pl.col("start") + timedelta(minutes=size)).alias("tEnd"), "api", "calls",
        (pl.lit(api is None) | (pl.col("api") == (api or ""))).alias("on"),
    )
    unit = "minute" if size == 1 else f"{size} min" if size < 60 else f"{size // 60} h"
    x = alt.X("t:T", title="time (UTC)", axis=alt.Axis(format="%m-%d %H:%M", labelAngle=-30),
              scale=alt.Scale(type="utc", domain=[ik_charts._iso_value(since), ik_charts._iso_value(until)]))
    bars = alt.Chart(frame).mark_bar().encode(
        x=x, x2="tEnd:T", y=alt.Y("sum(calls):Q", title=f"calls per {unit}", stack="zero"),
        color=alt.Color("api:N", title="API", sort=order, scale=alt.Scale(domain=order),
                        legend=alt.Legend(orient="right", labelLimit=260)),
        opacity=alt.Opacity("on:N", scale=alt.Scale(domain=[True, False], range=[1.0, 0.25]), legend=None),
        order=alt.Order("api:N"),
        tooltip=[alt.Tooltip("t:T", title="from (UTC)", format="%Y-%m-%d %H:%M"), "api:N", "calls:Q"],
    )
    lo, hi = max(incident[0], since), min(incident[1], until)
    layers: list[Any] = [_incident_shade(lo, hi)] if lo < hi else []
    layers.append(bars)
    subtitle = f"per {unit}, by API (top {top} + other); the incident shaded"
    title = trend["title"]
    if api:
        inside = [t for t in api_times if since <= _parse_iso(t) < until]
        count = int(rows.filter(pl.col("api") == api)["calls"].sum())
        title = f"{api}: {count} calls"
        whole = f" ({api_total} in the report window)" if api_total is not None and api_total != count else ""
        subtitle = f"{trend['title']}{whole}; ticks along the top: each call (up to {data.MAX_TIMES}); " + subtitle
        if inside:
            rug = pl.DataFrame({"time": inside})
            layers.append(alt.Chart(rug).mark_tick(color="#222", thickness=1, size=10, opacity=0.6).encode(
                x=alt.X("time:T", scale=alt.Scale(type="utc")), y=alt.value(6),
                tooltip=[alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S", title="call (UTC)")]))
    if frame.is_empty():
        return alt.layer(_empty(f"{trend['title']}: no calls in this range"))
    return alt.layer(*layers).properties(title=alt.Title(title, subtitle=subtitle), width=640, height=220)


# --------------------------------------------------------------------------- the console


class Console:
    """The Insights console over a store and its management events.

    Parameters
    ----------
    store
        The Insights store folder (``insights-kit detect --out``).
    source
        Management events: a path (file, folder, lake) or a list of them.
    home_region
        Region that analyses global events; default: the store's (its ``summary.json``),
        else the busiest region.
    config
        A :class:`insights_kit.config.Config` (or None: defaults) for the rate models.

    Examples
    --------
    >>> console = Console("out/demo/report/insights", "out/demo/lake")  # doctest: +SKIP
    >>> console.counts().columns  # doctest: +SKIP
    ['RegionId', 'InsightType', 'Count']
    """

    def __init__(self, store: str | Path, source: str | Path | Sequence[str | Path], *,
                 home_region: str | None = None, config: Any = None) -> None:
        import warnings

        from insights_kit import store as ik_store
        from insights_kit.regions import choose_home_region

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tqdm.auto's ipywidgets warning, on import only
            from insights_kit.readers import load

        sources = [source] if isinstance(source, (str, Path)) else list(source)
        self.store_dir = Path(store)
        self.insights = ik_store.read_events(self.store_dir)
        #: One row per incident (:func:`insights_kit.console.data.incident_table`).
        self.incidents = data.incident_table(self.insights)
        self.events = load([Path(s) for s in sources], progress=False).events
        self.home_region = home_region or ik_store.home_region(self.store_dir) or choose_home_region(self.events)
        self.config = config
        span = self.events.select(pl.col("eventTime").min().alias("lo"), pl.col("eventTime").max().alias("hi")).collect()
        self.data_since, self.data_until = span["lo"][0], span["hi"][0]
        #: The range a console opens with (:func:`data.default_range`).
        self.default_range = data.default_range(self.incidents, data_until=self.data_until)
        self._regions: dict[str, pl.DataFrame] = {}
        self._details: dict[str, tuple[dict[str, Any], list[list[list[Any]]]]] = {}

    # ---------------------------------------------------------------- the list

    def search(self, text: str = "", types: Sequence[str] = (), regions: Sequence[str] = (),
               since: datetime | None = None, until: datetime | None = None,
               accounts: Sequence[str] = ()) -> pl.DataFrame:
        """The incidents a search lists (:func:`insights_kit.console.data.search`).

        Examples
        --------
        >>> console.search(text="IpInsight", regions=["cn-hangzhou"]).height  # doctest: +SKIP
        2
        """
        return data.search(self.incidents, text=text, types=types, regions=regions, since=since, until=until,
                           accounts=accounts)

    def counts(self, **search: Any) -> pl.DataFrame:
        """Incidents by region and type (``RegionId``, ``InsightType``, ``Count``) of a search."""
        return data.counts(self.search(**search))

    @property
    def regions(self) -> list[str]:
        """The regions that have incidents, sorted."""
        return sorted(r for r in self.incidents["region"].unique().to_list() if r is not None)

    @property
    def accounts(self) -> list[str]:
        """The accounts (recipientAccountId, "" for none) that have incidents, sorted."""
        return sorted(self.incidents["account"].fill_null("").unique().to_list())

    def row(self, incident_id: str) -> dict[str, Any]:
        """One incident's row; ``KeyError`` when the store has no such sharedEventId."""
        hit = self.incidents.filter(pl.col("id") == incident_id)
        if hit.is_empty():
            raise KeyError(incident_id)
        return hit.row(0, named=True)

    # ---------------------------------------------------------------- one incident

    def window(self) -> tuple[datetime, datetime]:
        """The window details cover: the default range, clipped to the data."""
        since, until = self.default_range
        hi = until or self.data_until or datetime.now(timezone.utc)
        lo = max((t for t in (since, self.data_since) if t is not None), default=hi - timedelta(days=30))
        return lo, hi + timedelta(minutes=1)

    def _region_events(self, region: str) -> pl.DataFrame:
        if region not in self._regions:
            self._regions[region] = data.region_events(self.events, region, home_region=self.home_region)
        return self._regions[region]

    def _computed(self, incident_id: str) -> tuple[dict[str, Any], list[list[list[Any]]]]:
        if incident_id not in self._details:
            row = self.row(incident_id)
            pair = data.pairs(self.insights, [incident_id]).get(incident_id, {"start": None, "end": None})
            since, until = self.window()
            self._details[incident_id] = data.incident_detail(
                row, pair["start"], pair["end"], self._region_events(row["region"]),
                since=since, until=until, rate_config=self.config)
        return self._details[incident_id]

    def detail(self, incident_id: str) -> dict[str, Any]:
        """One incident's detail (:func:`insights_kit.console.data.incident_detail`), cached."""
        return self._computed(incident_id)[0]

    def event_page(self, incident_id: str, page: int = 0) -> pl.DataFrame:
        """Page ``page`` (100 rows) of the incident's ActionTrail events, ``EVENT_COLUMNS`` wide."""
        pages = self._computed(incident_id)[1]
        rows = pages[page] if 0 <= page < len(pages) else []
        return pl.DataFrame(rows, schema=list(data.EVENT_COLUMNS), orient="row") if rows else pl.DataFrame(
            schema={c: pl.String() for c in data.EVENT_COLUMNS})

    def incident_range(self, incident_id: str) -> tuple[datetime, datetime]:
        """The incident ± 2 hours (:data:`data.FINE_CONTEXT`): the charts' default range."""
        row = self.row(incident_id)
        end = row["end"] or max(self.data_until or row["start"], row["start"]) + timedelta(minutes=1)
        return row["start"] - data.FINE_CONTEXT, end + data.FINE_CONTEXT

    def charts(self, incident_id: str, *, since: datetime | None = None, until: datetime | None = None,
               api: str | None = None) -> list[alt.TopLevelMixin]:
        """The incident's charts over ``[since, until)`` (default: the incident ± 2 h).

        Rate types: the per-minute series with its expected band. Other types: the trend by API
        (``api`` highlighted, its calls as ticks, its total in the title); IpInsight adds the
        heterogeneity dimensions.

        Examples
        --------
        >>> [type(c).__name__ for c in console.charts(ip_incident)]  # doctest: +SKIP
        ['LayerChart', 'LayerChart']
        """
        row, detail = self.row(incident_id), self.detail(incident_id)
        lo, hi = self.incident_range(incident_id)
        since, until = _utc(since) or lo, _utc(until) or hi
        start, end = row["start"], row["end"] or until
        out: list[alt.TopLevelMixin] = []
        if detail["rate"] is not None:
            out.append(self._rate_chart(detail["rate"], start=start, end=row["end"], since=since, until=until))
        if detail["trend"] is not None:
            picked = next((a for a in detail["apis"] if a["api"] == api), None) if api else None
            out.append(trend_chart(detail["trend"], since=since, until=until, incident=(start, end), api=api,
                                   api_times=picked["times"] if picked else (),
                                   api_total=picked["calls"] if picked else None))
        het = detail["heterogeneity"]
        if het is not None and het["dimensions"]:
            out.append(ik_charts.dimension_chart(het))
        return out

    @staticmethod
    def _rate_chart(rate: dict[str, Any], *, start: datetime, end: datetime | None, since: datetime,
                    until: datetime) -> alt.TopLevelMixin:
        schema = {"minute": pl.String(), "count": pl.Int64(), "expected": pl.Float64(), "upper": pl.Float64()}
        rows = [(r["t"], r["count"], r["expected"], r["upper"]) for r in rate["rows"]]
        frame = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
            pl.col("minute").str.to_datetime(time_zone="UTC", time_unit="us"))
        frame = frame.filter(pl.col("minute").is_between(since, until, closed="left"))
        if frame.is_empty():
            return _empty(f"{rate['title']}: no minutes in this range")
        return ik_charts.rate_chart(frame, incident_start=start, incident_end=end, title=rate["title"])

    # ---------------------------------------------------------------- static HTML

    def list_html(self, hits: pl.DataFrame, *, max_rows: int = LIST_ROWS) -> str:
        """The incident list as an escaped HTML table."""
        if hits.is_empty():
            return "<p>No incidents match.</p>"
        return _unwrapped(htmlsafe.table_html(hits.select(LIST_COLUMNS), max_rows=max_rows,
                                              caption=f"{hits.height} incident(s)"))

    def counts_html(self, hits: pl.DataFrame) -> str:
        """Counts by type and by region of a search result, as escaped HTML tables."""
        if hits.is_empty():
            return ""
        by_type = hits.group_by(pl.col("type").alias("InsightType")).agg(pl.len().alias("Count")).sort("InsightType")
        by_region = hits.group_by(pl.col("region").alias("RegionId")).agg(pl.len().alias("Count")).sort("RegionId")
        return ('<div style="display:flex;gap:2em">' + htmlsafe.table_html(by_type, caption="by type")
                + htmlsafe.table_html(by_region, caption="by region") + "</div>")

    def heading_html(self, incident_id: str) -> str:
        """One line naming the incident (escaped)."""
        row = self.row(incident_id)
        end = "open" if row["end"] is None else data.iso(row["end"])
        return (f"<h4>{htmlsafe.esc(row['type'])} · {htmlsafe.esc(row['object'])} · {htmlsafe.esc(row['region'])}</h4>"
                f"<p>{htmlsafe.esc(data.iso(row['start']))} → {htmlsafe.esc(end)}; "
                f"{htmlsafe.esc(data._summary(row))}; sharedEventId <code>{htmlsafe.esc(row['id'])}</code></p>")

    def attributions_html(self, incident_id: str) -> str:
        """The attributions table (escaped)."""
        rows = self.detail(incident_id)["attributions"]
        return htmlsafe.table_html(rows, caption="Attributions") if rows else "<p>No attributions.</p>"

    def events_html(self, incident_id: str, page: int = 0) -> str:
        """One page of the ActionTrail events tab (escaped)."""
        total = self.detail(incident_id)["events"]["total"]
        frame = self.event_page(incident_id, page)
        first = page * data.EVENTS_PER_PAGE
        note = f"events {first + 1}–{first + frame.height} of {total}" if frame.height else "No related events."
        return f"<p>{htmlsafe.esc(note)}</p>" + (_unwrapped(htmlsafe.table_html(frame)) if frame.height else "")

    def original_html(self, incident_id: str) -> str:
        """The Start and End Insights events as escaped JSON."""
        detail = self.detail(incident_id)
        end = htmlsafe.json_block(detail["end"]) if detail["end"] is not None else "<p>Open: no End yet.</p>"
        return "<h4>Start</h4>" + htmlsafe.json_block(detail["start"]) + "<h4>End</h4>" + end

    def show(self, incident_id: str, *, since: datetime | None = None, until: datetime | None = None,
             api: str | None = None) -> None:
        """Display one incident statically (for papermill runs and HTML exports): charts as SVG, tables."""
        from IPython.display import HTML, SVG, display

        display(HTML(self.heading_html(incident_id)))
        for chart in self.charts(incident_id, since=since, until=until, api=api):
            display(SVG(chart_svg(chart)))
        display(HTML(self.attributions_html(incident_id)))
        display(HTML(self.events_html(incident_id)))
        display(HTML(self.original_html(incident_id)))

    # ---------------------------------------------------------------- the UI

    def widget(self, *, text: str = "", insight_type: str = "", region: str = "", since: datetime | None = None,
               until: datetime | None = None, incident: str = "") -> "ConsoleWidget":
        """The console as an ipywidgets ``VBox`` (:class:`ConsoleWidget`): display it in a cell.

        The arguments preset the controls (``incident``: the sharedEventId to open, if listed).

        Examples
        --------
        >>> ui = console.widget(text="198.51.100.66", region="cn-hangzhou")  # doctest: +SKIP
        >>> ui  # the last expression of a cell shows it  # doctest: +SKIP
        """
        return ConsoleWidget(self, text=text, insight_type=insight_type, region=region, since=since,
                             until=until, incident=incident)


def _unwrapped(table: str) -> str:
    """An escaped table whose cells stay on one line (IDs, times and addresses are read and copied whole)."""
    return f'<style>.ik-jtable td{{white-space:nowrap}}</style><div class="ik-jtable" style="overflow-x:auto">{table}</div>'


def _svg_output(svg: str) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/svg+xml": svg, "text/plain": "chart (SVG)"}}


class ConsoleWidget(w.VBox):
    """The console's widgets and their handlers, as one ``VBox`` (made by :meth:`Console.widget`).

    The controls are attributes (``region``, ``account``, ``text``, ``kind``, ``since``, ``until``,
    ``incident``, ``api``, ``zoom``, ``prev``, ``next``), so a test or a cell can set their
    ``value``; the outputs are ``status``, ``counts``, ``table``, ``heading``, ``charts`` (an
    ``Output`` of SVGs), ``attributions``, ``events`` and ``original`` (in the ``tabs``).

    Examples
    --------
    >>> ui = console.widget()  # doctest: +SKIP
    >>> ui.text.value = "198.51.100.66"  # the list and the detail follow  # doctest: +SKIP
    """

    def __init__(self, console: Console, *, text: str = "", insight_type: str = "", region: str = "",
                 since: datetime | None = None, until: datetime | None = None, incident: str = "") -> None:
        super().__init__()
        self.console = console
        if insight_type and insight_type not in INSIGHT_TYPES:
            raise ValueError(f"unknown insight type {insight_type!r}: one of {', '.join(INSIGHT_TYPES)}")
        regions = sorted({*console.regions, htmlsafe.check_region(region)} if region else console.regions)
        lo, hi = console.default_range
        self.region = w.Dropdown(options=[ALL, *regions], value=region or ALL, description="Region")
        # an organisation's member accounts; hidden for one account
        self.account = w.Dropdown(options=[(ALL, ALL), *[(a or "(no account)", a) for a in console.accounts]], value=ALL,
                                  description="Account",
                                  layout=w.Layout(display=None if len(console.accounts) > 1 else "none"))
        self.text = w.Text(value=text, description="Search", placeholder="IP address, insight type or eventId")
        self.kind = w.Dropdown(options=[ALL, *INSIGHT_TYPES], value=insight_type or ALL, description="Type")
        self.since = w.Text(value=_range_text(since or lo), description="From", placeholder="2025-03-01T00:00Z")
        self.until = w.Text(value=_range_text(until or hi, up=True), description="To", placeholder="empty: end of data")
        self.status = w.HTML()
        self.counts = w.HTML()
        self.table = w.HTML()
        self.incident = w.Select(options=[], rows=8, description="Incident", layout=w.Layout(width="100%"))
        self.heading = w.HTML()
        self.zoom = w.ToggleButtons(options=["incident ± 2 h", "selected range"], value="incident ± 2 h")
        self.api = w.Dropdown(options=[("(no API highlighted)", "")], value="", description="API",
                              layout=w.Layout(width="60%"))
        self.charts = w.Output()
        self.attributions = w.HTML()
        self.events = w.HTML()
        self.prev = w.Button(description="◀ prev", disabled=True)
        self.next = w.Button(description="next ▶", disabled=True)
        self.original = w.HTML()
        self.tabs = w.Tab(children=[w.VBox([w.HBox([self.prev, self.next]), self.events]), self.original])
        self.tabs.set_title(0, "ActionTrail Events")
        self.tabs.set_title(1, "Original Insight Event")
        self.page = 0
        self._ids: list[str] = []
        self.children = [
            w.HBox([self.region, self.kind, self.account]), self.text, w.HBox([self.since, self.until]), self.status,
            self.counts, self.table, self.incident,
            w.VBox([self.heading, w.HBox([self.zoom, self.api]), self.charts, self.attributions, self.tabs]),
        ]
        for control in (self.region, self.account, self.text, self.kind, self.since, self.until):
            control.observe(self._on_search, names="value")
        self.incident.observe(self._on_incident, names="value")
        self.api.observe(self._on_chart, names="value")
        self.zoom.observe(self._on_chart, names="value")
        self.prev.on_click(lambda _b: self._turn(-1))
        self.next.on_click(lambda _b: self._turn(1))
        self.refresh()
        if incident and incident in self._ids:
            self.incident.value = incident

    # ---------------------------------------------------------------- the list

    def range(self) -> tuple[datetime | None, datetime | None]:
        """The range boxes as datetimes (``ValueError`` when one is not ISO 8601)."""
        return parse_range_text(self.since.value), parse_range_text(self.until.value)

    def hits(self) -> pl.DataFrame:
        """The incidents the controls select."""
        try:
            since, until = self.range()
            self.status.value = ""
        except ValueError:
            since, until = None, None
            self.status.value = '<p style="color:#b00">Range: use ISO 8601 UTC such as 2025-03-07T10:00Z; ignored.</p>'
        regions = () if self.region.value == ALL else (self.region.value,)
        types = () if self.kind.value == ALL else (self.kind.value,)
        accounts = () if self.account.value == ALL else (self.account.value,)
        return self.console.search(text=self.text.value, types=types, regions=regions, since=since, until=until,
                                   accounts=accounts)

    def refresh(self) -> None:
        """Redo the search and redraw the list, the counts and (when it changes) the detail."""
        hits = self.hits()
        self.table.value = self.console.list_html(hits)
        self.counts.value = self.console.counts_html(hits)
        options = [(option_label(f"{data.iso(r['start'])}  {r['type']}  {r['object']}  {r['region']}"), r["id"])
                   for r in hits.select("start", "type", "object", "region", "id").iter_rows(named=True)]
        current = self.incident.value
        self._ids = [v for _, v in options]
        self.incident.unobserve(self._on_incident, names="value")
        self.incident.options = options
        self.incident.value = current if current in self._ids else (self._ids[0] if self._ids else None)
        self.incident.observe(self._on_incident, names="value")
        if self.incident.value is None:
            self._clear()
        elif self.incident.value != current or not self.heading.value:
            self.show(self.incident.value)

    def _on_search(self, _change: dict) -> None:
        self.refresh()

    # ---------------------------------------------------------------- the detail

    def _clear(self) -> None:
        self.heading.value = "<p>No incident selected.</p>"
        self.charts.outputs = ()
        self.attributions.value = self.events.value = self.original.value = ""
        self.api.options = [("(no API highlighted)", "")]
        self.prev.disabled = self.next.disabled = True

    def _on_incident(self, change: dict) -> None:
        if change["new"]:
            self.show(change["new"])

    def show(self, incident_id: str) -> None:
        """Fill the detail area for one incident."""
        console = self.console
        detail = console.detail(incident_id)
        self.heading.value = console.heading_html(incident_id)
        options = [("(no API highlighted)", "")] + [(option_label(f"{a['api']} ({a['calls']} calls)"), a["api"])
                                                     for a in detail["apis"]]
        self.api.unobserve(self._on_chart, names="value")
        self.api.options, self.api.value = options, ""
        self.api.observe(self._on_chart, names="value")
        self.api.disabled = not detail["apis"]
        self.attributions.value = console.attributions_html(incident_id)
        self.original.value = console.original_html(incident_id)
        self.page = 0
        self._draw_page()
        self.draw()

    def chart_range(self) -> tuple[datetime | None, datetime | None]:
        """What the charts cover: the incident ± 2 h, or the range boxes."""
        if self.zoom.value == "selected range":
            try:
                return self.range()
            except ValueError:
                pass
        return None, None

    def draw(self) -> None:
        """Redraw the charts of the selected incident (offline SVG)."""
        incident_id = self.incident.value
        if not incident_id:
            self.charts.outputs = ()
            return
        since, until = self.chart_range()
        found = self.console.charts(incident_id, since=since, until=until, api=self.api.value or None)
        self.charts.outputs = tuple(_svg_output(chart_svg(c)) for c in found)

    def _on_chart(self, _change: dict) -> None:
        self.draw()

    def _draw_page(self) -> None:
        incident_id = self.incident.value
        total = self.console.detail(incident_id)["events"]["total"]
        pages = max(1, -(-total // data.EVENTS_PER_PAGE))
        self.page = min(max(self.page, 0), pages - 1)
        self.events.value = self.console.events_html(incident_id, self.page)
        self.prev.disabled = self.page == 0
        self.next.disabled = self.page >= pages - 1

    def _turn(self, step: int) -> None:
        self.page += step
        self._draw_page()


def focus(incidents: pl.DataFrame, incident_id: str, *, data_until: datetime | None = None,
          context: timedelta = timedelta(hours=2)) -> dict[str, Any]:
    """Where to look for one incident: its region, its address (IpInsight) and its span ± ``context``.

    An open incident runs to ``data_until`` (else one minute after its start). ``KeyError`` when
    ``incidents`` (:func:`data.incident_table`) has no such ``sharedEventId``.

    Examples
    --------
    >>> from insights_kit.store import empty_store
    >>> focus(data.incident_table(empty_store()), "S1")
    Traceback (most recent call last):
    ...
    KeyError: 'S1'
    """
    hit = incidents.filter(pl.col("id") == incident_id)
    if hit.is_empty():
        raise KeyError(incident_id)
    row = hit.row(0, named=True)
    end = row["end"] or max(data_until or row["start"], row["start"]) + timedelta(minutes=1)
    return {"region": row["region"], "ip": row["ip"] if row["type"] == "IpInsight" else None,
            "since": row["start"] - context, "until": end + context, "type": row["type"], "object": row["object"]}


#: The console notebook's default paths (``make demo``), relative to the repo root.
DEMO_STORE, DEMO_SOURCE, SAMPLE = "out/demo/report/insights", "out/demo/lake", "data/sample"


def open_store(store: str, source: str, *, defaults: tuple[str, str] = (DEMO_STORE, DEMO_SOURCE),
               sample: str = SAMPLE) -> tuple[Path, list[Path], str | None]:
    """Resolve the notebook's ``store`` and ``source``; make a small store when the demo is absent.

    Relative paths are relative to the repo root (:func:`insights_kit.report.resolve`). When
    the default paths do not exist (a fresh clone before ``make demo``), Insights are detected on
    the shipped sample into a temporary folder, and the note (third value) says so. Other
    missing paths raise ``FileNotFoundError``.

    Examples
    --------
    >>> open_store("/no/such/store", "/no/such/lake")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Insights store not found: /no/such/store
    """
    from insights_kit import report
    from insights_kit import store as ik_store

    store_dir, sources = report.resolve(store), report.split_sources(source)
    if store_dir.is_dir() and ik_store.store_files(store_dir) and sources and all(p.exists() for p in sources):
        return store_dir, sources, None
    if (store, source) != defaults:
        missing = store_dir if not (store_dir.is_dir() and ik_store.store_files(store_dir)) else next(
            (p for p in sources if not p.exists()), source)
        raise FileNotFoundError(f"{'Insights store' if missing == store_dir else 'events'} not found: {missing}")
    events = report.resolve(sample)
    if not events.is_dir():
        raise FileNotFoundError(f"neither the demo ({store}, run make demo) nor the sample {events} exist")
    out = _sample_store(events)
    note = (f"{store} not found (make demo writes it): Insights detected on the shipped sample "
            f"{sample}, in {out}.")
    return out / "insights", [out / "lake"], note


def _fingerprint(*folders: Path) -> str:
    """A digest of the files' names, sizes and times (the sample and the package's code)."""
    import hashlib

    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _sample_store(sample: Path) -> Path:
    """A lake and an Insights store of ``sample`` in the temp folder, made once per sample and code.

    Built in a private folder and renamed into place, so concurrent runs never see half a store.
    """
    import os
    import shutil
    import tempfile

    from insights_kit.detect import run_detect
    from insights_kit.ingest import run_ingest

    target = Path(tempfile.gettempdir()) / f"insights-console-{_fingerprint(sample, Path(__file__).parents[1])}"
    if (target / "insights" / "summary.json").is_file():
        return target
    work = Path(tempfile.mkdtemp(prefix="insights-console-build-"))
    try:
        run_ingest([sample], work / "lake", progress=False)
        run_detect([work / "lake"], work / "insights", progress=False)
        try:
            os.rename(work, target)
        except OSError:  # another run finished first (or a stale half): use it when it is whole
            if not (target / "insights" / "summary.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
