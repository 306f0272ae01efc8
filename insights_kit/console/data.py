"""What the console shows, as plain data: the incident list and one detail per incident.

Everything here is Polars in, dicts of JSON-ready values out; :mod:`insights_kit.console.page`
turns them into the page and its on-demand files, and :mod:`insights_kit.console.jupyter`
shows the same data in JupyterLab. The search rules (:func:`search`) are the page's too
(``static/console.js`` implements them again in the browser, and the tests hold both to the
same answers).

Choices where ActionTrail's console is not documented:

- An incident is one ``sharedEventId``: its Start and End merged. Open incidents have no end.
- ``score`` is the model's score (IpInsight, AkInsight first use, the change and trail types);
  ``ratio`` is the insight average over the baseline average (the rate types, from the End's
  statistics when the incident is closed).
- The time range selects incidents that overlap it: start before its end, and end (or still
  open) at or after its start.
- The detail's trend covers the whole report window at a bucket that keeps it under
  :data:`MAX_BUCKETS` bars, plus per-minute data around the incident, so a narrowed range
  still shows minutes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Sequence

import polars as pl

from insights_kit.features import bucket_minutes
from insights_kit.regions import analysis_events, in_analysis_region
from insights_kit.schema import UTC_DATETIME

#: Columns of the console's incident table (:func:`incident_table`).
INCIDENT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(), "type": pl.String(), "object": pl.String(), "region": pl.String(),
    "account": pl.String(), "start": UTC_DATETIME, "end": UTC_DATETIME, "open": pl.Boolean(),
    "durationMinutes": pl.Int64(), "score": pl.Float64(), "ratio": pl.Float64(), "insightCount": pl.Int64(),
    "startEventId": pl.String(), "endEventId": pl.String(), "ip": pl.String(), "eventName": pl.String(),
    "serviceName": pl.String(), "errorCode": pl.String(), "accessKeyId": pl.String(),
}
#: Fields the one search box matches (case-insensitive substring), as in the page.
SEARCH_FIELDS = ("object", "ip", "type", "id", "startEventId", "endEventId", "eventName", "accessKeyId", "account")
#: Columns of the "ActionTrail Events" tab, in order.
EVENT_COLUMNS = ("eventTime", "eventName", "serviceName", "sourceIpAddress", "principal", "errorCode",
                 "userAgent", "eventId", "acsRegion")
EVENTS_PER_PAGE = 100
#: The window trend's bucket keeps it under this many bars (``features.bucket_minutes``).
MAX_BUCKETS = 400
#: Per-minute trend this long on each side of an incident.
FINE_CONTEXT = timedelta(hours=2)
#: Call times kept per API in a detail (the total is always exact).
MAX_TIMES = 1000
RATE_TYPES = ("ApiCallRateInsight", "ApiErrorRateInsight")
#: Rate incidents of one series this close share one run of the model for their charts.
MERGE_GAP = timedelta(hours=6)


def iso(ts: datetime | None) -> str | None:
    """``2025-03-07T10:02:00Z`` (seconds kept only when not zero), or None."""
    if ts is None:
        return None
    ts = ts.astimezone(timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ" if ts.second or ts.microsecond else "%Y-%m-%dT%H:%M:00Z")


def _iso_expr(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def detail_key(shared_event_id: str) -> str:
    """The detail file's name: a digest, so no event ID chosen by an attacker becomes a path."""
    return hashlib.sha256(shared_event_id.encode("utf-8")).hexdigest()[:20]


# --------------------------------------------------------------------------- the list


