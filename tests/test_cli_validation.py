"""The CLI's one validation layer: bad values exit 2, expected OS failures exit 1, bugs exit 70.

Every failure must be exactly one line on stderr (``insights-kit: error: ...``) and never a
traceback, except for a bug, whose traceback is followed by a line asking to report it.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import event, write_oss
from insights_kit import cli, report

EVENTS = 40  # a few minutes of one region: detect runs in well under a second


def run(*args: str | Path):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def assert_one_error_line(result, code: int, *fragments: str) -> str:
    stderr = result.stderr
    assert result.exit_code == code, (result.exit_code, result.stdout, stderr)
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("insights-kit: error: "), stderr
    for fragment in fragments:
        assert fragment in stderr, stderr
    return stderr


@pytest.fixture
def small_tree(tmp_path) -> Path:
    root = tmp_path / "events"
    write_oss(root, [event(i) for i in range(EVENTS)])
    return root


# --------------------------------------------------------------------------- bad values: exit 2


@pytest.mark.parametrize("command", ["ingest", "detect", "query", "report"])
@pytest.mark.parametrize("since, until", [("2025-03-05", "2025-03-04"), ("2025-03-04", "2025-03-04T00:00:00Z")])
def test_since_at_or_after_until_is_bad_input(tmp_path, small_tree, command, since, until):
    target = [small_tree, "--out", tmp_path / "out"] if command != "query" else [tmp_path]
    result = run(command, *target, "--since", since, "--until", until)
    assert_one_error_line(result, 2, "--since must be before --until")
    assert not (tmp_path / "out").exists()


def test_unreadable_time_is_bad_input(tmp_path, small_tree):
    assert_one_error_line(run("detect", small_tree, "--out", tmp_path / "o", "--since", "yesterday"), 2, "--since")


@pytest.mark.parametrize("regions", ["../evil", "CN-HANGZHOU", "a" * 64, "cn hangzhou", ","])
def test_malformed_region_names_are_bad_input(tmp_path, small_tree, regions):
    result = run("report", small_tree, "--out", tmp_path / "out", "--regions", regions)
    assert_one_error_line(result, 2, "--regions")
    assert not (tmp_path / "out").exists()


def test_a_region_not_in_the_data_is_named_with_the_regions_found(tmp_path, small_tree):
    result = run("report", small_tree, "--out", tmp_path / "out", "--regions", "cn-hangzhou,mars-1")
    assert_one_error_line(result, 2, "mars-1", "regions found: cn-hangzhou")
    assert not list((tmp_path / "out").glob(".*tmp*")) and not (tmp_path / "out" / "index.html").exists()


def test_malformed_home_region_is_bad_input(tmp_path, small_tree):
    assert_one_error_line(run("detect", small_tree, "--out", tmp_path / "o", "--home-region", "x/y"), 2,
                          "--home-region")


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_is_bad_input(tmp_path, small_tree, jobs):
    assert_one_error_line(run("report", small_tree, "--out", tmp_path / "out", "--jobs", jobs), 2, "--jobs")


@pytest.mark.parametrize(
    "option, value",
    [("--days", "0"), ("--scale", "-1"), ("--scale", "0"), ("--scale", "nan"), ("--file-minutes", "0"),
     ("--file-minutes", "7")],
)
def test_simulate_rejects_values_out_of_range(tmp_path, option, value):
    result = run("simulate", "--out", tmp_path / "sim", option, value)
    assert_one_error_line(result, 2, option)
    assert not (tmp_path / "sim").exists()


def test_simulate_stealth_adds_the_graded_incidents(tmp_path):
    from insights_kit.stealth import KINDS

    kinds = {}
    for flag in ([], ["--stealth"]):
        out = tmp_path / ("stealth" if flag else "plain")
        result = run("simulate", "--out", out, "--days", "4", "--seed", "9", "--scale", "0.01", *flag)
        assert result.exit_code == 0, result.stderr
        kinds[bool(flag)] = {i["scenario"] for i in json.loads((out / "labels.json").read_text())["incidents"]}
    assert not kinds[False] & set(KINDS) and kinds[True] & set(KINDS)


@pytest.mark.parametrize("command", ["ingest", "detect", "report"])
def test_out_pointing_at_a_file_is_bad_input(tmp_path, small_tree, command):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep me")
    assert_one_error_line(run(command, small_tree, "--out", a_file), 2, "--out", "is a file, expected a folder")
    assert a_file.read_text() == "keep me"


def test_a_missing_source_is_bad_input(tmp_path):
    assert_one_error_line(run("detect", tmp_path / "nope", "--out", tmp_path / "o"), 2, "no such file or folder")


def test_unknown_option_is_one_line_with_exit_2(tmp_path):
    assert_one_error_line(run("detect", tmp_path, "--out", tmp_path / "o", "--bogus"), 2, "--bogus")


def test_help_still_works():
    result = run("report", "--help")
    assert result.exit_code == 0 and "--jobs" in result.stdout


# --------------------------------------------------------------------------- config ranges


@pytest.mark.parametrize(
    "text, key",
    [
        ("[ip]\nthreshold = -0.5\n", "ip.threshold"),
        ("[detect]\nlag_minutes = -1\n", "detect.lag_minutes"),
        ("[call_rate]\ntimezone = 'Mars/Olympus'\n", "call_rate.timezone"),
        ("[ip]\nn_estimators = 0\n", "ip.n_estimators"),
        ("[error_rate]\nbaseline_days = 0\n", "error_rate.baseline_days"),
    ],
)
def test_config_values_out_of_range_exit_2(tmp_path, small_tree, text, key):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert_one_error_line(run("config", bad), 2, "bad.toml", key)
    assert_one_error_line(run("detect", small_tree, "--out", tmp_path / "o", "--config", bad), 2, key)


def test_default_config_still_loads():
    result = run("config")
    assert result.exit_code == 0 and "[ip]" in result.stdout


# --------------------------------------------------------------------------- relative paths


def test_detect_reads_relative_paths_from_the_callers_cwd(tmp_path, monkeypatch):
    write_oss(tmp_path / "data" / "sample", [event(i) for i in range(EVENTS)])
    monkeypatch.chdir(tmp_path)  # data/sample here is not the project's shipped sample
    result = run("detect", "data/sample", "--out", "out")
    assert result.exit_code == 0, result.stderr
    assert f"records: {EVENTS} read" in result.stdout
    assert (tmp_path / "out" / "summary.json").exists()


def test_report_passes_absolute_paths_from_the_callers_cwd(tmp_path, monkeypatch):
    seen = {}

    def fake_run_report(sources, out, **kwargs):
        seen.update(sources=sources, out=out, config=kwargs["config"])
        return {"index": str(Path(out) / "index.html"), "failed": []}

    (tmp_path / "data" / "sample").mkdir(parents=True)
    (tmp_path / "c.toml").write_text("")
    monkeypatch.setattr(report, "run_report", fake_run_report)
    monkeypatch.chdir(tmp_path)
    result = run("report", "data/sample", "--out", "X", "--config", "c.toml")
    assert result.exit_code == 0, result.stderr
    assert seen == {"sources": [tmp_path / "data" / "sample"], "out": tmp_path / "X", "config": tmp_path / "c.toml"}


def test_run_report_resolves_relative_sources_against_the_cwd(tmp_path, monkeypatch):
    import insights_kit.detect

    class Stop(Exception):
        pass

    def fake_run_detect(sources, *args, **kwargs):
        raise Stop(sources)

    monkeypatch.setattr(insights_kit.detect, "run_detect", fake_run_detect)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Stop) as stopped:
        report.run_report(["data/sample"], "X")
    assert stopped.value.args[0] == [str(tmp_path / "data" / "sample")]


# --------------------------------------------------------------------------- OS failures and bugs


def test_disk_full_is_one_line_and_exit_1(tmp_path, small_tree, monkeypatch):
    import insights_kit.ingest

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/y")

    monkeypatch.setattr(insights_kit.ingest, "run_ingest", disk_full)
    stderr = assert_one_error_line(run("ingest", small_tree, "--out", tmp_path / "lake"), 1)
    assert stderr == "insights-kit: error: disk full: No space left on device (/x/y)\n"


def test_an_unexpected_exception_is_a_bug_with_traceback_and_exit_70(tmp_path, small_tree, monkeypatch):
    import insights_kit.ingest

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(insights_kit.ingest, "run_ingest", boom)
    result = run("ingest", small_tree, "--out", tmp_path / "lake")
    assert result.exit_code == 70
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Traceback") and "RuntimeError: boom" in result.stderr
    assert lines[-1] == cli.BUG_REPORT_LINE


def test_interrupt_is_one_line_and_exit_130(tmp_path, small_tree, monkeypatch):
    import insights_kit.ingest

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(insights_kit.ingest, "run_ingest", interrupted)
    result = run("ingest", small_tree, "--out", tmp_path / "lake")
    assert result.exit_code == 130 and result.stderr == "insights-kit: interrupted\n"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores file permissions, so a read-only folder is still writable")
def test_ingest_into_a_read_only_folder_is_permission_denied(tmp_path, small_tree):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        stderr = assert_one_error_line(run("ingest", small_tree, "--out", locked / "lake"), 1)
    finally:
        locked.chmod(0o755)
    assert "permission denied" in stderr and str(locked) in stderr
    assert not (locked / "lake").exists()


def test_report_failing_part_way_leaves_no_staging_folder(tmp_path, small_tree, monkeypatch):
    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr(report, "notebook_path", disk_full)  # called once staging exists
    stderr = assert_one_error_line(run("report", small_tree, "--out", tmp_path / "out"), 1, "disk full")
    assert "No space left on device" in stderr
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == [] and not (tmp_path / "out" / "index.html").exists()


def test_a_real_os_error_under_out_is_one_line_and_exit_1(tmp_path, small_tree):
    """Runs as root too: no permission bit makes a regular file a folder."""
    (tmp_path / "afile").write_text("x")
    stderr = assert_one_error_line(run("ingest", small_tree, "--out", tmp_path / "afile" / "lake"), 1)
    assert "Not a directory" in stderr and str(tmp_path / "afile") in stderr
