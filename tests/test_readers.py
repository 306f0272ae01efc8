"""Readers: every delivery shape, the CloudTrail mapping, quarantine and accounting."""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import random
import zipfile
from datetime import datetime, timezone

import polars as pl
import pytest
from conftest import cloudtrail_event, encode, event, oss_path, write_gz, write_oss

from insights_kit.readers import FORMATS, InputError, LoadResult, is_ip_address, load
from insights_kit.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA

DAY = datetime(2025, 3, 4)


def balanced(res: LoadResult) -> bool:
    s = res.stats
    return s.records_read == s.loaded + s.quarantined + s.duplicates + s.outside_window


def loaded(res: LoadResult) -> pl.DataFrame:
    df = res.events.collect()
    assert df.schema == pl.Schema(EVENT_SCHEMA)
    assert res.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert balanced(res), res.stats
    return df


def reasons(res: LoadResult) -> list[tuple[str, str]]:
    return list(zip(res.quarantine["position"], res.quarantine["reason"]))


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("shape", ["ndjson", "array", "records"])
def test_oss_gz_shapes(tmp_path, shape):
    write_oss(tmp_path, [event(i) for i in range(5)], shape=shape)
    res = load([tmp_path])
    df = loaded(res)
    assert df.height == 5 and res.stats.by_format == {"actiontrail": 5}
    row = df.row(0, named=True)
    assert row["eventTime"] == datetime(2025, 3, 4, 8, 0, tzinfo=timezone.utc)
    assert row["isGlobal"] is False and row["sensitiveAction"] is True and row["sourceIsIp"] is True
    assert (row["userIdentityType"], row["principalId"], row["userName"]) == ("ram-user", "2765", "ops-bot")
    assert row["sourceFile"].endswith(".gz") and row["sourceFormat"] == "actiontrail"


def test_multi_account_tree_and_insight_folder_skipped(tmp_path):
    write_oss(tmp_path, [event(0)], account="111")
    write_oss(tmp_path, [event(1)], account="222")
    insight = tmp_path / "AliyunLogs" / "Actiontrail-Insight" / "cn-hangzhou" / "2025" / "03" / "04" / "i.jsonl"
    insight.parent.mkdir(parents=True)
    insight.write_text('{"eventType": "ActionTrailInsight"}\n')
    res = load([tmp_path])
    assert loaded(res).height == 2
    assert res.stats.files_skipped == 1 and res.stats.quarantined == 0
    assert any("Actiontrail-Insight" in w for w in res.warnings)


