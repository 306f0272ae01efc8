"""Insights events as OCSF 1.3.0 Detection Findings (JSON Lines).

Every Insights event becomes one Detection Finding (``class_uid`` 2004, category 2
"Findings"), built as a plain dict, so no schema package is needed. A Start *creates* the
finding, its End *closes* it; both carry the incident's ``sharedEventId`` as
``finding_info.uid``, so a SIEM joins them into one finding.

Mapping
-------
=============================  ===============================================================
OCSF                           Insights event
=============================  ===============================================================
``activity_id``/``_name``      1 Create (Start), 3 Close (End)
``type_uid``/``type_name``     ``2004 * 100 + activity_id`` ("Detection Finding: Create")
``time``                       ``eventTime`` as epoch milliseconds (UTC)
``status_id``/``status``       1 New (Start), 4 Resolved (End)
``severity_id``/``severity``   per insight type, :data:`SEVERITY` (below)
``count``                      ``statistics.insightCount``
``duration``                   End only: ``statistics.insightDuration`` minutes, in ms
``metadata``                   ``version`` "1.3.0", ``product`` {name, vendor_name "insights-kit",
                               ``feature.name`` = insightType}, ``uid`` = eventId,
                               ``correlation_uid`` = sharedEventId, ``original_time`` = eventTime
``finding_info``               ``uid`` = sharedEventId, ``title`` "<insightType>: <insightObject>",
                               ``desc`` (one line from the statistics), ``types`` [insightType],
                               ``analytic`` {name insightType, type_id 3 Statistical for the two
                               rate types, 2 Behavioral for the others},
                               ``first_seen_time`` (the incident's start, ms),
                               ``last_seen_time`` (End only: the End's time, ms)
``cloud``                      ``provider`` (rule below), ``region`` = acsRegion,
                               ``account.uid`` = recipientAccountId
``evidences``                  ``[{"src_endpoint": {"ip"}, "api": {"operation", "service"}}]``
                               when the insight has an address and/or an API name
``observables``                ``[{"name": "evidences.src_endpoint.ip", "type": "IP Address",
                               "type_id": 2, "value": ip}]``: ``insightDetails.sourceIpAddress``,
                               or the object of an IpInsight
``unmapped.actiontrail``       the original Insights event, unchanged
=============================  ===============================================================

A Start's first-seen time is its ``eventTime``; an End's ``eventTime`` is the incident's end
and its ``insightDuration`` spans the whole incident, so its first-seen time is
``eventTime - insightDuration`` minutes (the Start's time).

Severity (:data:`SEVERITY`)
---------------------------
=============================  ==============  ===============================================
Insight type                   severity_id     why
=============================  ==============  ===============================================
TrailConcealmentInsight        4 High          audit logging stopped or deleted: blinds you
PolicyChangeInsight            4 High          privilege change, a classic persistence step
AkInsight                      4 High          an AccessKey used in an unusual way (theft)
PasswordChangeInsight          3 Medium        account takeover or routine rotation
ApiCallRateInsight             3 Medium        volume anomaly, often benign
ApiErrorRateInsight            3 Medium        error burst, often benign (or enumeration)
IpInsight                      by score        ``model.score`` >= 0.8 High, >= 0.5 Medium,
                                               else Low; no score: Medium
any other type                 0 Unknown
=============================  ==============  ===============================================

Cloud provider
--------------
ActionTrail is Alibaba Cloud's, but the toolkit also reads CloudTrail, and both clouds use
region ids such as ``us-east-1``, ``ap-southeast-1`` or ``eu-central-1``. :func:`cloud_provider`
decides, first rule that applies:

1. ``insightDetails.eventSource`` ends with ``.amazonaws.com`` -> "AWS"; with ``.aliyuncs.com``
   -> "Alibaba Cloud";
2. ``recipientAccountId`` is 12 digits (an AWS account id) -> "AWS"; 16 digits (an Alibaba
   Cloud account UID) -> "Alibaba Cloud";
3. ``acsRegion`` has AWS's shape (:data:`AWS_REGION`: ``<area>[-gov|-iso*]-<direction>-<digit>``,
   area one of us eu ap sa ca me af il mx, e.g. ``us-east-1``, ``eu-west-2``,
   ``ap-southeast-2``, ``us-gov-west-1``) -> "AWS";
4. otherwise "Alibaba Cloud" (``cn-hangzhou``, ``cn-shanghai-finance-1``...).

Rule 3 alone would call Alibaba's international regions (``ap-southeast-1`` Singapore,
``us-east-1`` Virginia...) AWS; rules 1-2 settle that for every event insights-kit writes
(its ActionTrail account ids have 16 digits). Pass ``provider=`` to :func:`to_finding` /
:func:`export` to force a value.

The output is deterministic: lines are ``json.dumps(..., sort_keys=True, ensure_ascii=False)``,
sorted by ``(time, metadata.uid)``, written atomically (:func:`insights_kit.lake.atomic_write_text`).

Examples
--------
>>> ev = {"eventId": "E1", "sharedEventId": "S1", "eventTime": "2025-03-04T08:15:00Z",
...       "acsRegion": "cn-hangzhou", "recipientAccountId": "1",
...       "insightDetails": {"state": "Start", "insightType": "IpInsight", "insightObject": "203.0.113.9"}}
>>> f = to_finding(ev)
>>> f["class_uid"], f["type_uid"], f["status"], f["cloud"]["provider"], f["observables"][0]["value"]
(2004, 200401, 'New', 'Alibaba Cloud', '203.0.113.9')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from insights_kit.lake import atomic_write_text

OCSF_VERSION = "1.3.0"
CLASS_UID = 2004
CLASS_NAME = "Detection Finding"
CATEGORY_UID = 2
CATEGORY_NAME = "Findings"
PRODUCT = "insights-kit"

#: OCSF activity of each Insights state: (activity_id, activity_name).
ACTIVITY = {"Start": (1, "Create"), "End": (3, "Close")}
#: OCSF finding status of each Insights state: (status_id, status).
STATUS = {"Start": (1, "New"), "End": (4, "Resolved")}
#: OCSF severity_id -> caption.
SEVERITY_NAMES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
#: severity_id per insight type (IpInsight: by score, see :func:`severity`).
SEVERITY = {
    "TrailConcealmentInsight": 4,
    "PolicyChangeInsight": 4,
    "AkInsight": 4,
    "PasswordChangeInsight": 3,
    "ApiCallRateInsight": 3,
    "ApiErrorRateInsight": 3,
    "IpInsight": 3,
}
#: IpInsight: score at or above which the finding is High, resp. Medium (else Low).
IP_HIGH_SCORE = 0.8
IP_MEDIUM_SCORE = 0.5
#: What an AWS region id looks like.
AWS_REGION = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx)(-gov|-iso[a-z]?)?-"
    r"(north|south|east|west|central|northeast|northwest|southeast|southwest)-\d$"
)
RATE_TYPES = ("ApiCallRateInsight", "ApiErrorRateInsight")


def _parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"eventTime must be ISO text, got {text!r}")
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"unparsable eventTime {text!r}") from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _ms(ts: datetime) -> int:
    return int(round(ts.timestamp() * 1000))


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, dict):  # {"average": x}
        value = value.get("average")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def cloud_provider(event: dict) -> str:
    """"AWS" or "Alibaba Cloud" for an Insights event (the rules are in the module docstring).

    Examples
    --------
    >>> cloud_provider({"acsRegion": "eu-west-2"}), cloud_provider({"acsRegion": "cn-beijing"})
    ('AWS', 'Alibaba Cloud')
    >>> cloud_provider({"acsRegion": "ap-southeast-1", "recipientAccountId": "1234567890123456"})
    'Alibaba Cloud'
    >>> cloud_provider({"acsRegion": "ap-southeast-1", "recipientAccountId": "123456789012"})
    'AWS'
    """
    source = _dict(event.get("insightDetails")).get("eventSource")
    if isinstance(source, str):
        if source.lower().endswith(".amazonaws.com"):
            return "AWS"
        if source.lower().endswith(".aliyuncs.com"):
            return "Alibaba Cloud"
    account = event.get("recipientAccountId")
    if isinstance(account, str) and account.isascii() and account.isdigit():
        if len(account) == 12:
            return "AWS"
        if len(account) == 16:
            return "Alibaba Cloud"
    region = event.get("acsRegion")
    return "AWS" if isinstance(region, str) and AWS_REGION.match(region) else "Alibaba Cloud"


def severity(details: dict) -> int:
    """The OCSF ``severity_id`` of an insight (:data:`SEVERITY`; IpInsight by ``model.score``).

    Examples
    --------
    >>> severity({"insightType": "IpInsight", "insightContext": {"model": {"score": 0.9}}})
    4
    >>> severity({"insightType": "ApiCallRateInsight"})
    3
    """
    kind = details.get("insightType")
    if kind == "IpInsight":
        score = _number(_dict(_dict(details.get("insightContext")).get("model")).get("score"))
        if score is None:
            return SEVERITY["IpInsight"]
        return 4 if score >= IP_HIGH_SCORE else 3 if score >= IP_MEDIUM_SCORE else 2
    return SEVERITY.get(kind, 0) if isinstance(kind, str) else 0


def _source_ip(details: dict) -> str | None:
    ip = details.get("sourceIpAddress")
    if isinstance(ip, str) and ip:
        return ip
    obj = details.get("insightObject")
    if details.get("insightType") == "IpInsight" and isinstance(obj, str) and obj:
        return obj
    return None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _desc(kind: str, state: str, stats: dict) -> str:
    unit = " per minute" if kind in RATE_TYPES else ""
    count = stats.get("insightCount")
    duration = stats.get("insightDuration")
    parts = [
        f"{state}: insight average {_fmt(_number(stats.get('insight')))}{unit}"
        f" vs baseline {_fmt(_number(stats.get('baseline')))}{unit}",
    ]
    if isinstance(duration, int) and not isinstance(duration, bool):
        parts.append(f"over {duration} min")
    if isinstance(count, int) and not isinstance(count, bool):
        parts.append(f"{count} events")
    baseline_minutes = stats.get("baselineDuration")
    if isinstance(baseline_minutes, int) and not isinstance(baseline_minutes, bool):
        parts.append(f"baseline {baseline_minutes} min")
    return ", ".join(parts)


def to_finding(event: dict, *, provider: str | None = None) -> dict:
    """One Insights event as an OCSF 1.3.0 Detection Finding (a plain dict).

    Parameters
    ----------
    event
        An Insights event (``insights_kit.insights`` layout). Needs ``eventTime``; a state
        other than Start/End maps to activity 99 Other, status 99 Other.
    provider
        ``cloud.provider`` to use instead of the rule in the module docstring.

    Returns
    -------
    dict
        The finding; serialise with ``json.dumps(..., sort_keys=True)`` for stable bytes.

    Raises
    ------
    ValueError
        When ``event`` is not a dict or its ``eventTime`` is missing or unparsable.

    Examples
    --------
    >>> end = {"eventId": "E2", "sharedEventId": "S1", "eventTime": "2025-03-04T08:45:00Z",
    ...        "acsRegion": "us-east-1", "recipientAccountId": "1",
    ...        "insightDetails": {"state": "End", "insightType": "PolicyChangeInsight", "insightObject": "Ram",
    ...                           "insightContext": {"statistics": {"insightDuration": 30}}}}
    >>> f = to_finding(end)
    >>> f["activity_name"], f["status_id"], f["severity"], f["cloud"]["provider"]
    ('Close', 4, 'High', 'AWS')
    >>> f["finding_info"]["last_seen_time"] - f["finding_info"]["first_seen_time"]
    1800000
    """
    if not isinstance(event, dict):
        raise ValueError(f"expected an Insights event (dict), got {type(event).__name__}")
    details = _dict(event.get("insightDetails"))
    context = _dict(details.get("insightContext"))
    stats = _dict(context.get("statistics"))
    state = details.get("state")
    kind = details.get("insightType") if isinstance(details.get("insightType"), str) else "Unknown"
    obj = details.get("insightObject")
    when = _parse_time(event.get("eventTime"))
    activity_id, activity_name = ACTIVITY.get(state, (99, "Other"))
    status_id, status = STATUS.get(state, (99, "Other"))
    severity_id = severity(details)
    duration = stats.get("insightDuration")
    duration = duration if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0 else None

    finding_info: dict[str, Any] = {
        "uid": event.get("sharedEventId") or event.get("eventId"),
        "title": f"{kind}: {obj}",
        "desc": _desc(kind, str(state), stats),
        "types": [kind],
        "analytic": {
            "name": kind,
            "type_id": 3 if kind in RATE_TYPES else 2,
            "type": "Statistical" if kind in RATE_TYPES else "Behavioral",
        },
    }
    if state == "End":
        start = when - timedelta(minutes=duration or 0)
        finding_info["first_seen_time"] = _ms(start)
        finding_info["last_seen_time"] = _ms(when)
    else:
        finding_info["first_seen_time"] = _ms(when)

    finding: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "class_uid": CLASS_UID,
        "class_name": CLASS_NAME,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"{CLASS_NAME}: {activity_name}",
        "time": _ms(when),
        "status_id": status_id,
        "status": status,
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES[severity_id],
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "feature": {"name": kind}},
            "uid": event.get("eventId"),
            "correlation_uid": event.get("sharedEventId"),
            "original_time": event.get("eventTime"),
        },
        "finding_info": finding_info,
        "cloud": {
            "provider": provider or cloud_provider(event),
            "region": event.get("acsRegion"),
            "account": {"uid": event.get("recipientAccountId")},
        },
        "unmapped": {"actiontrail": event},
    }
    count = stats.get("insightCount")
    if isinstance(count, int) and not isinstance(count, bool):
        finding["count"] = count
    if state == "End" and duration is not None:
        finding["duration"] = duration * 60_000

    evidence: dict[str, Any] = {}
    ip = _source_ip(details)
    if ip is not None:
        evidence["src_endpoint"] = {"ip": ip}
        finding["observables"] = [
            {"name": "evidences.src_endpoint.ip", "type": "IP Address", "type_id": 2, "value": ip}
        ]
    api_name = details.get("eventName")
    if isinstance(api_name, str) and api_name:
        api: dict[str, Any] = {"operation": api_name}
        service = details.get("serviceName") or details.get("eventSource")
        if isinstance(service, str) and service:
            api["service"] = {"name": service}
        evidence["api"] = api
    if evidence:
        finding["evidences"] = [evidence]
    return finding


def _events(store_events: Any) -> list[dict]:
    """Dicts from a list of events or a frame with a ``raw`` column (``store.read_events``)."""
    columns = getattr(store_events, "columns", None)
    if columns is not None:
        if "raw" not in columns:
            raise ValueError("the frame has no 'raw' column: pass store.read_events(...) or a list of events")
        out = []
        for number, text in enumerate(store_events["raw"].to_list(), 1):
            try:
                event = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                raise ValueError(f"row {number}: raw is not JSON") from None
            out.append(event)
        return out
    if isinstance(store_events, (str, bytes, dict)) or not isinstance(store_events, Iterable):
        raise ValueError("expected a list of Insights events or a store.read_events frame")
    return list(store_events)


def export(store_events: Any, out: Path, *, provider: str | None = None) -> int:
    """Write the events as OCSF Detection Findings to ``out`` (JSON Lines); the count.

    Parameters
    ----------
    store_events
        A list of Insights event dicts, or the Polars frame of :func:`insights_kit.store.read_events`
        (its ``raw`` column is used).
    out
        The ``.jsonl`` file to write (folders created, replaced atomically).
    provider
        Passed to :func:`to_finding`.

    Returns
    -------
    int
        How many findings were written (an empty input writes an empty file).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "findings.jsonl"
    >>> ev = {"eventId": "E1", "sharedEventId": "S1", "eventTime": "2025-03-04T08:15:00Z",
    ...       "acsRegion": "cn-hangzhou", "insightDetails": {"state": "Start", "insightType": "AkInsight",
    ...       "insightObject": "LTAI0000"}}
    >>> export([ev], path)
    1
    >>> json.loads(path.read_text())["type_uid"]
    200401
    """
    findings = [to_finding(event, provider=provider) for event in _events(store_events)]
    findings.sort(key=lambda f: (f["time"], str(f["metadata"]["uid"] or "")))
    text = "".join(json.dumps(f, sort_keys=True, ensure_ascii=False) + "\n" for f in findings)
    atomic_write_text(Path(out), text)
    return len(findings)
