"""benchmarks/power_curve.py on a tiny grid: the table's shape and what any sane detector must do."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import polars as pl
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "power_curve.py"


@pytest.fixture(scope="module")
def power_curve():
    spec = importlib.util.spec_from_file_location("power_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("detector", ["call", "error"])
def test_a_huge_burst_is_found_and_the_controls_stay_quiet(power_curve, detector):
    # e = 200/min on b = 1 is 200x the baseline: found at once whatever the model's details
    result = power_curve.power_curve([1.0], [1, 15], trials=2, grid=[0.25, 200.0], detector=detector, seed=3)
    cells = result["cells"]
    assert cells.columns == ["b", "d", "smallest_e", "detected", "median_delay", "ratio"]
    assert cells.select("b", "d").rows() == [(1.0, 1), (1.0, 15)]
    assert cells["smallest_e"].to_list() == [200.0, 200.0]  # 0.25/min is not a burst on b = 1
    assert cells["ratio"].to_list() == [200.0, 200.0]
    assert (cells["detected"] == 1.0).all()
    assert cells["median_delay"].is_between(0, 1).all()  # a Start in the burst's first minutes
    # `trials` controls per (b, d) call, observed on day 8 until 30 min after its burst
    assert result["controls"] == {"series": 4, "series_days": pytest.approx(2 * (631 + 645) / 1440, abs=0.01),
                                  "false_starts": 0}
    assert result["early_starts"] == 0
    points = result["points"]
    assert points.columns == ["b", "d", "excess", "detected", "median_delay"]
    assert set(points["excess"]) == {0.25, 200.0}


def test_the_table_text_and_the_chart(power_curve, tmp_path):
    result = {
        "cells": pl.DataFrame({"b": [1.0, 1.0], "d": [1, 15], "smallest_e": [22.6, None], "detected": [1.0, None],
                               "median_delay": [0.0, None]}).with_columns((pl.col("smallest_e") / pl.col("b")).alias("ratio")),
        "controls": {"series": 4, "series_days": 1.77, "false_starts": 0},
    }
    text = power_curve.format_table(result)
    assert "22.6 (22.6x)" in text and "none" in text and "false Starts: 0" in text
    spec = power_curve.chart(result, title="t").to_dict()
    assert spec["encoding"]["x"]["scale"]["type"] == "log" and spec["encoding"]["y"]["scale"]["type"] == "log"


def test_the_grid_is_log_spaced_from_a_quarter_to_over_500(power_curve):
    grid = power_curve.GRID
    assert grid[0] == 0.25 and grid[-1] >= 500
    assert all(math.isclose(b / a, math.sqrt(2)) for a, b in zip(grid, grid[1:]))
