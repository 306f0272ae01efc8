"""Incidents become ActionTrail Insights events: a Start and, once closed, an End.

The layout and every decision where ActionTrail's published format is silent are in
``docs/design.md`` ("Insights events"). Two properties matter downstream:

* **Ids derive from content.** ``sharedEventId`` hashes the incident's identity (account,
  region, type, object, error code, start minute); ``eventId`` hashes that and the state.
  Re-detecting an incident in a later run gives the same ids, so a store deduplicates it.
* **A Start only uses data up to the minute it fired.** Its statistics and attributions never
  depend on what came later, so an incremental run emits the same Start, byte for byte, as a
  run over the whole span.

Examples
--------
>>> guid("1234567890123456", "cn-hangzhou") == guid("1234567890123456", "cn-hangzhou")
True
>>> round_sig(0.123456789)
0.123457
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta
from typing import Any

import polars as pl

#: Attributes reported per insight type (Alibaba's names; AWS calls principalId userIdentityArn).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "ApiCallRateInsight": ("principalId", "userAgent", "sourceIpAddress", "errorCode"),
    "ApiErrorRateInsight": ("principalId", "userAgent", "sourceIpAddress", "errorCode", "apiRelated"),
    "IpInsight": ("principalId", "userAgent", "apiRelated", "errorCode"),
    "AkInsight": ("apiRelated", "sourceIpAddress", "userAgent", "errorCode"),
    "PolicyChangeInsight": ("principalId", "sourceIpAddress", "userAgent", "apiRelated"),
    "PasswordChangeInsight": ("principalId", "sourceIpAddress", "userAgent", "apiRelated"),
    "TrailConcealmentInsight": ("principalId", "sourceIpAddress", "userAgent", "apiRelated"),
}
#: Types whose averages are per minute; the others report counts.
RATE_TYPES = ("ApiCallRateInsight", "ApiErrorRateInsight")
TOP_VALUES = 5


def guid(*parts: object) -> str:
    """A deterministic, uppercase GUID-shaped id from the parts (SHA-256, first 16 bytes)."""
    digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()
    d = digest[:32].upper()
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"


def round_sig(value: float | None, digits: int = 6) -> float | int | None:
    """Round to significant digits so that the JSON is stable across platforms."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value == 0:
        return 0
    rounded = round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return int(rounded) if float(rounded).is_integer() and abs(rounded) < 2**53 else rounded


