"""Range checks shared by the CLI and the frozen config dataclasses.

Every check raises :class:`ValueError` with a message naming the field, so a dataclass's
``__post_init__`` (and :func:`insights_kit.config.config_from_dict`, which adds the file and
section) can pass it straight to the user.

Examples
--------
>>> check_range("threshold", 0.5, low=0.0, high=1.0)
>>> check_range("threshold", -0.5, low=0.0, high=1.0)
Traceback (most recent call last):
ValueError: threshold must be between 0.0 and 1.0, got -0.5
"""

from __future__ import annotations

import math
import zoneinfo
from typing import Any

from insights_kit import schema



def check_range(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> None:
    """``value`` is a finite number within [low, high] (or (low, high] with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    below = value <= low if (low is not None and low_open) else (low is not None and value < low)
    above = high is not None and value > high
    if not (below or above):
        return
    if low is not None and high is not None and low_open:
        raise ValueError(f"{name} must be > {low} and <= {high}, got {value}")
    if low is not None and high is not None:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    if low is not None:
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    raise ValueError(f"{name} must be <= {high}, got {value}")


def check_timezone(name: str, value: Any) -> None:
    """``value`` is an IANA zone key that :class:`zoneinfo.ZoneInfo` can load."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"{name} must be an IANA time zone such as 'UTC' or 'Asia/Shanghai', got {value!r}") from None


def check_region_name(name: str) -> None:
    """A well-formed region id (:data:`insights_kit.schema.REGION_PATTERN`)."""
    schema.check_region(name)


def check_rate_config(config: Any) -> None:
    """Ranges of :class:`~insights_kit.detectors._rate.RateConfig` and its subclasses.

    ``baseline_days >= 1``, ``timezone`` an IANA key, ``recur_window_minutes``,
    ``recent_hours`` and ``end_quiet_minutes`` >= 0 (recent_hours, end_quiet_minutes >= 1:
    a zero-hour level or a zero-minute end rule means nothing), ``min_expected > 0``,
    ``alpha_start`` and ``alpha_continue`` p-values in (0, 1], ``min_count >= 1``,
    ``min_ratio >= 1``, priors > 0; error rate: ``dominant_share``, ``merge_share`` in [0, 1], ``caller_api_min_count >= 1``.
    """
    check_range("baseline_days", config.baseline_days, low=1)
    check_timezone("timezone", config.timezone)
    check_range("recur_window_minutes", config.recur_window_minutes, low=0, high=720)
    check_range("recent_hours", config.recent_hours, low=1)
    check_range("min_expected", config.min_expected, low=0, low_open=True)
    check_range("alpha_start", config.alpha_start, low=0, high=1, low_open=True)
    check_range("alpha_continue", config.alpha_continue, low=0, high=1, low_open=True)
    check_range("min_count", config.min_count, low=1)
    check_range("min_ratio", config.min_ratio, low=1)
    check_range("end_quiet_minutes", config.end_quiet_minutes, low=1)
    check_range("prior_errors", config.prior_errors, low=0, low_open=True)
    check_range("prior_calls", config.prior_calls, low=0, low_open=True)
    if hasattr(config, "scales"):
        scales = tuple(config.scales)
        if not scales or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 or 60 % w for w in scales):
            raise ValueError(f"scales must be minutes that divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), got {list(scales)}")
        if list(scales) != sorted(set(scales)):
            raise ValueError(f"scales must be increasing without repeats, got {list(scales)}")
        check_range("accept_after_hours", config.accept_after_hours, low=0, high=720)
        check_range("mask_passes", config.mask_passes, low=0, high=10)
        check_range("trim_allowance", config.trim_allowance, low=0, high=10)
        check_range("history_max_factor", config.history_max_factor, low=0, high=100)
        check_range("scale_learning_hours", config.scale_learning_hours, low=0, high=720)
        check_range("scale_min_rate", config.scale_min_rate, low=0, high=1000)
    for share in ("dominant_share", "merge_share"):
        if hasattr(config, share):
            check_range(share, getattr(config, share), low=0, high=1)
    if hasattr(config, "caller_api_min_count"):
        check_range("caller_api_min_count", config.caller_api_min_count, low=1)
