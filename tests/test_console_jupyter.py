"""The JupyterLab console: search, counts, charts and the ipywidgets UI, on a small hostile store."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from conftest import event, write_oss
from test_report import HOSTILE, assert_only_escaped, write_hostile_tree

IP = "198.51.100.66"
HOSTILE_API = f"Ecs/{HOSTILE}"
IMG = '<img src=x onerror=alert(1)>'


def _img_events() -> list[dict]:
    """Three more calls from the new address in cn-hangzhou's burst: API, agent and principal hold markup."""
    return [event(10**6 + k, eventTime=f"2025-03-03T10:05:{10 + k}Z", acsRegion="cn-hangzhou", eventName=IMG,
                  userAgent=IMG, sourceIpAddress=IP,
                  userIdentity={"type": "ram-user", "principalId": IMG, "accountId": "1234567890123456",
                                "accessKeyId": "LTAI5tExample", "userName": IMG})
            for k in range(3)]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    from insights_kit.console.jupyter import Console
    from insights_kit.detect import run_detect

    root = tmp_path_factory.mktemp("jconsole")
    src = write_hostile_tree(root / "src")
    write_oss(src, _img_events(), name="img")
    run_detect([src], root / "store", progress=False)
    return Console(root / "store", src)


def _one(console, kind: str, region: str = "cn-hangzhou") -> str:
    hits = console.search(types=[kind], regions=[region])
    assert hits.height >= 1, (kind, region)
    return hits["id"][0]


def _rows(spec: dict) -> list[dict]:
    """Every inline data row of a chart spec (top-level datasets and per-layer values)."""
    rows = [r for values in spec.get("datasets", {}).values() for r in values]
    for layer in spec.get("layer", []):
        rows += (layer.get("data") or {}).get("values", [])
    return rows


def _html_values(widget) -> list[str]:
    import ipywidgets as w

    found, stack = [], [widget]
    while stack:
        item = stack.pop()
        if isinstance(item, w.HTML):
            found.append(item.value)
        if isinstance(item, w.Output):
            for out in item.outputs:
                found += [v for k, v in out.get("data", {}).items() if k in ("text/html", "image/svg+xml")]
        stack += list(getattr(item, "children", ()))
    return found


def test_search_by_ip_narrows_to_that_address(console):
    hits = console.search(text=IP)
    assert hits.height >= 1 and hits.height < console.incidents.height
    assert set(hits["type"]) == {"IpInsight"} and set(hits["ip"]) == {IP}


def test_search_by_type_and_region_filters(console):
    hits = console.search(types=["ApiErrorRateInsight"], regions=["cn-shanghai"])
    assert hits.height >= 1
    assert set(hits["type"]) == {"ApiErrorRateInsight"} and set(hits["region"]) == {"cn-shanghai"}
    late = datetime(2025, 3, 3, 12, tzinfo=timezone.utc)
    assert (console.search(since=late)["start"] >= late).all()  # the 10:00 incidents ended before 12:00
    assert console.search(since=late).height < console.incidents.height


def test_counts_match_the_search(console):
    counts = console.counts(regions=["cn-hangzhou"])
    assert counts.columns == ["RegionId", "InsightType", "Count"]
    assert set(counts["RegionId"]) == {"cn-hangzhou"}
    assert counts["Count"].sum() == console.search(regions=["cn-hangzhou"]).height
    by_type = dict(zip(counts["InsightType"], counts["Count"]))
    assert by_type["IpInsight"] == console.search(types=["IpInsight"], regions=["cn-hangzhou"]).height


def test_ip_insight_charts_have_trend_rows_and_dimensions(console):
    charts = console.charts(_one(console, "IpInsight"))
    assert len(charts) == 2
    trend, dims = (c.to_dict() for c in charts)
    calls = [r for r in _rows(trend) if "calls" in r]
    assert calls and sum(r["calls"] for r in calls) >= 450  # the burst from the new address
    assert trend["title"]["text"] == f"Calls from {IP}"
    assert any("verdict" in r for r in _rows(dims))


def test_rate_insight_chart_has_the_series_and_the_band(console):
    charts = console.charts(_one(console, "ApiCallRateInsight"))
    assert len(charts) == 1
    rows = [r for r in _rows(charts[0].to_dict()) if "count" in r]
    assert rows and max(r["count"] for r in rows) >= 30
    assert any(r["upper"] is not None for r in rows)


def test_highlighting_an_api_puts_its_total_in_the_title(console):
    incident = _one(console, "IpInsight")
    detail = console.detail(incident)
    top = detail["apis"][0]
    assert top["api"] == HOSTILE_API and top["calls"] == 450
    spec = console.charts(incident, api=HOSTILE_API)[0].to_dict()
    assert spec["title"]["text"] == f"{HOSTILE_API}: 450 calls"
    ticks = [r for r in _rows(spec) if "time" in r]
    assert len(ticks) == 450  # each call as a tick
    row = console.row(incident)
    narrow = console.charts(incident, since=row["start"], until=row["start"].replace(minute=5), api=HOSTILE_API)
    assert narrow[0].to_dict()["title"]["text"] == f"{HOSTILE_API}: 150 calls"  # 5 minutes × 30


def test_event_pages_hold_the_incident_events(console):
    incident = _one(console, "IpInsight")
    assert console.detail(incident)["events"]["total"] == 453  # the burst and the three <img calls
    first, last = console.event_page(incident, 0), console.event_page(incident, 4)
    assert first.height == 100 and last.height == 53 and console.event_page(incident, 5).height == 0
    assert set(first["sourceIpAddress"]) == {IP}


