"""PolicyChangeInsight: permission changes unusual for the account's own history.

Changes: attaching or writing policies, new policy versions made default, role trust-policy
changes, users added to groups, permission boundaries removed (the names per source are the
``PolicyChangeInsight`` table of ``sensitive_events.json``). Each is scored by the history
novelty model of :mod:`insights_kit.detectors._change`: a principal, network or tool that
does not normally change permissions, a burst, or a first admin-like grant (the managed
``AdministratorAccess`` policy or an allow-all document, ``normalize.grants_admin``).
insightObject = the ``serviceName`` (``Ram``, ``iam``); scores: higher = more anomalous.

Examples
--------
>>> det = PolicyChangeDetector(PolicyChangeConfig(threshold=0.6))
>>> det.insight_type, det.config.novelty_hours
('PolicyChangeInsight', 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from insights_kit.detectors._change import ChangeConfig, change_incidents
from insights_kit.detectors.base import Detector, UnitContext

__all__ = ["PolicyChangeConfig", "PolicyChangeDetector"]


@dataclass(frozen=True)
class PolicyChangeConfig(ChangeConfig):
    """PolicyChangeInsight parameters: those of :class:`~insights_kit.detectors._change.ChangeConfig`."""


class PolicyChangeDetector(Detector):
    """Detect unusual permission changes (PolicyChangeInsight).

    Parameters
    ----------
    config : PolicyChangeConfig, optional
        Model parameters (defaults: :class:`PolicyChangeConfig`).
    """

    insight_type: ClassVar[str] = "PolicyChangeInsight"

    def __init__(self, config: PolicyChangeConfig | None = None) -> None:
        super().__init__(config or PolicyChangeConfig())

    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every PolicyChangeInsight incident of the unit (INCIDENT_SCHEMA)."""
        return change_incidents(events, ctx, insight_type=self.insight_type, config=self.config)
