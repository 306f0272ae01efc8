"""The console's data: incidents merged from Start and End, the search rules, one incident's detail."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from insights_kit import store
from insights_kit.console import data
from insights_kit.schema import conform

UTC = timezone.utc
T0 = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)
ACCOUNT = "1234567890123456"


def insight(event_id, when, *, state, kind="IpInsight", obj="203.0.113.9", shared="S1", region="cn-hangzhou",
            stats=None, model=None, **details):
    context = {"statistics": stats or {}, "model": model or {}}
    return {
        "eventVersion": "1", "eventType": "ActionTrailInsight", "eventCategory": "Insight",
        "eventId": event_id, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "acsRegion": region,
        "recipientAccountId": ACCOUNT, "sharedEventId": shared,
        "insightDetails": {"state": state, "insightType": kind, "insightObject": obj, "insightContext": context,
                           **details},
    }


def frame(*events):
    return store.events_frame(list(events))


def calls(rows):
    """Canonical management events from (minute offset, ip, eventName, errorCode) tuples."""
    return conform(pl.DataFrame([
        {"eventId": f"e{n:05d}", "eventTime": T0 + timedelta(minutes=m, seconds=n % 50), "eventName": name,
         "serviceName": "Ecs", "eventRW": "Write", "acsRegion": "cn-hangzhou", "isGlobal": False,
         "recipientAccountId": ACCOUNT, "sourceIpAddress": ip, "errorCode": code, "userName": "alice",
         "userAgent": "</script><b>ua</b>"}
        for n, (m, ip, name, code) in enumerate(rows)
    ]).lazy())


@pytest.fixture
def incidents():
    closed_ip = [
        insight("a1", T0, state="Start", model={"score": 0.7}, stats={"insightCount": 3}),
        insight("a2", T0 + timedelta(minutes=40), state="End", model={"score": 0.9, "threshold": 0.6,
                "dimensions": [{"name": "network", "verdict": "UNSEEN", "score": 1.0, "detail": {"asn": 64500}}]},
                stats={"insightCount": 140}),
    ]
    open_rate = [insight("b1", T0 + timedelta(hours=5), state="Start", kind="ApiCallRateInsight", obj="DeleteInstance",
                         shared="S2", region="cn-beijing", eventName="DeleteInstance", serviceName="Ecs",
                         stats={"baseline": {"average": 0.5}, "insight": {"average": 6.0}, "insightCount": 12})]
    return data.incident_table(frame(*closed_ip, *open_rate))


def test_start_and_end_are_merged_into_one_row_with_the_end_s_figures(incidents):
    ip = incidents.filter(pl.col("id") == "S1").row(0, named=True)
    assert ip["start"] == T0 and ip["end"] == T0 + timedelta(minutes=40) and ip["open"] is False
    assert ip["durationMinutes"] == 40 and ip["insightCount"] == 140 and ip["score"] == 0.9
    assert ip["startEventId"] == "a1" and ip["endEventId"] == "a2" and ip["ip"] == "203.0.113.9"
    rate = incidents.filter(pl.col("id") == "S2").row(0, named=True)
    assert rate["open"] is True and rate["end"] is None and rate["ratio"] == 12.0 and rate["score"] is None


def test_an_end_without_its_start_is_left_out():
    table = data.incident_table(frame(insight("z", T0, state="End", shared="lonely")))
    assert table.height == 0 and table.columns == list(data.INCIDENT_SCHEMA)


@pytest.mark.parametrize("text, expected", [
    ("203.0.113", {"S1"}), ("APICALLRATE", {"S2"}), ("a2", {"S1"}), ("s2", {"S2"}), ("deleteinst", {"S2"}),
    ("", {"S1", "S2"}), ("198.51.100.1", set()),
])
def test_one_search_box_matches_ip_type_and_ids(incidents, text, expected):
    assert set(data.search(incidents, text=text)["id"]) == expected


def test_type_region_and_time_filters(incidents):
    assert set(data.search(incidents, types=["IpInsight"])["id"]) == {"S1"}
    assert set(data.search(incidents, regions=["cn-beijing"])["id"]) == {"S2"}
    # overlap: the closed incident ends at 10:40; an open one lasts to the end of data
    assert set(data.search(incidents, since=T0 + timedelta(minutes=41))["id"]) == {"S2"}
    assert set(data.search(incidents, since=T0 + timedelta(minutes=39), until=T0 + timedelta(hours=1))["id"]) == {"S1"}
    assert set(data.search(incidents, since=T0 + timedelta(days=9))["id"]) == {"S2"}


def test_counts_are_by_region_and_type(incidents):
    assert data.counts(incidents).to_dicts() == [
        {"RegionId": "cn-beijing", "InsightType": "ApiCallRateInsight", "Count": 1},
        {"RegionId": "cn-hangzhou", "InsightType": "IpInsight", "Count": 1},
    ]


def test_detail_files_are_named_by_a_digest_never_by_the_id():
    key = data.detail_key("../../etc/passwd<script>")
    assert len(key) == 20 and all(c in "0123456789abcdef" for c in key)


def _ip_detail(incidents, extra=0):
    rows = [(m, "203.0.113.9", "DeleteInstance" if m % 2 else "StopInstance", None) for m in range(0, 40)]
    rows += [(m % 40, "203.0.113.9", "DescribeInstances", "Forbidden") for m in range(extra)]
    rows += [(m, "10.0.0.1", "RunInstances", None) for m in range(-600, 600, 7)]  # another address
    events = data.region_events(calls(rows), "cn-hangzhou", home_region="cn-hangzhou")
    row = incidents.filter(pl.col("id") == "S1").row(0, named=True)
    ins = frame(
        insight("a1", T0, state="Start"),
        insight("a2", T0 + timedelta(minutes=40), state="End", model={"score": 0.9, "threshold": 0.6,
                "dimensions": [{"name": "network", "verdict": "UNSEEN", "score": 1.0, "detail": {"asn": 64500}}]}),
    )
    pair = data.pairs(ins, ["S1"])["S1"]
    return data.incident_detail(row, pair["start"], pair["end"], events, since=T0 - timedelta(days=6),
                                until=T0 + timedelta(days=1))


def test_ip_detail_has_the_window_trend_a_fine_trend_and_every_api_with_its_times(incidents):
    detail, pages = _ip_detail(incidents, extra=230)
    coarse, fine = detail["trend"]["buckets"]
    assert coarse["bucketMinutes"] == 60 and fine["bucketMinutes"] == 1
    assert coarse["since"] == "2025-03-01T10:00:00Z" and fine["since"] == "2025-03-07T08:00:00Z"
    assert sum(r["calls"] for r in coarse["rows"]) == 270  # the other address's calls are not in it
    apis = {a["api"]: a for a in detail["apis"]}
    assert apis["Ecs/DescribeInstances"]["calls"] == 230 and apis["Ecs/DescribeInstances"]["errors"] == 230
    assert len(apis["Ecs/DeleteInstance"]["times"]) == 20 and apis["Ecs/DeleteInstance"]["timesTruncated"] is False
    assert detail["heterogeneity"]["dimensions"] == [
        {"name": "network", "verdict": "UNSEEN", "score": 1.0, "detail": '{"asn": 64500}'}]
    assert detail["heterogeneity"]["scope"] == "over the whole incident"
    # every related event, in pages of 100, in columns order
    assert detail["events"]["total"] == 270 and len(pages) == 3 and [len(p) for p in pages] == [100, 100, 70]
    assert detail["events"]["pages"][2].endswith("-e2.js")
    first = dict(zip(detail["events"]["columns"], pages[0][0]))
    assert first["sourceIpAddress"] == "203.0.113.9" and first["principal"] == "alice"
    assert first["userAgent"] == "</script><b>ua</b>"  # raw here; page.safe_json makes it inert
    json.dumps(detail, allow_nan=False)  # JSON-ready


def test_rate_detail_has_the_per_minute_series_with_its_band(incidents):
    rows = [(m, "10.0.0.1", "DeleteInstance", None) for m in range(-3000, 420, 30)]
    rows += [(300 + k // 6, "10.0.0.1", "DeleteInstance", None) for k in range(60)]
    events = data.region_events(calls(rows), "cn-beijing", home_region="cn-hangzhou")
    assert events.height == 0  # cn-hangzhou's events are not cn-beijing's
    events = data.region_events(calls(rows).with_columns(pl.lit("cn-beijing").alias("acsRegion")), "cn-beijing",
                                home_region="cn-hangzhou")
    row = incidents.filter(pl.col("id") == "S2").row(0, named=True)
    detail, pages = data.incident_detail(row, None, None, events, since=T0 - timedelta(days=3),
                                         until=T0 + timedelta(hours=7))
    rate = detail["rate"]
    assert rate["unit"] == "write calls" and rate["title"].startswith("DeleteInstance")
    by_minute = {r["t"]: r for r in rate["rows"]}
    assert by_minute["2025-03-07T15:00:00Z"]["count"] == 7
    assert all(r["upper"] is None or r["upper"] >= 0 for r in rate["rows"])
    assert detail["trend"] is None and detail["events"]["total"] == 60 + 4  # open: to the end of the window
