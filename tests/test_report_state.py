"""report --state: scheduled windows continue from detect's state (part of issue 11)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from insights_kit import store
from insights_kit.detect import run_detect
from insights_kit.report import run_report
from insights_kit.simulate import simulate

DAY0 = datetime(2025, 3, 3, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rs") / "sim"
    simulate(out, days=4, seed=7, scale=0.01)
    return out


def _starts(folder: Path) -> list[tuple]:
    ev = store.read_events(folder).filter(pl.col("state") == "Start")
    return sorted(ev.select("eventId", "insightType", "insightObject", "eventTime").rows())


def test_day_by_day_reports_with_state_give_the_insights_of_one_run(tmp_path, sim):
    whole = tmp_path / "whole"
    run_detect([sim], whole, home_region="cn-hangzhou")
    out, state = tmp_path / "report", tmp_path / "state"
    windows = []
    # two scheduled windows (a notebook run costs seconds): 12 hours of learning only, then the rest
    for since, until in ((DAY0, DAY0 + timedelta(hours=12)), (DAY0 + timedelta(hours=12), DAY0 + timedelta(days=4))):
        res = run_report([sim], out, regions=["cn-hangzhou"], since=since, until=until,
                         jobs=1, home_region="cn-hangzhou", state=state)  # fmt: skip
        assert not res["failed"], res["regions"]
        windows.append(res)
    assert _starts(out / "insights") == _starts(whole)
    # The first window is learning only: its page and the index say so, and how far it goes.
    first_page = Path(windows[0]["regions"]["cn-hangzhou"]["html"]).read_text()
    assert "learning only" in first_page and "learning until 2025-03-04T00:01:00Z" in first_page
    assert "start of data" not in first_page and "learning until" in Path(windows[0]["window_index"]).read_text()
    last_page = Path(windows[-1]["regions"]["cn-hangzhou"]["html"]).read_text()
    assert "learning only" not in last_page and "2025-03-03T12:00:00Z → 2025-03-07T00:00:00Z" in last_page
