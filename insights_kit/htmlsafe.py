"""Escaping and validation for everything the report puts into HTML or into a path.

Management events are attacker-controlled text: a ``userAgent``, an ``eventName`` or an
error message can hold markup. Two rules keep the report harmless:

* **Every value put into HTML goes through** :func:`esc` (``html.escape`` with quotes), and
  JSON that must live inside a ``<script>`` goes through :func:`script_json`.
* **Every value used in a path is validated** against a strict pattern
  (:func:`check_region`, :func:`check_window`), so ``../`` or a slash can never leave the
  report folder.

:func:`external_references` lists what a page would fetch from the network; the report
must produce none (machines here reach no CDN).

Examples
--------
>>> esc('<script>alert("1")</script>')
'&lt;script&gt;alert(&quot;1&quot;)&lt;/script&gt;'
>>> check_region("cn-hangzhou")
'cn-hangzhou'
>>> window_name(None, None)
'open_open'
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any, Iterable

import polars as pl

from insights_kit import schema

_STAMP = r"(?:\d{8}T\d{4}Z|open)"
WINDOW_PATTERN = re.compile(rf"^{_STAMP}_{_STAMP}$")


def esc(value: Any) -> str:
    """HTML-escape any value (``None`` becomes an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


#: ``region`` if it is safe as a folder name, else ``ValueError`` (one rule: the schema's).
check_region = schema.check_region


def check_window(window: str) -> str:
    """Return ``window`` if it has the ``<since>_<until>`` compact UTC form, else raise."""
    if not isinstance(window, str) or not WINDOW_PATTERN.fullmatch(window):
        raise ValueError(f"invalid report window {window!r}: expected YYYYMMDDTHHMMZ_YYYYMMDDTHHMMZ")
    return window


def _stamp(ts: datetime | None) -> str:
    if ts is None:
        return "open"
    if ts.tzinfo is None:  # naive datetimes are UTC everywhere in insights-kit
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y%m%dT%H%MZ")


def window_name(since: datetime | None, until: datetime | None) -> str:
    """The report window folder: ``<since>_<until>`` compact UTC, ``open`` when unbounded.

    Same spelling as the detect run files (``OUT/runs/<window>.json``), so a report and the
    detect run behind it share a name.
    """
    return check_window(f"{_stamp(since)}_{_stamp(until)}")


def script_json(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>`` break-out)."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def json_block(obj: Any) -> str:
    """Pretty JSON in an escaped ``<pre>`` block."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return f'<pre class="ik-json">{esc(text)}</pre>'


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="ik-null">null</td>'
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value.tzinfo else value.isoformat()
    elif isinstance(value, float):
        value = f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return f"<td>{esc(value)}</td>"


def table_html(
    frame: pl.DataFrame | Iterable[dict[str, Any]], *, max_rows: int | None = None, caption: str | None = None
) -> str:
    """An HTML table in which every header and value is escaped.

    Used instead of ``DataFrame._repr_html_`` so that escaping does not depend on a
    library's formatter, and the output is the same from version to version.
    """
    if not isinstance(frame, pl.DataFrame):
        frame = pl.DataFrame(list(frame), infer_schema_length=None)
    total = frame.height
    shown = frame if max_rows is None else frame.head(max_rows)
    parts = ['<table class="ik-table">']
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in shown.columns) + "</tr></thead>")
    parts.append("<tbody>")
    for row in shown.iter_rows():
        parts.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>")
    parts.append("</tbody></table>")
    if total > shown.height:
        parts.append(f'<p class="ik-more">{shown.height} of {total} rows shown.</p>')
    return "".join(parts)


def text_table(frame: pl.DataFrame) -> str:
    """A fixed-width plain-text table: deterministic across Polars versions (for nbval)."""
    cols = frame.columns
    rows = [["" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in r] for r in frame.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(out)


class _RefFinder(HTMLParser):
    """Collects attributes and script imports that would make a browser fetch a URL."""

    _FETCHING = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
                 "embed": "src", "object": "data", "audio": "src", "video": "src"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = self._FETCHING.get(tag)
        for name, value in attrs:
            if name == wanted and value and _is_remote(value):
                self.found.append(f"<{tag} {name}={value!r}>")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            for match in re.finditer(r"""import\s*\(\s*["'](https?:)?//[^"']+""", data):
                self.found.append(match.group(0))


def _is_remote(url: str) -> bool:
    return bool(re.match(r"^\s*(https?:)?//", url, re.IGNORECASE))


def external_references(page: str) -> list[str]:
    """Everything in ``page`` that would load a resource from the network (should be empty)."""
    finder = _RefFinder()
    finder.feed(page)
    finder.close()
    css = re.findall(r"""@import\s+(?:url\()?\s*["']?(?:https?:)?//[^"')\s]+""", page)
    return finder.found + css


def assert_offline(page: str, *, name: str = "page") -> None:
    """Raise ``ValueError`` when ``page`` would fetch anything from the network."""
    refs = external_references(page)
    if refs:
        raise ValueError(f"{name} loads remote resources: {refs[:5]}")
