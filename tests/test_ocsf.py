"""OCSF 1.3.0 Detection Finding export (insights_kit.ocsf)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from insights_kit import ocsf, store
from insights_kit.ocsf import export, to_finding

ACCOUNT = "1234567890123456"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp() * 1000)


def pair(kind: str, obj: str, *, start: str, end: str, duration: int, region: str = "cn-hangzhou", **extra):
    """A Start and its End, as insights.assemble writes them."""
    model = extra.pop("model", {})

    def one(state: str, when: str, minutes: int, count: int) -> dict:
        return {
            "eventVersion": "1",
            "eventType": "ActionTrailInsight",
            "eventCategory": "Insight",
            "eventId": f"{kind}-{state}",
            "eventTime": when,
            "acsRegion": region,
            "recipientAccountId": extra.get("account", ACCOUNT),
            "sharedEventId": f"{kind}-S",
            "insightDetails": {
                "state": state,
                "insightType": kind,
                "insightObject": obj,
                **{k: v for k, v in extra.items() if k != "account"},
                "insightContext": {
                    "statistics": {
                        "baseline": {"average": 0.5},
                        "insight": {"average": 12.25},
                        "insightDuration": minutes,
                        "baselineDuration": 10080,
                        "insightCount": count,
                    },
                    "attributions": [],
                    "model": model,
                },
            },
        }

    return one("Start", start, 1, 12), one("End", end, duration, 99)


CASES = {
    "ApiCallRateInsight": pair(
        "ApiCallRateInsight", "DeleteInstance", start="2025-03-04T08:15:00Z", end="2025-03-04T08:27:00Z",
        duration=12, serviceName="Ecs", eventSource="ecs.aliyuncs.com", eventName="DeleteInstance",
    ),
    "IpInsight": pair(
        "IpInsight", "203.0.113.9", start="2025-03-04T09:00:00Z", end="2025-03-04T10:00:00Z", duration=60,
        region="ap-southeast-1", model={"score": 0.91},
    ),
    "AkInsight": pair(
        "AkInsight", "LTAI5tAAAA", start="2025-03-05T01:02:00Z", end="2025-03-05T01:32:00Z", duration=30,
        sourceIpAddress="198.51.100.7",
    ),
    "TrailConcealmentInsight": pair(
        "TrailConcealmentInsight", "Actiontrail", start="2025-03-05T03:00:00Z", end="2025-03-05T04:00:00Z",
        duration=60, region="us-east-2", account="123456789012", eventSource="cloudtrail.amazonaws.com",
    ),
}
EXPECTED_SEVERITY = {"ApiCallRateInsight": (3, "Medium"), "IpInsight": (4, "High"), "AkInsight": (4, "High"),
                     "TrailConcealmentInsight": (4, "High")}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CASES))
def test_start_and_end_map_to_detection_findings(kind):
    start, end = CASES[kind]
    fs, fe = to_finding(start), to_finding(end)
    for f in (fs, fe):
        assert f["class_uid"] == 2004 and f["class_name"] == "Detection Finding"
        assert f["category_uid"] == 2 and f["category_name"] == "Findings"
        assert f["type_uid"] == 2004 * 100 + f["activity_id"]
        assert f["metadata"]["version"] == "1.3.0"
        assert f["metadata"]["product"] == {"name": "insights-kit", "vendor_name": "insights-kit",
                                            "feature": {"name": kind}}  # fmt: skip
        assert f["metadata"]["correlation_uid"] == f["finding_info"]["uid"] == f"{kind}-S"
        assert f["finding_info"]["types"] == [kind]
        assert f["finding_info"]["title"] == f"{kind}: {start['insightDetails']['insightObject']}"
        assert "\n" not in f["finding_info"]["desc"] and "12.25" in f["finding_info"]["desc"]
        assert (f["severity_id"], f["severity"]) == EXPECTED_SEVERITY[kind]
        assert f["cloud"]["region"] == start["acsRegion"]
        assert f["unmapped"] == {"actiontrail": start if f is fs else end}
    assert (fs["activity_id"], fs["activity_name"], fs["type_uid"]) == (1, "Create", 200401)
    assert (fs["status_id"], fs["status"]) == (1, "New")
    assert (fe["activity_id"], fe["activity_name"], fe["type_uid"]) == (3, "Close", 200403)
    assert (fe["status_id"], fe["status"]) == (4, "Resolved")
    # times in epoch milliseconds; the End spans the incident back to the Start
    assert fs["time"] == ms(start["eventTime"]) == fs["finding_info"]["first_seen_time"]
    assert "last_seen_time" not in fs["finding_info"]
    assert fe["time"] == ms(end["eventTime"]) == fe["finding_info"]["last_seen_time"]
    assert fe["finding_info"]["first_seen_time"] == fs["time"]
    assert fe["duration"] == fe["time"] - fs["time"]
    assert fs["metadata"]["uid"] == f"{kind}-Start" and fe["metadata"]["uid"] == f"{kind}-End"
    assert fs["count"] == 12 and fe["count"] == 99


def test_ip_observable_and_evidence():
    ip_start = to_finding(CASES["IpInsight"][0])
    assert ip_start["observables"] == [
        {"name": "evidences.src_endpoint.ip", "type": "IP Address", "type_id": 2, "value": "203.0.113.9"}
    ]
    assert ip_start["evidences"] == [{"src_endpoint": {"ip": "203.0.113.9"}}]
    ak = to_finding(CASES["AkInsight"][1])
    assert ak["observables"][0]["value"] == "198.51.100.7" and ak["observables"][0]["type_id"] == 2
    rate = to_finding(CASES["ApiCallRateInsight"][0])
    assert "observables" not in rate
    assert rate["evidences"] == [{"api": {"operation": "DeleteInstance", "service": {"name": "Ecs"}}}]


def test_cloud_provider_rule():
    assert to_finding(CASES["TrailConcealmentInsight"][0])["cloud"] == {
        "provider": "AWS", "region": "us-east-2", "account": {"uid": "123456789012"}}  # fmt: skip
    # ap-southeast-1 is also Alibaba Cloud's Singapore: the 16-digit account decides
    assert to_finding(CASES["IpInsight"][0])["cloud"]["provider"] == "Alibaba Cloud"
    assert ocsf.cloud_provider({"acsRegion": "eu-west-2"}) == "AWS"
    assert ocsf.cloud_provider({"acsRegion": "ap-southeast-2", "recipientAccountId": ""}) == "AWS"
    assert ocsf.cloud_provider({"acsRegion": "cn-shanghai-finance-1"}) == "Alibaba Cloud"
    assert to_finding(CASES["IpInsight"][0], provider="AWS")["cloud"]["provider"] == "AWS"


def test_severity_table():
    sev = ocsf.severity
    assert sev({"insightType": "PolicyChangeInsight"}) == 4
    assert sev({"insightType": "PasswordChangeInsight"}) == 3
    assert sev({"insightType": "ApiErrorRateInsight"}) == 3
    assert sev({"insightType": "IpInsight", "insightContext": {"model": {"score": 0.6}}}) == 3
    assert sev({"insightType": "IpInsight", "insightContext": {"model": {"score": 0.2}}}) == 2
    assert sev({"insightType": "IpInsight"}) == 3
    assert sev({"insightType": "Whatever"}) == 0


def test_bad_event_time_raises():
    with pytest.raises(ValueError, match="eventTime"):
        to_finding({"eventId": "x", "insightDetails": {"state": "Start"}})


def test_export_is_sorted_deterministic_and_atomic(tmp_path):
    events = [ev for kind in sorted(CASES, reverse=True) for ev in reversed(CASES[kind])]
    a, b = tmp_path / "a" / "findings.jsonl", tmp_path / "b.jsonl"
    assert export(events, a) == 8
    assert export(list(reversed(events)), b) == 8
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in a.parent.iterdir()] == ["findings.jsonl"]  # no temp file left
    lines = a.read_text(encoding="utf-8").splitlines()
    findings = [json.loads(line) for line in lines]
    keys = [(f["time"], f["metadata"]["uid"]) for f in findings]
    assert keys == sorted(keys)
    assert lines == [json.dumps(f, sort_keys=True, ensure_ascii=False) for f in findings]
    assert export([], tmp_path / "empty.jsonl") == 0 and (tmp_path / "empty.jsonl").read_text() == ""


def test_export_from_a_store_frame(tmp_path):
    from insights_kit.detect import run_detect
    from insights_kit.simulate import simulate

    src, out = tmp_path / "src", tmp_path / "out"
    simulate(src, days=5, seed=3, scale=0.01, progress=False)
    run_detect([src], out, progress=False)
    frame = store.read_events(out)
    assert frame.height > 0
    path = tmp_path / "findings.jsonl"
    assert export(frame, path) == frame.height
    findings = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {f["metadata"]["uid"] for f in findings} == set(frame["eventId"].to_list())
    assert all(f["class_uid"] == 2004 for f in findings)
    by_state = {f["unmapped"]["actiontrail"]["insightDetails"]["state"] for f in findings}
    assert by_state <= {"Start", "End"}
    for f in findings:
        assert f["type_uid"] == (200401 if f["unmapped"]["actiontrail"]["insightDetails"]["state"] == "Start" else 200403)
        assert f["cloud"]["provider"] == "Alibaba Cloud"  # ap-southeast-1 included
        kind = f["finding_info"]["types"][0]
        if kind == "IpInsight":
            assert f["observables"][0]["value"] == f["unmapped"]["actiontrail"]["insightDetails"]["insightObject"]
    # the same store exports the same bytes; a list of the raw events too
    again = tmp_path / "again.jsonl"
    export(store.read_events(out), again)
    assert again.read_bytes() == path.read_bytes()
    export([json.loads(r) for r in frame["raw"].to_list()], again)
    assert again.read_bytes() == path.read_bytes()


def test_export_rejects_a_frame_without_raw(tmp_path):
    import polars as pl

    with pytest.raises(ValueError, match="raw"):
        export(pl.DataFrame({"a": [1]}), tmp_path / "x.jsonl")
