"""The Insights console: search, filter and drill down, offline, in the browser and in JupyterLab.

A view over the Insights store and the management events behind it; it imports the store and
the region rules, and nothing imports it but ``report``, the CLI and the notebooks.

``write_console`` writes, in a report window's folder::

    index.html            the console (the list, filters, counts; data embedded as inert JSON)
    console/vega.js       Vega, Vega-Lite and vega-embed (vl-convert's offline bundle)
    console/d/<key>.js    one incident's detail, loaded when it is opened
    console/d/<key>-eN.js page N of its related management events

``<key>`` is a digest of the sharedEventId (:func:`data.detail_key`), so no identifier from
the data becomes a path. The files are written into the caller's folder, which ``report``
moves into place only when everything is written.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from insights_kit.console import data
from insights_kit.schema import INSIGHT_TYPES

#: Where the console's files live below the window folder.
CONSOLE_DIR = "console"


def vega_bundle() -> str:
    """The offline Vega bundle (classic script defining ``vegaEmbed``, ``vega`` and ``vegaLite``).

    vl-convert takes about 4 s to bundle it, so it is kept in ``$XDG_CACHE_HOME/insights-kit``
    (``~/.cache/insights-kit``) under the vl-convert version; the cache is written atomically
    and skipped when it cannot be.
    """
    import os

    import vl_convert

    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "insights-kit"
    cached = cache_root / f"vega-bundle-{vl_convert.__version__}.js"
    try:
        return cached.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle()
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.tmp-{os.getpid()}")
        tmp.write_text(bundle, encoding="utf-8")
        os.replace(tmp, cached)
    except OSError:
        pass
    return bundle


def write_console(
    window_dir: str | Path,
    *,
    insights: pl.DataFrame,
    events: pl.LazyFrame,
    window: str,
    since: datetime | None,
    until: datetime | None,
    regions: Sequence[dict[str, Any]],
    home_region: str | None,
    config: Any = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Write the console of one report window into ``window_dir``.

    Parameters
    ----------
    window_dir
        The window's folder (``report`` passes its staging folder).
    insights
        Flat Insights events (``store.read_events``) of the incidents starting in the window.
    events
        Canonical management events of the window (the detail's trends and related events).
    window, since, until
        The window's name and its span (the data's span for an open window).
    regions
        One dict per region: ``region``, ``status``, ``error``, ``events``, ``learning`` (text)
        and ``page`` (the region page's path relative to ``window_dir``, or None).
    home_region
        Detection's home region (global events are analysed there).
    config
        The detection :class:`~insights_kit.config.Config` (the rate charts' expected band).

    Returns
    -------
    dict
        ``index`` (path), ``incidents`` (count), ``files`` (detail and page files written) and
        ``bytes`` (their total size, ``index.html`` and the Vega bundle included).
    """
    from insights_kit.console import page

    window_dir = Path(window_dir)
    detail_dir = window_dir / CONSOLE_DIR / "d"
    detail_dir.mkdir(parents=True, exist_ok=True)
    incidents = data.incident_table(insights)
    lo = since or (incidents["start"].min() if incidents.height else None)
    hi = until or (incidents["start"].max() if incidents.height else None)
    written = [_write(window_dir / CONSOLE_DIR / "vega.js", vega_bundle())]
    pairs = data.pairs(insights, incidents["id"].to_list())
    for region in incidents["region"].unique().sort().to_list():
        in_region = incidents.filter(pl.col("region") == region)
        frame = data.region_events(events, region, home_region=home_region)
        for row, detail, event_pages in data.details(in_region, pairs, frame, since=lo, until=hi,
                                                     rate_config=config):
            key = data.detail_key(row["id"])
            written.append(_write(detail_dir / f"{key}.js", page.data_script(f"d/{key}", detail)))
            for n, rows in enumerate(event_pages):
                written.append(_write(detail_dir / f"{key}-e{n}.js", page.data_script(f"d/{key}-e{n}", {"rows": rows})))
    index = {
        "version": 1,
        "title": title or f"ActionTrail Insights {data.iso(lo) or '?'} → {data.iso(hi) or '?'}",
        "window": {"name": window, "since": data.iso(lo), "until": data.iso(hi)},
        "homeRegion": home_region,
        "types": list(INSIGHT_TYPES),
        "regions": [dict(r) for r in regions],
        "vega": f"{CONSOLE_DIR}/vega.js",
        "incidents": data.index_rows(incidents),
    }
    index_path = window_dir / "index.html"
    written.append(_write(index_path, page.render_index_html(index, title=index["title"])))
    return {"index": str(index_path), "incidents": incidents.height, "files": len(written) - 2,
            "bytes": sum(written)}


def _write(path: Path, text: str) -> int:
    raw = text.encode("utf-8")
    path.write_bytes(raw)
    return len(raw)
