"""The Insights console page: one self-contained ``index.html`` plus on-demand data files.

The console is a static page that works from ``file://`` with no network. Its index (every
incident of the report window, one row each) is embedded as JSON in the page; the heavy parts
(one incident's detail, each page of its ActionTrail events) are small classic scripts loaded on
demand with ``<script src>``, because ``fetch()`` of ``file://`` URLs is blocked in browsers.

Every string in the data may be attacker-chosen, so:

* JSON put inside a ``<script>`` goes through :func:`safe_json` (no ``</script>`` break-out,
  no U+2028/U+2029 surprises);
* the static regions table (the page's useful part without JavaScript) is escaped with
  :func:`html.escape`, and only links to relative paths that pass :func:`safe_relative_path`;
* the page's Content-Security-Policy forbids every network fetch; scripts may come only from the
  page itself and ``file:`` (the lazily loaded Vega bundle and data files), and ``eval`` is refused.

Examples
--------
>>> safe_json({"a": "</script>"})
'{"a":"\\\\u003c/script\\\\u003e"}'
>>> data_script("d/x", {"rows": []})
'window.__ikData("d/x",{"rows":[]});\\n'
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["safe_json", "render_index_html", "data_script", "safe_relative_path", "CSP"]

#: What the page may load. ``file:`` is needed for the lazily injected Vega bundle and data files
#: (Chromium gives ``file://`` pages an opaque origin, so ``'self'`` does not match them);
#: ``'unsafe-inline'`` for the page's own inline script and for the styles Vega adds. No
#: ``'unsafe-eval'``: console.js embeds charts with ``ast: true``, so Vega interprets its
#: expressions instead of compiling them with ``Function``. Nothing may be fetched.
CSP = ("default-src 'none'; script-src 'unsafe-inline' file:; style-src 'unsafe-inline'; "
       "img-src data:; font-src 'none'; connect-src 'none'; media-src 'none'; object-src 'none'; "
       "frame-src 'none'; worker-src 'none'; manifest-src 'none'; base-uri 'none'; form-action 'none'")

# The same rule as in console.js: a relative path of plain characters, never "..", never absolute.
_PATH_RE = re.compile(r"^[A-Za-z0-9._/-]+$")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def safe_json(obj: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element.

    Parameters
    ----------
    obj
        Any JSON-serialisable value (no NaN or infinity).

    Returns
    -------
    str
        ``json.dumps`` (sorted keys, compact, UTF-8 kept) with ``<``, ``>``, ``&``, U+2028 and
        U+2029 written as ``\\uXXXX`` escapes, so the text can never close the script element.
    """
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_ESCAPE_RE.sub(lambda m: _SCRIPT_ESCAPES[m.group(0)], text)


def safe_relative_path(value: Any) -> str | None:
    """``value`` if it is a safe relative path (``[A-Za-z0-9._/-]+``, no ``..``, not absolute), else None."""
    if not isinstance(value, str) or not _PATH_RE.fullmatch(value):
        return None
    if value.startswith("/") or ".." in value or "//" in value:
        return None
    return value


def data_script(key: str, payload: dict) -> str:
    """Contents of one on-demand data file.

    Parameters
    ----------
    key
        The file's key: its path below ``console/`` without ``.js`` (``d/3f2a9c0d1e4b5a6f``,
        ``d/3f2a9c0d1e4b5a6f-e0``).
    payload
        The detail or events-page object.

    Returns
    -------
    str
        ``window.__ikData(<key>,<payload>);`` and a newline.
    """
    return f"window.__ikData({safe_json(key)},{safe_json(payload)});\n"


def _static(name: str) -> str:
    """The text of ``static/<name>`` (package data; falls back to the source tree)."""
    try:
        return resources.files("insights_kit.console").joinpath("static", name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, TypeError, AttributeError):
        return (Path(__file__).resolve().parent / "static" / name).read_text(encoding="utf-8")


#: Short column heads of the regions table (the full type name is the head's title).
SHORT_TYPE_NAMES = {"ApiCallRateInsight": "call rate", "ApiErrorRateInsight": "error rate", "IpInsight": "IP",
                    "AkInsight": "AccessKey", "PolicyChangeInsight": "policy", "PasswordChangeInsight": "password",
                    "TrailConcealmentInsight": "trail"}


def _regions_table(regions: list[dict], types: list[str]) -> str:
    """The regions table as static HTML: status, events, incidents by type (every value escaped, only safe links)."""
    esc = lambda v: "" if v is None else html.escape(str(v), quote=True)  # noqa: E731
    rows = []
    for r in regions:
        page = safe_relative_path(r.get("page"))
        link = f'<a href="{esc(page)}">region page</a>' if page else '<span class="ik-muted">no page</span>'
        status = esc(r.get("status"))
        if r.get("error"):
            status = f'<span class="ik-error">{status}: {esc(r.get("error"))}</span>'
        events = r.get("events")
        events_text = f"{events:,}" if isinstance(events, int) else esc(events)
        found = r.get("insights") or {}
        counts = [int(found.get(t) or 0) for t in types]
        rows.append(f'<tr><td><code>{esc(r.get("region"))}</code></td><td>{status}</td>'
                    f'<td class="ik-num">{events_text}</td>'
                    + "".join(f'<td class="ik-num">{c}</td>' for c in counts)
                    + f'<td class="ik-num">{sum(counts)}</td><td>{esc(r.get("learning"))}</td><td>{link}</td></tr>')
    heads = "".join(f'<th scope="col" title="{esc(t)}">{esc(SHORT_TYPE_NAMES.get(t, t))}</th>' for t in types)
    return ('<table class="ik-table" id="ik-regions-table"><thead><tr>'
            '<th scope="col">Region</th><th scope="col">Status</th><th scope="col">Events</th>'
            f'{heads}<th scope="col">total</th>'
            '<th scope="col">Learning</th><th scope="col">Report</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>"
            '<p class="ik-muted">Incidents (Start events) by type for the whole window; the counts above the '
            "incident list follow the filters.</p>")


def render_index_html(index: dict, *, title: str) -> str:
    """The whole console page.

    Parameters
    ----------
    index
        The console index (``version``, ``window``, ``types``, ``regions``, ``incidents``, ...;
        see the data contract in ``console/data.py``).
    title
        The page title (plain text; escaped here).

    Returns
    -------
    str
        A complete HTML document: CSP, inline style and script, the index as JSON in
        ``<script type="application/json" id="ik-index">`` and a static regions table.
    """
    esc = lambda v: html.escape(str(v), quote=True)  # noqa: E731
    css = _static("console.css").replace("</style", "<\\/style")
    js = _static("console.js").replace("</script", "<\\/script")
    window = index.get("window") or {}
    since, until = window.get("since") or "open", window.get("until") or "open"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{esc(title)}</title>
<style>{css}</style>
</head>
<body>
<header class="ik-header">
<h1 id="ik-title">{esc(title)}</h1>
<p class="ik-muted">Report window <code>{esc(since)}</code> to <code>{esc(until)}</code> (UTC)</p>
</header>
<noscript><p class="ik-note">This console needs JavaScript for the incident list. The region pages are linked in the
regions table below.</p></noscript>
<main id="ik-app" data-state="loading"></main>
<section id="ik-regions" aria-labelledby="ik-regions-h">
<h2 id="ik-regions-h">Regions</h2>
{_regions_table(list(index.get("regions") or []), list(index.get("types") or []))}
</section>
<script type="application/json" id="ik-index">{safe_json(index)}</script>
<script>{js}</script>
</body>
</html>
"""
