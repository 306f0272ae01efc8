"""Which region analyses an event: global events belong to the home region.

Shared by detection, the store's related-event queries and the views, below all of them
(it imports nothing of the package), so that none has to import another.
"""

from __future__ import annotations

from typing import Mapping, Union

import polars as pl


#: A home region: one for every account, or one per account (recipientAccountId, "" for none).
Home = Union[str, Mapping[str, str]]


def analysis_events(events: pl.LazyFrame, *, home_region: Home) -> pl.LazyFrame:
    """Add ``analysisRegion``: ``acsRegion``, or the (account's) home region for global events."""
    if isinstance(home_region, str):
        return events.with_columns(_analysis_region(pl.lit(home_region)))
    home_region = dict(home_region or {})
    # A join with the small table of homes, not replace_strict: Polars' streaming engine runs
    # a join batch by batch, while replace_strict materialised the whole column (about 65 bytes
    # per event of a lake: 6.5 GB at 100 M events).
    homes = pl.LazyFrame({"_homeKey": list(home_region), "_homeRegion": list(home_region.values())},
                         schema={"_homeKey": pl.String, "_homeRegion": pl.String})
    return (
        events.with_columns(pl.col("recipientAccountId").fill_null("").alias("_homeKey"))
        .join(homes, on="_homeKey", how="left", maintain_order="left")
        .with_columns(_analysis_region(pl.col("_homeRegion")))
        .drop("_homeKey", "_homeRegion")
    )


def _analysis_region(home: pl.Expr) -> pl.Expr:
    return pl.when(pl.col("isGlobal").fill_null(False)).then(home).otherwise(pl.col("acsRegion")).alias("analysisRegion")


def in_analysis_region(region: str, *, home_region: Home | None) -> pl.Expr:
    """Rows of :func:`analysis_events` that ``region`` analyses.

    Outside the home region(s) these are the region's own events only; saying so on the stored
    ``acsRegion`` column lets a lake scan skip the other regions' row groups.
    """
    homes = {home_region} if home_region is None or isinstance(home_region, str) else set(home_region.values())
    analysed = pl.col("analysisRegion") == region
    return analysed if region in homes else (pl.col("acsRegion") == region) & analysed


def choose_home_region(events: pl.LazyFrame) -> str | None:
    """The region with the most events (ties: alphabetical), or None without events."""
    top = (
        events.group_by("acsRegion")
        .len()
        .drop_nulls("acsRegion")
        .sort(["len", "acsRegion"], descending=[True, False])
        .head(1)
        .collect()
    )
    return top["acsRegion"][0] if top.height else None


def choose_home_regions(events: pl.LazyFrame) -> dict[str, str]:
    """Per account (recipientAccountId, "" for none): its region with the most events (ties:
    alphabetical). With one account this is :func:`choose_home_region`."""
    busiest = (
        events.group_by(pl.col("recipientAccountId").fill_null(""), "acsRegion")
        .len()
        .drop_nulls("acsRegion")
        .sort(["recipientAccountId", "len", "acsRegion"], descending=[False, True, False])
        .group_by("recipientAccountId", maintain_order=True)
        .first()
        .collect()
    )
    return dict(zip(busiest["recipientAccountId"].to_list(), busiest["acsRegion"].to_list()))


def format_home(home: Home | None) -> str:
    """A home region as text: ``cn-hangzhou``, or ``account=region,...`` per account."""
    if home is None or isinstance(home, str):
        return home or ""
    return ",".join(f"{account}={region}" for account, region in sorted(home.items()))


def parse_home(text: str | Mapping[str, str] | None) -> Home | None:
    """The inverse of :func:`format_home` (a mapping or None passes through)."""
    if text is None or not isinstance(text, str):
        return text
    text = text.strip()
    if "=" not in text:
        return text or None
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {account.strip(): region.strip() for account, region in pairs}


def uniform_home(home: Home | None) -> str | None:
    """The one home region of every account, or None when accounts differ."""
    if home is None or isinstance(home, str):
        return home
    regions = set(home.values())
    return regions.pop() if len(regions) == 1 else None


def home_of(home: Home | None, account: str | None) -> str | None:
    """The home region of ``account`` (None: events without one) under ``home``."""
    return home if home is None or isinstance(home, str) else home.get(account or "")


def summary_home(summary: Mapping) -> Home | None:
    """The home region(s) a detect summary records: one region, else one per account."""
    return summary.get("homeRegion") or summary.get("homeRegions") or None
