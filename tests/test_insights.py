"""Start/End assembly: ids, statistics, attributions, determinism."""

import json
from datetime import datetime, timedelta, timezone

import polars as pl

from insights_kit.detectors.base import conform_incidents
from insights_kit.insights import assemble, event_ids, guid, round_sig, series_predicate
from insights_kit.schema import conform

T0 = datetime(2025, 3, 10, 14, 0, tzinfo=timezone.utc)


def _events() -> pl.DataFrame:
    rows = []
    # baseline: one DeleteInstance a day for 7 days by the ops user
    for d in range(1, 8):
        rows.append(dict(eventTime=T0 - timedelta(days=d), principalId="ops", userAgent="cli", eventName="DeleteInstance"))
    # incident: 30 deletes in 3 minutes by a stranger, 5 of them failed
    for i in range(30):
        rows.append(
            dict(
                eventTime=T0 + timedelta(seconds=6 * i),
                principalId="stranger",
                userAgent="python-requests/2.28.1",
                eventName="DeleteInstance",
                errorCode="Forbidden" if i % 6 == 0 else None,
            )
        )
    frame = pl.DataFrame(rows, schema_overrides={"eventTime": pl.Datetime("us", "UTC")})
    frame = frame.with_columns(
        eventId=pl.format("E{}", pl.int_range(pl.len())),
        eventRW=pl.lit("Write"),
        serviceName=pl.lit("Ecs"),
        eventSource=pl.lit("ecs.aliyuncs.com"),
        sourceIpAddress=pl.lit("185.220.101.34"),
        acsRegion=pl.lit("cn-shanghai"),
    )
    return conform(frame).collect()


def _incident(end=True) -> pl.DataFrame:
    return conform_incidents(
        pl.DataFrame(
            {
                "insightType": ["ApiCallRateInsight"],
                "insightObject": ["DeleteInstance"],
                "serviceName": ["Ecs"],
                "eventSource": ["ecs.aliyuncs.com"],
                "eventName": ["DeleteInstance"],
                "startTime": [T0],
                "endTime": [T0 + timedelta(minutes=3) if end else None],
                "baselineAverage": [7 / 10080],
                "baselineDuration": [10080],
                "startAverage": [10.0],
                "insightAverage": [10.0],
                "insightDuration": [3],
                "insightCount": [30],
                "firedAt": [T0],
                "model": [json.dumps({"expected": 0.05, "pValue": 1e-12})],
            },
            schema_overrides={"startTime": pl.Datetime("us", "UTC"), "endTime": pl.Datetime("us", "UTC"), "firedAt": pl.Datetime("us", "UTC")},
        )
    )


def test_start_and_end_share_an_id_and_follow_the_format():
    start, end = assemble(_incident(), _events(), account="1234567890123456", region="cn-shanghai")
    assert start["sharedEventId"] == end["sharedEventId"]
    assert start["eventId"] != end["eventId"]
    assert (start["eventType"], start["eventCategory"], start["eventVersion"]) == ("ActionTrailInsight", "Insight", "1")
    assert start["eventTime"] == "2025-03-10T14:00:00Z" and end["eventTime"] == "2025-03-10T14:03:00Z"
    details = start["insightDetails"]
    assert details["state"] == "Start" and end["insightDetails"]["state"] == "End"
    assert details["insightObject"] == "DeleteInstance" and details["serviceName"] == "Ecs"
    stats = end["insightDetails"]["insightContext"]["statistics"]
    assert stats["insightCount"] == 30 and stats["insightDuration"] == 3 and stats["baselineDuration"] == 10080
    assert stats["baseline"] == {"average": round_sig(7 / 10080)}


def test_start_uses_only_the_first_minute_and_attributions_rank_values():
    start, end = assemble(_incident(), _events(), account="1", region="cn-shanghai")
    assert start["insightDetails"]["insightContext"]["statistics"]["insightCount"] == 10  # 10 calls in minute one
    attrs = {a["attribute"]: a for a in end["insightDetails"]["insightContext"]["attributions"]}
    assert attrs["principalId"]["insight"] == [{"value": "stranger", "average": 10}]
    assert attrs["principalId"]["baseline"] == [{"value": "ops", "average": round_sig(7 / 10080)}]
    errors = attrs["errorCode"]["insight"]
    assert errors[0] == {"value": "null", "average": round_sig(25 / 3)} and errors[1]["value"] == "Forbidden"


def test_open_incident_has_no_end_and_ids_are_deterministic():
    first = assemble(_incident(end=False), _events(), account="1", region="cn-shanghai")
    again = assemble(_incident(end=False), _events(), account="1", region="cn-shanghai")
    assert len(first) == 1 and first == again
    closed = assemble(_incident(), _events(), account="1", region="cn-shanghai")
    assert closed[0] == first[0]  # the Start does not change when the incident closes later


def test_events_already_emitted_are_not_made_again():
    start, end = assemble(_incident(), _events(), account="1", region="cn-shanghai")
    ids = event_ids(_incident().row(0, named=True), account="1", region="cn-shanghai")
    assert ids == [start["eventId"], end["eventId"]]
    assert assemble(_incident(), _events(), account="1", region="cn-shanghai", skip=frozenset(ids[:1])) == [end]
    assert assemble(_incident(), _events(), account="1", region="cn-shanghai", skip=frozenset(ids)) == []
    # an open incident has only its Start's id
    assert event_ids(_incident(end=False).row(0, named=True), account="1", region="cn-shanghai") == ids[:1]


def test_guid_shape_and_series_predicates():
    g = guid("a", 1, None)
    assert len(g) == 36 and g == g.upper() and g.count("-") == 4
    frame = _events()
    ip = {"insightType": "IpInsight", "insightObject": "185.220.101.34"}
    assert frame.filter(series_predicate(ip)).height == frame.height
    err = {"insightType": "ApiErrorRateInsight", "insightObject": "Forbidden", "errorCode": "Forbidden"}
    assert frame.filter(series_predicate(err)).height == 5
