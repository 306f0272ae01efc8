"""--executor dask on real clusters: output byte-identical to the local executor.

A three-account organisation tree (multi-account layout) is detected locally, then on a
cluster of a ``dask scheduler`` and two ``dask worker`` processes started here (workers
read their slices of the lake themselves), then from the JSON tree on the two-worker local
cluster the command starts itself (units' events are shipped). Every byte of the Insights
store and summary must match.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from insights_kit import engine
from insights_kit.simulate_org import simulate_organisation

CLI = [sys.executable, "-m", "insights_kit.cli"]
DASK = str(Path(sys.executable).with_name("dask"))


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(CLI + list(args), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def organisation(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("org")
    labels = simulate_organisation(root / "tree", accounts=3, days=5, seed=11, scale=0.01, file_minutes=60)
    _run("ingest", str(root / "tree"), "--out", str(root / "lake"))
    return root / "tree", root / "lake", labels


@pytest.fixture
def scheduler():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, POLARS_MAX_THREADS="1")
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-dashboard"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as client:
            while len(client.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, "dask workers did not join"
                time.sleep(0.2)
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def test_local_executor_runs_in_order():
    assert engine.run_tasks(lambda x: x * 2, [3, 1, 2]) == [6, 2, 4]
    with pytest.raises(engine.EngineError, match="unknown executor"):
        engine.run_tasks(str, [1], executor="spark")


@pytest.mark.slow
def test_dask_cluster_output_is_byte_identical(organisation, scheduler, tmp_path):
    tree, lake, labels = organisation
    local, on_cluster, on_local_cluster = tmp_path / "local", tmp_path / "cluster", tmp_path / "local-cluster"
    _run("detect", str(lake), "--out", str(local))
    _run("detect", str(lake), "--out", str(on_cluster), "--executor", "dask", "--scheduler", scheduler)
    assert _tree(on_cluster) == _tree(local)
    _run("detect", str(tree), "--out", str(on_local_cluster), "--executor", "dask")
    assert _tree(on_local_cluster / "AliyunLogs") == _tree(local / "AliyunLogs")

    # an organisation: one summary entry per account, and query filters by account
    summary = json.loads((local / "summary.json").read_text())
    members = sorted(m["account"] for m in labels["accounts"])
    assert sorted(summary["accounts"]) == members
    assert all(len(summary["accounts"][a]["regions"]) == 4 for a in members)
    one = members[0]
    out = _run("query", str(local), "--account", one, "--format", "json", "--since", "2025-01-01").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert rows and {r["recipientAccountId"] for r in rows} == {one}
    starts = sum(summary["accounts"][one]["insights"].values())
    assert sum(1 for r in rows if r["insightDetails"]["state"] == "Start") == starts


def test_unreachable_scheduler_is_one_line(tmp_path):
    done = subprocess.run(CLI + ["detect", str(tmp_path), "--out", str(tmp_path / "o"), "--executor", "dask",
                                 "--scheduler", "localhost:8786"], capture_output=True, text=True)
    assert done.returncode == 2 and "is not a scheduler address" in done.stderr


def test_an_organisation_state_records_each_accounts_home(organisation, tmp_path):
    tree, _, labels = organisation
    state, out = tmp_path / "state", tmp_path / "out"
    _run("detect", str(tree), "--out", str(out), "--state", str(state), "--until", "2025-03-05")
    meta = json.loads((state / "meta.json").read_text())
    members = sorted(m["account"] for m in labels["accounts"])
    assert sorted(meta["homeRegions"]) == members
    one = members[0]
    other = next(r for r in ("cn-shanghai", "cn-beijing") if r != meta["homeRegions"][one])
    done = subprocess.run(CLI + ["detect", str(tree), "--out", str(out), "--state", str(state),
                                 "--home-region", f"{one}={other}"], capture_output=True, text=True)
    assert done.returncode == 2
    assert f"for account {one} in {meta['homeRegions'][one]}, not {other}" in done.stderr
