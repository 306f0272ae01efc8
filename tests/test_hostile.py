"""Hostile input: attacker-written records and broken files never stop a run or hide an event.

Each test states one case of issue 12; the property-based tests at the end mutate good
delivery files at random (truncation, byte flips, nesting, huge values, wrong types, bad
encodings) and check that loading never crashes and never loses a record of an undamaged
file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import polars as pl
import pytest
from conftest import event, oss_path, write_gz, write_oss, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insights_kit import lake
from insights_kit.detect import run_detect
from insights_kit.ingest import run_ingest
from insights_kit.readers import load

DEEP = '{"a":' * 10_000 + "1" + "}" * 10_000


def _balanced(res) -> bool:
    s = res.stats
    return s.records_read == s.loaded + s.quarantined + s.duplicates + s.outside_window


def _ids(res) -> set[str]:
    return set(res.events.collect().get_column("eventId").to_list())


def _deep_line(i: int, where: str) -> bytes:
    rec = json.dumps(event(i, requestParameters="@DEEP@", userIdentity={"type": "ram-user", "principalId": "7",
                                                                        "sessionContext": "@DEEP@"}))
    if where == "requestParameters":
        rec = rec.replace('"sessionContext": "@DEEP@"', '"sessionContext": {}')
    return rec.replace('"@DEEP@"', DEEP).encode()


# ----------------------------------------------------------------------------- one record stops everything
@pytest.mark.parametrize("shape", ["ndjson", "records"])
@pytest.mark.parametrize("where", ["requestParameters", "userIdentity"])
def test_ten_thousand_levels_of_nesting_keep_the_event(tmp_path, shape, where):
    good = [json.dumps(event(i)).encode() for i in (0, 2)]
    deep = _deep_line(1, where)
    if shape == "ndjson":
        data = b"\n".join([good[0], deep, good[1]]) + b"\n"
    else:
        data = b'{"Records": [' + b", ".join([good[0], deep, good[1]]) + b"]}"
    write_gz(oss_path(tmp_path, "cn-hangzhou", T0), data)
    res = load([tmp_path])
    assert _balanced(res) and res.quarantine.height == 0
    df = res.events.collect().sort("eventTime")
    assert df.height == 3 and df["principalId"][1] == ("7" if where == "userIdentity" else "7")


def test_nesting_in_a_field_we_read_is_quarantined_with_a_reason(tmp_path):
    bad = json.dumps(event(1)).replace('"DeleteInstance"', "[" * 5000 + "]" * 5000, 1).encode()
    data = json.dumps(event(0)).encode() + b"\n" + bad + b"\n" + json.dumps(event(2)).encode() + b"\n"
    write_gz(oss_path(tmp_path, "cn-hangzhou", T0), data)
    res = load([tmp_path])
    assert _balanced(res) and res.stats.loaded == 2
    assert res.quarantine["position"].to_list() == ["line 2"]
    assert "nested too deeply" in res.quarantine["reason"][0]


def test_deep_nesting_in_an_sls_event_string(tmp_path):
    inner = json.dumps(event(1, requestParameters="@DEEP@")).replace('"@DEEP@"', DEEP)
    lines = [{"__topic__": "actiontrail_audit_event", "event": json.dumps(event(0))},
             {"__topic__": "actiontrail_audit_event", "event": inner}]  # fmt: skip
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = load([tmp_path])
    assert _balanced(res) and res.stats.loaded == 2 and res.quarantine.height == 0


def test_year_9999_is_quarantined_and_detect_runs(tmp_path):
    recs = [event(i) for i in range(30)] + [event(99, eventTime="9999-12-31T23:59:59Z")]
    write_oss(tmp_path / "src", recs)
    res = load([tmp_path / "src"])
    assert res.stats.loaded == 30 and res.stats.quarantined == 1
    assert "outside the supported years" in res.quarantine["reason"][0]
    summary = run_detect([tmp_path / "src"], tmp_path / "out")
    assert summary["records"]["quarantined"] == 1


def test_a_250_character_region_is_quarantined_before_anything_is_written(tmp_path):
    recs = [event(i) for i in range(5)] + [event(9, acsRegion="a" * 250)]
    from conftest import encode

    write_gz(oss_path(tmp_path / "src", "cn-hangzhou", T0), encode(recs))
    summary = run_ingest([tmp_path / "src"], tmp_path / "lake")
    assert summary["stats"]["loaded"] == 5 and summary["stats"]["quarantined"] == 1
    assert [p["acsRegion"] for p in summary["partitions"]] == ["cn-hangzhou"]


# ----------------------------------------------------------------------------- times
@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-03-05T18:00:00+08:00", "2025-03-05 10:00:00"),
        ("2025-03-05T10:00:00.123456+00:00", "2025-03-05 10:00:00.123456"),
        ("2025-03-05T04:30:00-0530", "2025-03-05 10:00:00"),
        ("2025-03-05T10:00:00.5Z", "2025-03-05 10:00:00.500000"),
    ],
)
def test_iso8601_offsets_and_fractions_are_accepted(tmp_path, text, utc):
    write_oss(tmp_path, [event(0, eventTime=text)])
    df = load([tmp_path]).events.collect()
    assert df.height == 1 and str(df["eventTime"][0].replace(tzinfo=None)) == utc


# ----------------------------------------------------------------------------- bombs and sizes
def test_a_decompression_bomb_is_quarantined_unread_and_good_files_load(tmp_path):
    write_oss(tmp_path, [event(i) for i in range(5)])
    bomb = tmp_path / "AliyunLogs" / "Actiontrail" / "cn-hangzhou" / "2025" / "03" / "04" / "bomb.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        for _ in range(8):
            fh.write(b" " * (1 << 20))
    res = load([tmp_path], max_file_bytes=2 << 20)
    assert res.stats.loaded == 5 and _balanced(res)
    [row] = res.quarantine.rows(named=True)
    assert row["sourceFile"].endswith("bomb.gz") and "per-file limit" in row["reason"]


def test_a_zip_member_over_the_limit_is_quarantined(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.json", "\n".join(json.dumps(event(i)) for i in range(3)))
        zf.writestr("big.json", " " * (3 << 20))
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    res = load([tmp_path], max_file_bytes=1 << 20)
    assert res.stats.loaded == 3
    assert res.quarantine["sourceFile"].to_list() == [f"{tmp_path / 'a.zip'}!big.json"]


# ----------------------------------------------------------------------------- accounting
def test_quarantine_counts_records_not_files(tmp_path):
    path = tmp_path / "logs" / "AliyunLogs" / "Actiontrail" / "junk.log"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(b"this is not json %d\n" % i for i in range(80)))
    write_oss(tmp_path / "logs", [event(0)])
    res = load([tmp_path / "logs"])
    assert res.quarantine.height == 1 and res.stats.quarantined == 80 and _balanced(res)
    assert any(w.startswith("80 record(s) quarantined") for w in res.warnings)


def test_an_unreadable_folder_is_a_warning_and_a_quarantine_row(tmp_path, monkeypatch):
    write_oss(tmp_path, [event(0)])
    locked = tmp_path / "AliyunLogs" / "Actiontrail" / "cn-beijing"
    locked.mkdir(parents=True)
    real_scandir = os.scandir

    def scandir(path="."):  # root ignores chmod, so the refusal is simulated
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = load([tmp_path])
    assert res.stats.loaded == 1
    assert res.quarantine.rows(named=True)[0]["sourceFile"] == str(locked)
    assert "unreadable folder" in res.quarantine["reason"][0]
    assert any("unreadable folder" in w for w in res.warnings)


def test_stale_temporary_files_are_removed_by_the_next_ingest(tmp_path):
    write_oss(tmp_path / "src", [event(i) for i in range(5)])
    out = tmp_path / "lake"
    run_ingest([tmp_path / "src"], out)
    part = next((out / "events").rglob("*.parquet"))
    dead = part.with_name(part.name + ".tmp-999999999")  # no such process
    live = part.with_name(part.name + f".tmp-{os.getppid()}")  # a running process
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    (out / ".staging-999999999").mkdir()
    run_ingest([tmp_path / "src"], out)
    assert not dead.exists() and live.exists() and not (out / ".staging-999999999").exists()
    assert lake.remove_stale_temps(out) == 0


# ----------------------------------------------------------------------------- a bad byte hides an attack
def test_an_attack_whose_user_agent_carries_a_bad_byte_is_still_detected(tmp_path):
    """Corrupting every user agent of the deliveries changes no Insight but the text."""
    from insights_kit import store
    from insights_kit.simulate import simulate

    sim = tmp_path / "sim"
    simulate(sim, days=5, seed=5, scale=0.01)
    bad = tmp_path / "bad"
    for f in sorted(sim.rglob("*.gz")):
        target = bad / f.relative_to(sim)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = gzip.decompress(f.read_bytes()).replace(b'"userAgent": "', b'"userAgent": "\xff')
        data = data.replace(b'"userAgent":"', b'"userAgent":"\xff')
        target.write_bytes(gzip.compress(data, mtime=0))
    clean = run_detect([sim], tmp_path / "clean")
    dirty = run_detect([bad], tmp_path / "dirty")
    assert dirty["records"]["loaded"] == clean["records"]["loaded"]
    rec = dirty["records"]
    assert rec["repaired"]["userAgent"] == rec["records_read"] - rec["quarantined"]  # duplicates too

    def key(df: pl.DataFrame) -> list[tuple]:
        return sorted(df.select("insightType", "insightObject", "acsRegion", "eventTime", "state").iter_rows())

    found = key(store.read_events(tmp_path / "clean"))
    assert found and key(store.read_events(tmp_path / "dirty")) == found


# ----------------------------------------------------------------------------- properties
GOOD = [event(i) for i in range(6)]
MUTATIONS = ("truncate", "flip", "nest", "huge", "wrong_type", "bad_bytes", "insert_garbage")


def _mutate(data: bytes, kind: str, at: int, byte: int) -> bytes:
    pos = at % max(1, len(data))
    if kind == "truncate":
        return data[:pos]
    if kind == "flip":
        return data[:pos] + bytes([data[pos] ^ (byte or 1)]) + data[pos + 1 :]
    if kind == "nest":
        return data.replace(b'{"InstanceId"', DEEP[:-1].encode() + b', "InstanceId"', 1)
    if kind == "huge":
        return data.replace(b'"aliyuncli/3.0"', b'"' + b"A" * (4 << 20) + b'"', 1)
    if kind == "wrong_type":
        return data.replace(b'"DeleteInstance"', b'{"x": [1, 2]}', 1).replace(b'"isGlobal": false', b'"isGlobal": []', 1)
    if kind == "bad_bytes":
        return data[:pos] + bytes([0x80 | (byte & 0x7F), 0xFF]) + data[pos:]
    return data[:pos] + b"\x00\x1f{[\"" + data[pos:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(MUTATIONS),
    shape=st.sampled_from(["ndjson", "records", "array"]),
    at=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
    compress=st.booleans(),
)
def test_mutated_files_never_crash_the_load_or_cost_a_good_file(tmp_path_factory, kind, shape, at, byte, compress):
    root = tmp_path_factory.mktemp("mut")
    good = write_oss(root, [event(100 + i) for i in range(4)], name="good")
    from conftest import encode

    data = _mutate(encode(GOOD, shape), kind, at, byte)
    target = root / "AliyunLogs" / "Actiontrail" / "cn-hangzhou" / "2025" / "03" / "04" / "mutated.json"
    if compress:
        target = target.with_suffix(".gz")
        target.write_bytes(gzip.compress(data, mtime=0))
    else:
        target.write_bytes(data)
    res = load([root])
    assert _balanced(res)
    ids = _ids(res)
    assert {r["eventId"] for r in [event(100 + i) for i in range(4)]} <= ids, f"lost a record of {good}"
    if kind in ("nest", "huge"):
        assert {r["eventId"] for r in GOOD} <= ids  # nothing wrong with the records but their size


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(MUTATIONS), at=st.integers(min_value=0, max_value=10_000), byte=st.integers(0, 255))
def test_mutated_files_never_crash_ingest_or_detect(tmp_path_factory, kind, at, byte):
    from conftest import encode

    root = tmp_path_factory.mktemp("mutrun")
    write_oss(root, [event(100 + i) for i in range(4)], name="good")
    target = oss_path(root, "cn-hangzhou", T0, "mutated")
    write_gz(target, _mutate(encode(GOOD), kind, at, byte))
    summary = run_ingest([root], root / "lake")
    st_ = summary["stats"]
    assert st_["records_read"] == st_["loaded"] + st_["quarantined"] + st_["duplicates"] + st_["outside_window"]
    out = run_detect([root / "lake"], root / "out")
    assert out["records"]["loaded"] == st_["loaded"]


def test_a_full_disk_during_ingest_leaves_nothing_in_the_lake(tmp_path, monkeypatch):
    import errno

    recs = [event(i) for i in range(5)] + [event(10 + i, acsRegion="cn-beijing") for i in range(3)]
    write_oss(tmp_path / "src", recs)
    real_write, calls = lake.atomic_write_parquet, []

    def write(df, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(df, path)

    monkeypatch.setattr(lake, "atomic_write_parquet", write)
    out = tmp_path / "lake"
    with pytest.raises(OSError):
        run_ingest([tmp_path / "src"], out)
    assert len(calls) == 2 and not [p for p in out.rglob("*") if p.is_file()]
    monkeypatch.setattr(lake, "atomic_write_parquet", real_write)
    assert run_ingest([tmp_path / "src"], out)["new_rows"] == 8