def test_widget_search_box_updates_the_list(console):
    import ipywidgets

    ui = console.widget()
    assert isinstance(ui, ipywidgets.VBox)
    everything = len(ui.incident.options)
    assert everything == console.incidents.height
    ui.text.value = IP
    assert 0 < len(ui.incident.options) < everything
    assert IP in ui.table.value and "ApiErrorRateInsight" not in ui.table.value
    assert ui.incident.value in set(console.search(text=IP)["id"])
    assert IP in ui.heading.value and len(ui.charts.outputs) == 2
    ui.region.value = "cn-shanghai"
    assert len(ui.incident.options) == 1
    ui.text.value = "no such thing"
    assert ui.incident.options == () and "No incidents match" in ui.table.value


def test_widget_api_and_pages_redraw(console):
    ui = console.widget(text=IP, region="cn-hangzhou")
    before = ui.charts.outputs
    ui.api.value = HOSTILE_API
    assert ui.charts.outputs != before
    assert "450 calls" in ui.charts.outputs[0]["data"]["image/svg+xml"]
    assert "events 1–100 of 453" in ui.events.value and ui.prev.disabled and not ui.next.disabled
    ui.next.click()
    assert "events 101–200 of 453" in ui.events.value and not ui.prev.disabled
    ui.zoom.value = "selected range"
    assert len(ui.charts.outputs) == 2


def test_bad_range_text_is_reported_not_raised(console):
    ui = console.widget()
    ui.since.value = "<img src=x onerror=alert(1)>"
    assert "ISO 8601" in ui.status.value and len(ui.incident.options) == console.incidents.height


@pytest.mark.parametrize("kind", ["ApiCallRateInsight", "ApiErrorRateInsight", "IpInsight"])
def test_hostile_strings_never_reach_the_widget_html_unescaped(console, kind):
    ui = console.widget(text="<img src=x onerror=alert(1)>")  # a hostile search: no hit, echoed nowhere raw
    ui.text.value = ""
    ui.kind.value = kind
    hostile_hits = 0
    for incident in list(ui._ids):
        ui.incident.value = incident
        ui.api.value = ui.api.options[-1][1]
        ui.tabs.selected_index = 1
        values = _html_values(ui)
        labels = [label for picker in (ui.incident, ui.api) for label in picker._options_labels]
        assert not [label for label in labels if "<" in label or ">" in label]  # saved state is markup-free
        for value in values:
            assert "<img" not in value
            assert_only_escaped(value, f"{kind} widget")
        hostile_hits += sum("&lt;script&gt;alert(1)" in v or "&lt;b&gt;x&lt;/b&gt;" in v for v in values)
    assert hostile_hits, "the hostile strings are shown (escaped) somewhere"


def test_unknown_incident_is_a_key_error(console):
    with pytest.raises(KeyError):
        console.detail("no-such-id")
    assert isinstance(console.search(), pl.DataFrame)


def test_open_store_detects_the_sample_once_when_the_defaults_are_absent(tmp_path, monkeypatch, console):
    import tempfile

    from insights_kit.console.jupyter import open_store

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    missing = (str(tmp_path / "no-store"), str(tmp_path / "no-lake"))
    sample = str(console.store_dir.parent / "src")
    store_dir, sources, note = open_store(*missing, defaults=missing, sample=sample)
    assert note and "not found" in note and str(store_dir.parent) in note
    assert (store_dir / "summary.json").is_file() and sources[0].name == "lake" and sources[0].is_dir()
    again = open_store(*missing, defaults=missing, sample=sample)
    assert again[0] == store_dir  # made once, then reused
    assert not list(tmp_path.glob("insights-console-build-*"))  # no half-built folder left
    with pytest.raises(FileNotFoundError):
        open_store(str(tmp_path / "typo"), missing[1], defaults=missing, sample=sample)
    assert open_store(str(console.store_dir), sample, defaults=missing)[2] is None


def test_explore_notebook_zooms_on_a_store_incident_and_writes_no_stderr(tmp_path, console):
    from test_notebooks import ROOT, _run

    incident = console.search(text=IP, regions=["cn-shanghai"])["id"][0]
    nb = _run("explore", tmp_path / "out.ipynb", cwd=ROOT / "notebooks", source=str(console.store_dir.parent / "src"),
              store=str(console.store_dir), incident=incident)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if o.output_type == "stream" and o.name == "stderr"] == []
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "450 events in cn-shanghai from 198.51.100.66" in html and "incident(s) in cn-shanghai" in html
    assert "(the incident ± 2 h)" in html
    frame = "Calls per 5 min in cn-shanghai"  # a 15-minute incident ± 2 h: 5-minute bars, not one hour-long bar
    assert frame in html and "<iframe" in html


def test_an_organisation_gets_an_account_filter(tmp_path):
    from insights_kit.console.jupyter import ALL, Console
    from insights_kit.detect import run_detect
    from insights_kit.simulate_org import simulate_organisation

    labels = simulate_organisation(tmp_path / "org", accounts=2, days=5, seed=3, scale=0.005, file_minutes=60)
    run_detect([tmp_path / "org"], tmp_path / "store", progress=False)
    org = Console(tmp_path / "store", tmp_path / "org")
    members = sorted(m["account"] for m in labels["accounts"])
    assert org.accounts == members
    ui = org.widget()
    assert ui.account.layout.display is None  # shown: there are two accounts
    everything = len(ui._ids)
    ui.account.value = members[1]
    assert 0 < len(ui._ids) < everything
    assert set(org.search(accounts=[members[1]])["account"].to_list()) == {members[1]}
    assert len(ui._ids) == org.search(accounts=[members[1]]).height
    assert org.search(text=members[0][:10]).height == org.search(accounts=[members[0]]).height
    ui.account.value = ALL
    assert len(ui._ids) == everything
