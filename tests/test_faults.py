"""Fault injection: a run killed (SIGKILL) at a random point and run again equals a clean run.

The kill points are drawn from a seeded generator over the clean run's measured duration,
so each run of the suite tries the same points: early (imports), mid-read and mid-write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from insights_kit import lake
from insights_kit.simulate import simulate


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "insights_kit.cli", *args]


def _timed(cmd: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - start


def _killed_at(cmd: list[str], delay: float) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faultsim")
    simulate(out, days=4, seed=21, scale=0.01)
    return out


def test_ingest_killed_anywhere_then_rerun_equals_a_clean_ingest(sim, tmp_path):
    clean = tmp_path / "clean"
    took = _timed(_cli("ingest", str(sim), "--out", str(clean)))
    expected = lake.scan_lake(clean).collect().sort("eventId")
    rng = random.Random(12)
    for k in range(3):
        out = tmp_path / f"killed{k}"
        _killed_at(_cli("ingest", str(sim), "--out", str(out)), rng.uniform(0.2, took))
        subprocess.run(_cli("ingest", str(sim), "--out", str(out)), check=True, capture_output=True)
        assert lake.scan_lake(out).collect().sort("eventId").equals(expected)
        assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "a killed run's temporary file survived the rerun"


def test_detect_killed_anywhere_then_rerun_writes_the_same_bytes(sim, tmp_path):
    clean = tmp_path / "clean"
    took = _timed(_cli("detect", str(sim), "--out", str(clean)))
    expected = _files(clean)
    assert any(name.endswith(".jsonl") for name in expected)
    rng = random.Random(34)
    for k in range(3):
        out = tmp_path / f"killed{k}"
        _killed_at(_cli("detect", str(sim), "--out", str(out)), rng.uniform(0.2, took))
        subprocess.run(_cli("detect", str(sim), "--out", str(out)), check=True, capture_output=True)
        assert _files(out) == expected
