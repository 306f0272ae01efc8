"""The report: escaping and path validation, offline HTML, run_report end to end with hostile values."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest

from conftest import event, iso, write_oss
from insights_kit import htmlsafe, report

HOSTILE = '<script>alert(1)</script>"\'&<b>x</b>'
REGIONS = ("cn-hangzhou", "cn-shanghai")


def hostile_events(days: int = 3, regions=REGIONS, seed: int = 1) -> list[dict]:
    """Quiet baseline, then a write burst, a new address and an error burst whose
    eventName, userAgent, errorCode and errorMessage hold markup."""
    rnd = random.Random(seed)
    t0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
    out: list[dict] = []

    def add(ts: datetime, region: str, **fields) -> None:
        out.append(event(len(out), eventTime=iso(ts), acsRegion=region, **fields))

    for region in regions:
        for m in range(0, days * 1440, 3):
            ts = t0 + timedelta(minutes=m, seconds=rnd.randrange(60))
            add(ts, region, eventName="DescribeInstances", eventRW="Read", sourceIpAddress=f"203.0.113.{m % 3 + 1}")
            if m % 30 == 0:
                add(ts, region, eventName="StartInstance", sourceIpAddress="203.0.113.1")
        burst = t0 + timedelta(days=days - 1, hours=10)
        for m in range(15):
            for k in range(30):
                add(burst + timedelta(minutes=m, seconds=k), region, eventName=HOSTILE, userAgent=HOSTILE,
                    sourceIpAddress="198.51.100.66")
        for m in range(10):
            for k in range(12):
                add(burst + timedelta(hours=3, minutes=m, seconds=4 * k), region, eventName="DescribeInstances",
                    eventRW="Read", errorCode="Forbidden.RAM" if k % 2 else HOSTILE, errorMessage=HOSTILE,
                    userAgent=HOSTILE, sourceIpAddress="203.0.113.2")
    return out


def write_hostile_tree(root: Path, **kw) -> Path:
    write_oss(root, hostile_events(**kw))
    return root


def assert_only_escaped(page: str, where: str) -> None:
    """Markup from the data appears escaped, never as markup."""
    assert "<script>alert" not in page, f"raw <script> in {where}"
    assert "<b>x</b>" not in page, f"raw markup in {where}"
    # escaped as HTML, or as JSON in the console's data (\u003c cannot open a tag)
    assert "alert(1)" not in page or "&lt;script&gt;alert(1)" in page or "\\u003cscript\\u003ealert(1)" in page, where
    assert htmlsafe.external_references(page) == [], f"{where} loads remote resources"


# --------------------------------------------------------------------------- htmlsafe


@pytest.mark.parametrize("bad", ["../x", "cn/hangzhou", "CN-HANGZHOU", "", "..", "a b", "cn-hangzhou\n", "x" * 65])
def test_region_names_used_in_paths_are_validated(bad):
    with pytest.raises(ValueError):
        htmlsafe.check_region(bad)


def test_window_names():
    since = datetime(2025, 3, 4, 8, 15, tzinfo=timezone.utc)
    assert htmlsafe.window_name(since, since + timedelta(days=1)) == "20250304T0815Z_20250305T0815Z"
    assert htmlsafe.window_name(None, since) == "open_20250304T0815Z"
    assert htmlsafe.window_name(datetime(2025, 3, 4), None) == "20250304T0000Z_open"  # naive = UTC
    for bad in ("../20250304T0815Z_open", "20250304T0815Z_open/..", "2025_open", "open_open_open"):
        with pytest.raises(ValueError):
            htmlsafe.check_window(bad)


def test_tables_json_and_script_json_escape_everything():
    table = htmlsafe.table_html([{HOSTILE: HOSTILE, "n": 1.5, "none": None}], caption=HOSTILE)
    assert "<script>" not in table and table.count("&lt;script&gt;") == 3
    assert "<script>" not in htmlsafe.json_block({"k": HOSTILE})
    embedded = htmlsafe.script_json({"k": "</script><script>alert(1)</script>"})
    assert "</script" not in embedded and json.loads(embedded)["k"].startswith("</script>")


def test_text_table_is_plain_and_fixed():
    import polars as pl

    text = htmlsafe.text_table(pl.DataFrame({"day": ["2025-03-04", "total"], "n": [1, 12]}))
    assert text.splitlines() == ["day         n", "----------  --", "2025-03-04  1", "total       12"]


def test_external_references_finds_cdn_loads():
    page = ('<script src="https://cdn.jsdelivr.net/npm/vega@5"></script><link rel="stylesheet" href="//x/y.css">'
            '<script type="module">await import("https://cdnjs.cloudflare.com/m.mjs")</script>'
            '<img src="data:image/png;base64,AAAA"><a href="https://example.com">a link is not a load</a>')
    assert len(htmlsafe.external_references(page)) == 3


# --------------------------------------------------------------------------- pages


def test_window_index_escapes_regions_and_errors_and_marks_failures():
    results = {
        "cn-hangzhou": {"status": "ok", "html": "x", "notebook": "y", "insights": {"IpInsight": 2, "ApiCallRateInsight": 1}, "events": 10},
        "cn-beijing": {"status": "failed", "error": f"ValueError: {HOSTILE}", "html": None, "notebook": "y", "insights": {}},
        "../<b>x</b>": {"status": "failed", "error": "invalid region name", "html": None, "notebook": None, "insights": {}},
    }
    from insights_kit.console import page as console_page
    from insights_kit.schema import INSIGHT_TYPES

    regions = [{"region": r, "status": res["status"], "error": res.get("error"), "events": res.get("events"),
                "learning": "", "page": f"{r}/report.html" if res["html"] else None, "insights": res["insights"]}
               for r, res in results.items()]
    index = {"version": 1, "window": {"name": "open_open"}, "homeRegion": HOSTILE, "types": list(INSIGHT_TYPES),
             "regions": regions, "incidents": []}
    page = console_page.render_index_html(index, title=f"report {HOSTILE}")
    assert_only_escaped(page, "window index")
    assert 'href="cn-hangzhou/report.html"' in page
    assert "failed: ValueError: &lt;script&gt;" in page
    assert 'href="../' not in page  # no link built from a bad name
    row = re.search(r"<tr><td><code>cn-hangzhou</code>(.*?)</tr>", page).group(1)
    # events, then the seven types in ActionTrail's order, then the total
    assert re.findall(r"<td class=\"ik-num\">(\d+)</td>", row) == ["10", "1", "0", "2", "0", "0", "0", "0", "3"]


def test_notebook_html_has_no_code_no_cdn_and_escaped_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("secret_code_marker = 1")
    code.outputs = [nbformat.v4.new_output("display_data", data={"text/html": htmlsafe.table_html([{"ua": HOSTILE}])}),
                    nbformat.v4.new_output("stream", name="stdout", text=HOSTILE)]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title $x^2$"), code]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    out = report.notebook_to_html(tmp_path / "nb.ipynb", tmp_path / "nb.html", title=HOSTILE)
    page = out.read_text()
    assert "secret_code_marker" not in page
    assert_only_escaped(page, "notebook html")
    assert "cdnjs" not in page and "mathjax" not in page.lower().split("<style")[0]


def test_failing_notebook_reports_the_last_line(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('region = ""')
    params.metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [params, nbformat.v4.new_code_cell(f"raise ValueError('first line\\n' + {HOSTILE!r})")]
    nbformat.write(nb, tmp_path / "fail.ipynb")
    result = report._execute_region({
        "notebook": str(tmp_path / "fail.ipynb"), "kernel": report.kernel_name(),
        "region_dir": str(tmp_path / "r"), "parameters": {"region": "cn-hangzhou"},
    })
    assert result["status"] == "failed"
    assert result["error"] == HOSTILE
    assert (tmp_path / "r" / "kernel.log").exists()  # the kernel's own chatter, off the terminal
    assert Path(result["notebook"]).exists() and Path(result["html"]).exists()
    assert_only_escaped(Path(result["html"]).read_text(), "failed region page")


def test_kernel_name_is_runnable():
    from jupyter_client.kernelspec import KernelSpecManager

    assert report.kernel_name() in KernelSpecManager().find_kernel_specs() | {"python3": ""}


def test_paths_resolve_against_the_repo_root(monkeypatch, tmp_path):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root / "tests")
    assert report.resolve("data/sample") == root / "data" / "sample"
    assert report.split_sources("a; /abs/b;") == [root / "a", Path("/abs/b")]
    assert report.parse_time("2025-03-04T08:00:00Z") == datetime(2025, 3, 4, 8, tzinfo=timezone.utc)
    assert report.parse_time("") is None


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def detect_available():
    try:
        import insights_kit.detect  # noqa: F401
        import insights_kit.detectors.call_rate  # noqa: F401
        import insights_kit.store  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"insights_kit.detect is not importable yet: {exc}")


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, detect_available):
    root = tmp_path_factory.mktemp("report")
    src = write_hostile_tree(root / "src")
    regions = [*REGIONS, "../evil"]
    first = report.run_report([src], root / "out", regions=regions, jobs=2)
    window = Path(first["window_index"]).parent
    first["files"] = {str(p.relative_to(window)): p.read_bytes() for p in sorted(window.rglob("*")) if p.is_file()}
    second = report.run_report([src], root / "out", regions=regions, jobs=2)  # same window: replaces
    return root / "out", first, second


@pytest.mark.slow
def test_the_same_report_twice_is_the_same_bytes(hostile_report):
    out, first, second = hostile_report
    window = Path(second["window_index"]).parent
    again = {str(p.relative_to(window)): p.read_bytes() for p in sorted(window.rglob("*")) if p.is_file()}
    assert sorted(again) == sorted(first["files"])
    changed = [name for name, data in again.items() if data != first["files"][name] and not name.endswith("kernel.log")]
    assert changed == []
    notebook = next(n for n in again if n.endswith("report.ipynb"))
    assert b".tmp-" not in again[notebook]  # the staging folder (named by pid) is not recorded


@pytest.mark.slow
def test_report_regions_pages_and_failures(hostile_report):
    out, first, second = hostile_report
    why = {run: {r: res["regions"][r].get("error") for r in res["failed"]} for run, res in (("first", first), ("second", second))}
    assert second["failed"] == ["../evil"] and first["failed"] == ["../evil"], why
    for region in REGIONS:
        res = second["regions"][region]
        assert res["status"] == "ok", res
        folder = out / "open_open" / region
        assert (folder / "report.ipynb").exists() and (folder / "report.html").exists()
        assert {"timeline.svg", "timeline.png"} <= {p.name for p in folder.iterdir()}
        assert len(list(folder.glob("incident-*.png"))) >= 3
        assert sum(res["insights"].values()) >= 3
    # re-running the window replaced it: one window folder, no staging left
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "insights", "open_open"]
    assert not (out / "evil").exists() and not (out.parent / "evil").exists()


@pytest.mark.slow
def test_hostile_values_appear_only_escaped(hostile_report):
    out, _, second = hostile_report
    index = (out / "open_open" / "index.html").read_text()
    assert_only_escaped(index, "index.html")
    assert "failed: invalid region name" in index and "../evil" in index
    assert_only_escaped((out / "index.html").read_text(), "root index")
    for region in REGIONS:
        page = (out / "open_open" / region / "report.html").read_text()
        assert_only_escaped(page, f"{region}/report.html")
        # the values are there, escaped: eventName in the heading, userAgent in the tables, the JSON
        assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10
        assert "ApiCallRateInsight" in page and "IpInsight" in page
        assert "import insights_kit" not in page and "region_page.load_region" not in page  # code hidden
        # every chart has alt text from its title; incidents link to the console; counts are honest
        assert "No description has been provided" not in page
        alts = [re.search(r'\balt="([^"]*)"', tag).group(1) for tag in re.findall(r"<img[^>]*>", page)
                if "ik-chart" in tag]
        assert len(alts) >= 5 and all(a and f"region {region}" in a for a in alts), alts
        assert page.count('href="../index.html#incident=') >= 3
        for shown, total in re.findall(r"Related management events \(first (\d+) of (\d+)", page):
            assert int(total) > int(shown), "a 'first N of M' heading with M <= N"


def test_root_index_lists_the_latest_windows_regions_with_counts(tmp_path):
    from insights_kit.report import root_index_html

    window = "20250303T0000Z_20250310T0000Z"
    (tmp_path / window).mkdir()
    results = {"cn-hangzhou": {"status": "ok", "events": 12, "insights": {"IpInsight": 2}, "html": "x", "notebook": "y"}}
    page = root_index_html(tmp_path, latest=window, results=results)
    assert f'href="{window}/cn-hangzhou/report.html"' in page
    assert '<td class="num">2</td>' in page and '<td class="num">12</td>' in page
