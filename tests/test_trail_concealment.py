"""TrailConcealmentInsight: small frames where the right answer is known, the CLI, real data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from insights_kit.config import ConfigError, config_from_dict
from insights_kit.detect import run_detect
from insights_kit.detectors.base import Allowlist, UnitContext
from insights_kit.detectors.trail_concealment import TrailConcealmentConfig, TrailConcealmentDetector
from insights_kit.readers import load
from insights_kit import store

T0 = datetime(2025, 3, 3, tzinfo=timezone.utc)
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def _events(rows: list[tuple]) -> pl.LazyFrame:
    """rows: (minutes after T0, serviceName, eventName, principalId, userAgent, errorCode)."""
    return pl.DataFrame(
        {
            "eventTime": [T0 + timedelta(minutes=m) for m, *_ in rows],
            "serviceName": [r[1] for r in rows],
            "eventName": [r[2] for r in rows],
            "principalId": [r[3] for r in rows],
            "userAgent": [r[4] for r in rows],
            "errorCode": [r[5] for r in rows],
        },
        schema_overrides={"eventTime": pl.Datetime("us", "UTC"), "errorCode": pl.String},
    ).lazy()


def _ctx(minutes: int = 10_000, allow: tuple[str, ...] = (), learning_hours: int = 0) -> UnitContext:
    end = T0 + timedelta(minutes=minutes)
    learning_end = T0 + timedelta(hours=learning_hours)
    return UnitContext("1", "cn-hangzhou", T0, end, learning_end, allowlist=Allowlist(principals=allow))


def _detect(rows, **kw) -> pl.DataFrame:
    ctx_kw = {k: kw.pop(k) for k in ("minutes", "allow", "learning_hours") if k in kw}
    return TrailConcealmentDetector(TrailConcealmentConfig(**kw)).detect(_events(rows), _ctx(**ctx_kw))


def test_stop_logging_fires_in_its_own_minute_without_learning():
    inc = _detect([(5, "Actiontrail", "StopLogging", "p1", "cli", None)], learning_hours=24)
    assert inc.height == 1
    row = inc.row(0, named=True)
    assert (row["insightType"], row["insightObject"]) == ("TrailConcealmentInsight", "Actiontrail")
    assert row["startTime"] == T0 + timedelta(minutes=5) and row["firedAt"] == row["startTime"]
    assert row["endTime"] == T0 + timedelta(minutes=6) and json.loads(row["model"])["score"] == 1.0


def test_calls_close_together_are_one_incident_and_an_open_one_has_no_end():
    rows = [(5, "cloudtrail", "StopLogging", "p", "a", None), (9, "cloudtrail", "DeleteTrail", "p", "a", None),
            (60, "cloudtrail", "DeleteTrail", "p", "a", None)]  # fmt: skip
    inc = _detect(rows, minutes=65)
    assert inc["insightCount"].to_list() == [2, 1]
    assert inc["endTime"].to_list() == [T0 + timedelta(minutes=10), None]  # the second is still open


def test_denied_calls_and_set_up_are_not_concealment():
    rows = [(5, "cloudtrail", "StopLogging", "p", "a", "AccessDenied"),
            (100, "cloudtrail", "CreateTrail", "ops", "tf", None), (101, "cloudtrail", "PutEventSelectors", "ops", "tf", None),
            (102, "cloudtrail", "StartLogging", "ops", "tf", None), (130, "cloudtrail", "UpdateTrail", "ops", "tf", None)]  # fmt: skip
    assert _detect(rows).height == 0
    # The same UpdateTrail long after the set-up, or by someone else, counts.
    late = rows + [(400, "cloudtrail", "UpdateTrail", "ops", "tf", None), (131, "cloudtrail", "UpdateTrail", "x", "tf", None)]
    inc = _detect(late)
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=131), T0 + timedelta(minutes=400)]


def test_allowlisted_and_routine_callers_stay_quiet_but_destructive_calls_always_count():
    day = 1440
    rows = [(d * day + 600, "cloudtrail", "PutEventSelectors", "ci", "terraform", None) for d in range(5)]
    inc = _detect(rows, minutes=6 * day, routine_days=3)
    assert inc["startTime"].to_list() == [T0 + timedelta(minutes=600 + k * day) for k in range(3)]  # days 0-2 only
    assert _detect(rows, minutes=6 * day, routine_days=10).height == 5
    # The default: one earlier day makes it routine; in the learning period it is only remembered.
    assert _detect(rows, minutes=6 * day).height == 1
    assert _detect(rows, minutes=6 * day, learning_hours=24).height == 0
    other_agent = rows + [(5 * day + 900, "cloudtrail", "PutEventSelectors", "ci", "aws-cli/2.2", None)]
    assert _detect(other_agent, minutes=6 * day, learning_hours=24)["startTime"].to_list() == [
        T0 + timedelta(minutes=5 * day + 900)
    ]
    assert _detect(rows, minutes=6 * day, allow=("ci",)).height == 0
    assert _detect(rows, minutes=6 * day, allowed_principals=("ci",)).height == 0
    stop = rows + [(5 * day + 700, "cloudtrail", "StopLogging", "ci", "terraform", None)]
    assert _detect(stop, minutes=6 * day)["startTime"][-1] == T0 + timedelta(minutes=5 * day + 700)


def test_other_services_and_unrelated_calls():
    rows = [(1, "ec2", "DeleteFlowLogs", "p", "a", None), (2, "Vpc", "DeleteFlowLog", "p", "a", None),
            (3, "Ecs", "DeleteInstance", "p", "a", None), (4, "Sls", "DeleteLogstore", "p", "a", None)]  # fmt: skip
    assert sorted(_detect(rows)["insightObject"].to_list()) == ["Sls", "Vpc", "ec2"]


def test_config_ranges_and_the_insight_selector():
    with pytest.raises(ValueError):
        TrailConcealmentConfig(end_quiet_minutes=0)
    with pytest.raises(ConfigError, match="unknown insight type"):
        config_from_dict({"detect": {"insight_types": ["IpInsight", "NoSuchInsight"]}})
    assert config_from_dict({"detect": {"insight_types": ["AkInsight"]}}).detect.insight_types == ("AkInsight",)
    cfg = config_from_dict({"detect": {"insight_types": ["TrailConcealmentInsight"]}})
    assert cfg.detect.insight_types == ("TrailConcealmentInsight",)


@pytest.fixture(scope="module")
def quiet_day() -> pl.DataFrame:
    """SANS 504's first, quiet day (2021-07-28): the benign baseline for the spliced techniques."""
    baseline = load([REALDATA / "sans504-s3-ransomware"]).events.collect()
    return baseline.filter(pl.col("eventTime").dt.date() == baseline["eventTime"].min().date())


