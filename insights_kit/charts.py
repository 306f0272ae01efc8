"""Altair charts for analysts, fed with small frames aggregated in Polars.

Every function aggregates in Polars first and hands Altair at most a few thousand rows
(Altair refuses more than 5,000 by default, and big inline datasets bloat notebooks and
HTML). Times are passed as ISO-8601 ``Z`` strings and drawn on UTC scales, so a chart reads
the same on every machine whatever its local time zone.

Charts render offline: :func:`save_chart` writes PNG and SVG through vl-convert, and
:func:`interactive_html` inlines the Vega bundle shipped inside vl-convert (no CDN).

Examples
--------
>>> import polars as pl
>>> frame = pl.DataFrame({"name": ["asn"], "verdict": ["UNSEEN"], "score": [1.0], "detail": ["AS64500"]})
>>> type(dimension_chart({"dimensions": frame.to_dicts(), "score": 1.0, "threshold": 0.5})).__name__
'LayerChart'
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

from insights_kit.features import bucket_minutes
from insights_kit.htmlsafe import script_json

#: Altair's default row limit; we stay well below it.
MAX_ROWS = 4_500
#: One colour per insight type, the same in every chart.
TYPE_COLORS = {"ApiCallRateInsight": "#4c78a8", "ApiErrorRateInsight": "#e45756", "IpInsight": "#f58518",
               "AkInsight": "#72b7b2", "PolicyChangeInsight": "#54a24b", "PasswordChangeInsight": "#eeca3b",
               "TrailConcealmentInsight": "#b279a2"}
#: GuardDuty's verdict vocabulary, from usual (green) to never seen (red).
VERDICT_COLORS = {"FREQUENT": "#54a24b", "INFREQUENT": "#eeca3b", "RARE": "#f58518", "UNSEEN": "#e45756"}
TOP_APIS = 8
_ISO = "%Y-%m-%dT%H:%M:%SZ"


# --------------------------------------------------------------------------- helpers


def _utc(column: str, frame: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
    """``column`` as a UTC datetime whether it is stored as datetime or ISO text."""
    dtype = frame.collect_schema()[column]
    if dtype == pl.String:
        return pl.col(column).str.to_datetime(time_zone="UTC", time_unit="us").alias(column)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return pl.col(column).dt.replace_time_zone("UTC").alias(column)
    return pl.col(column).dt.convert_time_zone("UTC").alias(column)


def _iso(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime(_ISO)


def _iso_value(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime(_ISO)


def _time_x(field: str, title: str = "time (UTC)", *, scale: alt.Scale | None = None) -> alt.X:
    return alt.X(f"{field}:T", title=title, scale=scale or alt.Scale(type="utc"),
                 axis=alt.Axis(format="%m-%d %H:%M", labelAngle=-30))


def _bucket_minutes(span: timedelta, *, series: int = 1, base: int = 1) -> int:
    """The smallest bucket (a multiple of ``base`` minutes) keeping rows under MAX_ROWS."""
    minutes = max(span.total_seconds() / 60, 1)
    needed = math.ceil(minutes * series / MAX_ROWS)
    return max(base, base * math.ceil(needed / base))


def _every(minutes: int) -> str:
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _type_color(legend: bool = True) -> alt.Color:
    return alt.Color(
        "insightType:N",
        title="insight type",
        scale=alt.Scale(domain=list(TYPE_COLORS), range=list(TYPE_COLORS.values())),
        legend=alt.Legend(orient="bottom") if legend else None,
    )


def starts(insights: pl.DataFrame) -> pl.DataFrame:
    """Start events of a flat Insights frame, ``eventTime`` as UTC datetime."""
    frame = insights.with_columns(_utc("eventTime", insights))
    if "state" in frame.columns:
        frame = frame.filter(pl.col("state") == "Start")
    return frame


def incidents_frame(insights: pl.DataFrame) -> pl.DataFrame:
    """One row per incident (``sharedEventId``): type, object, start and end (null while open)."""
    frame = insights.with_columns(_utc("eventTime", insights))
    if frame.is_empty():
        return pl.DataFrame(
            schema={"sharedEventId": pl.String, "insightType": pl.String, "insightObject": pl.String,
                    "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")}
        )
    return (
        frame.group_by("sharedEventId")
        .agg(
            pl.col("insightType").first(),
            pl.col("insightObject").first(),
            pl.col("eventTime").filter(pl.col("state") == "Start").min().alias("start"),
            pl.col("eventTime").filter(pl.col("state") == "End").max().alias("end"),
        )
        .drop_nulls("start")
        .sort(["start", "insightType", "insightObject", "sharedEventId"])
    )


# --------------------------------------------------------------------------- charts


def rate_chart(
    series_df: pl.DataFrame,
    *,
    incident_start: datetime,
    incident_end: datetime | None,
    title: str,
) -> alt.LayerChart:
    """Per-minute count with the model's normal band and the incident shaded.

    Parameters
    ----------
    series_df : pl.DataFrame
        ``minute`` (datetime), ``count``, ``expected``, ``upper`` (``expected``/``upper`` may be
        null, e.g. during learning); from ``detectors._rate.rate_series``.
    incident_start, incident_end : datetime
        The incident; ``incident_end`` None means still open (shaded to the last minute).
    title : str
        Chart title (Vega renders it as text, never as markup).
    """
    frame = series_df.with_columns(_utc("minute", series_df)).sort("minute")
    for name in ("expected", "upper"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    note = "count per minute"
    if frame.height > MAX_ROWS:
        # Long spans: per-minute means over wider buckets keep the per-minute scale.
        size = _bucket_minutes(frame["minute"].max() - frame["minute"].min())
        frame = (
            frame.group_by_dynamic("minute", every=_every(size))
            .agg(pl.col("count").mean(), pl.col("expected").mean(), pl.col("upper").mean())
            .sort("minute")
        )
        note = f"mean count per minute over {size}-minute buckets"
    data = frame.select(
        _iso(pl.col("minute")).alias("minute"),
        pl.col("count").cast(pl.Float64),
        pl.col("expected").cast(pl.Float64),
        pl.col("upper").cast(pl.Float64),
    )
    last = frame["minute"].max() if frame.height else incident_start
    end = incident_end or (last + timedelta(minutes=1) if last else incident_start + timedelta(minutes=1))
    shade = pl.DataFrame({"start": [_iso_value(incident_start)], "end": [_iso_value(end)], "label": ["incident"]})

    base = alt.Chart(data)
    band = base.mark_area(opacity=0.25, color="#9ecae9").encode(
        x=_time_x("minute"), y=alt.Y("expected:Q", title=note), y2="upper:Q",
        tooltip=[alt.Tooltip("minute:T", format="%Y-%m-%d %H:%M", title="minute (UTC)"), "expected:Q", "upper:Q"],
    )
    expected = base.mark_line(strokeDash=[4, 3], color="#6b6b6b").encode(x=_time_x("minute"), y="expected:Q")
    count = base.mark_line(color="#1f4e79", strokeWidth=1.5).encode(
        x=_time_x("minute"), y=alt.Y("count:Q", title=note),
        tooltip=[alt.Tooltip("minute:T", format="%Y-%m-%d %H:%M", title="minute (UTC)"), "count:Q", "expected:Q", "upper:Q"],
    )
    incident = alt.Chart(shade).mark_rect(opacity=0.18, color="#e45756").encode(
        x=alt.X("start:T", scale=alt.Scale(type="utc")), x2="end:T", tooltip=["label:N", "start:T", "end:T"]
    )
    return alt.layer(incident, band, expected, count).properties(
        title=alt.Title(title, subtitle="line: observed; band: expected … upper (normal); red: incident"),
        width=640, height=220,
    )


def api_calls(
    events: pl.DataFrame | pl.LazyFrame,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    ip: str | None = None,
    where: pl.Expr | None = None,
    top: int = TOP_APIS,
    every_minutes: int | None = None,
    base_minutes: int = 60,
) -> tuple[pl.DataFrame, int]:
    """Calls per time bucket and API (``serviceName/eventName``, top ``top`` + ``other``).

    ``ip`` and ``where`` narrow the events. Returns the aggregate (``bucket`` ISO text, ``api``,
    ``calls``) and the bucket size in minutes: ``base_minutes`` unless the span needs wider
    buckets to stay under MAX_ROWS.
    """
    lf = events.lazy()
    lf = lf.with_columns(_utc("eventTime", lf))
    if ip is not None:
        lf = lf.filter(pl.col("sourceIpAddress") == ip)
    if where is not None:
        lf = lf.filter(where)
    if since is not None:
        lf = lf.filter(pl.col("eventTime") >= since)
    if until is not None:
        lf = lf.filter(pl.col("eventTime") < until)
    lf = lf.select(
        "eventTime",
        pl.concat_str([pl.col("serviceName").fill_null("?"), pl.col("eventName").fill_null("?")], separator="/").alias("api"),
    )
    frame = lf.collect()
    if frame.is_empty():
        return pl.DataFrame(schema={"bucket": pl.String, "api": pl.String, "calls": pl.UInt32}), every_minutes or 60
    ranked = frame.group_by("api").len().sort(["len", "api"], descending=[True, False])
    keep = ranked.head(top)["api"]
    frame = frame.with_columns(pl.when(pl.col("api").is_in(keep.implode())).then("api").otherwise(pl.lit("other")).alias("api"))
    lo = since or frame["eventTime"].min()
    hi = until or frame["eventTime"].max()
    size = every_minutes or _bucket_minutes(hi - lo, series=min(top + 1, ranked.height), base=base_minutes)
    agg = (
        frame.sort("eventTime")
        .group_by_dynamic("eventTime", every=_every(size), group_by="api")
        .agg(pl.len().alias("calls"))
        .sort(["eventTime", "api"])
        .select(_iso(pl.col("eventTime")).alias("bucket"), "api", "calls")
    )
    return agg, size


def ip_trend_chart(
    events_df: pl.DataFrame | pl.LazyFrame,
    *,
    ip: str,
    since: datetime | None,
    until: datetime | None,
) -> alt.Chart:
    """Calls per hour from ``ip``, stacked by ``serviceName/eventName`` (top 8 + other).

    ``events_df`` are canonical events (lazy is best); only the per-hour aggregate reaches
    Altair. Wide spans use wider buckets (named in the axis title).
    """
    data, size = api_calls(events_df, since=since, until=until, ip=ip)
    unit = "hour" if size == 60 else f"{size // 60} h" if size % 60 == 0 else f"{size} min"
    order = data.group_by("api").agg(pl.col("calls").sum()).sort(["calls", "api"], descending=[True, False])["api"].to_list()
    if "other" in order:  # "other" last in the legend whatever its size
        order = [a for a in order if a != "other"] + ["other"]
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=_time_x("bucket"),
            y=alt.Y("sum(calls):Q", title=f"calls per {unit}", stack="zero"),
            color=alt.Color("api:N", title="API", sort=order, legend=alt.Legend(orient="right", labelLimit=260)),
            order=alt.Order("api:N"),
            tooltip=[alt.Tooltip("bucket:T", title="from (UTC)", format="%Y-%m-%d %H:%M"), "api:N", "calls:Q"],
        )
        .properties(title=alt.Title(f"Calls from {ip}", subtitle=f"per {unit}, by API (top {TOP_APIS} + other)"), width=640, height=220)
    )


def related_calls_chart(
    events_df: pl.DataFrame | pl.LazyFrame,
    *,
    where: pl.Expr,
    since: datetime,
    until: datetime,
    title: str,
    incident: tuple[datetime, datetime] | None = None,
) -> alt.LayerChart:
    """The calls an incident is about, per minute (wider for long spans), stacked by API.

    ``where`` selects them (``insights.series_predicate``); ``incident`` (start, end) is shaded.
    """
    data, size = api_calls(events_df, since=since, until=until, where=where, base_minutes=1)
    unit = "minute" if size == 1 else f"{size} min" if size < 60 else f"{size // 60} h"
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=_time_x("bucket", scale=alt.Scale(type="utc", domain=[_iso_value(since), _iso_value(until)])),
            y=alt.Y("sum(calls):Q", title=f"calls per {unit}", stack="zero"),
            color=alt.Color("api:N", title="API", legend=alt.Legend(orient="right", labelLimit=260)),
            order=alt.Order("api:N"),
            tooltip=[alt.Tooltip("bucket:T", title="from (UTC)", format="%Y-%m-%d %H:%M"), "api:N", "calls:Q"],
        )
    )
    layers = [bars]
    if incident is not None:
        shade = pl.DataFrame({"start": [_iso_value(incident[0])], "end": [_iso_value(incident[1])]})
        layers.insert(0, alt.Chart(shade).mark_rect(opacity=0.15, color="#e45756").encode(x="start:T", x2="end:T"))
    return alt.layer(*layers).properties(
        title=alt.Title(title, subtitle=f"per {unit}, by API (top {TOP_APIS} + other); the incident shaded"),
        width=640, height=220,
    )


def timeline_chart(
    insights_df: pl.DataFrame, *, since: datetime | None = None, until: datetime | None = None
) -> alt.LayerChart:
    """Incidents over time: a bar from Start to End (open: to the last insight) per type.

    ``since``/``until`` fix the time axis (e.g. the report window) so that a few close
    incidents are not stretched over the whole width.
    """
    inc = incidents_frame(insights_df)
    if inc.is_empty():
        return _empty("No Insights events in this range")
    last = inc.select(pl.max_horizontal(pl.col("start").max(), pl.col("end").max())).item()
    inc = inc.with_columns(
        pl.col("end").is_null().alias("open"),
        pl.col("end").fill_null(pl.max_horizontal(pl.lit(last), pl.col("start") + pl.duration(minutes=1))),
    )
    if inc.height > MAX_ROWS:
        # Thousands of incidents: draw counts per hour instead of one bar each.
        per_hour = inc.with_columns(pl.col("start").dt.truncate("1h")).group_by("start", "insightType").len()
        data = per_hour.select(_iso(pl.col("start")).alias("start"), "insightType", pl.col("len").alias("incidents"))
        return alt.Chart(data).mark_circle().encode(
            x=_time_x("start"), y=alt.Y("insightType:N", title=None), size="incidents:Q", color=_type_color()
        ).properties(title="Insights per hour", width=640, height=140)
    data = inc.select(
        _iso(pl.col("start")).alias("start"), _iso(pl.col("end")).alias("end"), "insightType", "insightObject", "open",
    )
    tooltip = [alt.Tooltip("insightType:N", title="type"), alt.Tooltip("insightObject:N", title="object"),
               alt.Tooltip("start:T", format="%Y-%m-%d %H:%M", title="start (UTC)"),
               alt.Tooltip("end:T", format="%Y-%m-%d %H:%M", title="end (UTC)"), "open:N"]
    domain = [_iso_value(t) for t in (since, until)] if since and until else None
    x = _time_x("start", scale=alt.Scale(type="utc", domain=domain)) if domain else _time_x("start")
    base = alt.Chart(data)
    bars = base.mark_bar(height=10, opacity=0.7, minBandSize=2).encode(x=x, x2="end:T", y=alt.Y("insightType:N", title=None), color=_type_color(), tooltip=tooltip)
    ticks = base.mark_tick(thickness=2, size=18).encode(x=x, y="insightType:N", color=_type_color(legend=False), tooltip=tooltip)
    return alt.layer(bars, ticks).properties(title=alt.Title("Insights over time", subtitle="Start to End; open incidents run to the last insight"), width=640, height=140)


def summary_by_day_chart(insights_df: pl.DataFrame) -> alt.Chart:
    """Insights (Start events) per UTC day, stacked by type."""
    frame = starts(insights_df)
    if frame.is_empty():
        return _empty("No Insights events in this range")
    data = (
        frame.group_by(pl.col("eventTime").dt.truncate("1d").alias("day"), "insightType")
        .len()
        .sort(["day", "insightType"])
        .select(pl.col("day").dt.strftime("%Y-%m-%d").alias("day"), "insightType", pl.col("len").alias("insights"))
    )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("day:O", title="day (UTC)", axis=alt.Axis(labelAngle=-30)),
            y=alt.Y("sum(insights):Q", title="insights (Start events)"),
            color=_type_color(),
            tooltip=["day:O", alt.Tooltip("insightType:N", title="type"), "insights:Q"],
        )
        .properties(title="Insights per day", width=alt.Step(28), height=180)
    )


def dimension_chart(model_dict: dict[str, Any]) -> alt.LayerChart:
    """The IpInsight heterogeneity dimensions: score per dimension, coloured by verdict."""
    dims = model_dict.get("dimensions") or []
    if not dims:
        return _empty("No dimensions in this model")
    data = pl.DataFrame(
        {
            "dimension": [str(d.get("name")) for d in dims],
            "verdict": [str(d.get("verdict")) for d in dims],
            "score": [float(d.get("score") or 0.0) for d in dims],
            "detail": [("" if d.get("detail") is None else str(d.get("detail"))) for d in dims],
        }
    )
    verdicts = list(VERDICT_COLORS) + sorted(set(data["verdict"]) - set(VERDICT_COLORS))
    colors = list(VERDICT_COLORS.values()) + ["#bab0ac"] * (len(verdicts) - len(VERDICT_COLORS))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("score:Q", title="dimension score (higher = more unusual)"),
        y=alt.Y("dimension:N", title=None, sort=None),
        color=alt.Color("verdict:N", scale=alt.Scale(domain=verdicts, range=colors), legend=alt.Legend(orient="bottom")),
        tooltip=["dimension:N", "verdict:N", "score:Q", "detail:N"],
    )
    labels = alt.Chart(data).mark_text(align="left", dx=4, fontSize=10).encode(
        x="score:Q", y=alt.Y("dimension:N", sort=None), text="verdict:N"
    )
    score, threshold = model_dict.get("score"), model_dict.get("threshold")
    subtitle = f"score {score:.3g} vs threshold {threshold:.3g}" if isinstance(score, (int, float)) and isinstance(threshold, (int, float)) else ""
    return alt.layer(bars, labels).properties(
        title=alt.Title("Heterogeneity of the source address", subtitle=subtitle), width=420, height=alt.Step(22)
    )


#: The explore chart's time panel stays under this many bars.
EXPLORE_BUCKETS = 240


def explore_bucket_minutes(since: datetime | None, until: datetime | None) -> int:
    """The explore chart's bucket for a span: 1 minute for an hour, 5 for a day, an hour for weeks.

    Pass it to :func:`api_calls` as ``base_minutes`` so a one-hour incident gets many bars, not one.

    Examples
    --------
    >>> t0 = datetime(2025, 3, 7, 10, tzinfo=timezone.utc)
    >>> explore_bucket_minutes(t0, t0 + timedelta(hours=1)), explore_bucket_minutes(t0, t0 + timedelta(days=10))
    (1, 60)
    """
    if since is None or until is None:
        return 60
    return bucket_minutes(until - since, max_buckets=EXPLORE_BUCKETS)


def _bucket_step(calls: pl.DataFrame) -> int:
    """The bucket size of an :func:`api_calls` frame, in minutes (60 when it has one bucket)."""
    times = calls.select(pl.col("bucket").str.to_datetime(time_zone="UTC", time_unit="us").unique().sort())["bucket"]
    steps = times.diff().drop_nulls()
    return max(1, int(steps.min().total_seconds() // 60)) if steps.len() else 60


def explore_chart(calls: pl.DataFrame, *, title: str = "Calls", bucket_minutes: int | None = None) -> alt.VConcatChart:
    """Interactive: brush a time range on top, click an API below (each filters the other).

    ``calls`` is the output of :func:`api_calls` (``bucket``, ``api``, ``calls``) and
    ``bucket_minutes`` its bucket size (default: read from the buckets). The top panel draws one
    bar per bucket from its start to its end, so a single bucket (a one-hour incident at an hourly
    bucket) is still visible; a step area would draw nothing.
    """
    size = bucket_minutes or _bucket_step(calls)
    frame = calls.with_columns(
        _iso(pl.col("bucket").str.to_datetime(time_zone="UTC", time_unit="us") + timedelta(minutes=size)).alias("bucketEnd"))
    brush = alt.selection_interval(encodings=["x"], name="brush")
    click = alt.selection_point(fields=["api"], name="api_pick")
    base = alt.Chart(frame)
    timeline = (
        base.mark_bar(opacity=0.85, color="#4c78a8", minBandSize=2)
        .encode(x=_time_x("bucket"), x2="bucketEnd:T", y=alt.Y("sum(calls):Q", title="calls"),
                tooltip=[alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M", title="from (UTC)"),
                         alt.Tooltip("sum(calls):Q", title="calls")])
        .transform_filter(click)
        .add_params(brush)
        .properties(title=alt.Title(title, subtitle="drag to select a time range; click an API below"), width=640, height=180)
    )
    apis = (
        base.mark_bar()
        .encode(
            x=alt.X("sum(calls):Q", title="calls in the selected range"),
            y=alt.Y("api:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            color=alt.condition(click, alt.value("#4c78a8"), alt.value("#d3d3d3")),
            tooltip=["api:N", alt.Tooltip("sum(calls):Q", title="calls")],
        )
        .transform_filter(brush)
        .add_params(click)
        .properties(width=640, height=alt.Step(18))
    )
    return alt.vconcat(timeline, apis)


def _empty(message: str) -> alt.Chart:
    return alt.Chart(pl.DataFrame({"text": [message]})).mark_text(fontSize=13, color="#666").encode(text="text:N").properties(width=640, height=40)


# --------------------------------------------------------------------------- output


def save_chart(chart: alt.TopLevelMixin, path_without_ext: str | Path) -> dict[str, str]:
    """Write ``<path>.svg`` and ``<path>.png`` offline (vl-convert); their paths by format.

    The chart is compiled and laid out once, to SVG; the PNG (2x) is rasterised from that SVG.
    vl-convert's own PNG path does the same after compiling the spec a second time, so the
    bytes are identical at half the cost.
    """
    import io

    import vl_convert as vlc

    from insights_kit.lake import atomic_write_bytes, atomic_write_text

    base = Path(path_without_ext)
    svg_path, png_path = base.with_name(f"{base.name}.svg"), base.with_name(f"{base.name}.png")
    text = io.StringIO()
    chart.save(text, format="svg")  # altair's spec (data inlined, validated) and vl-convert call
    atomic_write_text(svg_path, text.getvalue())
    atomic_write_bytes(png_path, vlc.svg_to_png(text.getvalue(), scale=2))
    return {"svg": str(svg_path), "png": str(png_path)}


def interactive_html(chart: alt.TopLevelMixin, *, height: int = 520) -> str:
    """An ``<iframe srcdoc>`` running the chart with the Vega bundle inlined (no CDN).

    The spec is embedded with :func:`~insights_kit.htmlsafe.script_json` (no ``</script>``
    break-out) and the whole document is attribute-escaped into ``srcdoc``.
    """
    import vl_convert as vlc

    bundle = vlc.javascript_bundle().replace("</script", "<\\/script")
    spec = chart.to_dict()
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<script>{bundle}</script></head><body><div id='vis'></div>"
        f"<script>vegaEmbed('#vis', {script_json(spec)}, {{\"actions\": false}}).catch(console.error);</script>"
        "</body></html>"
    )
    return (
        f'<iframe class="ik-interactive" style="width:100%;height:{int(height)}px;border:0" '
        f'sandbox="allow-scripts" srcdoc="{html.escape(doc, quote=True)}"></iframe>'
    )


class InteractiveChart:
    """A chart to display in a notebook as :func:`interactive_html` (offline, sandboxed iframe).

    Display it directly (``display(InteractiveChart(chart))``), not through
    ``IPython.display.HTML``: ``HTML()`` of a bare ``<iframe …></iframe>`` string warns
    "Consider using IPython.display.IFrame instead" on every run, and ``IFrame`` needs a URL.
    This object gives IPython the same HTML through ``_repr_html_``, which does not warn.

    Examples
    --------
    >>> calls = pl.DataFrame({"bucket": ["2025-03-07T10:00:00Z"], "api": ["Ecs/DeleteInstance"], "calls": [3]})
    >>> InteractiveChart(explore_chart(calls))._repr_html_().startswith("<iframe")
    True
    """

    def __init__(self, chart: alt.TopLevelMixin, *, height: int = 520) -> None:
        self.chart, self.height = chart, height

    def _repr_html_(self) -> str:
        return interactive_html(self.chart, height=self.height)

    def __repr__(self) -> str:
        return "<interactive chart: open in JupyterLab or an HTML export>"
