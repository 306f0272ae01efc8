"""The detector contract: one unit's events in, incidents out.

Every detector is causal (minute *t* is judged on events before and in *t* only) and
returns every incident it finds in the events it is given; the orchestrator (`detect.py`)
decides which were already emitted. Scores point one way in the whole package:
**higher means more anomalous** (p-values are reported as such: small = anomalous).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import polars as pl

from insights_kit.schema import UTC_DATETIME

#: One row per incident; see docs/design.md.
INCIDENT_SCHEMA: dict[str, pl.DataType] = {
    "insightType": pl.String(),
    "insightObject": pl.String(),
    "serviceName": pl.String(),
    "eventSource": pl.String(),
    "eventName": pl.String(),
    "errorCode": pl.String(),
    "sourceIpAddress": pl.String(),
    "startTime": UTC_DATETIME,
    "endTime": UTC_DATETIME,
    "baselineAverage": pl.Float64(),
    "baselineDuration": pl.Int64(),
    "startAverage": pl.Float64(),
    "insightAverage": pl.Float64(),
    "insightDuration": pl.Int64(),
    "insightCount": pl.Int64(),
    "firedAt": UTC_DATETIME,
    "model": pl.String(),
    "endReason": pl.String(),  # why the End came (rate types); null while open
    "endModel": pl.String(),  # the model over the whole incident, for the End (IpInsight); null: ``model``
}


def empty_incidents() -> pl.DataFrame:
    return pl.DataFrame(schema=INCIDENT_SCHEMA)


def conform_incidents(frame: pl.DataFrame) -> pl.DataFrame:
    """Order and cast columns to INCIDENT_SCHEMA, adding absent ones as nulls."""
    return frame.select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in INCIDENT_SCHEMA.items()
        ]
    )


@dataclass(frozen=True)
class Allowlist:
    """Addresses/CIDRs and principals that never raise IpInsight."""

    networks: tuple[str, ...] = ()  # "203.0.113.0/24", "198.51.100.7"
    principals: tuple[str, ...] = ()  # principalId values


@dataclass
class UnitContext:
    """What a detector knows about the unit it runs on."""

    account: str
    region: str
    data_start: datetime  # first event of the unit ever seen (state included), minute-aligned
    data_end: datetime  # end of observed data, exclusive, minute-aligned
    learning_end: datetime  # data_start + learning_hours
    history: dict[str, pl.DataFrame] = field(default_factory=dict)  # what the detector saved last run
    #: a --state run: the earliest event of the unit new to the state (a late delivery may be
    #: days old); None when nothing is new. Days the detector settled before it need no rework.
    changed_since: datetime | None = None
    allowlist: Allowlist = field(default_factory=Allowlist)
    #: filled by the detector: counters for the summary (e.g. {"suppressed": 3, "withheld": 1})
    counters: dict[str, int] = field(default_factory=dict)
    #: filled by the detector: tables to keep in --state for the next run (name -> frame)
    new_history: dict[str, pl.DataFrame] = field(default_factory=dict)


class Detector(ABC):
    """Base class: ``__init__`` stores a frozen config, ``detect`` finds incidents."""

    insight_type: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every incident in ``events`` as a frame with INCIDENT_SCHEMA."""
