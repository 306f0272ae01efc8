"""ApiCallRateInsight: unusual per-minute rates of **write** calls of one API.

Series: write events (``eventRW == "Write"``, as CloudTrail Insights does) per
(serviceName, eventSource, eventName), counted per minute; insightObject = eventName.
The seasonal count model lives in :mod:`insights_kit.detectors._rate`, its tests at several
time scales and the Start/End rules in :mod:`insights_kit.detectors._multiscale`.
Only rates above the baseline raise an insight (below-baseline insights are not emitted).

Examples
--------
>>> det = CallRateDetector(CallRateConfig(alpha_start=1e-8))  # doctest: +SKIP
>>> det.detect(unit_events, ctx)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from insights_kit.detectors._rate import API_KEYS, CallRateConfig, select_events
from insights_kit.detectors._reuse import reusable_rate_incidents
from insights_kit.detectors.base import Detector, UnitContext, conform_incidents
from insights_kit.features import minute_counts

__all__ = ["CallRateConfig", "CallRateDetector"]


class CallRateDetector(Detector):
    """Detect bursts of write calls per API (ApiCallRateInsight).

    Parameters
    ----------
    config : CallRateConfig, optional
        Model and incident parameters (defaults: :class:`CallRateConfig`).
    """

    insight_type: ClassVar[str] = "ApiCallRateInsight"

    def __init__(self, config: CallRateConfig | None = None) -> None:
        super().__init__(config or CallRateConfig())

    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every ApiCallRateInsight incident of the unit (INCIDENT_SCHEMA)."""
        cfg = self.config
        ev = select_events(events, cfg).filter(pl.col("eventTime") < ctx.data_end)
        counts = minute_counts(ev, by=API_KEYS).collect()
        inc = reusable_rate_incidents(counts, name="rate_api_calls", ctx=ctx, keys=API_KEYS, config=cfg,
                                      counters=ctx.counters)
        if inc.is_empty():
            return conform_incidents(inc.with_columns(pl.lit(None).alias("insightType")))
        inc = inc.with_columns(pl.lit(self.insight_type).alias("insightType"),
                               pl.col("eventName").alias("insightObject"))
        return conform_incidents(inc).sort("startTime", "insightObject", "serviceName", "eventSource", nulls_last=True)
