"""PasswordChangeInsight: console password and credential changes unusual for the history.

Changes: creating, updating or deleting a login profile, password resets and password-policy
changes, MFA devices unbound or deleted, and AccessKeys created or updated for *another* user
(the ``PasswordChangeInsight`` table of ``sensitive_events.json``; its ``_other_user_only``
names count only when ``requestUserName`` is not the caller). Scored by the history novelty
model of :mod:`insights_kit.detectors._change`, with one more piece of evidence: acting on
another user's credentials. A user changing their own password (``ChangePassword``) from the
usual address with the usual tool scores at most ``weight_new_changer`` and stays quiet.
insightObject = the ``serviceName`` (``Ram``, ``iam``); scores: higher = more anomalous.

Examples
--------
>>> det = PasswordChangeDetector(PasswordChangeConfig(threshold=0.6))
>>> det.insight_type, det.config.novelty_hours
('PasswordChangeInsight', 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from insights_kit.detectors._change import ChangeConfig, change_incidents
from insights_kit.detectors.base import Detector, UnitContext

__all__ = ["PasswordChangeConfig", "PasswordChangeDetector"]


@dataclass(frozen=True)
class PasswordChangeConfig(ChangeConfig):
    """PasswordChangeInsight parameters: those of :class:`~insights_kit.detectors._change.ChangeConfig`."""


class PasswordChangeDetector(Detector):
    """Detect unusual password and credential changes (PasswordChangeInsight).

    Parameters
    ----------
    config : PasswordChangeConfig, optional
        Model parameters (defaults: :class:`PasswordChangeConfig`).
    """

    insight_type: ClassVar[str] = "PasswordChangeInsight"

    def __init__(self, config: PasswordChangeConfig | None = None) -> None:
        super().__init__(config or PasswordChangeConfig())

    def detect(self, events: pl.LazyFrame, ctx: UnitContext) -> pl.DataFrame:
        """Return every PasswordChangeInsight incident of the unit (INCIDENT_SCHEMA)."""
        return change_incidents(events, ctx, insight_type=self.insight_type, config=self.config)