@pytest.mark.skipif(not (REALDATA / "stratus-detonation-logs").is_dir(), reason="../shared/realdata absent")
@pytest.mark.parametrize(
    ("technique", "service"),
    [("cloudtrail-stop", "cloudtrail"), ("cloudtrail-delete", "cloudtrail"),
     ("cloudtrail-event-selectors", "cloudtrail"), ("vpc-remove-flow-logs", "ec2")],  # fmt: skip
)
def test_stratus_concealment_techniques_spliced_into_a_quiet_sans_day(tmp_path, quiet_day, technique, service):
    """A real quiet baseline raises none; each spliced technique raises its insight in its minute."""
    records = json.loads((REALDATA / "stratus-detonation-logs" / f"aws.defense-evasion.{technique}.json").read_text())
    # Re-timed past the learning period and into the baseline's account and region.
    at = quiet_day["eventTime"].max() + timedelta(hours=30)
    region = quiet_day.group_by("acsRegion").len().sort("len", descending=True)["acsRegion"][0]
    account = quiet_day["recipientAccountId"].drop_nulls()[0]
    first = min(r["eventTime"] for r in records)
    for r in records:
        shift = datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) - datetime.fromisoformat(first.replace("Z", "+00:00"))
        r["eventTime"] = (at + shift).strftime("%Y-%m-%dT%H:%M:%SZ")
        r["awsRegion"], r["recipientAccountId"] = region, account
    (tmp_path / "attack.json").write_text(json.dumps({"Records": records}))
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    quiet_day.drop("sourceFormat", "sourceFile").write_parquet(base_dir / "base.parquet")

    run_detect([base_dir], tmp_path / "quiet")
    quiet = store.read_events(tmp_path / "quiet")
    assert quiet.filter(pl.col("insightType") == "TrailConcealmentInsight").height == 0

    run_detect([base_dir, tmp_path / "attack.json"], tmp_path / "out")
    found = store.read_events(tmp_path / "out").filter(
        (pl.col("insightType") == "TrailConcealmentInsight") & (pl.col("state") == "Start")
    )
    assert found["insightObject"].to_list() == [service]
    assert found["eventTime"][0] == at.replace(second=0, microsecond=0)


@pytest.mark.skipif(not (REALDATA / "sans504-s3-ransomware").is_dir(), reason="../shared/realdata absent")
def test_sans_trail_set_up_is_not_concealment(tmp_path):
    """The operator's 23:53 CreateTrail + PutEventSelectors/PutInsightSelectors/UpdateTrail is set-up."""
    summary = run_detect([REALDATA / "sans504-s3-ransomware"], tmp_path / "out")
    assert summary["totals"]["insights"]["TrailConcealmentInsight"] == 0
    # Three successful ambiguous calls within the grace period of the same principal's CreateTrail.
    assert summary["regions"]["us-west-1"]["counters"]["setup"] == 3
