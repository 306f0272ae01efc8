"""The sensitive-event tables: which calls each event-based insight type looks at.

The tables are data, not code (``sensitive_events.json``, packaged; a copy can replace it
through a detector's ``event_names_file``): per insight type, the event names per source,
keyed by the lower-case ``serviceName`` (CloudTrail: the first label of ``eventSource``).
Entries starting with ``_`` are rules over those names (set-up calls, other-user-only calls).

Examples
--------
>>> names_listed("PolicyChangeInsight").filter(pl.col("eventName") == "PutUserPolicy")["service"].to_list()
['iam']
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import polars as pl

__all__ = ["PACKAGED", "event_names", "names_listed"]

PACKAGED = Path(__file__).with_name("sensitive_events.json")


@lru_cache(maxsize=8)
def event_names(path: str = "") -> dict:
    """The whole table (packaged, or the JSON file at ``path``); ValueError if unreadable."""
    file = Path(path) if path else PACKAGED
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"event_names_file {str(file)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"event_names_file {str(file)!r}: expected a JSON object")
    return data


def names_listed(insight_type: str, path: str = "") -> pl.DataFrame:
    """``service`` (lower case), ``eventName`` of one insight type, sorted and distinct."""
    table = event_names(path).get(insight_type, {})
    rows = [(service.lower(), name) for service, names in table.items() for name in names]
    return pl.DataFrame(rows, schema={"service": pl.String, "eventName": pl.String}, orient="row").unique().sort(
        "service", "eventName"
    )