def incident_table(insights: pl.DataFrame) -> pl.DataFrame:
    """One row per incident of a flat Insights frame (``store.STORE_SCHEMA``), Start and End merged.

    Sorted by start, then ``id``. Incidents whose Start is not in the frame are left out
    (their Start lies before the window).

    Examples
    --------
    >>> from insights_kit.store import empty_store
    >>> incident_table(empty_store()).columns[:4]
    ['id', 'type', 'object', 'region']
    """
    if insights.is_empty():
        return pl.DataFrame(schema=INCIDENT_SCHEMA)
    start = insights.filter(pl.col("state") == "Start").unique("sharedEventId", keep="first", maintain_order=True)
    end = insights.filter(pl.col("state") == "End").unique("sharedEventId", keep="last", maintain_order=True)
    end = end.select(
        "sharedEventId",
        pl.col("eventTime").alias("end"), pl.col("eventId").alias("endEventId"),
        pl.col("insightCount").alias("endCount"), pl.col("score").alias("endScore"),
        pl.col("insightAverage").alias("endInsightAverage"), pl.col("baselineAverage").alias("endBaselineAverage"),
        pl.col("raw").alias("endRaw"),
    )
    both = start.join(end, on="sharedEventId", how="left")
    insight_avg = pl.coalesce("endInsightAverage", "insightAverage")
    baseline_avg = pl.coalesce("endBaselineAverage", "baselineAverage")
    rate = pl.col("insightType").is_in(RATE_TYPES)
    raw = pl.coalesce("endRaw", "raw")
    key = raw.str.json_path_match("$.insightDetails.insightContext.model.accessKeyId")
    table = both.select(
        pl.col("sharedEventId").alias("id"),
        pl.col("insightType").alias("type"),
        pl.col("insightObject").alias("object"),
        pl.col("acsRegion").alias("region"),
        pl.col("recipientAccountId").alias("account"),
        pl.col("eventTime").alias("start"),
        pl.col("end"),
        pl.col("end").is_null().alias("open"),
        ((pl.col("end") - pl.col("eventTime")).dt.total_minutes()).alias("durationMinutes"),
        pl.coalesce("endScore", "score").alias("score"),
        pl.when(rate & (baseline_avg > 0)).then((insight_avg / baseline_avg).round(2)).alias("ratio"),
        pl.coalesce("endCount", "insightCount").alias("insightCount"),
        pl.col("eventId").alias("startEventId"),
        pl.col("endEventId"),
        pl.col("sourceIpAddress").alias("ip"),
        pl.col("eventName"),
        pl.col("serviceName"),
        pl.col("errorCode"),
        pl.when(pl.col("insightType") == "AkInsight").then(pl.col("insightObject")).otherwise(key).alias("accessKeyId"),
    )
    return table.cast(INCIDENT_SCHEMA).select(list(INCIDENT_SCHEMA)).sort(["start", "id"])


def search(
    incidents: pl.DataFrame,
    *,
    text: str = "",
    types: Sequence[str] = (),
    regions: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    accounts: Sequence[str] = (),
) -> pl.DataFrame:
    """The incidents the console lists for a search: the page's rules, in Polars.

    Parameters
    ----------
    incidents
        From :func:`incident_table`.
    text
        Matched, case-insensitively and as a substring, against the IP address, the object, the
        type, the sharedEventId and both eventIds, the API name, the AccessKey ID and the account. Empty: all.
    types, regions, accounts
        Keep only these (empty: all); ``accounts`` are recipientAccountIds ("" for none).
    since, until
        Keep incidents overlapping ``[since, until)``; an open incident lasts to the end of data.

    Examples
    --------
    >>> from insights_kit.store import empty_store
    >>> search(incident_table(empty_store()), text="203.0.113.9").height
    0
    """
    keep = pl.lit(True)
    needle = text.strip().lower()
    if needle:
        hit = pl.lit(False)
        for name in SEARCH_FIELDS:
            hit = hit | pl.col(name).str.to_lowercase().str.contains(needle, literal=True).fill_null(False)
        keep = keep & hit
    if types:
        keep = keep & pl.col("type").is_in(list(types))
    if regions:
        keep = keep & pl.col("region").is_in(list(regions))
    if accounts:
        keep = keep & pl.col("account").fill_null("").is_in(list(accounts))
    if until is not None:
        keep = keep & (pl.col("start") < until)
    if since is not None:
        keep = keep & (pl.col("open") | (pl.col("end") >= since))
    return incidents.filter(keep)


def counts(incidents: pl.DataFrame) -> pl.DataFrame:
    """Incidents by region and type, named as GetInsightsEventsCount's ``Data`` items."""
    return (
        incidents.group_by(pl.col("region").alias("RegionId"), pl.col("type").alias("InsightType"))
        .agg(pl.len().cast(pl.Int64).alias("Count"))
        .sort(["RegionId", "InsightType"])
    )


