"""CSV output defuses spreadsheet formulas (OWASP "CSV Injection") in text cells only."""

from __future__ import annotations

import csv
import io

import polars as pl
import pytest

from insights_kit import store

FORMULAS = ['=HYPERLINK("http://x","y")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1", "-2", "\t=1", "\r=1"]
HARMLESS = ["DescribeInstances", "a=b", "1-2", "", " =spaced", "'already"]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_cells_starting_a_formula_get_a_leading_quote():
    frame = pl.DataFrame({"eventName": FORMULAS})
    rows = _rows(store.format_table(frame, "csv"))
    assert [r["eventName"] for r in rows] == ["'" + cell for cell in FORMULAS]


def test_harmless_cells_and_numbers_are_unchanged():
    frame = pl.DataFrame({"text": HARMLESS, "count": [-1, -2, 3, 0, -5, 6], "share": [-0.5] * 6})
    rows = _rows(store.format_table(frame, "csv"))
    assert [r["text"] for r in rows] == HARMLESS
    assert [r["count"] for r in rows] == ["-1", "-2", "3", "0", "-5", "6"]
    assert {r["share"] for r in rows} == {"-0.5"}


def test_nulls_stay_empty():
    rows = _rows(store.format_table(pl.DataFrame({"a": ["=1", None], "n": [1, 2]}), "csv"))
    assert [r["a"] for r in rows] == ["'=1", ""]


def test_stored_insights_are_defused_in_query_csv(tmp_path):
    from test_store import event  # the store tests' Insights event builder

    store.write_events(tmp_path, [event("E1", "2025-03-04T08:00:00Z", kind="ApiCallRateInsight",
                                        obj="=cmd|' /C calc'!A0", eventName="=cmd|' /C calc'!A0")])
    rows = _rows(store.format_table(store.query(tmp_path), "csv"))
    assert rows[0]["insightObject"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["eventTime"] == "2025-03-04T08:00:00Z"  # times are text, but never touched


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_other_formats_keep_the_text_as_is(fmt):
    text = store.format_table(pl.DataFrame({"a": ["=1"]}), fmt)
    assert "'=1" not in text
