"""Which region analyses an event: global events belong to the home region.

Shared by detection, the store's related-event queries and the views, below all of them
(it imports nothing of the package), so that none has to import another.
"""

from __future__ import annotations

import polars as pl


def analysis_events(events: pl.LazyFrame, *, home_region: str) -> pl.LazyFrame:
    """Add ``analysisRegion``: ``acsRegion``, or the home region for global events."""
    return events.with_columns(
        pl.when(pl.col("isGlobal").fill_null(False))
        .then(pl.lit(home_region))
        .otherwise(pl.col("acsRegion"))
        .alias("analysisRegion")
    )


def in_analysis_region(region: str, *, home_region: str | None) -> pl.Expr:
    """Rows of :func:`analysis_events` that ``region`` analyses.

    Outside the home region these are the region's own events only; saying so on the stored
    ``acsRegion`` column lets a lake scan skip the other regions' row groups.
    """
    analysed = pl.col("analysisRegion") == region
    return analysed if region == home_region else (pl.col("acsRegion") == region) & analysed


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