def default_range(incidents: pl.DataFrame, *, data_until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The range a console opens with: the last 30 days of the data (or of the incidents)."""
    last = data_until
    if last is None and incidents.height:
        last = max(t for t in (incidents["end"].max(), incidents["start"].max()) if t is not None)
    return (None, None) if last is None else (last - timedelta(days=30), last)


def _summary(row: dict[str, Any]) -> str:
    count = row["insightCount"]
    kind = row["type"]
    if kind == "IpInsight":
        return f"{count} calls from {row['ip'] or row['object']}"
    if kind in RATE_TYPES:
        what = "errors" if kind == "ApiErrorRateInsight" else "write calls"
        ratio = f", {row['ratio']}× the baseline" if row["ratio"] is not None else ""
        return f"{count} {what} of {row['eventName'] or row['errorCode'] or row['object']}{ratio}"
    return f"{count} calls; score {row['score']}" if row["score"] is not None else f"{count} calls"


def index_rows(incidents: pl.DataFrame) -> list[dict[str, Any]]:
    """The incident list as the page's index holds it (ISO times, a summary, the detail path)."""
    rows = []
    for row in incidents.iter_rows(named=True):
        item = {k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
        item["summary"] = _summary(row)
        item["detail"] = f"console/d/{detail_key(row['id'])}.js"
        rows.append(item)
    return rows


# --------------------------------------------------------------------------- one incident


def dimensions(model: dict[str, Any]) -> list[dict[str, Any]]:
    """IpInsight's heterogeneity dimensions as rows (name, verdict, score, detail as text)."""
    out = []
    for d in model.get("dimensions") or []:
        detail = d.get("detail")
        out.append({
            "name": str(d.get("name")), "verdict": str(d.get("verdict")),
            "score": None if d.get("score") is None else float(d["score"]),
            "detail": None if detail is None else detail if isinstance(detail, str) else json.dumps(
                detail, ensure_ascii=False, sort_keys=True),
        })
    return out


def attributions(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Attributions of an Insights event as rows (attribute, window, value, average)."""
    rows = []
    context = (event.get("insightDetails") or {}).get("insightContext") or {}
    for item in context.get("attributions") or []:
        for window in ("insight", "baseline"):
            for value in item.get(window) or []:
                rows.append({"attribute": str(item.get("attribute")), "window": window,
                             "value": None if value.get("value") is None else str(value.get("value")),
                             "average": None if value.get("average") is None else float(value["average"])})
    return rows


def region_events(events: pl.LazyFrame, region: str, *, home_region: str | None) -> pl.DataFrame:
    """The canonical events ``region`` analyses (global events in the home region), with ``api``."""
    home = home_region or ""
    return (
        analysis_events(events, home_region=home)
        .filter(in_analysis_region(region, home_region=home))
        .with_columns(pl.concat_str([pl.col("serviceName").fill_null("?"), pl.col("eventName").fill_null("?")],
                                    separator="/").alias("api"))
        .sort(["eventTime", "eventId"])
        .collect()
    )


#: Types whose events are one column's value in the account: joined in bulk, not filtered one by one.
KEYED_COLUMNS = {"IpInsight": "sourceIpAddress", "AkInsight": "accessKeyId"}
_EVENT_FIELDS = ("eventTime", "eventId", "api", "eventName", "serviceName", "sourceIpAddress", "principal",
                 "errorCode", "userAgent", "acsRegion")


def _series_frames(incidents: pl.DataFrame, events: pl.DataFrame, models: dict[str, dict]) -> pl.DataFrame:
    """Every incident's series as one frame tagged with its ``id`` (an event may serve several)."""
    from insights_kit.insights import series_predicate
    from insights_kit.store import _series

    # every column stays: the series predicates read eventRW, eventSource and the like
    ev = events.with_columns(pl.col("recipientAccountId").fill_null("").alias("account"),
                             pl.coalesce("userName", "principalId").alias("principal"))
    parts = []
    for kind, column in KEYED_COLUMNS.items():
        keyed = incidents.filter(pl.col("type") == kind).select("id", pl.col("account").fill_null(""),
                                                                pl.col("object").alias(column))
        if keyed.height:
            parts.append(keyed.join(ev, on=["account", column], how="inner").select("id", *_EVENT_FIELDS))
    for row in incidents.filter(~pl.col("type").is_in(list(KEYED_COLUMNS))).iter_rows(named=True):
        model = models.get(row["id"]) or {}
        if row["type"] in ("PolicyChangeInsight", "PasswordChangeInsight", "TrailConcealmentInsight"):
            where = series_predicate({"insightType": row["type"], "insightObject": row["object"],
                                      "model": json.dumps(model)})
        else:
            where = _series({"insightType": row["type"], "insightObject": row["object"], "eventName": row["eventName"],
                             "serviceName": row["serviceName"], "errorCode": row["errorCode"]})
        unit = ev.filter(pl.col("account") == (row["account"] or ""))
        parts.append(unit.filter(where).select(pl.lit(row["id"]).alias("id"), *_EVENT_FIELDS))
    empty = pl.DataFrame(schema={"id": pl.String, **{c: events.schema.get(c, pl.String) for c in _EVENT_FIELDS}})
    return pl.concat([empty, *parts], how="vertical_relaxed")


def _grouped(frame: pl.DataFrame, name: str, *fields: str) -> dict[str, list[dict[str, Any]]]:
    rows = frame.group_by("id", maintain_order=True).agg(pl.struct(*fields).alias(name))
    return {r["id"]: r[name] for r in rows.iter_rows(named=True)}


def details(
    incidents: pl.DataFrame,
    pairs: dict[str, dict[str, dict | None]],
    events: pl.DataFrame,
    *,
    since: datetime,
    until: datetime,
    rate_config: Any = None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[list[list[Any]]]]]:
    """Each incident's detail for the page and its related events in pages of rows, in bulk.

    Parameters
    ----------
    incidents
        Rows of :func:`incident_table`, all of one region.
    pairs
        From :func:`pairs`: each incident's Start and End events.
    events
        The region's events (:func:`region_events`).
    since, until
        The report window, which the trends cover (at one bucket size for all incidents).

    Yields
    ------
    (row, detail, pages)
        The incident row, its detail (``trend``, ``apis``, ``heterogeneity``, ``rate``,
        ``attributions``, ``events``, the Start and End JSON) and its event pages.
    """
    models = {i: ((((p.get("end") or p.get("start") or {}).get("insightDetails") or {}).get("insightContext") or {})
                  .get("model") or {}) for i, p in pairs.items()}
    series = _series_frames(incidents, events, models)
    bucket = bucket_minutes(until - since, max_buckets=MAX_BUCKETS)
    minute = pl.duration(minutes=1)
    bounds = incidents.select(
        "id", "type", "start",
        pl.coalesce("end", pl.max_horizontal(pl.lit(until), pl.col("start") + minute)).alias("stop"),
    ).with_columns(
        pl.min_horizontal(pl.lit(since), pl.col("start")).alias("lo"),
        pl.max_horizontal(pl.lit(until), pl.col("stop")).alias("hi"),
    ).with_columns(
        pl.max_horizontal("lo", pl.col("start") - pl.duration(hours=2)).alias("flo"),
        pl.min_horizontal("hi", pl.col("stop") + pl.duration(hours=2)).alias("fhi"),
    )
    tagged = series.join(bounds, on="id", how="inner")
    trended = tagged.filter(~pl.col("type").is_in(list(RATE_TYPES)))
    window = trended.filter((pl.col("eventTime") >= pl.col("lo")) & (pl.col("eventTime") < pl.col("hi")))

    def trend_rows(frame: pl.DataFrame, size: int) -> dict[str, list[dict[str, Any]]]:
        agg = (frame.group_by("id", pl.col("eventTime").dt.truncate(f"{size}m").alias("t"), "api")
               .agg(pl.len().cast(pl.Int64).alias("calls")).sort(["id", "t", "api"])
               .with_columns(_iso_expr("t").alias("t")))
        return _grouped(agg, "rows", "t", "api", "calls")

    coarse = trend_rows(window, bucket)
    fine = {} if bucket == 1 else trend_rows(
        window.filter((pl.col("eventTime") >= pl.col("flo")) & (pl.col("eventTime") < pl.col("fhi"))), 1)
    apis_agg = (
        window.sort(["id", "eventTime", "eventId"])
        .group_by("id", "api", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("calls"),
             pl.col("errorCode").is_not_null().sum().cast(pl.Int64).alias("errors"),
             _iso_expr("eventTime").head(MAX_TIMES).alias("times"))
        .with_columns((pl.col("calls") > MAX_TIMES).alias("timesTruncated"))
        .sort(["id", "calls", "api"], descending=[False, True, False])
    )
    apis = _grouped(apis_agg, "apis", "api", "calls", "errors", "times", "timesTruncated")
    related = (
        tagged.filter((pl.col("eventTime") >= pl.col("start")) & (pl.col("eventTime") < pl.col("stop")))
        .sort(["id", "eventTime", "eventId"])
        .select("id", _iso_expr("eventTime").alias("eventTime"), *EVENT_COLUMNS[1:])
    )
    related_rows: dict[str, list[list[Any]]] = {}
    for part in related.partition_by("id", as_dict=False, maintain_order=True):
        related_rows[part["id"][0]] = [list(r) for r in part.drop("id").iter_rows()]
    spans = {r["id"]: r for r in bounds.iter_rows(named=True)}
    rates = _rates(incidents, pairs, spans, events, rate_config)
    for row in incidents.iter_rows(named=True):
        yield (row, *_one_detail(row, pairs.get(row["id"]) or {}, models.get(row["id"]) or {}, spans[row["id"]],
                                 coarse=coarse, fine=fine, bucket=bucket, apis=apis,
                                 rows=related_rows.get(row["id"], []), rate=rates.get(row["id"])))


def _one_detail(row: dict[str, Any], pair: dict[str, Any], model: dict[str, Any], span: dict[str, Any], *,
                coarse: dict, fine: dict, bucket: int, apis: dict, rows: list,
                rate: dict[str, Any] | None) -> tuple[dict[str, Any], list[list[list[Any]]]]:
    kind, rid = row["type"], row["id"]
    latest = pair.get("end") or pair.get("start") or {}
    detail: dict[str, Any] = {
        "id": rid, "start": pair.get("start"), "end": pair.get("end"),
        "attributions": attributions(latest),
        "incidentSpan": {"start": iso(row["start"]), "end": iso(row["end"])},
        "trend": None, "apis": [], "heterogeneity": None, "rate": None,
    }
    if kind not in RATE_TYPES:
        buckets = [{"bucketMinutes": bucket, "since": iso(span["lo"]), "until": iso(span["hi"]),
                    "rows": coarse.get(rid, [])}]
        if bucket > 1:
            buckets.append({"bucketMinutes": 1, "since": iso(span["flo"]), "until": iso(span["fhi"]),
                            "rows": fine.get(rid, [])})
        what = f"Calls from {row['object']}" if kind == "IpInsight" else (
            f"Calls with AccessKey {row['object']}" if kind == "AkInsight" else f"Watched calls of {row['object']}")
        detail["trend"] = {"title": what, "buckets": buckets}
        detail["apis"] = apis.get(rid, [])
    if kind == "IpInsight":
        detail["heterogeneity"] = {
            "score": model.get("score"), "threshold": model.get("threshold"),
            "scope": "over the whole incident" if row["end"] is not None else "so far (the incident is open)",
            "dimensions": dimensions(model),
        }
    detail["rate"] = rate
    pages = [rows[i:i + EVENTS_PER_PAGE] for i in range(0, len(rows), EVENTS_PER_PAGE)]
    key = detail_key(rid)
    detail["events"] = {"total": len(rows), "pageSize": EVENTS_PER_PAGE, "columns": list(EVENT_COLUMNS),
                        "pages": [f"console/d/{key}-e{n}.js" for n in range(len(pages))]}
    return detail, pages


def incident_detail(
    row: dict[str, Any],
    start_event: dict[str, Any] | None,
    end_event: dict[str, Any] | None,
    events: pl.DataFrame,
    *,
    since: datetime,
    until: datetime,
    rate_config: Any = None,
) -> tuple[dict[str, Any], list[list[list[Any]]]]:
    """One incident's detail and event pages (:func:`details` for a single row).

    ``events`` are the region's (:func:`region_events`); the account is picked here.
    """
    one = pl.DataFrame([row], schema=INCIDENT_SCHEMA)
    pair = {row["id"]: {"start": start_event, "end": end_event}}
    _, detail, pages = next(details(one, pair, events, since=since, until=until, rate_config=rate_config))
    return detail, pages


def _shown_details(row: dict[str, Any], latest: dict[str, Any]) -> dict[str, Any]:
    """The incident's insightDetails, with the row's fields standing in for what an event lacks."""
    return {"insightType": row["type"], "insightObject": row["object"], "eventName": row["eventName"],
            "serviceName": row["serviceName"], "errorCode": row["errorCode"],
            **{k: v for k, v in (latest.get("insightDetails") or {}).items() if v is not None}}


def _rates(incidents: pl.DataFrame, pairs: dict[str, dict], spans: dict[str, dict], events: pl.DataFrame,
           config: Any) -> dict[str, dict[str, Any]]:
    """The rate chart of every rate incident: one model run per series, sliced per incident."""
    from insights_kit.config import Config
    from insights_kit.detectors._rate import rate_series

    cfg = config if isinstance(config, Config) else Config()
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row in incidents.filter(pl.col("type").is_in(list(RATE_TYPES))).iter_rows(named=True):
        pair = pairs.get(row["id"]) or {}
        shown = _shown_details(row, pair.get("end") or pair.get("start") or {})
        key = (row["account"] or "", row["type"], shown.get("serviceName"), shown.get("eventName"),
               shown.get("errorCode"))
        groups.setdefault(key, []).append((row, shown))
    # A model run costs more the longer its span: incidents of a series share one run only when
    # their charts are close in time.
    runs = []
    for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        members.sort(key=lambda m: spans[m[0]["id"]]["start"])
        current: list = []
        for member in members:
            begin = spans[member[0]["id"]]["start"] - FINE_CONTEXT
            if current and begin > max(spans[r["id"]]["stop"] for r, _ in current) + FINE_CONTEXT + MERGE_GAP:
                runs.append((key, current))
                current = []
            current.append(member)
        runs.append((key, current))
    # Every incident of a series is kept out of its baseline, as the detector keeps it out.
    masks = {key: [(spans[r["id"]]["start"], r["end"]) for r, _ in members] for key, members in groups.items()}
    out = {}
    units: dict[str, pl.DataFrame] = {}
    for (account, kind, service, name, code), members in runs:
        if account not in units:
            units[account] = events.filter(pl.col("recipientAccountId").fill_null("") == account)
        unit = units[account]
        lo = min(spans[r["id"]]["start"] for r, _ in members) - FINE_CONTEXT
        hi = max(spans[r["id"]]["stop"] for r, _ in members) + FINE_CONTEXT
        data_start = unit["eventTime"].min().replace(second=0, microsecond=0) if unit.height else None
        frame = rate_series(
            unit.lazy(), insight_type=kind, since=lo, until=hi, service_name=service, event_name=name,
            error_code=code, config=cfg.call_rate if kind == "ApiCallRateInsight" else cfg.error_rate,
            data_start=data_start, masks=masks.get((account, kind, service, name, code), ()),
        ).select(
            "minute", _iso_expr("minute").alias("t"), pl.col("count").cast(pl.Int64),
            pl.col("expected").cast(pl.Float64).round(4), pl.col("upper").cast(pl.Float64).round(4),
        )
        unit_name = "errors" if kind == "ApiErrorRateInsight" else "write calls"
        for row, shown in members:
            span = spans[row["id"]]
            what = shown.get("eventName") or shown.get("insightObject")
            title = f"{what}: {unit_name} per minute" + (f" ({code})" if code else "")
            rows = frame.filter(pl.col("minute").is_between(span["start"] - FINE_CONTEXT, span["stop"] + FINE_CONTEXT,
                                                            closed="left")).drop("minute").to_dicts()
            out[row["id"]] = {"title": title, "unit": unit_name, "rows": rows}
    return out


def pairs(insights: pl.DataFrame, ids: Iterable[str]) -> dict[str, dict[str, dict | None]]:
    """``sharedEventId`` → ``{"start": event, "end": event}`` parsed from the store's ``raw`` column."""
    wanted = insights.filter(pl.col("sharedEventId").is_in(list(ids)))
    out: dict[str, dict[str, dict | None]] = {}
    for shared, state, raw in wanted.select("sharedEventId", "state", "raw").iter_rows():
        out.setdefault(shared, {"start": None, "end": None})[state.lower()] = json.loads(raw)
    return out


__all__ = ["INCIDENT_SCHEMA", "attributions", "counts", "details", "default_range", "detail_key", "dimensions",
           "incident_detail", "incident_table", "index_rows", "pairs", "region_events", "search"]
