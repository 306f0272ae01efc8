"""The reused report kernel: each notebook sees a fresh namespace, counter, folder and log."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm

from insights_kit import report, warm_kernel


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('region = ""')
    params.metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def _run(nb: Path, out: Path) -> nbformat.NotebookNode:
    out.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(nb), str(out / "out.ipynb"), parameters={"region": out.name}, kernel_name=report.kernel_name(),
                        cwd=str(out), progress_bar=False, engine_name=warm_kernel.ENGINE,
                        kernel_log=str(out / "kernel.log"))
    return nbformat.read(out / "out.ipynb", as_version=4)


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs)


def test_one_kernel_runs_notebooks_as_if_each_had_a_fresh_one(tmp_path):
    probe = _notebook(
        tmp_path / "probe.ipynb",
        "import os, json, sys\nprint(json.dumps({'pid': os.getpid(), 'cwd': os.getcwd(), 'leak': 'leak' in globals()}))",
        "leak = 1\nos.write(2, f'log of {region}\\n'.encode())",
    )
    try:
        first = _run(probe, tmp_path / "a")
        second = _run(probe, tmp_path / "b")
    finally:
        warm_kernel.shutdown()
    seen = [json.loads(_text(nb.cells[2])) for nb in (first, second)]
    assert seen[0]["pid"] == seen[1]["pid"]  # the same kernel process
    assert [s["cwd"] for s in seen] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert not seen[1]["leak"]  # the first notebook's names are gone
    counts = [[c.execution_count for c in nb.cells if c.cell_type == "code"] for nb in (first, second)]
    assert counts[0] == counts[1] == list(range(1, len(counts[0]) + 1))
    assert "log of b" in (tmp_path / "b" / "kernel.log").read_text()
    assert "log of b" not in (tmp_path / "a" / "kernel.log").read_text()


def test_a_dead_kernel_is_replaced(tmp_path):
    probe = _notebook(tmp_path / "probe.ipynb", "import os\nprint(os.getpid())")
    try:
        before = _text(_run(probe, tmp_path / "a").cells[-1])
        for km in warm_kernel._kernels.values():
            km.provisioner.process.kill()
            km.provisioner.process.wait()
        after = _text(_run(probe, tmp_path / "b").cells[-1])
    finally:
        warm_kernel.shutdown()
    assert before != after and after.strip().isdigit()
