"""The notebooks: papermill runs on small data, documented parameters, stripped and paired sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import pytest

from insights_kit import report
from test_report import assert_only_escaped, write_hostile_tree

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("insights_report", "explore", "tune_models", "console")
SAMPLE = ROOT / "data" / "sample"


def _run(name: str, out: Path, *, cwd: Path, **parameters) -> nbformat.NotebookNode:
    # Kernels inherit the environment: make the checkout importable even when not installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), parameters=parameters,
                               kernel_name=report.kernel_name(), cwd=str(cwd), progress_bar=False)


def _text(nb: nbformat.NotebookNode, marker: str) -> str:
    cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _needs_detect():
    # Our own modules: an import error here is a failure, never a skip.
    import insights_kit.detectors.call_rate  # noqa: F401
    import insights_kit.readers  # noqa: F401
    import insights_kit.store  # noqa: F401


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_is_stripped_and_paired_with_its_script(name):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}.ipynb has outputs: strip it"
    script = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    assert [c.source for c in script.cells] == [c.source for c in nb.cells], f"run jupytext --sync notebooks/{name}.py"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and nb.cells.index(params[0]) <= 1


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_parameter_has_a_type_and_help(name):
    found = pm.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"))
    assert found, "papermill found no parameters"
    for param in found.values():
        assert param["inferred_type_name"] in ("str", "int", "float"), param
        assert param["help"].strip(), param
    if name == "insights_report":
        assert list(found) == ["source", "store", "region", "since", "until", "out_dir", "config", "home_region"]


@pytest.fixture(scope="module")
def hostile_src(tmp_path_factory):
    return write_hostile_tree(tmp_path_factory.mktemp("nb") / "src")


def test_report_notebook_in_memory_from_the_notebooks_folder(tmp_path, hostile_src):
    _needs_detect()
    nb = _run("insights_report", tmp_path / "out.ipynb", cwd=ROOT / "notebooks", source=str(hostile_src),
              region="cn-shanghai", out_dir=str(tmp_path / "charts"))
    summary = _text(nb, "NBVAL_CHECK_OUTPUT")
    assert summary.startswith("region cn-shanghai: ") and "\ntotal " in summary
    names = {p.name for p in (tmp_path / "charts").iterdir()}
    assert {"timeline.png", "timeline.svg", "summary-by-day.svg", "incident-001.svg"} <= names
    html = report.notebook_to_html(tmp_path / "out.ipynb", tmp_path / "out.html", title="t").read_text()
    assert_only_escaped(html, "notebook html")


def test_report_notebook_with_a_store_and_a_window(tmp_path, hostile_src):
    _needs_detect()
    from insights_kit.detect import run_detect

    run_detect([hostile_src], tmp_path / "store")
    nb = _run("insights_report", tmp_path / "out.ipynb", cwd=tmp_path, source=str(hostile_src),
              store=str(tmp_path / "store"), region="cn-hangzhou", since="2025-03-03T12:00:00Z",
              until="2025-03-04T00:00:00Z", out_dir=str(tmp_path / "charts"))
    summary = _text(nb, "NBVAL_CHECK_OUTPUT")
    # only the error burst (13:00) starts in the window; the 10:00 write burst is outside it
    assert "ApiErrorRateInsight" in summary and "\n2025-03-03" in summary
    assert "IpInsight" in summary and not list((tmp_path / "charts").glob("incident-*-dimensions.svg"))


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"the shipped sample {SAMPLE} is not there yet (make sample)")
@pytest.mark.parametrize("cwd", [ROOT, ROOT / "notebooks"], ids=["repo-root", "notebooks-dir"])
def test_report_notebook_defaults_on_the_sample(tmp_path, cwd):
    _needs_detect()
    nb = _run("insights_report", tmp_path / "out.ipynb", cwd=cwd, out_dir=str(tmp_path / "charts"))
    assert _text(nb, "NBVAL_CHECK_OUTPUT").startswith("region ")


def test_explore_notebook(tmp_path, hostile_src):
    _needs_detect()
    nb = _run("explore", tmp_path / "out.ipynb", cwd=ROOT / "notebooks", source=str(hostile_src),
              region="cn-hangzhou", ip="198.51.100.66")
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "<iframe" in html and "brush" in html
    page = report.notebook_to_html(tmp_path / "out.ipynb", tmp_path / "out.html", title="explore").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page


def test_console_notebook(tmp_path, hostile_src):
    _needs_detect()
    from insights_kit.detect import run_detect

    run_detect([hostile_src], tmp_path / "store")
    nb = _run("console", tmp_path / "out.ipynb", cwd=ROOT / "notebooks", store=str(tmp_path / "store"),
              source=str(hostile_src), search="198.51.100.66", region="cn-hangzhou")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "1 incident(s)" in html and "IpInsight · 198.51.100.66 · cn-hangzhou" in html
    assert "events 1–100 of 450" in html and "<h4>Start</h4>" in html
    svgs = [o["data"]["image/svg+xml"] for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 2  # the trend by API and the heterogeneity dimensions
    page = report.notebook_to_html(tmp_path / "out.ipynb", tmp_path / "out.html", title="console").read_text()
    assert_only_escaped(page, "console notebook html")


@pytest.mark.slow
def test_tune_models_notebook_appends_runs_and_writes_a_valid_config(tmp_path):
    # The defaults run under nbval (make test's second step); here a short sweep keeps it quick.
    _needs_detect()
    import polars as pl

    _run("tune_models", tmp_path / "out.ipynb", cwd=ROOT / "notebooks", work_dir=str(tmp_path / "tune"),
         seeds="1,2", sweep="call_rate.min_count:5,20;ip.threshold:0.5", holdout_seeds="404", holdout_days=4)
    holdout = json.loads((tmp_path / "tune" / "chosen-holdout.json").read_text())
    assert holdout, "the chosen configuration is scored on the holdout seed"
    _run("tune_models", tmp_path / "out2.ipynb", cwd=ROOT / "notebooks", work_dir=str(tmp_path / "tune"),
         seeds="1", sweep="call_rate.min_count:20", holdout_seeds="")
    table = pl.read_csv(tmp_path / "tune" / "results.csv")
    assert table["run"].n_unique() == 2  # appended, one header
    assert {"params", "insightType", "recall", "precision", "f1", "mean_delay"} <= set(table.columns)
    assert len(list((tmp_path / "tune" / "runs").glob("*.parquet"))) == 2
    from insights_kit.config import load_config

    load_config(tmp_path / "tune" / "chosen.toml")  # a valid config
    assert (tmp_path / "tune" / "tradeoff.png").stat().st_size > 2_000
