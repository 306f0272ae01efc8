"""One run at a time per --state, and a home region that does not move (part of issue 11)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from insights_kit.config import ConfigError, config_from_dict
from insights_kit.detect import State, StateBusy, StateLock, run_detect
from insights_kit.simulate import simulate


@pytest.fixture(scope="module")
def two_days(tmp_path_factory) -> dict[str, Path]:
    """A 2-day simulated tree split into one folder per UTC day."""
    root = tmp_path_factory.mktemp("lock")
    simulate(root / "sim", days=2, seed=5, scale=0.01)
    days: dict[str, Path] = {}
    for file in sorted((root / "sim" / "AliyunLogs").rglob("*.gz")):
        day = "-".join(file.parent.parts[-3:])
        target = root / day / file.relative_to(root / "sim")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
        days[day] = root / day
    return days


def _window(day: str) -> dict:
    since = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return {"since": since, "until": since + timedelta(days=1)}


def test_a_second_run_waits_for_the_first_and_no_window_is_lost(tmp_path, two_days):
    state, out = tmp_path / "state", tmp_path / "out"
    (d1, src1), (d2, src2) = sorted(two_days.items())
    results: dict[str, dict] = {}
    with StateLock(state, timeout=5):  # a run in progress
        threads = [threading.Thread(target=lambda d=d, s=s: results.setdefault(d, run_detect([s], out, state=state, **_window(d))))
                   for d, s in ((d1, src1), (d2, src2))]  # fmt: skip
        for t in threads:
            t.start()
        threads[0].join(timeout=1)
        assert threads[0].is_alive()  # waiting for the lock
    for t in threads:
        t.join(timeout=300)
    assert set(results) == {d1, d2}
    kept = State(state).events.collect()["eventTime"].dt.strftime("%Y-%m-%d").unique().sort().to_list()
    assert kept == [d1, d2]  # both windows are in the state
    again = run_detect([src1], tmp_path / "again", state=state, **_window(d1))
    assert again["emitted"]["events"] == 0  # nothing re-reported as new


def test_a_run_that_cannot_get_the_lock_gives_up_with_one_line(tmp_path, two_days):
    state = tmp_path / "state"
    (day, src), *_ = sorted(two_days.items())
    cfg = config_from_dict({"detect": {"lock_timeout_seconds": 1}})
    with StateLock(state, timeout=1):
        with pytest.raises(StateBusy, match=r"in use by another run \(pid \d+\)"):
            run_detect([src], tmp_path / "out", state=state, config=cfg, **_window(day))
        (tmp_path / "c.toml").write_text("[detect]\nlock_timeout_seconds = 0\n")
        cmd = [sys.executable, "-m", "insights_kit.cli", "detect", str(src), "--out", str(tmp_path / "o"),
               "--state", str(state), "--config", str(tmp_path / "c.toml")]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("insights-kit: error: state ") and done.stderr.count("\n") == 1
    with pytest.raises(ValueError, match="lock_timeout_seconds"):
        config_from_dict({"detect": {"lock_timeout_seconds": -1}})


def test_the_home_region_is_recorded_and_does_not_move(tmp_path, two_days):
    state = tmp_path / "state"
    (d1, src1), (d2, src2) = sorted(two_days.items())
    first = run_detect([src1], tmp_path / "o1", state=state, **_window(d1))
    home = first["homeRegion"]
    assert State(state).meta["homeRegion"] == home
    other = "cn-beijing" if home != "cn-beijing" else "cn-shanghai"
    with pytest.raises(ConfigError, match=f"analyses global events in {home}, not {other}"):
        run_detect([src2], tmp_path / "o2", state=state, home_region=other, **_window(d2))
    assert run_detect([src2], tmp_path / "o2", state=state, **_window(d2))["homeRegion"] == home
    moved = run_detect([src2], tmp_path / "o3", state=state, home_region=other, change_home_region=True, **_window(d2))
    assert moved["homeRegion"] == other and State(state).meta["homeRegion"] == other


def _files(two_days, day):
    return sorted(two_days[day].rglob("*.gz"))


def test_late_deliveries_are_analysed_with_their_true_times(tmp_path, two_days):
    """Day 1's files after 20:00 arrive only with day 2's run, far beyond the lag margin."""
    (d1, src1), (d2, src2) = sorted(two_days.items())
    late_files = [f for f in _files(two_days, d1) if f.name.split("_")[2][8:10] >= "20"]
    assert late_files
    first = tmp_path / "first"
    for f in _files(two_days, d1):
        if f not in late_files:
            target = first / f.relative_to(src1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    second = tmp_path / "second"
    for f in late_files + _files(two_days, d2):
        base = src1 if f in late_files else src2
        target = second / f.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read_bytes())
    state, out = tmp_path / "state", tmp_path / "out"
    run_detect([first], out, state=state, **_window(d1))
    summary = run_detect([second], out, state=state, **_window(d2))
    whole = run_detect([src1, src2], tmp_path / "whole")
    assert summary["records"]["late"] > 0  # counted, and analysed:
    assert State(state).event_count == whole["records"]["analysed"]


def test_an_event_from_the_future_is_quarantined_and_never_moves_the_clock(tmp_path, two_days):
    (d1, src1), _ = sorted(two_days.items())
    state = tmp_path / "state"
    run_detect([src1], tmp_path / "o1", state=state)
    kept, watermark = State(state).event_count, State(state).meta["watermark"]
    stray = tmp_path / "stray" / "AliyunLogs" / "Actiontrail" / "cn-hangzhou" / d1.replace("-", "/")
    stray.mkdir(parents=True)
    record = {"eventId": "future-1", "eventTime": "2099-01-01T00:00:00Z", "eventName": "DescribeInstances",
              "acsRegion": "cn-hangzhou", "serviceName": "Ecs"}  # fmt: skip
    (stray / "Actiontrail_cn-hangzhou_x.gz").write_bytes(gzip.compress(json.dumps(record).encode()))
    summary = run_detect([src1, tmp_path / "stray"], tmp_path / "o2", state=state)
    assert summary["quarantine"]["records"] == 1
    line = json.loads(Path(summary["quarantine"]["file"]).read_text().splitlines()[0])
    assert "from the future" in line["reason"]
    assert State(state).event_count == kept and State(state).meta["watermark"] == watermark


def test_the_state_keeps_only_what_the_units_read_and_is_never_read_whole(tmp_path, two_days):
    import polars as pl

    from insights_kit.detect import STATE_EVENT_COLUMNS, UNUSED_BY_DETECTORS

    state = tmp_path / "state"
    (d1, src1), _ = sorted(two_days.items())
    summary = run_detect([src1], tmp_path / "out", state=state, **_window(d1))
    assert list(pl.read_parquet_schema(state / "events.parquet")) == STATE_EVENT_COLUMNS
    assert "errorMessage" in UNUSED_BY_DETECTORS and "errorMessage" not in STATE_EVENT_COLUMNS
    st = State(state)
    assert isinstance(st.events, pl.LazyFrame)  # scanned, not loaded
    assert st.event_count == summary["records"]["analysed"] > 0


def test_files_read_in_full_are_not_read_again_and_a_rewritten_one_is(tmp_path, two_days):
    import shutil

    (d1, src1), (d2, src2) = ((d, shutil.copytree(s, tmp_path / "in" / d)) for d, s in sorted(two_days.items()))
    state, out = tmp_path / "state", tmp_path / "out"
    first = run_detect([src1, src2], out, state=state)
    total = first["records"]["files_read"]
    again = run_detect([src1, src2], out, state=state)
    assert again["records"]["files_read"] == 0 and again["records"]["files_already_read"] == total
    assert again["emitted"]["events"] == 0
    victim = sorted(src2.rglob("*.gz"))[0]
    data = victim.read_bytes()
    victim.write_bytes(gzip.compress(gzip.decompress(data)))  # same events, new bytes and mtime
    third = run_detect([src1, src2], out, state=state)
    assert third["records"]["files_read"] == 1 and third["records"]["alreadyInState"] > 0
    assert third["emitted"]["events"] == 0


@pytest.mark.parametrize("broken", ["events.parquet", "meta.json"])
def test_a_broken_state_is_one_clear_error_and_is_left_as_it_was(tmp_path, two_days, broken):
    from insights_kit.readers import InputError

    (d1, src1), _ = sorted(two_days.items())
    state = tmp_path / "state"
    run_detect([src1], tmp_path / "out", state=state, **_window(d1))
    target = state / broken
    target.write_bytes(target.read_bytes()[:40])
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    with pytest.raises(InputError, match="unreadable.*restore it from a backup"):
        run_detect([src1], tmp_path / "out", state=state, **_window(d1))
    assert {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()} == before
