"""The Insights store: layout, merge, query, counts, incidents, output formats, related events."""

import copy
import csv
import io
import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from insights_kit import store
from insights_kit.schema import conform

FIXTURE = Path(__file__).parent / "fixtures" / "insights_sample.jsonl"
HOSTILE = "<script>alert(1)</script>"
UTC = timezone.utc


def fixture_events() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def by(events, *, state=None, kind=None, region=None):
    return [
        e
        for e in events
        if (state is None or e["insightDetails"]["state"] == state)
        and (kind is None or e["insightDetails"]["insightType"] == kind)
        and (region is None or e["acsRegion"] == region)
    ]


def event(event_id, when, *, region="cn-hangzhou", kind="IpInsight", obj="203.0.113.9", state="Start", shared=None, **details):
    """A small Insights event in the design-doc layout."""
    return {
        "eventVersion": "1",
        "eventType": "ActionTrailInsight",
        "eventCategory": "Insight",
        "eventId": event_id,
        "eventTime": when,
        "acsRegion": region,
        "recipientAccountId": "1234567890123456",
        "sharedEventId": shared or f"S-{event_id}",
        "insightDetails": {"state": state, "insightType": kind, "insightObject": obj, **details},
    }


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def sample(tmp_path) -> Path:
    out = tmp_path / "out"
    store.write_events(out, fixture_events())
    return out


# --------------------------------------------------------------------------- writing


def test_layout_one_file_per_region_and_utc_day(sample):
    root = sample / "AliyunLogs" / "Actiontrail-Insight"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jsonl"))
    assert files == [
        "cn-hangzhou/2025/03/03/insights_cn-hangzhou_20250303.jsonl",
        "cn-hangzhou/2025/03/04/insights_cn-hangzhou_20250304.jsonl",
        # the StopInstance incident starts at 23:50 and ends at 00:10: Start and End split by day
        "cn-shanghai/2025/03/04/insights_cn-shanghai_20250304.jsonl",
        "cn-shanghai/2025/03/05/insights_cn-shanghai_20250305.jsonl",
    ]
    total = sum(len(p.read_text().splitlines()) for p in root.rglob("*.jsonl"))
    assert total == len(fixture_events())


def test_lines_are_compact_sorted_json_in_time_then_id_order(sample):
    for path in store.store_files(sample):
        lines = path.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines]
        for line, ev in zip(lines, events):
            assert line == json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            day = path.name.split("_")[-1][:8]
            assert ev["eventTime"][:10].replace("-", "") == day
        keys = [(e["eventTime"], e["eventId"]) for e in events]
        assert keys == sorted(keys)


def test_ties_in_time_are_ordered_by_event_id(tmp_path):
    evs = [event("B", "2025-03-04T08:00:00Z"), event("A", "2025-03-04T08:00:00Z"), event("C", "2025-03-04T07:00:00Z")]
    (path,) = store.write_events(tmp_path, evs)
    assert [json.loads(x)["eventId"] for x in path.read_text().splitlines()] == ["C", "A", "B"]


def test_rewrite_is_byte_identical_and_merge_equals_one_write(tmp_path, sample):
    before = all_files(sample)
    store.write_events(sample, fixture_events())
    store.write_events(sample, reversed(fixture_events()))
    assert all_files(sample) == before

    events = fixture_events()
    merged = tmp_path / "merged"
    store.write_events(merged, events[::2])
    store.write_events(merged, events[1::2])
    assert all_files(merged) == before


def test_dedupe_on_event_id_keeps_the_stored_event(tmp_path):
    first = event("E1", "2025-03-04T08:00:00Z", insightContext={"note": "first"})
    again = copy.deepcopy(first)
    again["insightDetails"]["insightContext"]["note"] = "second"
    store.write_events(tmp_path, [first, again])  # within one batch: first occurrence wins
    store.write_events(tmp_path, [again])  # across runs: the stored event wins
    frame = store.read_events(tmp_path)
    assert frame.height == 1
    assert json.loads(frame["raw"][0])["insightDetails"]["insightContext"]["note"] == "first"


