"""TrailConcealmentInsight: someone hides their tracks (stops or deletes the audit trail).

Series: successful calls whose (lower-case ``serviceName``, ``eventName``) is listed under
``TrailConcealmentInsight`` in ``sensitive_events.json`` (StopLogging, DeleteTrail,
UpdateTrail, PutEventSelectors, DeleteFlowLogs, DeleteLogstore, ...); insightObject = the
``serviceName`` as the event spells it. Unlike the rate detectors there is no learning
period and no baseline to beat: the first concealing call raises the Start, in its own
minute. Calls a few minutes apart (``end_quiet_minutes``) are one incident; the End follows
once the service has been quiet that long.

Three kinds of call are *not* concealment (each counted in the summary):

* an allow-listed principal (``principal:<id>`` in the allow-list, or
  ``allowed_principals`` here): the infrastructure-as-code role that manages trails;
* **set-up**: an ambiguous call (UpdateTrail, PutEventSelectors, PutInsightSelectors) by the
  principal that created a trail at most ``setup_grace_minutes`` before it: configuring a
  new trail. ``CreateTrail`` and ``StartLogging`` are never concealment;
* **routine**: an ambiguous call by a principal that made ambiguous calls with the same
  user agent on at least ``routine_days`` distinct earlier days (a release pipeline that
  rewrites the trail's selectors);
* **learning**: an ambiguous call in the unit's learning period (its first
  ``learning_hours``) is not raised, only remembered for the routine rule: the account's
  normal trail maintenance is not known yet. StopLogging, DeleteTrail and their like
  (*destructive* calls) have no learning period and always count.

Decision (the trail's requestParameters are not read; only policy and user fields are):
whether an UpdateTrail or PutEventSelectors records *less* cannot be read from the event, so
any such call outside set-up and routine counts. Denied calls (``errorCode`` set) hid nothing and do not count;
a run of denials is ApiErrorRateInsight's to report.

Scores: ``model.score`` is 1.0 for a destructive call (StopLogging, Delete*) and 0.7 for an
ambiguous one; higher means more anomalous, as everywhere in the package.

Examples
--------
>>> det = TrailConcealmentDetector(TrailConcealmentConfig(setup_grace_minutes=30))
>>> det.insight_type
'TrailConcealmentInsight'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import polars as pl

from insights_kit.detectors.sensitive import event_names
from insights_kit.detectors.base import Detector, UnitContext, conform_incidents, empty_incidents
from insights_kit.validate import check_range

__all__ = ["TrailConcealmentConfig", "TrailConcealmentDetector", "concealment_names"]

_TYPE = "TrailConcealmentInsight"


@dataclass(frozen=True)
class TrailConcealmentConfig:
    """Parameters of TrailConcealmentInsight.

    Parameters
    ----------
    setup_grace_minutes : int, default 60
        An ambiguous call within this many minutes after the same principal's CreateTrail
        is set-up, not concealment (0 to 1440).
    routine_days : int, default 1
        An ambiguous call by a principal (and user agent) that made such calls on at least
        this many distinct earlier days is routine (>= 1). One day is enough because the
        pair principal + user agent is specific: a stolen session arrives with its own
        user agent, and the owner's own tool rewriting the trail is the allow-list's case.
    end_quiet_minutes : int, default 15
        Concealing calls closer than this are one incident; the End comes after this much
        quiet (>= 1).
    allowed_principals : tuple of str, default ()
        principalIds that manage trails and never raise this insight (added to the
        allow-list's ``principal:`` lines).
    event_names_file : str, default ""
        A JSON file shaped like the packaged ``sensitive_events.json``; empty = the packaged one.
    """

    setup_grace_minutes: int = 60
    routine_days: int = 1
    end_quiet_minutes: int = 15
    allowed_principals: tuple[str, ...] = ()
    event_names_file: str = ""

    def __post_init__(self) -> None:
        check_range("setup_grace_minutes", self.setup_grace_minutes, low=0, high=1440)
        check_range("routine_days", self.routine_days, low=1)
        check_range("end_quiet_minutes", self.end_quiet_minutes, low=1, high=1440)
        if self.event_names_file:
            event_names(self.event_names_file)  # a missing or malformed file is an error now


def concealment_names(path: str = "") -> pl.DataFrame:
    """The concealing calls as a frame: ``service`` (lower case), ``eventName``, ``ambiguous``.

    Examples
    --------
    >>> names = concealment_names()
    >>> names.filter(pl.col("eventName") == "StopLogging")["service"].to_list()
    ['actiontrail', 'cloudtrail']
    """
    data = event_names(path)
    ambiguous = set(data.get("_setup", {}).get("ambiguous", []))
    rows = [
        (service, name, name in ambiguous)
        for service, names in data[_TYPE].items()
        for name in names
    ]
    return pl.DataFrame(rows, schema={"service": pl.String, "eventName": pl.String, "ambiguous": pl.Boolean},
                        orient="row").unique().sort("service", "eventName")


def _setup_names(path: str) -> list[str]:
    return list(event_names(path).get("_setup", {}).get("create", []))


class TrailConcealmentDetector(Detector):
    """Detect calls that stop, delete or narrow the audit trail (TrailConcealmentInsight).

    Parameters
    ----------
    config : TrailConcealmentConfig, optional
        Detection parameters (defaults: :class:`TrailConcealmentConfig`).
    """

    insight_type: ClassVar[str] = _TYPE

    def __init__(self, config: TrailConcealmentConfig | None = None) -> None:
        super().__init__(config or TrailConcealmentConfig())

    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every TrailConcealmentInsight incident of the unit (INCIDENT_SCHEMA)."""
        cfg = self.config
        names = concealment_names(cfg.event_names_file)
        # One pass over the unit: the concealing calls and the CreateTrail calls set-up needs.
        candidates = (
            events.filter((pl.col("eventTime") < ctx.data_end) & pl.col("errorCode").is_null())
            .with_columns(pl.col("serviceName").str.to_lowercase().alias("_service"))
            .join(names.lazy(), left_on=["_service", "eventName"], right_on=["service", "eventName"], how="left")
            .filter(pl.col("ambiguous").is_not_null() | pl.col("eventName").is_in(_setup_names(cfg.event_names_file)))
            .select("eventTime", "serviceName", "eventName", "principalId", "userAgent", "ambiguous")
            .sort("eventTime")
            .collect()
        )
        calls = candidates.filter(pl.col("ambiguous").is_not_null())
        if calls.is_empty():
            return empty_incidents()
        creates = (
            candidates.filter(pl.col("ambiguous").is_null())
            .select(pl.col("principalId"), pl.col("eventTime").alias("_created"))
            .drop_nulls("principalId")
        )
        calls = calls.with_columns(pl.col("eventTime").dt.date().alias("_day")).join_asof(
            creates,
            left_on="eventTime",
            right_on="_created",
            by="principalId",
            strategy="backward",
            tolerance=timedelta(minutes=cfg.setup_grace_minutes),
            check_sortedness=False,  # both sides are sorted by time; Polars cannot check it per group
        )
        # Distinct earlier days on which this principal + user agent made ambiguous calls.
        earlier_days = pl.col("_day").rank("dense").over("principalId", "userAgent", "ambiguous") - 1
        allowed = sorted(set(cfg.allowed_principals) | set(ctx.allowlist.principals))
        # Why a call is not concealment (first reason wins); null = it is.
        excused = (
            pl.when(pl.col("principalId").is_in(allowed)).then(pl.lit("allowlisted"))
            .when(pl.col("ambiguous") & pl.col("_created").is_not_null()).then(pl.lit("setup"))
            .when(pl.col("ambiguous") & (earlier_days >= cfg.routine_days)).then(pl.lit("routine"))
            .when(pl.col("ambiguous") & (pl.col("eventTime") < ctx.learning_end)).then(pl.lit("learning"))
        )  # fmt: skip
        calls = calls.with_columns(excused.alias("_excused"))
        found = dict(calls.get_column("_excused").drop_nulls().value_counts().iter_rows())
        for reason in ("allowlisted", "setup", "routine", "learning"):
            ctx.counters[reason] = ctx.counters.get(reason, 0) + found.get(reason, 0)
        hits = calls.filter(pl.col("_excused").is_null())
        if hits.is_empty():
            return empty_incidents()
        return conform_incidents(self._incidents(hits, ctx)).sort("startTime", "insightObject")

    def _incidents(self, hits: pl.DataFrame, ctx: UnitContext) -> pl.DataFrame:
        quiet = timedelta(minutes=self.config.end_quiet_minutes)
        minute = pl.col("eventTime").dt.truncate("1m")
        hits = hits.with_columns(minute.alias("_minute")).sort("serviceName", "eventTime")
        gap = pl.col("_minute").diff().over("serviceName")
        hits = hits.with_columns(
            (gap.is_null() | (gap >= quiet)).cum_sum().over("serviceName").alias("_incident")
        )
        first = pl.col("_minute") == pl.col("_minute").min()  # the model is what the Start knew
        grouped = hits.group_by("serviceName", "_incident", maintain_order=True).agg(
            pl.col("_minute").min().alias("startTime"),
            pl.col("_minute").max().alias("_last"),
            pl.len().alias("insightCount"),
            pl.col("principalId").filter(first).drop_nulls().unique().sort().alias("_principals"),
            (~pl.col("ambiguous")).filter(first).any().alias("_destructive"),
        )
        # The related events are every concealing call of the service, so the Start's model
        # does not depend on calls after it (an incremental run emits the same Start).
        names = concealment_names(self.config.event_names_file)
        service_names = names.group_by("service").agg(pl.col("eventName").sort().alias("_service_names"))
        grouped = grouped.with_columns(pl.col("serviceName").str.to_lowercase().alias("_service")).join(
            service_names, left_on="_service", right_on="service", how="left"
        )
        closed = pl.col("_last") + quiet <= ctx.data_end
        end = pl.when(closed).then(pl.col("_last") + timedelta(minutes=1))
        duration = ((pl.col("_last") - pl.col("startTime")).dt.total_minutes() + 1).cast(pl.Int64)
        baseline = ((pl.col("startTime") - pl.lit(ctx.data_start)).dt.total_minutes()).clip(lower_bound=0)
        model = pl.struct(
            pl.lit("first concealing call, no learning period").alias("rule"),
            pl.when(pl.col("_destructive")).then(1.0).otherwise(0.7).alias("score"),
            pl.col("_service_names").alias("eventNames"),
            pl.col("_principals").alias("principals"),
        ).struct.json_encode()
        return grouped.select(
            pl.lit(_TYPE).alias("insightType"),
            pl.col("serviceName").alias("insightObject"),
            pl.col("serviceName"),
            pl.col("startTime"),
            end.alias("endTime"),
            pl.lit(0.0).alias("baselineAverage"),
            baseline.cast(pl.Int64).alias("baselineDuration"),
            pl.col("insightCount").cast(pl.Float64).alias("insightAverage"),
            duration.alias("insightDuration"),
            pl.col("insightCount").cast(pl.Int64),
            pl.col("startTime").alias("firedAt"),
            model.alias("model"),
        )
