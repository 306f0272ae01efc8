"""Ingest: lake layout, idempotence, determinism, region validation, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import event, write_oss

from insights_kit import lake
from insights_kit.ingest import run_ingest
from insights_kit.readers import InputError, load
from insights_kit.schema import EVENT_SCHEMA


def _tree(root: Path) -> Path:
    recs = [event(i) for i in range(20)]
    recs += [event(100 + i, acsRegion="cn-beijing", eventTime=f"2025-03-05T0{i}:00:00Z") for i in range(3)]
    recs += [event(200, eventName=...)]
    write_oss(root, recs)
    write_oss(root, [event(i) for i in range(5)], name="again")  # duplicates
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ingest_layout_summary_and_accounting(tmp_path):
    src = _tree(tmp_path / "src")
    out = tmp_path / "lake"
    summary = run_ingest([src], out)
    st = summary["stats"]
    assert st["records_read"] == st["loaded"] + st["quarantined"] + st["duplicates"] + st["outside_window"]
    assert (st["loaded"], st["duplicates"], st["quarantined"], st["new_rows"], st["already_in_lake"]) == (23, 5, 1, 23, 0)
    keys = [(p["acsRegion"], p["date"], p["rows"]) for p in summary["partitions"]]
    assert keys == [("cn-beijing", "2025-03-05", 3), ("cn-hangzhou", "2025-03-04", 20)]
    for p in summary["partitions"]:
        path = Path(p["path"])
        assert path.parent == out / "events" / f"acsRegion={p['acsRegion']}" / f"date={p['date']}"
        assert path.name.startswith("part-") and len(path.stem) == len("part-") + 16
        df = pl.read_parquet(path)
        assert df.schema == pl.Schema(EVENT_SCHEMA)
        assert df.select("eventTime", "eventId").equals(df.select("eventTime", "eventId").sort("eventTime", "eventId"))
    q = [json.loads(line) for line in Path(summary["quarantine"]).read_text().splitlines()]
    assert [(r["position"], r["reason"]) for r in q] == [("line 21", "missing eventName")]
    on_disk = json.loads(Path(summary["summary"]).read_text())
    assert on_disk["run_id"] == summary["run_id"] and on_disk["quarantine"] == f"quarantine/{summary['run_id']}.jsonl"
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    # The lake reads back as the same canonical events.
    assert lake.scan_lake(out).collect().sort("eventId").equals(load([src]).events.collect().sort("eventId"))


def test_reingest_adds_nothing_and_overlap_adds_only_new(tmp_path):
    src = _tree(tmp_path / "src")
    out = tmp_path / "lake"
    run_ingest([src], out)
    again = run_ingest([src], out)
    assert again["stats"]["new_rows"] == 0 and again["stats"]["already_in_lake"] == 23 and again["partitions"] == []
    more = tmp_path / "more"
    write_oss(more, [event(i) for i in range(15, 30)])
    third = run_ingest([more], out)
    assert (third["stats"]["new_rows"], third["stats"]["already_in_lake"]) == (10, 5)
    assert lake.scan_lake(out).select(pl.len()).collect().item() == 33
    assert lake.scan_lake(out).select(pl.col("eventId").n_unique()).collect().item() == 33


def test_same_input_gives_byte_identical_output(tmp_path):
    src = _tree(tmp_path / "src")
    a, b = run_ingest([src], tmp_path / "a"), run_ingest([src], tmp_path / "b")
    assert a["run_id"] == b["run_id"]
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa.keys() == fb.keys() and len(fa) == 4  # 2 partitions, quarantine, summary
    assert fa == fb


def test_region_names_validated(tmp_path):
    write_oss(tmp_path / "src", [event(0), event(1, acsRegion="CN_Hangzhou"), event(2, acsRegion="x/../y"), event(3, acsRegion=None)])
    summary = run_ingest([tmp_path / "src"], tmp_path / "lake")
    q = [json.loads(line) for line in Path(summary["quarantine"]).read_text().splitlines()]
    assert [r["reason"] for r in q] == [
        "invalid region name 'CN_Hangzhou' (expected 1-63 characters of a-z, 0-9 and -)",
        "invalid region name 'x/../y' (expected 1-63 characters of a-z, 0-9 and -)",
        "missing acsRegion: no lake partition to write to",
    ]
    st = summary["stats"]
    assert (st["new_rows"], st["quarantined"]) == (1, 3)
    assert st["records_read"] == st["loaded"] + st["quarantined"] + st["duplicates"] + st["outside_window"]
    assert [p.name for p in (tmp_path / "lake" / "events").iterdir()] == ["acsRegion=cn-hangzhou"]
    with pytest.raises(InputError, match="region"):
        run_ingest([tmp_path / "src"], tmp_path / "lake2", strict=True)


def test_wrong_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        run_ingest([tmp_path / "missing"], tmp_path / "lake")


def test_atomic_writes_replace_and_leave_no_temp(tmp_path):
    target = tmp_path / "d" / "x.txt"
    lake.atomic_write_text(target, "one")
    lake.atomic_write_text(target, "two")
    lake.atomic_write_bytes(tmp_path / "d" / "y.bin", b"\x00\x01")
    lake.atomic_write_parquet(pl.DataFrame({"a": [1, 2]}), tmp_path / "d" / "z.parquet")
    assert target.read_text() == "two" and pl.read_parquet(tmp_path / "d" / "z.parquet")["a"].to_list() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["x.txt", "y.bin", "z.parquet"]


def test_scan_lake_empty_and_lake_as_load_source(tmp_path):
    assert lake.scan_lake(tmp_path / "none").collect().schema == pl.Schema(EVENT_SCHEMA)
    src = _tree(tmp_path / "src")
    out = tmp_path / "lake"
    run_ingest([src], out)
    res = load([out])  # only events/ is read: quarantine/ and summaries/ are not event files
    assert res.stats.loaded == 23 and res.stats.quarantined == 0 and res.stats.by_format == {"parquet": 23}
