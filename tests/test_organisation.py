"""Organisations: a home region per account, chosen, given, recorded and defended."""

from __future__ import annotations

import polars as pl
import pytest

from insights_kit.config import ConfigError
from insights_kit.detect import resolve_home_regions
from insights_kit.regions import (
    analysis_events,
    choose_home_regions,
    format_home,
    in_analysis_region,
    parse_home,
    uniform_home,
)


def _events() -> pl.LazyFrame:
    rows = (
        [("A", "cn-beijing", False)] * 5 + [("A", "cn-shanghai", False)] * 2 + [("A", None, True)]
        + [("B", "cn-shanghai", False)] * 4 + [("B", "cn-beijing", False)] * 4 + [("B", None, True)]
        + [(None, "ap-southeast-1", False), (None, None, True)]
    )  # fmt: skip
    return pl.LazyFrame(rows, schema={"recipientAccountId": pl.String, "acsRegion": pl.String,
                                      "isGlobal": pl.Boolean}, orient="row")


def test_each_account_gets_its_busiest_region_ties_alphabetical():
    # B's tie (4 and 4) goes to cn-beijing; events without an account are "" and get theirs.
    assert choose_home_regions(_events()) == {"": "ap-southeast-1", "A": "cn-beijing", "B": "cn-beijing"}


def test_global_events_go_to_their_accounts_home():
    homes = {"A": "cn-beijing", "B": "cn-shanghai", "": "ap-southeast-1"}
    out = analysis_events(_events(), home_region=homes).filter(pl.col("isGlobal")).collect()
    assert dict(zip(out["recipientAccountId"].fill_null("").to_list(), out["analysisRegion"].to_list())) == homes
    # cn-shanghai is B's home: it analyses B's global event as well as its own region's events
    analysed = analysis_events(_events(), home_region=homes).filter(in_analysis_region("cn-shanghai", home_region=homes))
    got = analysed.collect()
    assert got.filter(pl.col("isGlobal"))["recipientAccountId"].to_list() == ["B"]
    assert got.height == 2 + 4 + 1


def test_home_text_round_trips():
    assert parse_home("cn-hangzhou") == "cn-hangzhou"
    assert parse_home(" 111=cn-beijing, 222=cn-shanghai ") == {"111": "cn-beijing", "222": "cn-shanghai"}
    assert format_home({"222": "cn-shanghai", "111": "cn-beijing"}) == "111=cn-beijing,222=cn-shanghai"
    assert parse_home(format_home({"1": "r"})) == {"1": "r"}
    assert uniform_home({"1": "r", "2": "r"}) == "r" and uniform_home({"1": "r", "2": "s"}) is None


def test_requested_recorded_and_changed_homes():
    lf = _events()
    assert resolve_home_regions(lf, requested="cn-hangzhou") == {"": "cn-hangzhou", "A": "cn-hangzhou",
                                                                 "B": "cn-hangzhou"}
    # one account given, the others chosen
    assert resolve_home_regions(lf, requested={"B": "cn-shanghai"})["B"] == "cn-shanghai"
    recorded = {"A": "cn-shanghai", "B": "cn-beijing", "": "ap-southeast-1", "C": "eu-central-1"}
    # recorded homes win over the busiest region, and accounts absent from this window are kept
    assert resolve_home_regions(lf, requested=None, recorded=recorded) == recorded
    with pytest.raises(ConfigError, match="for account A in cn-shanghai, not cn-beijing"):
        resolve_home_regions(lf, requested={"A": "cn-beijing"}, recorded=recorded, state="S")
    moved = resolve_home_regions(lf, requested={"A": "cn-beijing"}, recorded=recorded, change=True)
    assert moved["A"] == "cn-beijing" and moved["B"] == "cn-beijing"


def test_analysis_events_keeps_every_row_in_order():
    # per-account homes are joined in (streaming-friendly): no row lost, doubled or moved
    lf = _events().with_row_index("i")
    homes = {"A": "cn-beijing", "B": "cn-shanghai"}  # the account-less events have no home here
    out = analysis_events(lf, home_region=homes).collect()
    assert out["i"].to_list() == list(range(out.height)) and out.height == lf.collect().height
    assert out.columns == lf.collect_schema().names() + ["analysisRegion"]
    unhomed = out.filter(pl.col("recipientAccountId").is_null() & pl.col("isGlobal"))
    assert unhomed["analysisRegion"].to_list() == [None]