def iso_minute(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:00Z")


def series_predicate(incident: dict[str, Any]) -> pl.Expr:
    """The management events an incident is about (without the time window).

    Call rate: writes of the API. Error rate: failed calls of the API, or of the error code
    when the object is a code. IpInsight: every call from the address. AkInsight: every call
    with the key. Policy, password and trail types: the successful watched calls of the service.
    """
    kind = incident["insightType"]
    if kind == "IpInsight":
        return pl.col("sourceIpAddress") == incident["insightObject"]
    if kind == "ApiCallRateInsight":
        return (
            (pl.col("eventRW") == "Write")
            & (pl.col("eventName") == incident["eventName"])
            & _same_or_null("serviceName", incident.get("serviceName"))
            & _same_or_null("eventSource", incident.get("eventSource"))
        )
    if kind == "ApiErrorRateInsight":
        predicate = pl.col("errorCode").is_not_null()
        if incident.get("eventName"):
            predicate &= (pl.col("eventName") == incident["eventName"]) & _same_or_null(
                "serviceName", incident.get("serviceName")
            )
        if incident.get("errorCode"):
            predicate &= pl.col("errorCode") == incident["errorCode"]
        return predicate
    if kind == "AkInsight":
        return pl.col("accessKeyId") == incident["insightObject"]
    if kind in ("TrailConcealmentInsight", "PolicyChangeInsight", "PasswordChangeInsight"):
        # The model lists every watched call of the service (the type's table), not only
        # those of the incident, so the Start's related events do not depend on later calls.
        names = (json.loads(incident["model"]) if incident.get("model") else {}).get("eventNames", [])
        return (
            (pl.col("serviceName") == incident["insightObject"])
            & pl.col("eventName").is_in(names)
            & pl.col("errorCode").is_null()
        )
    raise ValueError(f"unknown insight type {kind!r}")


def _same_or_null(column: str, value: str | None) -> pl.Expr:
    return pl.lit(True) if value is None else pl.col(column) == value


def _attribution_values(frame: pl.DataFrame, attribute: str, divisor: float) -> list[dict[str, Any]]:
    if frame.is_empty():
        return []
    if attribute == "apiRelated":
        values = pl.concat_str(
            [pl.col("serviceName").fill_null("null"), pl.col("eventName").fill_null("null")], separator="/"
        )
    else:
        values = pl.col(attribute).fill_null("null")
    top = (
        frame.select(values.alias("value"))
        .group_by("value")
        .len()
        .sort(["len", "value"], descending=[True, False])
        .head(TOP_VALUES)
    )
    return [{"value": v, "average": round_sig(n / divisor)} for v, n in top.iter_rows()]


def attributions(
    window: pl.DataFrame, baseline: pl.DataFrame, *, insight_type: str, window_divisor: float, baseline_divisor: float
) -> list[dict[str, Any]]:
    """Top values per attribute in the insight window and in the baseline window."""
    return [
        {
            "attribute": attribute,
            "insight": _attribution_values(window, attribute, window_divisor),
            "baseline": _attribution_values(baseline, attribute, baseline_divisor),
        }
        for attribute in ATTRIBUTES[insight_type]
    ]


def _statistics(baseline: float, insight: float, duration: int, baseline_duration: int, count: int) -> dict:
    return {
        "baseline": {"average": round_sig(baseline)},
        "insight": {"average": round_sig(insight)},
        "insightDuration": int(duration),
        "baselineDuration": int(baseline_duration),
        "insightCount": int(count),
    }


def event_ids(incident: dict[str, Any], *, account: str, region: str) -> list[str]:
    """The ids of the events :func:`assemble` makes of ``incident``: its Start's, and its End's once closed."""
    shared = _shared_id(incident, account=account, region=region)
    return [guid(shared, "Start"), *([guid(shared, "End")] if incident["endTime"] is not None else [])]


def _shared_id(incident: dict[str, Any], *, account: str, region: str) -> str:
    return guid(account, region, incident["insightType"], incident["insightObject"], incident.get("errorCode"),
                iso_minute(incident["startTime"]))


def assemble(
    incidents: pl.DataFrame, events: pl.DataFrame, *, account: str, region: str,
    skip: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Start and End Insights events for every incident of one unit.

    ``events`` are the unit's canonical events (history included) from which the
    attributions are counted. Loops over incidents, never over events. ``skip``: ids of events
    already emitted (a ``--state`` run's ledger), which are not made again.
    """
    out: list[dict[str, Any]] = []
    for incident in incidents.iter_rows(named=True):
        if skip and set(event_ids(incident, account=account, region=region)) <= skip:
            continue
        out.extend(e for e in _incident_events(incident, events, account=account, region=region)
                   if e["eventId"] not in skip)
    return out


def _incident_events(incident: dict, events: pl.DataFrame, *, account: str, region: str) -> list[dict]:
    kind = incident["insightType"]
    start: datetime = incident["startTime"]
    fired: datetime = incident["firedAt"] or start
    baseline_minutes = int(incident["baselineDuration"] or 0)
    shared = _shared_id(incident, account=account, region=region)
    series = events.filter(series_predicate(incident))
    baseline_frame = series.filter(
        pl.col("eventTime").is_between(start - timedelta(minutes=baseline_minutes), start, closed="left")
    )
    model = json.loads(incident["model"]) if incident.get("model") else {}
    # Rate averages are per minute, the others' are counts (AkInsight: per its rule).
    per_minute = kind in RATE_TYPES or (kind == "AkInsight" and model.get("rule") == "rate")
    baseline_divisor = (baseline_minutes if per_minute else max(baseline_minutes / 1440, 1.0)) or 1.0

    end_model = json.loads(incident["endModel"]) if incident.get("endModel") else model

    def details(state: str, statistics: dict, attribution: list) -> dict:
        detail: dict[str, Any] = {"state": state, "insightType": kind, "insightObject": incident["insightObject"]}
        for key in ("serviceName", "eventSource", "eventName", "errorCode", "sourceIpAddress"):
            if incident.get(key) is not None:
                detail[key] = incident[key]
        detail["insightContext"] = {"statistics": statistics, "attributions": attribution,
                                    "model": end_model if state == "End" else model}
        if state == "End" and incident.get("endReason"):  # the Start cannot know it
            detail["insightContext"]["endReason"] = incident["endReason"]
        return detail

    def event(state: str, when: datetime, statistics: dict, attribution: list) -> dict:
        return {
            "eventVersion": "1",
            "eventType": "ActionTrailInsight",
            "eventCategory": "Insight",
            "eventId": guid(shared, state),
            "eventTime": iso_minute(when),
            "acsRegion": region,
            "recipientAccountId": account,
            "sharedEventId": shared,
            "insightDetails": details(state, statistics, attribution),
        }

    # Start: what was known when the detector fired.
    start_end = fired + timedelta(minutes=1)
    start_minutes = max(int((start_end - start).total_seconds() // 60), 1)
    start_window = series.filter(pl.col("eventTime").is_between(start, start_end, closed="left"))
    start_count = start_window.height
    start_stats = _statistics(
        incident["baselineAverage"] or 0.0,
        incident["startAverage"] if incident["startAverage"] is not None else start_count,
        start_minutes,
        baseline_minutes,
        start_count,
    )
    divisor = start_minutes if per_minute else 1.0
    result = [
        event(
            "Start",
            start,
            start_stats,
            attributions(
                start_window,
                baseline_frame,
                insight_type=kind,
                window_divisor=divisor,
                baseline_divisor=baseline_divisor,
            ),
        )
    ]
    end: datetime | None = incident["endTime"]
    if end is not None:
        window = series.filter(pl.col("eventTime").is_between(start, end, closed="left"))
        duration = max(int((end - start).total_seconds() // 60), 1)
        end_stats = _statistics(
            incident["baselineAverage"] or 0.0,
            incident["insightAverage"] if incident["insightAverage"] is not None else window.height / duration,
            duration,
            baseline_minutes,
            incident["insightCount"] if incident["insightCount"] is not None else window.height,
        )
        result.append(
            event(
                "End",
                end,
                end_stats,
                attributions(
                    window,
                    baseline_frame,
                    insight_type=kind,
                    window_divisor=duration if per_minute else 1.0,
                    baseline_divisor=baseline_divisor,
                ),
            )
        )
    return result
