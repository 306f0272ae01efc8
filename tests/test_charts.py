"""Charts: small aggregated data, offline PNG/SVG, escaped text, interactive HTML without a CDN."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import altair as alt
import polars as pl
import pytest

from insights_kit import charts
from insights_kit.htmlsafe import external_references

T0 = datetime(2025, 3, 4, 6, tzinfo=timezone.utc)
HOSTILE = '<script>alert(1)</script>"\'&<b>x</b>'


def _rows(chart: alt.TopLevelMixin) -> int:
    spec = chart.to_dict()
    return sum(len(v) for v in spec.get("datasets", {}).values())


def _series(minutes: int) -> pl.DataFrame:
    return pl.DataFrame({
        "minute": [T0 + timedelta(minutes=i) for i in range(minutes)],
        "count": [30 if 100 <= i < 115 else i % 3 for i in range(minutes)],
        "expected": [1.0] * minutes,
        "upper": [4.0] * minutes,
    })


def _events(n: int, *, step_minutes: int = 7) -> pl.DataFrame:
    return pl.DataFrame({
        "eventTime": [T0 + timedelta(minutes=step_minutes * i) for i in range(n)],
        "sourceIpAddress": ["198.51.100.66" if i % 2 else "203.0.113.1" for i in range(n)],
        "serviceName": ["Ecs"] * n,
        "eventName": [HOSTILE if i % 5 == 0 else f"Api{i % 13}" for i in range(n)],
    })


INSIGHTS = pl.DataFrame({
    "eventTime": ["2025-03-04T08:00:00Z", "2025-03-04T09:00:00Z", "2025-03-05T01:00:00Z"],
    "state": ["Start", "End", "Start"],
    "sharedEventId": ["A", "A", "B"],
    "insightType": ["ApiCallRateInsight", "ApiCallRateInsight", "IpInsight"],
    "insightObject": [HOSTILE, HOSTILE, "198.51.100.66"],
})
MODEL = {"score": 0.8, "threshold": 0.6, "dimensions": [
    {"name": "asn", "verdict": "UNSEEN", "score": 1.0, "detail": "AS64500"},
    {"name": "country", "verdict": "RARE", "score": 0.6, "detail": HOSTILE},
    {"name": "userAgent", "verdict": "FREQUENT", "score": 0.1, "detail": None},
]}


def test_rate_chart_layers_band_and_incident():
    chart = charts.rate_chart(_series(300), incident_start=T0 + timedelta(minutes=100),
                              incident_end=T0 + timedelta(minutes=115), title="DeleteInstance")
    spec = chart.to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["rect", "area", "line", "line"]
    assert _rows(chart) == 300 + 1


def test_rate_chart_long_series_is_bucketed_below_the_row_limit():
    chart = charts.rate_chart(_series(20_000), incident_start=T0, incident_end=None, title="long")
    assert _rows(chart) < 5_000  # to_dict() ran Altair's row check (MaxRowsError above 5,000)


def test_rate_chart_accepts_null_band_and_open_incident():
    s = _series(60).with_columns(pl.lit(None, dtype=pl.Float64).alias("expected"), pl.lit(None, dtype=pl.Float64).alias("upper"))
    charts.rate_chart(s, incident_start=T0 + timedelta(minutes=10), incident_end=None, title="t").to_dict()


def test_ip_trend_top_apis_plus_other_and_row_limit():
    data, size = charts.api_calls(_events(3_000).lazy(), ip="198.51.100.66")
    assert size == 60 and data["api"].n_unique() <= charts.TOP_APIS + 1
    assert "other" in data["api"].to_list()
    # 60 days of minutes: wider buckets keep the rows under the limit
    many = _events(60 * 24 * 60, step_minutes=1)
    chart = charts.ip_trend_chart(many.lazy(), ip="198.51.100.66", since=None, until=None)
    assert _rows(chart) < 5_000


def test_timeline_summary_dimension_and_empty_charts():
    assert _rows(charts.timeline_chart(INSIGHTS)) == 2
    assert _rows(charts.summary_by_day_chart(INSIGHTS)) == 2
    spec = charts.dimension_chart(MODEL).to_dict()
    color = spec["layer"][0]["encoding"]["color"]["scale"]
    assert color["domain"][:4] == ["FREQUENT", "INFREQUENT", "RARE", "UNSEEN"]
    empty = INSIGHTS.clear()
    for chart in (charts.timeline_chart(empty), charts.summary_by_day_chart(empty), charts.dimension_chart({})):
        chart.to_dict()


def test_incidents_frame_pairs_start_and_end():
    inc = charts.incidents_frame(INSIGHTS)
    assert inc["sharedEventId"].to_list() == ["A", "B"]
    assert inc["end"].null_count() == 1


def test_save_chart_writes_png_and_svg_offline_with_escaped_text(tmp_path):
    chart = charts.rate_chart(_series(120), incident_start=T0, incident_end=None, title=HOSTILE)
    paths = charts.save_chart(chart, tmp_path / "sub" / "rate")
    assert set(paths) == {"png", "svg"}
    png = (tmp_path / "sub" / "rate.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2_000
    svg = (tmp_path / "sub" / "rate.svg").read_text()
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_explore_chart_has_brush_and_click_selections():
    calls, _ = charts.api_calls(_events(500).lazy())
    spec = charts.explore_chart(calls).to_dict()
    # Altair hoists the selections to the top level of a compound chart
    params = spec.get("params", []) + [p for view in spec["vconcat"] for p in view.get("params", [])]
    kinds = {p["name"]: p["select"]["type"] if isinstance(p["select"], dict) else p["select"] for p in params}
    assert kinds == {"brush": "interval", "api_pick": "point"}


def test_interactive_html_is_offline_and_cannot_break_out():
    calls, _ = charts.api_calls(_events(200).lazy())
    page = charts.interactive_html(charts.explore_chart(calls, title=HOSTILE))
    assert external_references(page) == []
    assert page.startswith("<iframe") and "<script>alert" not in page
    assert 'sandbox="allow-scripts"' in page


@pytest.mark.parametrize("column_type", ["string", "datetime"])
def test_event_time_as_text_or_datetime(column_type):
    frame = INSIGHTS if column_type == "string" else INSIGHTS.with_columns(
        pl.col("eventTime").str.to_datetime(time_zone="UTC"))
    assert charts.starts(frame).height == 2
