"""Scoring detected Insights against simulator labels."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from insights_kit import evaluate, store

UTC = timezone.utc
ACCOUNT = "1234567890123456"
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return DAY0 + timedelta(days=day, hours=hh, minutes=mm, seconds=ss)


def label(id, expect, kind, region, obj, start, end, scenario="s"):
    return {
        "id": id,
        "scenario": scenario,
        "expect": expect,
        "type": kind,
        "region": region,
        "object": obj,
        "start": iso(start),
        "end": iso(end),
        "note": "",
    }


LABELS = {
    "seed": 7,
    "days": 14,
    "scale": 1.0,
    "start": iso(DAY0),
    "end": iso(DAY0 + timedelta(days=14)),  # two weeks
    "account": ACCOUNT,
    "regions": ["cn-hangzhou", "cn-shanghai"],
    "home_region": "cn-hangzhou",
    "incidents": [
        # a bulk delete planted at 08:15:40 (Starts are minute-aligned)
        label("inc-delete", "insight", "ApiCallRateInsight", "cn-hangzhou", "DeleteInstance", at(3, 8, 15, 40), at(3, 8, 30), "bulk-delete"),
        label("inc-ip", "insight", "IpInsight", "cn-shanghai", "185.220.101.34", at(5, 2, 0), at(5, 3, 0), "tor-login"),
        label("inc-errors", "insight", "ApiErrorRateInsight", "cn-hangzhou", "Forbidden.RAM", at(7, 10, 0), at(7, 10, 20), "enum"),
        label("inc-late", "insight", "ApiCallRateInsight", "cn-shanghai", "CreateAccessKey", at(9, 1, 0), at(9, 2, 0), "slow-burn"),
        # benign look-alikes
        label("look-deploy", "none", "ApiCallRateInsight", "cn-hangzhou", "RunInstances", at(4, 12, 0), at(4, 12, 30), "deploy"),
        label("look-ci", "none", "IpInsight", "cn-hangzhou", "198.51.100.7", at(10, 9, 0), at(10, 9, 5), "new-ci"),
    ],
}


def start(eid, when, kind, region, obj, *, state="Start", account=ACCOUNT):
    return {
        "eventId": eid,
        "eventTime": when,
        "acsRegion": region,
        "recipientAccountId": account,
        "state": state,
        "insightType": kind,
        "insightObject": obj,
    }


def insights_frame(rows) -> pl.DataFrame:
    schema = {k: store.STORE_SCHEMA[k] for k in ("eventId", "eventTime", "acsRegion", "recipientAccountId", "state", "insightType", "insightObject")}
    return pl.DataFrame(rows, schema=schema)


@pytest.fixture
def insights() -> pl.DataFrame:
    return insights_frame(
        [
            start("S-delete", at(3, 8, 15), "ApiCallRateInsight", "cn-hangzhou", "DeleteInstance"),
            start("E-delete", at(3, 8, 31), "ApiCallRateInsight", "cn-hangzhou", "DeleteInstance", state="End"),
            # same real incident, another object: a true Start, not a detection of anything
            start("S-stop", at(3, 8, 20), "ApiCallRateInsight", "cn-hangzhou", "StopInstance"),
            start("S-ip", at(5, 2, 5), "IpInsight", "cn-shanghai", "185.220.101.34"),
            # fired 30 minutes after the planted start: too late to count as detected, but true
            start("S-late", at(9, 1, 30), "ApiCallRateInsight", "cn-shanghai", "CreateAccessKey"),
            # false Starts: one fooled by the deploy look-alike, one by the CI address (other type),
            # one about nothing labelled at all
            start("S-deploy", at(4, 12, 10), "ApiCallRateInsight", "cn-hangzhou", "RunInstances"),
            start("S-ci", at(10, 9, 0), "ApiErrorRateInsight", "cn-hangzhou", "Throttling"),
            start("S-noise", at(12, 3, 0), "IpInsight", "cn-shanghai", "203.0.113.50"),
            # ignored: another account, and outside the labelled span
            start("S-other", at(3, 8, 15), "ApiCallRateInsight", "cn-hangzhou", "DeleteInstance", account="999"),
            start("S-before", DAY0 - timedelta(days=2), "IpInsight", "cn-hangzhou", "203.0.113.1"),
        ]
    )


def test_match_one_row_per_label(insights):
    m = evaluate.match(insights, LABELS)
    assert m.columns == list(evaluate.MATCH_SCHEMA)
    assert m["id"].to_list() == sorted(i["id"] for i in LABELS["incidents"])
    rows = {r["id"]: r for r in m.iter_rows(named=True)}
    assert rows["inc-delete"]["detected"] is True
    assert rows["inc-delete"]["eventId"] == "S-delete"
    assert rows["inc-delete"]["delayMinutes"] == pytest.approx(-40 / 60, abs=1e-6)  # minute-aligned Start
    assert rows["inc-delete"]["starts"] == 2  # DeleteInstance and StopInstance
    assert rows["inc-ip"]["detected"] is True and rows["inc-ip"]["delayMinutes"] == 5.0
    assert rows["inc-errors"]["detected"] is False and rows["inc-errors"]["eventId"] is None
    assert rows["inc-late"]["detected"] is False and rows["inc-late"]["starts"] == 1
    assert rows["look-deploy"]["detected"] is None and rows["look-deploy"]["starts"] == 1
    assert rows["look-ci"]["starts"] == 1


def test_tolerance_is_a_parameter(insights):
    rows = {r["id"]: r for r in evaluate.match(insights, LABELS, tolerance_minutes=30).iter_rows(named=True)}
    assert rows["inc-late"]["detected"] is True and rows["inc-late"]["delayMinutes"] == 30.0
    tight = {r["id"]: r for r in evaluate.match(insights, LABELS, tolerance_minutes=4).iter_rows(named=True)}
    assert tight["inc-ip"]["detected"] is False  # 5 minutes late


def test_classify_starts(insights):
    c = evaluate.classify_starts(insights, LABELS)
    verdicts = {r["eventId"]: (r["verdict"], r["labelId"], r["lookalikeId"]) for r in c.iter_rows(named=True)}
    assert verdicts == {
        "S-delete": ("true", "inc-delete", None),
        "S-stop": ("true", "inc-delete", None),
        "S-ip": ("true", "inc-ip", None),
        "S-late": ("true", "inc-late", None),
        "S-deploy": ("false", None, "look-deploy"),
        "S-ci": ("false", None, "look-ci"),  # a look-alike of another type still explains it
        "S-noise": ("false", None, None),
    }


def test_a_look_alike_of_the_same_type_explains_only_its_own_object():
    # an IpInsight on another address while the CI look-alike's address is active: not its doing
    frame = insights_frame([start("S-other-ip", at(10, 9, 2), "IpInsight", "cn-hangzhou", "203.0.113.77"),
                            start("S-ci-ip", at(10, 9, 2), "IpInsight", "cn-hangzhou", "198.51.100.7")])
    c = evaluate.classify_starts(frame, LABELS)
    assert dict(zip(c["eventId"], c["lookalikeId"], strict=True)) == {"S-other-ip": None, "S-ci-ip": "look-ci"}
    assert c["eventTime"].is_sorted()


def test_score(insights):
    s = evaluate.score(insights, LABELS)
    assert s["weeks"] == 2.0 and s["regions"] == ["cn-hangzhou", "cn-shanghai"] and s["tolerance_minutes"] == 10
    overall = s["overall"]
    assert overall["labelled"] == 4 and overall["detected"] == 2 and overall["recall"] == 0.5
    assert (overall["starts"], overall["true_starts"], overall["false_starts"]) == (7, 4, 3)
    assert overall["precision"] == pytest.approx(4 / 7, abs=1e-6)
    p, r = 4 / 7, 0.5
    assert overall["f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-6)
    assert overall["mean_delay"] == pytest.approx((-40 / 60 + 5) / 2, abs=1e-6)
    assert overall["max_delay"] == 5.0
    # 3 false Starts over 2 regions x 2 weeks
    assert overall["false_starts_per_region_week"] == 0.75

    call = s["by_type"]["ApiCallRateInsight"]
    assert (call["labelled"], call["detected"], call["starts"], call["true_starts"], call["false_starts"]) == (2, 1, 4, 3, 1)
    err = s["by_type"]["ApiErrorRateInsight"]
    assert (err["labelled"], err["detected"], err["recall"], err["starts"], err["precision"]) == (1, 0, 0.0, 1, 0.0)
    assert err["f1"] == 0.0 and err["mean_delay"] is None
    assert [m["id"] for m in err["missed"]] == ["inc-errors"]
    assert [f["eventId"] for f in err["false"]] == ["S-ci"]
    assert list(s["by_type"]) == sorted(s["by_type"])

    assert s["false_starts_by_region"] == {"cn-hangzhou": 2, "cn-shanghai": 1}
    assert s["false_starts_per_region_week"] == {"cn-hangzhou": 1.0, "cn-shanghai": 0.5}
    assert [m["id"] for m in overall["missed"]] == ["inc-errors", "inc-late"]
    assert overall["missed"][0]["start"] == iso(at(7, 10, 0))
    assert [(f["eventId"], f["lookalike"]) for f in overall["false"]] == [
        ("S-deploy", "look-deploy"),
        ("S-ci", "look-ci"),
        ("S-noise", None),
    ]
    assert overall["false"][0]["lookalikeScenario"] == "deploy"


def test_score_is_deterministic_and_json_ready(insights):
    a = evaluate.score(insights, LABELS)
    b = evaluate.score(insights.reverse(), LABELS)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_nothing_detected_and_nothing_labelled():
    empty = insights_frame([])
    s = evaluate.score(empty, LABELS)
    assert s["overall"]["detected"] == 0 and s["overall"]["recall"] == 0.0
    assert s["overall"]["precision"] is None and s["overall"]["false_starts_per_region_week"] == 0.0
    assert len(s["overall"]["missed"]) == 4
    quiet = evaluate.score(empty, {**LABELS, "incidents": []})
    assert quiet["overall"]["recall"] is None and set(quiet["by_type"]) == set(evaluate.INSIGHT_TYPES)


def test_score_a_store(tmp_path):
    # the store's own read_events output is what score takes
    events = [
        {
            "eventId": "A",
            "eventTime": iso(at(3, 8, 16)),
            "acsRegion": "cn-hangzhou",
            "recipientAccountId": ACCOUNT,
            "sharedEventId": "SA",
            "insightDetails": {"state": "Start", "insightType": "ApiCallRateInsight", "insightObject": "DeleteInstance"},
        }
    ]
    store.write_events(tmp_path, events)
    s = evaluate.score(store.read_events(tmp_path), LABELS)
    assert s["overall"]["detected"] == 1 and s["overall"]["max_delay"] == pytest.approx(20 / 60, abs=1e-6)


def test_load_labels(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(LABELS))
    assert evaluate.load_labels(path) == LABELS


@pytest.mark.parametrize(
    "change, message",
    [
        ({"expect": "maybe"}, "expect must be"),
        ({"start": None}, "missing start"),
        ({"end": "yesterday"}, "unparsable end"),
        ({"type": None}, "needs a type"),
        ({"id": "inc-ip"}, "duplicate id"),
    ],
)
def test_load_labels_rejects_broken_labels(tmp_path, change, message):
    bad = json.loads(json.dumps(LABELS))
    bad["incidents"][0].update(change)
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=message):
        evaluate.load_labels(path)


def test_load_labels_needs_incidents(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="incidents"):
        evaluate.load_labels(Path(path))


def _graded(id, scenario, kind, obj, start, end, intensity, expect="insight"):
    return {**label(id, expect, kind, "cn-hangzhou", obj, start, end, scenario), "intensity": intensity,
            "events": intensity.get("calls")}


def test_by_scenario_by_intensity_and_ends():
    labels = {
        **LABELS,
        "incidents": [
            # slow runaways at 2 and 40 times an idle series' floor (0.05/min), and 20x a busy one
            _graded("r-low", "slow_runaway", "ApiCallRateInsight", "TagResources", at(3, 20, 0), at(3, 21, 0),
                    {"calls": 6, "rate_per_minute": 0.1, "baseline_per_minute": 0.0}),
            _graded("r-high", "slow_runaway", "ApiCallRateInsight", "UntagResources", at(4, 20, 0), at(4, 21, 0),
                    {"calls": 120, "rate_per_minute": 2.0, "baseline_per_minute": 0.01}),
            _graded("r-busy", "slow_runaway", "ApiCallRateInsight", "ModifyInstanceAttribute", at(5, 20, 0),
                    at(5, 21, 0), {"calls": 1200, "rate_per_minute": 20.0, "baseline_per_minute": 1.0}),
            # quiet strangers binned on their calls; an error creep on its final error share
            _graded("q-few", "quiet_stranger", "IpInsight", "109.70.100.9", at(6, 21, 0), at(6, 21, 40), {"calls": 4}),
            _graded("q-many", "quiet_stranger", "IpInsight", "109.70.100.10", at(7, 21, 0), at(7, 22, 0), {"calls": 22}),
            _graded("e-creep", "error_creep", "ApiErrorRateInsight", "DescribeInstances", at(8, 20, 0), at(8, 22, 0),
                    {"calls": 1500, "errors": 300, "error_share": 0.35, "rate_per_minute": 12.5}),
            # a "may" trace is not counted; an ungraded incident is in by_scenario only
            _graded("e-code", "error_creep", "ApiErrorRateInsight", "NoPermission", at(8, 20, 0), at(8, 22, 0),
                    {"calls": 300}, expect="may"),
            label("plain", "insight", "IpInsight", "cn-hangzhou", "185.220.101.34", at(9, 2, 0), at(9, 3, 0), "tor"),
        ],
    }
    rows = [
        # the high runaway: Start on time, End 3 minutes after the last call, 126 counted (+5 %)
        {**start("S1", at(4, 20, 1), "ApiCallRateInsight", "cn-hangzhou", "UntagResources"), "sharedEventId": "X1"},
        {**start("E1", at(4, 21, 3), "ApiCallRateInsight", "cn-hangzhou", "UntagResources", state="End"),
         "sharedEventId": "X1", "insightCount": 126},
        # the busy runaway: detected, never closed
        {**start("S2", at(5, 20, 2), "ApiCallRateInsight", "cn-hangzhou", "ModifyInstanceAttribute"),
         "sharedEventId": "X2"},
        # the many-call stranger, its End 1 minute early, 20 counted (-9 %)
        {**start("S3", at(7, 21, 0), "IpInsight", "cn-hangzhou", "109.70.100.10"), "sharedEventId": "X3"},
        {**start("E3", at(7, 21, 59), "IpInsight", "cn-hangzhou", "109.70.100.10", state="End"),
         "sharedEventId": "X3", "insightCount": 20},
        # the error creep: insightCount is compared with the 300 errors, not the 1500 calls
        {**start("S4", at(8, 20, 30), "ApiErrorRateInsight", "cn-hangzhou", "DescribeInstances"), "sharedEventId": "X4"},
        {**start("E4", at(8, 22, 0), "ApiErrorRateInsight", "cn-hangzhou", "DescribeInstances", state="End"),
         "sharedEventId": "X4", "insightCount": 150},
    ]
    schema = {k: store.STORE_SCHEMA[k] for k in ("eventId", "eventTime", "acsRegion", "recipientAccountId", "state",
                                                "insightType", "insightObject", "sharedEventId", "insightCount")}
    insights = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)
    s = evaluate.score(insights, labels)
    # the e-creep Start is 30 minutes late: not detected (tolerance 10)
    runaway = s["by_scenario"]["slow_runaway"]
    assert (runaway["labelled"], runaway["detected"]) == (3, 2) and runaway["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert runaway["max_delay"] == 2.0
    assert s["by_scenario"]["quiet_stranger"]["recall"] == 0.5 and s["by_scenario"]["error_creep"]["labelled"] == 1
    assert (s["by_scenario"]["tor"]["labelled"], s["by_scenario"]["tor"]["detected"]) == (1, 0)
    assert "tor" not in s["by_intensity"]

    rate = s["by_intensity"]["slow_runaway"]["ApiCallRateInsight"]
    assert list(rate) == ["rate_ratio"]  # rate over max(baseline, 0.05): 2, 40 and 20
    cells = {b["bin"]: (b["labelled"], b["detected"], b["recall"]) for b in rate["rate_ratio"]}
    assert [b["bin"] for b in rate["rate_ratio"]] == ["<3", "3-10", "10-30", "30-100", "100-300", ">=300"]
    assert cells["<3"] == (1, 0, 0.0) and cells["10-30"] == (1, 1, 1.0) and cells["30-100"] == (1, 1, 1.0)
    assert cells["3-10"] == (0, 0, None)  # empty bins are listed, so runs line up
    calls = {b["bin"]: b["detected"] for b in s["by_intensity"]["quiet_stranger"]["IpInsight"]["calls"] if b["labelled"]}
    assert calls == {"<5": 0, ">=20": 1}
    share = s["by_intensity"]["error_creep"]["ApiErrorRateInsight"]["error_share"]
    assert [(b["bin"], b["labelled"]) for b in share if b["labelled"]] == [("0.3-0.4", 1)]

    assert (runaway["matched"], runaway["with_end"], runaway["max_end_lag"]) == (2, 1, 3.0)
    assert runaway["mean_count_error"] == pytest.approx(0.05, abs=1e-6)
    ends = s["ends"]
    assert ends["overall"]["with_end"] == 2 and ends["overall"]["mean_end_lag"] == pytest.approx(1.0, abs=1e-6)
    assert ends["by_type"]["IpInsight"]["mean_count_error"] == pytest.approx(-2 / 22, abs=1e-6)
    assert ends["overall"]["mean_abs_count_error"] == pytest.approx((0.05 + 2 / 22) / 2, abs=1e-6)
    # outcomes pooled over runs give the same summary as one run scored twice
    one = evaluate.outcomes(insights, labels)
    assert one.columns == list(evaluate.OUTCOME_SCHEMA) and one.height == 7
    twice = evaluate.summarize_outcomes(pl.concat([one, one]))
    assert twice["by_scenario"]["slow_runaway"]["labelled"] == 6 and twice["by_scenario"]["slow_runaway"]["recall"] == runaway["recall"]
    # an error creep detected in time compares insightCount with its errors
    late = insights.with_columns(eventTime=pl.when(pl.col("eventId") == "S4").then(pl.lit(at(8, 20, 5)))
                                 .otherwise(pl.col("eventTime")).cast(store.STORE_SCHEMA["eventTime"]))
    creep = evaluate.score(late, labels)["by_scenario"]["error_creep"]
    assert creep["detected"] == 1 and creep["mean_count_error"] == -0.5 and creep["max_end_lag"] == 0.0


def test_intensity_bins_are_fixed():
    assert evaluate.primary_intensity("low_rate_writes", {"rate_per_minute": 2.0}) == ("rate_per_minute", 2.0)
    assert evaluate.primary_intensity("companion_bursts", {"rate_per_minute": 30.0, "baseline_per_minute": 3.0}) == (
        "rate_ratio", 10.0)
    assert evaluate.primary_intensity("error_creep", {"error_share": 0.2, "rate_per_minute": 9.0}) == ("error_share", 0.2)
    assert evaluate.primary_intensity("quiet_stranger", None) is None
    assert [b[0] for b in evaluate.bin_labels("calls")] == ["<5", "5-10", "10-15", "15-20", ">=20"]
    assert evaluate._bin_of("calls", 10) == "10-15" and evaluate._bin_of("error_share", 0.5) == ">=0.4"