def test_day_is_the_utc_date_of_event_time(tmp_path):
    (path,) = store.write_events(tmp_path, [event("E1", "2025-03-05T02:00:00+08:00")])
    assert path.name == "insights_cn-hangzhou_20250304.jsonl"
    assert store.read_events(tmp_path)["eventTime"][0] == datetime(2025, 3, 4, 18, tzinfo=UTC)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    store.write_events(tmp_path, [event("E1", "2025-03-04T08:00:00Z")])
    before = all_files(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write_events(tmp_path, [event("E2", "2025-03-04T09:00:00Z")])
    # the old file is intact and the temporary file is gone
    assert all_files(tmp_path) == before


def test_temporary_files_of_a_running_writer_are_not_read(tmp_path):
    (path,) = store.write_events(tmp_path, [event("E1", "2025-03-04T08:00:00Z")])
    path.with_name(path.name + f".tmp-{os.getpid() + 1}").write_text("{half a line")
    assert store.read_events(tmp_path)["eventId"].to_list() == ["E1"]


@pytest.mark.parametrize("region", ["../x", "cn/hangzhou", "CN-Hangzhou", "", "cn hangzhou", None, "cn-hangzhou\n"])
def test_region_names_are_validated_before_anything_is_written(tmp_path, region):
    good = event("E1", "2025-03-04T08:00:00Z")
    bad = event("E2", "2025-03-04T08:00:00Z", region=region)
    with pytest.raises(ValueError, match="region"):
        store.write_events(tmp_path, [good, bad])
    assert not list(tmp_path.rglob("*"))


@pytest.mark.parametrize(
    "broken, message",
    [
        ({"eventId": None}, "missing eventId"),
        ({"eventTime": "2025-13-45T00:00:00Z"}, "unparsable eventTime"),
    ],
)
def test_events_without_id_or_time_are_rejected(tmp_path, broken, message):
    ev = {**event("E1", "2025-03-04T08:00:00Z"), **broken}
    with pytest.raises(ValueError, match=message):
        store.write_events(tmp_path, [ev])


def test_no_events_write_nothing(tmp_path):
    assert store.write_events(tmp_path / "out", []) == []
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- reading


def test_read_events_flat_columns(sample):
    frame = store.read_events(sample)
    assert frame.schema == pl.Schema(store.STORE_SCHEMA)
    assert frame.height == len(fixture_events())
    assert frame["eventTime"].is_sorted()
    ip_end = frame.filter((pl.col("insightType") == "IpInsight") & (pl.col("state") == "End")).row(0, named=True)
    assert ip_end["sourceIpAddress"] == "185.220.101.34"
    assert ip_end["score"] == pytest.approx(0.87)
    assert (ip_end["insightDuration"], ip_end["insightCount"], ip_end["insightAverage"]) == (24, 57, 57.0)
    assert HOSTILE in ip_end["raw"]
    rate = frame.filter(pl.col("insightType") == "ApiCallRateInsight").row(0, named=True)
    assert rate["score"] is None  # rate models report a pValue, not a score
    assert (rate["serviceName"], rate["eventName"], rate["baselineAverage"]) == ("Ecs", "DeleteInstance", 0.01)
    code = frame.filter(pl.col("insightObject") == "Forbidden.RAM").row(0, named=True)
    assert code["errorCode"] == "Forbidden.RAM" and code["eventName"] is None
    # raw is the stored line itself
    lines = {line for p in store.store_files(sample) for line in p.read_text(encoding="utf-8").splitlines()}
    assert set(frame["raw"]) == lines


def test_plain_number_statistics_are_read_too(tmp_path):
    # the reconstructed event of the reference (section 3.3) uses plain numbers
    ev = event("E1", "2025-03-04T08:00:00Z", insightContext={"statistics": {"insight": 2, "baseline": 0, "insightDuration": 1}})
    store.write_events(tmp_path, [ev])
    row = store.read_events(tmp_path).row(0, named=True)
    assert (row["insightAverage"], row["baselineAverage"], row["insightDuration"]) == (2.0, 0.0, 1)


def test_empty_or_missing_store_gives_an_empty_frame_with_the_schema(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        frame = store.read_events(path)
        assert frame.is_empty() and frame.schema == pl.Schema(store.STORE_SCHEMA)
    assert store.query(tmp_path).is_empty()
    assert store.counts(tmp_path).columns == ["RegionId", "InsightType", "Count"]


def test_store_path_may_be_the_insight_folder_or_one_file(sample):
    folder = sample / "AliyunLogs" / "Actiontrail-Insight"
    assert store.read_events(folder).equals(store.read_events(sample))
    one = store.store_files(sample)[0]
    assert store.read_events(one).height == len(one.read_text().splitlines())


def test_corrupt_line_names_file_and_line(tmp_path):
    (path,) = store.write_events(tmp_path, [event("E1", "2025-03-04T08:00:00Z")])
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"jsonl:2: invalid JSON"):
        store.read_events(tmp_path)


# --------------------------------------------------------------------------- query


def test_query_filters_alone(sample):
    evs = fixture_events()
    ids = lambda frame: sorted(frame["eventId"])  # noqa: E731
    expect = lambda sel: sorted(e["eventId"] for e in sel)  # noqa: E731

    assert ids(store.query(sample)) == expect(evs)
    assert ids(store.query(sample, region="cn-shanghai")) == expect(by(evs, region="cn-shanghai"))
    assert ids(store.query(sample, insight_type="IpInsight")) == expect(by(evs, kind="IpInsight"))
    assert ids(store.query(sample, ip="203.0.113.24")) == expect(
        [e for e in evs if e["insightDetails"]["insightObject"] == "203.0.113.24"]
    )
    assert ids(store.query(sample, insight_object="Forbidden.RAM")) == expect(
        [e for e in evs if e["insightDetails"]["insightObject"] == "Forbidden.RAM"]
    )
    assert ids(store.query(sample, service_name="Ecs")) == expect(
        [e for e in evs if e["insightDetails"].get("serviceName") == "Ecs"]
    )
    assert ids(store.query(sample, event_name="StopInstance")) == expect(
        [e for e in evs if e["insightDetails"].get("eventName") == "StopInstance"]
    )
    assert ids(store.query(sample, states=("Start",))) == expect(by(evs, state="Start"))
    assert ids(store.query(sample, states=None)) == expect(evs)


def test_query_event_id_matches_event_id_or_shared_event_id(sample):
    start = by(fixture_events(), kind="ApiErrorRateInsight", region="cn-hangzhou", state="Start")[0]
    assert store.query(sample, event_id=start["eventId"])["eventId"].to_list() == [start["eventId"]]
    both = store.query(sample, event_id=start["sharedEventId"])
    assert both["state"].to_list() == ["Start", "End"]
    assert store.query(sample, event_id="nope").is_empty()


def test_query_filters_are_anded_and_exact(sample):
    frame = store.query(sample, region="cn-hangzhou", insight_type="ApiCallRateInsight", states=("End",))
    assert frame.select("insightObject", "state").rows() == [("DeleteInstance", "End")]
    assert store.query(sample, region="cn-hangzhou", ip="203.0.113.24").is_empty()
    assert store.query(sample, region="CN-HANGZHOU").is_empty()  # case-sensitive, like the API
    assert store.query(sample, event_name="Delete").is_empty()  # no substring matching


def test_default_window_is_the_30_days_before_the_newest_event(tmp_path):
    newest = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
    iso = lambda ts: ts.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    store.write_events(
        tmp_path,
        [
            event("old", iso(newest - timedelta(days=31))),
            event("edge", iso(newest - timedelta(days=30))),
            event("recent", iso(newest - timedelta(days=29))),
            event("newest", iso(newest)),
        ],
    )
    assert store.query(tmp_path)["eventId"].to_list() == ["edge", "recent", "newest"]
    # an explicit now (the console's wall clock) moves the window
    assert store.query(tmp_path, now=newest - timedelta(days=20))["eventId"].to_list() == ["old", "edge", "recent"]
    assert store.query(tmp_path, now="2026-01-01T00:00:00Z").is_empty()
    # since alone: everything from there to now
    assert store.query(tmp_path, since="2025-05-31")["eventId"].to_list() == ["edge", "recent", "newest"]
    # until alone: the 30 days before it; a bare date includes that whole day
    assert store.query(tmp_path, until=date(2025, 5, 30))["eventId"].to_list() == ["old"]
    assert store.query(tmp_path, until="2025-06-01")["eventId"].to_list() == ["old", "edge", "recent"]
    assert store.query(tmp_path, since="2025-05-30", until="2025-05-31")["eventId"].to_list() == ["old", "edge"]
    # a frame from read_events can be queried without re-reading the store
    frame = store.read_events(tmp_path)
    assert store.query(frame, since="2025-01-01")["eventId"].to_list() == ["old", "edge", "recent", "newest"]


def test_window_applies_to_counts_too(tmp_path):
    store.write_events(
        tmp_path, [event("old", "2025-01-01T00:00:00Z"), event("new", "2025-03-01T00:00:00Z", region="cn-beijing")]
    )
    assert store.counts(tmp_path).rows() == [("cn-beijing", "IpInsight", 1)]
    assert store.counts(tmp_path, since="2024-12-01").rows() == [("cn-beijing", "IpInsight", 1), ("cn-hangzhou", "IpInsight", 1)]


# --------------------------------------------------------------------------- counts


def test_counts_are_start_events_per_region_and_type(sample):
    evs = fixture_events()
    expected = {}
    for e in by(evs, state="Start"):
        key = (e["acsRegion"], e["insightDetails"]["insightType"])
        expected[key] = expected.get(key, 0) + 1
    frame = store.counts(sample)
    assert frame.columns == ["RegionId", "InsightType", "Count"]
    assert {(r, t): c for r, t, c in frame.rows()} == expected
    assert frame.rows() == sorted(frame.rows())
    # the open IpInsight incident (Start only) counts; End events never do
    assert frame.filter((pl.col("RegionId") == "cn-shanghai") & (pl.col("InsightType") == "IpInsight"))["Count"].item() == 1
    assert json.loads(json.dumps({"Data": frame.to_dicts()}))["Data"][0] == {
        "RegionId": "cn-hangzhou",
        "InsightType": "ApiCallRateInsight",
        "Count": 1,
    }


# --------------------------------------------------------------------------- incident


def test_incident_by_event_id_or_shared_event_id(sample):
    evs = fixture_events()
    start, end = by(evs, kind="ApiCallRateInsight", region="cn-shanghai")
    for key in (start["eventId"], end["eventId"], start["sharedEventId"]):
        pair = store.incident(sample, key)
        assert pair == {"start": start, "end": end}


def test_open_incident_has_no_end(sample):
    (start,) = by(fixture_events(), kind="IpInsight", region="cn-shanghai")
    assert store.incident(sample, start["eventId"]) == {"start": start, "end": None}


def test_incident_unknown_id_raises_key_error(sample):
    with pytest.raises(KeyError):
        store.incident(sample, "00000000-0000-0000-0000-000000000000")


# --------------------------------------------------------------------------- format_table


def test_format_json_is_the_original_events_one_per_line(sample):
    frame = store.query(sample, insight_type="IpInsight")
    text = store.format_table(frame, "json")
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == frame.height == 3
    expected = sorted(by(fixture_events(), kind="IpInsight"), key=lambda e: (e["eventTime"], e["eventId"]))
    assert [json.loads(line) for line in lines] == expected
    assert HOSTILE in text and '"quoted"' in json.loads(lines[1])["insightDetails"]["insightContext"]["attributions"][1]["insight"][1]["value"]
    assert store.format_table(frame.head(0), "json") == ""


def test_format_table_is_aligned(sample):
    text = store.format_table(store.query(sample), "table")
    lines = text.splitlines()
    assert lines[0].split() == list(store.TABLE_COLUMNS)
    assert len(lines) == 2 + len(fixture_events())
    # every column starts at the same offset on every line
    starts = [lines[0].index(name) for name in store.TABLE_COLUMNS]
    for line in lines[2:]:
        for a in starts[1:]:
            assert line[a - 2 : a] == "  " and line[a] != " "


def test_format_table_escapes_control_characters(tmp_path):
    hostile_obj = 'Delete"Instance,\n' + HOSTILE + "\x1b[31m"
    store.write_events(tmp_path, [event("E1", "2025-03-04T08:00:00Z", kind="ApiCallRateInsight", obj=hostile_obj)])
    text = store.format_table(store.query(tmp_path), "table")
    assert len(text.splitlines()) == 3
    assert "\x1b" not in text and "\\x0a" in text and HOSTILE in text


def test_format_csv_survives_hostile_strings(tmp_path):
    hostile_obj = 'Delete"Instance, \'x\'\n' + HOSTILE
    ua = '"quoted" userAgent, with comma'
    store.write_events(
        tmp_path,
        [
            event(
                "E1",
                "2025-03-04T08:00:00Z",
                kind="ApiCallRateInsight",
                obj=hostile_obj,
                eventName=hostile_obj,
                serviceName=ua,
            )
        ],
    )
    frame = store.query(tmp_path)
    text = store.format_table(frame, "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    assert rows[0]["insightObject"] == hostile_obj and rows[0]["eventName"] == hostile_obj
    assert rows[0]["serviceName"] == ua
    assert rows[0]["eventTime"] == "2025-03-04T08:00:00Z"
    assert "raw" not in rows[0]
    # JSON keeps the event byte for byte
    assert json.loads(store.format_table(frame, "json"))["insightDetails"]["insightObject"] == hostile_obj


def test_format_table_works_for_counts_and_rejects_unknown_formats(sample):
    text = store.format_table(store.counts(sample), "table")
    assert text.splitlines()[0].split() == ["RegionId", "InsightType", "Count"]
    assert json.loads(store.format_table(store.counts(sample), "json").splitlines()[0])["Count"] == 1
    with pytest.raises(ValueError, match="unknown format"):
        store.format_table(store.counts(sample), "xml")


# --------------------------------------------------------------------------- related_events

T = datetime(2025, 3, 4, 8, 15, tzinfo=UTC)
ACCOUNT = "1234567890123456"


def canonical(rows: list[dict]) -> pl.LazyFrame:
    defaults = dict(
        recipientAccountId=ACCOUNT,
        acsRegion="cn-hangzhou",
        isGlobal=False,
        eventRW="Write",
        serviceName="Ecs",
        eventSource="ecs.aliyuncs.com",
        eventName="DeleteInstance",
        sourceIpAddress="10.0.0.1",
        errorCode=None,
    )
    full = [{**defaults, **r} for r in rows]
    return conform(pl.DataFrame(full, schema_overrides={"eventTime": pl.Datetime("us", "UTC")}, infer_schema_length=None))


@pytest.fixture
def management() -> pl.LazyFrame:
    m = lambda k: T + timedelta(minutes=k)  # noqa: E731
    return canonical(
        [
            dict(eventId="in-1", eventTime=m(0)),
            dict(eventId="in-2", eventTime=m(3), sourceIpAddress="185.220.101.34"),
            dict(eventId="read", eventTime=m(4), eventRW="Read"),
            dict(eventId="other-api", eventTime=m(5), eventName="StopInstance"),
            dict(eventId="other-acct", eventTime=m(5), recipientAccountId="999"),
            dict(eventId="other-region", eventTime=m(5), acsRegion="cn-shanghai"),
            dict(eventId="before", eventTime=m(-1)),
            dict(eventId="at-end", eventTime=m(12)),  # end is exclusive
            dict(eventId="err-1", eventTime=m(1), errorCode="Forbidden.RAM", sourceIpAddress="185.220.101.34"),
            dict(eventId="err-2", eventTime=m(2), errorCode="Throttling", eventName="RunInstances"),
            dict(eventId="err-3", eventTime=m(2), errorCode="Forbidden.RAM", eventName="RunInstances"),
            # a global RAM call recorded in another region belongs to the home region
            dict(
                eventId="global",
                eventTime=m(6),
                acsRegion="cn-shanghai",
                isGlobal=True,
                serviceName="Ram",
                eventSource="ram.aliyuncs.com",
                eventName="CreateUser",
                sourceIpAddress="185.220.101.34",
            ),
        ]
    )


def insight(kind, obj, *, state="Start", when=T, duration=12, **details):
    ev = event("X", when.strftime("%Y-%m-%dT%H:%M:%SZ"), kind=kind, obj=obj, state=state, **details)
    ev["insightDetails"]["insightContext"] = {"statistics": {"insightDuration": duration}}
    return ev


def ids(frame):
    return frame["eventId"].to_list()


def test_related_call_rate_events(management):
    ins = insight("ApiCallRateInsight", "DeleteInstance", serviceName="Ecs", eventSource="ecs.aliyuncs.com", eventName="DeleteInstance")
    got = store.related_events(management, ins, home_region="cn-hangzhou")
    assert ids(got) == ["in-1", "err-1", "in-2"]  # writes of the API, this account/region, [start, end)
    assert got.columns == list(conform(pl.LazyFrame()).collect_schema().names())
    wide = store.related_events(management, ins, home_region="cn-hangzhou", margin_minutes=1)
    assert ids(wide) == ["before", "in-1", "err-1", "in-2", "at-end"]


def test_related_error_rate_events_api_level_and_code_level(management):
    api = insight("ApiErrorRateInsight", "RunInstances", serviceName="Ecs", eventName="RunInstances")
    assert ids(store.related_events(management, api, home_region="cn-hangzhou")) == ["err-2", "err-3"]
    code = insight("ApiErrorRateInsight", "Forbidden.RAM", errorCode="Forbidden.RAM")
    assert ids(store.related_events(management, code, home_region="cn-hangzhou")) == ["err-1", "err-3"]
    # a code-level insight written without its errorCode key: the object is the code
    bare = insight("ApiErrorRateInsight", "Throttling")
    assert ids(store.related_events(management, bare, home_region="cn-hangzhou")) == ["err-2"]


def test_related_ip_events_include_global_events_in_the_home_region(management):
    ins = insight("IpInsight", "185.220.101.34", sourceIpAddress="185.220.101.34")
    assert ids(store.related_events(management, ins, home_region="cn-hangzhou")) == ["err-1", "in-2", "global"]
    # with another home region the global call is not cn-hangzhou's
    assert ids(store.related_events(management, ins, home_region="cn-beijing")) == ["err-1", "in-2"]
    # default home region: the region with the most events (cn-hangzhou here)
    assert ids(store.related_events(management, ins)) == ["err-1", "in-2", "global"]


def test_related_events_of_an_end_event_and_of_an_incident_pair(management):
    details = dict(serviceName="Ecs", eventName="DeleteInstance")
    end = insight("ApiCallRateInsight", "DeleteInstance", state="End", when=T + timedelta(minutes=4), duration=4, **details)
    assert ids(store.related_events(management, end, home_region="cn-hangzhou")) == ["in-1", "err-1", "in-2"]
    start = insight("ApiCallRateInsight", "DeleteInstance", duration=1, **details)
    assert ids(store.related_events(management, start, home_region="cn-hangzhou")) == ["in-1"]
    pair = {"start": start, "end": end}  # the incident spans Start to End
    assert ids(store.related_events(management, pair, home_region="cn-hangzhou")) == ["in-1", "err-1", "in-2"]
    assert ids(store.related_events(management, {"start": start, "end": None}, home_region="cn-hangzhou")) == ["in-1"]


def test_related_events_of_a_stored_incident(tmp_path, management):
    ins = insight("IpInsight", "185.220.101.34")
    store.write_events(tmp_path, [ins])
    pair = store.incident(tmp_path, "X")
    assert ids(store.related_events(management.collect(), pair, home_region="cn-hangzhou")) == ["err-1", "in-2", "global"]