def test_sls_event_string_flattened_keys_and_coalesce(tmp_path):
    ev = event(0)
    lines = [
        {"__topic__": "actiontrail_audit_event", "event": json.dumps(ev)},
        # flattened keys only (older Logstore), isGlobal as text
        {"__topic__": "actiontrail_event", "owner_id": "1", **{f"event.{k}": v for k, v in event(1).items()
         if not isinstance(v, dict)}, "event.isGlobal": "true", "event.userIdentity.type": "root-account",
         "event.eventAttributes": '{"SensitiveAction": "true"}'},
        # both: the decoded event wins, flattened fills the gaps
        {"__topic__": "actiontrail_audit_event", "event": json.dumps(event(2, vpcId=...)),
         "event.eventName": "Ignored", "event.vpcId": "vpc-1"},
    ]  # fmt: skip
    (tmp_path / "export.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    res = load([tmp_path / "export.jsonl"])
    df = loaded(res).sort("requestId")
    assert res.stats.by_format == {"sls": 3}
    assert df["eventName"].to_list() == ["DeleteInstance"] * 3
    assert df["isGlobal"].to_list() == [False, True, False]
    assert df["userIdentityType"].to_list() == ["ram-user", "root-account", "ram-user"]
    assert df["sensitiveAction"].to_list() == [True, True, True]
    assert df["vpcId"].to_list() == [None, None, "vpc-1"]


def test_lookupevents_pages(tmp_path):
    for page in range(2):
        recs = [event(page * 10 + i) for i in range(3)]
        (tmp_path / f"page-{page}.json").write_bytes(encode(recs, "lookup"))
    res = load([tmp_path])
    assert loaded(res).height == 6 and res.stats.by_format == {"lookupevents": 6}


@pytest.mark.parametrize("shape,suffix", [("records", ".json.gz"), ("records", ".json"), ("array", ".json"), ("ndjson", ".json")])
def test_cloudtrail_mapping(tmp_path, shape, suffix):
    recs = [
        cloudtrail_event(0),
        cloudtrail_event(1, eventSource="iam.amazonaws.com", awsRegion="us-east-1", readOnly=False, eventName="CreateUser"),
        cloudtrail_event(2, eventSource="s3.amazonaws.com", awsRegion="us-east-1", sourceIPAddress="AWS Internal",
                         errorCode="AccessDenied"),
    ]  # fmt: skip
    data = encode(recs, shape)
    p = tmp_path / f"ct{suffix}"
    p.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    res = load([p])
    df = loaded(res)
    assert res.stats.by_format == {"cloudtrail": 3}
    assert df["eventId"].to_list() == [r["eventID"] for r in recs]
    assert df["eventRW"].to_list() == ["Read", "Write", "Read"]
    assert df["serviceName"].to_list() == ["ec2", "iam", "s3"]
    assert df["isGlobal"].to_list() == [False, True, False]
    assert df["acsRegion"].to_list() == ["us-west-1", "us-east-1", "us-east-1"]
    assert df["sourceIsIp"].to_list() == [True, True, False]
    assert df["userIdentityArn"][0] == "arn:aws:iam::342082656213:user/jmerckle"
    assert df["eventCategory"].to_list() == ["Management"] * 3
    assert df["requestId"][0] == "req-0"


def test_at_timestamp_used_when_eventtime_missing(tmp_path):
    recs = [cloudtrail_event(0, eventTime=..., **{"@timestamp": "2020-09-14T00:44:23.000Z"})]
    (tmp_path / "x.json").write_bytes(encode(recs))
    df = loaded(load([tmp_path / "x.json"]))
    assert df["eventTime"][0] == datetime(2020, 9, 14, 0, 44, 23, tzinfo=timezone.utc)


def test_zip_json_member_loaded_csv_member_quarantined(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/events.json", encode([cloudtrail_event(i) for i in range(3)]))
        zf.writestr("data/table.csv", "Event Name,Source IP\nListObjects,1.2.3.4\n")
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    res = load([tmp_path])
    assert loaded(res).height == 3
    assert res.quarantine["sourceFile"].to_list() == [f"{tmp_path / 'a.zip'}!data/table.csv"]
    assert res.quarantine["position"][0] == "file" and res.quarantine["reason"][0].startswith("CSV file")
    assert "ListObjects" in res.quarantine["raw"][0]


def test_single_parquet_file_and_window_pushdown(tmp_path):
    write_oss(tmp_path / "src", [event(i) for i in range(10)])
    df = load([tmp_path / "src"]).events.collect()
    df.write_parquet(tmp_path / "events.parquet")
    res = load([tmp_path / "events.parquet"], since=datetime(2025, 3, 4, 8, 0, 5))
    out = loaded(res)
    assert out.height == 5 and res.stats.outside_window == 5 and res.stats.by_format == {"parquet": 5}
    assert out["sourceFormat"].unique().to_list() == ["actiontrail"]  # provenance kept


def test_overlapping_parquet_files_are_deduplicated(tmp_path):
    # the lazy Parquet path must notice duplicate eventIds across files and fall back
    write_oss(tmp_path / "src", [event(i) for i in range(6)])
    df = load([tmp_path / "src"]).events.collect()
    df.head(4).write_parquet(tmp_path / "a.parquet")
    df.tail(4).write_parquet(tmp_path / "b.parquet")
    res = load([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    out = loaded(res)
    assert out.height == 6 and res.stats.duplicates == 2 and out["eventId"].n_unique() == 6
    assert balanced(res)


def test_two_overlapping_lakes_are_checked_partition_by_partition(tmp_path):
    # ids are compared per (region, date) partition across both lakes, so the overlap of two
    # ingests of one delivery is still found, and the exact path deduplicates it
    write_oss(tmp_path / "src", [event(i) for i in range(8)])
    df = load([tmp_path / "src"]).events.collect()
    for lake, rows in (("one", df.head(5)), ("two", df.tail(5))):
        part = tmp_path / lake / "acsRegion=cn-hangzhou" / "date=2025-03-04"
        part.mkdir(parents=True)
        rows.write_parquet(part / "part-0.parquet")
    res = load([tmp_path / "one", tmp_path / "two"])
    out = loaded(res)
    assert out.height == 8 and res.stats.duplicates == 2 and out["eventId"].n_unique() == 8
    assert balanced(res)
    alone = load([tmp_path / "one"])  # no overlap: stays a lazy scan of the lake
    assert loaded(alone).height == 5 and alone.stats.duplicates == 0 and balanced(alone)


def test_dedupe_first_file_wins_and_sorted(tmp_path):
    write_oss(tmp_path, [event(i) for i in (3, 1, 2)], name="a")
    write_oss(tmp_path, [event(i) for i in (2, 4)], name="b")
    res = load([tmp_path])
    df = loaded(res)
    assert res.stats.duplicates == 1 and df.height == 4
    assert df["eventTime"].is_sorted()
    assert df.filter(pl.col("requestId") == "REQ-2")["sourceFile"][0].endswith("Actiontrail_cn-hangzhou_a.gz")


def test_since_until_prunes_date_folders_without_opening(tmp_path):
    write_oss(tmp_path, [event(0)])  # 2025-03-04
    # A corrupt file in a folder outside the window: opening it would quarantine something.
    write_gz(oss_path(tmp_path, "cn-hangzhou", datetime(2025, 3, 1), "bad"), b"not json at all\nnope\n")
    res = load([tmp_path], since=datetime(2025, 3, 3), until=datetime(2025, 3, 5))
    assert loaded(res).height == 1
    assert res.stats.files_found == 2 and res.stats.files_pruned == 1 and res.stats.files_read == 1
    assert res.stats.quarantined == 0
    res = load([tmp_path], since=datetime(2025, 3, 4, 9), progress=False)
    assert res.stats.outside_window == 1 and balanced(res)


def test_formats_constant():
    assert FORMATS == ("actiontrail", "sls", "lookupevents", "cloudtrail", "parquet")


# ----------------------------------------------------------------------------- quarantine
def test_truncated_gzip_salvages_records_before_the_break(tmp_path):
    data = encode([event(i) for i in range(200)])
    gz = gzip.compress(data, mtime=0)
    p = tmp_path / "trunc.json.gz"
    p.write_bytes(gz[: len(gz) * 2 // 3])
    res = load([p])
    df = loaded(res)
    assert 0 < df.height < 200
    assert res.stats.quarantined == 1
    pos, why = reasons(res)[0]
    assert pos.startswith("byte ") and why.startswith("truncated gzip: recovered")
    assert f"recovered {df.height} records before byte {pos.split()[1]}" in why
    assert data[int(pos.split()[1]) :].startswith(res.quarantine["raw"][0].encode()[:50])


def test_truncated_gzip_records_document(tmp_path):
    gz = gzip.compress(encode([cloudtrail_event(i) for i in range(100)], "records"), mtime=0)
    p = tmp_path / "ct.json.gz"
    p.write_bytes(gz[: len(gz) // 2])
    res = load([p])
    assert 0 < loaded(res).height < 100
    assert res.quarantine["reason"][0].startswith("truncated gzip")


def test_not_json_file_quarantined_as_file(tmp_path):
    (tmp_path / "x.json").write_text("hello\nworld\n")
    res = load([tmp_path / "x.json"])
    assert loaded(res).height == 0
    assert reasons(res) == [("file", "not JSON (invalid JSON: Expecting value at line 1)")]
    assert res.quarantine["raw"][0] == "hello\nworld\n"


@pytest.mark.parametrize(
    "bad,reason",
    [
        (event(1, eventTime=...), "missing eventTime"),
        (event(1, eventName=...), "missing eventName"),
        (event(1, eventId=...), "missing eventId"),
        (event(1, eventTime="2021-13-45T00:00:00Z"), "unparsable eventTime '2021-13-45T00:00:00Z'"),
        (event(1, eventTime="2021-07-29 13:02:53"), "unparsable eventTime '2021-07-29 13:02:53'"),
        (event(1, eventTime=1627563773), "unparsable eventTime '1627563773'"),
        (event(1, isGlobal="yes"), "isGlobal: expected boolean, got 'yes'"),
        (event(1, isGlobal=1), "isGlobal: expected boolean, got '1'"),
        (event(1, userIdentity="bob"), "userIdentity: expected object, got string"),
        (event(1, acsRegion="../etc"), "invalid region name '../etc' (expected 1-63 characters of a-z, 0-9 and -)"),
    ],
)
def test_bad_record_quarantined_others_loaded(tmp_path, bad, reason):
    write_oss(tmp_path, [event(0), bad, event(2)])
    res = load([tmp_path])
    assert loaded(res).height == 2
    assert reasons(res) == [("line 2", reason)]
    assert json.loads(res.quarantine["raw"][0]) == bad


def test_bad_record_in_array_has_record_position(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(encode([event(0), event(1, eventName=...), event(2, userIdentity=[1])], "array"))
    res = load([p])
    assert loaded(res).height == 1
    assert reasons(res) == [("record 2", "missing eventName"), ("record 3", "userIdentity: expected object, got array")]


def test_fractional_seconds_accepted(tmp_path):
    write_oss(tmp_path, [event(0, eventTime="2025-03-04T08:00:00.123456Z")])
    df = loaded(load([tmp_path]))
    assert df["eventTime"][0] == datetime(2025, 3, 4, 8, 0, 0, 123456, tzinfo=timezone.utc)


def test_invalid_utf8_in_a_string_is_repaired_and_the_event_kept(tmp_path):
    lines = encode([event(0)]) + json.dumps(event(1, userAgent="X")).encode().replace(b'"X"', b'"a\xff\xfeb"') + b"\n"
    lines += encode([event(2)])
    write_gz(oss_path(tmp_path, "cn-hangzhou", DAY), lines)
    res = load([tmp_path])
    df = loaded(res)
    assert df.height == 3 and res.quarantine.height == 0
    assert df.filter(pl.col("eventId") == event(1)["eventId"])["userAgent"][0] == "a\ufffd\ufffdb"
    assert res.stats.repaired == {"userAgent": 1}
    assert any("U+FFFD" in w for w in res.warnings)


def test_invalid_utf8_in_every_line_of_an_array_and_in_unread_fields(tmp_path):
    records = [event(i, userAgent="X", requestParameters={"q": "X"}) for i in range(80)]
    blob = json.dumps({"Records": records}).encode().replace(b'"X"', b'"\xff"')
    write_gz(oss_path(tmp_path, "cn-hangzhou", DAY), blob)
    res = load([tmp_path])
    assert loaded(res).height == 80
    assert res.stats.repaired == {"requestParameters": 80, "userAgent": 80}


def test_invalid_utf8_outside_strings_is_quarantined_with_its_bytes(tmp_path):
    lines = encode([event(0)]) + b'{"eventId": \xff}\n' + encode([event(2)])
    write_gz(oss_path(tmp_path, "cn-hangzhou", DAY), lines)
    res = load([tmp_path])
    assert loaded(res).height == 2
    assert [p for p, _ in reasons(res)] == ["line 2"]
    assert "\\xff" in res.quarantine["raw"][0]  # backslash-escaped, nothing lost


def test_empty_file(tmp_path):
    write_gz(oss_path(tmp_path, "cn-hangzhou", DAY), b"")
    (tmp_path / "plain.json").write_bytes(b"")
    res = load([tmp_path, tmp_path / "plain.json"])
    assert loaded(res).height == 0
    assert reasons(res) == [("file", "empty file")] * 2


def test_directory_without_event_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("nothing here")
    with pytest.raises(InputError, match="no event files"):
        load([empty])
    write_oss(tmp_path / "good", [event(0)])
    res = load([tmp_path / "good", empty])
    assert loaded(res).height == 1
    assert any("no event files" in w for w in res.warnings)


def test_wrong_path_is_one_line_input_error(tmp_path):
    with pytest.raises(InputError) as info:
        load([tmp_path / "nope"])
    assert "\n" not in str(info.value) and "nope" in str(info.value)


def test_strict_raises_naming_the_first_problem(tmp_path):
    write_oss(tmp_path, [event(0), event(1, eventName=...)])
    with pytest.raises(InputError, match=r"1 record\(s\) quarantined; first: .*line 2: missing eventName"):
        load([tmp_path], strict=True)
    assert load([tmp_path]).warnings  # not strict: a warning instead


def test_sls_bad_event_string(tmp_path):
    lines = [{"__topic__": "actiontrail_audit_event", "event": json.dumps(event(0))},
             {"__topic__": "actiontrail_audit_event", "event": '{"eventId": "x", '}]  # fmt: skip
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = load([tmp_path])
    assert loaded(res).height == 1
    assert reasons(res) == [("line 2", "invalid JSON in 'event' field: Expecting property name enclosed in double quotes")]


def test_everything_accounted_in_a_messy_tree(tmp_path):
    write_oss(tmp_path, [event(i) for i in range(10)], name="a")
    write_oss(tmp_path, [event(i) for i in range(5, 15)] + [event(99, eventTime="bad")], name="b")
    (tmp_path / "AliyunLogs" / "junk.json").write_text("{]")
    (tmp_path / "labels.json").write_text("{]")  # beside AliyunLogs/: not a delivery, skipped
    res = load([tmp_path], since=datetime(2025, 3, 4, 8, 0, 2))
    assert res.stats.files_skipped == 1
    s = res.stats
    assert (s.loaded, s.duplicates, s.outside_window, s.quarantined) == (13, 5, 2, 2)
    assert balanced(res)


# ----------------------------------------------------------------------------- IP literals
def _reference_is_ip(text: str) -> bool:
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def test_is_ip_address_matches_ipaddress_module():
    fixed = ["10.0.0.1", "075.050.255.67", "253.252.51.07", "256.1.1.1", "0.0.0.0", "1.2.3", "::", "::1",
             "2001:db8::1", "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1::2::3",
             "1:2:3:4:5:6:1.2.3.4", "fe80::1%eth0", "Internal", "AWS Internal", "ecs.aliyuncs.com", ":1", "1:"]  # fmt: skip
    rng = random.Random(7)
    alphabet = "0123456789abcdef:."
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(3000)]
    fuzz += [str(ipaddress.IPv6Address(rng.getrandbits(128) & rng.choice([(1 << 128) - 1, 0xFFFF, (1 << 64) - 1]))) for _ in range(500)]
    fuzz += [".".join(str(rng.randint(0, 300)) for _ in range(4)) for _ in range(500)]
    values = fixed + fuzz
    got = pl.DataFrame({"ip": values}).select(is_ip_address(pl.col("ip")))["ip"].to_list()
    assert got == [_reference_is_ip(v) for v in values]
    assert pl.select(is_ip_address(pl.lit(None, pl.String))).item() is None


def test_batched_ndjson_files_with_blank_lines_keep_line_positions(tmp_path):
    day = oss_path(tmp_path, "cn-hangzhou", DAY, "a").parent
    write_gz(day / "a.gz", encode([event(0), event(1)]))
    write_gz(day / "b.gz", b"\n" + encode([event(2)]) + b"\n\n" + encode([event(3, eventName=...)]))
    write_gz(day / "c.gz", encode([event(4)]).rstrip(b"\n"))  # no final newline
    res = load([tmp_path])
    df = loaded(res)
    assert df.height == 4 and df["sourceFile"].str.ends_with("b.gz").sum() == 1
    assert reasons(res) == [("line 5", "missing eventName")]
    assert res.quarantine["sourceFile"][0].endswith("b.gz")


def test_pruning_keeps_the_next_days_folder_for_late_deliveries(tmp_path):
    # An event from 23:58 delivered after midnight lands in the next day's folder.
    late = event(0)
    late["eventTime"] = "2025-03-04T23:58:00Z"  # window ends 23:59, delivery lands on the 5th
    write_gz(oss_path(tmp_path, "cn-hangzhou", datetime(2025, 3, 5), "late"), (json.dumps(late) + "\n").encode())
    write_gz(oss_path(tmp_path, "cn-hangzhou", datetime(2025, 3, 6), "later"), b"not json\n")
    res = load([tmp_path], since=datetime(2025, 3, 4), until=datetime(2025, 3, 4, 23, 59), progress=False)
    assert loaded(res).height == 1
    assert res.stats.files_pruned == 1 and res.stats.quarantined == 0
