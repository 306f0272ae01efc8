"""Webhook alerts for new Insights Start events.

The detect job passes the events it has just emitted; :func:`notify_new_starts` keeps the
Starts (``insightDetails.state == "Start"``), builds one message and posts it. Nothing is sent
when there is no Start, and because the caller passes only *newly* emitted events, rerunning
the same window sends nothing (idempotence is the caller's job).

Formats (:func:`payload`)
-------------------------
``generic``
    ``{"source": "insights-kit", "count": n, "insights": [<Start events, unchanged>]}``,
    for a receiver of your own (every Start is included, nothing is truncated).
``dingtalk``
    A DingTalk custom-robot markdown message,
    ``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}``.
``slack``
    A Slack incoming-webhook message, ``{"text": ..., "blocks": [...]}`` with ``section`` blocks
    of ``mrkdwn`` text (``verbatim`` so Slack does not auto-link), ``unfurl_links`` and
    ``unfurl_media`` off.

Chat messages have one line per Start: time, region, type, object and ``insightCount``, at most
:data:`MAX_LINES` lines ("... and N more"). Every value can come from an attacker (the object is
an IP, an AccessKey id, an API name, a service name...), so before it is put into markdown it is
neutralised (:func:`chat_text`): control characters and newlines become spaces; the characters
that make links, mentions or formatting (backtick, ``[ ] ( ) * _ ~ @``, and ``<`` ``>`` for
DingTalk) become look-alike full-width characters; ``://`` loses its meaning; for Slack ``&``,
``<`` and ``>`` are escaped as ``&amp;``, ``&lt;``, ``&gt;`` (Slack's documented escaping). The
result is capped at :data:`MAX_VALUE` characters (an escape is never cut in half).

Delivery (:func:`send`)
-----------------------
A JSON ``POST`` with ``urllib`` (``Content-Type: application/json``, ``User-Agent: insights-kit``).
Connection errors, timeouts, HTTP 429 and 5xx are retried ``retries`` times (so at most
``retries + 1`` attempts), waiting ``backoff * 2**attempt`` seconds, capped at
:data:`MAX_WAIT` (a numeric ``Retry-After`` header replaces that wait, up to the same cap). Other
4xx answers (a wrong token, a malformed message) are not retried. Any 2xx is a delivery.

Only ``http://`` and ``https://`` URLs are accepted. A webhook's token usually lives in its query
string (DingTalk's ``access_token``) or its path (Slack): the query string and any user info are
never printed, logged or written; errors and the dead-letter file name the URL without them.

Dead-letter file
----------------
When a message is not delivered and ``dead_letter`` is given, one JSON line
``{"time": <UTC now>, "url": <URL without query>, "error": ..., "body": <the message>}`` is
appended to it (folders created; the whole file is rewritten atomically with
:func:`insights_kit.lake.atomic_write_text`), so a message can be replayed by hand later.

Examples
--------
>>> start = {"eventId": "E1", "eventTime": "2025-03-04T08:15:00Z", "acsRegion": "cn-hangzhou",
...          "insightDetails": {"state": "Start", "insightType": "IpInsight", "insightObject": "203.0.113.9"}}
>>> payload([start], fmt="generic")["count"]
1
>>> notify_new_starts([], "https://example.invalid/hook", dead_letter=None) is None
True
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from insights_kit.lake import atomic_write_text

#: Message formats :func:`payload` builds.
FORMATS = ("generic", "dingtalk", "slack")
#: Chat messages list at most this many Starts.
MAX_LINES = 50
#: Each value shown in a chat message is cut to this many characters.
MAX_VALUE = 200
#: Longest wait between two attempts, in seconds.
MAX_WAIT = 30.0
#: Slack limits a section's text to 3,000 characters.
SLACK_SECTION_CHARS = 3000
USER_AGENT = "insights-kit"

# Characters that create links, mentions or formatting in Slack mrkdwn or DingTalk markdown,
# replaced by full-width (or similar) look-alikes that carry no meaning.
_LOOKALIKE = {
    "`": "\u02cb",  # modifier letter grave accent
    "[": "\uff3b",
    "]": "\uff3d",
    "(": "\uff08",
    ")": "\uff09",
    "*": "\uff0a",
    "_": "\uff3f",
    "~": "\uff5e",
    "@": "\uff20",
    "#": "\uff03",
    "!": "\uff01",
    "|": "\uff5c",
    "\\": "\uff3c",
}
_SLACK_ESCAPE = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_DINGTALK_EXTRA = {"<": "\uff1c", ">": "\uff1e", "&": "\uff06"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def chat_text(value: Any, *, fmt: str, limit: int = MAX_VALUE) -> str:
    """``value`` as text that is inert in ``fmt``'s markdown, at most ``limit`` characters.

    Parameters
    ----------
    value
        Any value (``None`` shows as ``-``); it is converted with ``str``.
    fmt
        ``"slack"`` (``& < >`` escaped as entities) or ``"dingtalk"`` (look-alikes).
    limit
        Maximum length of the result; a cut value ends with ``…``.

    Examples
    --------
    >>> chat_text("[x](http://evil) <b>", fmt="slack")
    '［x］（http：//evil） &lt;b&gt;'
    >>> chat_text("a\\nb @all", fmt="dingtalk")
    'a b ＠all'
    """
    if fmt not in ("slack", "dingtalk"):
        raise ValueError(f"unknown chat format {fmt!r}: expected slack or dingtalk")
    text = "-" if value is None else str(value)
    text = _CONTROL.sub(" ", text).replace("://", "\uff1a//")
    extra = _SLACK_ESCAPE if fmt == "slack" else _DINGTALK_EXTRA
    pieces = [extra.get(ch) or _LOOKALIKE.get(ch) or ch for ch in text]
    if sum(len(piece) for piece in pieces) <= limit:
        return "".join(pieces)
    out: list[str] = []
    used = 0
    for piece in pieces:  # whole pieces only, so an entity such as &amp; is never cut
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    out.append("\u2026")
    return "".join(out)


def _starts(events: list[dict]) -> list[dict]:
    return [
        ev
        for ev in events
        if isinstance(ev, dict)
        and isinstance(ev.get("insightDetails"), dict)
        and ev["insightDetails"].get("state") == "Start"
    ]


def _line_values(event: dict) -> tuple[Any, Any, Any, Any, Any]:
    details = event.get("insightDetails") or {}
    context = details.get("insightContext") if isinstance(details.get("insightContext"), dict) else {}
    stats = context.get("statistics") if isinstance(context.get("statistics"), dict) else {}
    return (
        event.get("eventTime"),
        event.get("acsRegion"),
        details.get("insightType"),
        details.get("insightObject"),
        stats.get("insightCount"),
    )


def _lines(starts: list[dict], fmt: str) -> list[str]:
    lines = []
    for event in starts[:MAX_LINES]:
        when, region, kind, obj, count = (chat_text(v, fmt=fmt) for v in _line_values(event))
        lines.append(f"{when} | {region} | {kind} | {obj} | insightCount {count}")
    if len(starts) > MAX_LINES:
        lines.append(f"... and {len(starts) - MAX_LINES} more")
    return lines


def _title(n: int) -> str:
    return f"insights-kit: {n} new Insights event{'s' if n != 1 else ''}"


def payload(events: list[dict], *, fmt: str) -> dict:
    """The webhook message announcing the Start events among ``events``.

    Parameters
    ----------
    events
        Insights events; only those with ``insightDetails.state == "Start"`` are used.
    fmt
        ``"generic"``, ``"dingtalk"`` or ``"slack"`` (see the module docstring for the shapes).

    Returns
    -------
    dict
        The JSON body to post.

    Raises
    ------
    ValueError
        For an unknown ``fmt``.

    Examples
    --------
    >>> ev = {"eventTime": "2025-03-04T08:15:00Z", "acsRegion": "cn-hangzhou",
    ...       "insightDetails": {"state": "Start", "insightType": "AkInsight", "insightObject": "LTAI_x"}}
    >>> payload([ev], fmt="dingtalk")["markdown"]["title"]
    'insights-kit: 1 new Insights event'
    >>> len(payload([ev], fmt="slack")["blocks"])
    2
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown webhook format {fmt!r}: expected one of {', '.join(FORMATS)}")
    starts = _starts(events)
    title = _title(len(starts))
    if fmt == "generic":
        return {"source": "insights-kit", "count": len(starts), "insights": starts}
    lines = _lines(starts, fmt)
    if fmt == "dingtalk":
        text = f"#### {title}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    # Slack: a header section, then the lines in sections of at most 3,000 characters.
    blocks: list[dict] = [_slack_section(f"*{title}*")]
    chunk: list[str] = []
    for line in (f"\u2022 {line}" for line in lines):
        if chunk and sum(len(c) + 1 for c in chunk) + len(line) > SLACK_SECTION_CHARS:
            blocks.append(_slack_section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(_slack_section("\n".join(chunk)))
    return {"text": title, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


def _slack_section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


# --------------------------------------------------------------------------- delivery


def _check_url(url: str) -> urllib.parse.SplitResult:
    if not isinstance(url, str):
        raise ValueError(f"webhook URL must be text, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme[:20] or "none"
        raise ValueError(f"webhook URL must start with http:// or https:// (scheme: {shown})")
    if not parts.hostname:
        raise ValueError("webhook URL has no host")
    try:
        parts.port
    except ValueError:
        raise ValueError("webhook URL has an invalid port") from None
    if re.search(r"[\x00-\x20\x7f]", url.strip()):
        raise ValueError("webhook URL contains spaces or control characters")
    return parts


def redact_url(url: str) -> str:
    """``url`` without its query string, fragment and user info (safe to print).

    Examples
    --------
    >>> redact_url("https://oapi.dingtalk.com/robot/send?access_token=SECRET")
    'https://oapi.dingtalk.com/robot/send'
    """
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _clean_error(message: str, url: str) -> str:
    """An error message with the URL's secret parts removed, on one line."""
    parts = urllib.parse.urlsplit(url.strip())
    for secret in (url, url.strip(), parts.query, parts.netloc if "@" in parts.netloc else ""):
        if secret:
            message = message.replace(secret, "<redacted>")
    return " ".join(message.split())[:500]


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None  # an HTTP date: fall back to the exponential backoff
    return seconds if seconds >= 0 else None


#: How send() waits between attempts (tests replace it).
_sleep = time.sleep


def send(
    url: str,
    body: dict,
    *,
    timeout: float = 10,
    retries: int = 3,
    backoff: float = 1.0,
    dead_letter: Path | None = None,
) -> dict:
    """Post ``body`` as JSON to ``url``, retrying transient failures.

    Parameters
    ----------
    url
        The webhook (``http://`` or ``https://``).
    body
        The JSON message, e.g. from :func:`payload`.
    timeout
        Seconds per attempt (connect and each read).
    retries
        Retries after the first attempt, for connection errors, timeouts, HTTP 429 and 5xx.
    backoff
        The wait before retry ``k`` (0-based) is ``backoff * 2**k`` seconds, at most
        :data:`MAX_WAIT`; a numeric ``Retry-After`` header replaces it (same cap).
    dead_letter
        A JSON Lines file; when the message is not delivered, one line
        ``{"time", "url", "error", "body"}`` is appended to it.

    Returns
    -------
    dict
        ``{"delivered": bool, "attempts": n, "status": last HTTP status or None,
        "error": None or a one-line message (the URL without its query)}``.

    Raises
    ------
    ValueError
        When ``url`` is not an http(s) URL.

    Examples
    --------
    >>> send("ftp://example.com/x", {})
    Traceback (most recent call last):
    ...
    ValueError: webhook URL must start with http:// or https:// (scheme: ftp)
    >>> send("http://127.0.0.1:9/hook?token=x", {"a": 1}, retries=0)["delivered"]  # doctest: +SKIP
    False
    """
    _check_url(url)
    safe_url = redact_url(url)
    data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")
    request = urllib.request.Request(
        url.strip(),
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    attempts = 0
    status: int | None = None
    error: str | None = None
    for attempt in range(max(int(retries), 0) + 1):
        attempts += 1
        wait_hint: float | None = None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
                response.read(65536)
            if 200 <= status < 300:
                return {"delivered": True, "attempts": attempts, "status": status, "error": None}
            error = f"POST {safe_url}: HTTP {status}"
            retryable = False  # 1xx/3xx answers: not followed, not retried
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"POST {safe_url}: HTTP {exc.code} {_clean_error(str(exc.reason or ''), url)}".rstrip()
            retryable = exc.code == 429 or exc.code >= 500
            wait_hint = _retry_after(exc.headers)
            exc.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            status = None
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            kind = "timed out" if isinstance(reason, TimeoutError) else type(reason).__name__
            error = f"POST {safe_url}: {kind}: {_clean_error(str(reason), url)}"
            retryable = True
        if not retryable or attempt >= retries:
            break
        wait = wait_hint if wait_hint is not None else backoff * 2**attempt
        _sleep(min(max(wait, 0.0), MAX_WAIT))
    result = {"delivered": False, "attempts": attempts, "status": status, "error": error}
    if dead_letter is not None:
        _dead_letter(Path(dead_letter), safe_url, error, body)
    return result


def _dead_letter(path: Path, safe_url: str, error: str | None, body: dict) -> None:
    line = json.dumps(
        {
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "url": safe_url,
            "error": error,
            "body": body,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    atomic_write_text(path, existing + line + "\n")


def check_target(url: str, fmt: str) -> None:
    """Raise ValueError (one line) for a URL or format :func:`notify_new_starts` would refuse."""
    _check_url(url)
    if fmt not in FORMATS:
        raise ValueError(f"unknown webhook format {fmt!r}: expected one of {', '.join(FORMATS)}")


def notify_new_starts(
    events: list[dict],
    url: str,
    *,
    fmt: str = "generic",
    dead_letter: Path | None,
    timeout: float = 10,
    retries: int = 3,
) -> dict | None:
    """Post one message about the Start events among ``events``; None when there is none.

    Pass only the events a run has *newly* emitted: a rerun of the same window then passes
    none and sends nothing. The URL and format are checked even when nothing is sent.

    Parameters
    ----------
    events
        Insights events (Ends are ignored).
    url
        The webhook (``http://`` or ``https://``).
    fmt
        ``"generic"``, ``"dingtalk"`` or ``"slack"``.
    dead_letter
        File for undelivered messages (see :func:`send`), or None.
    timeout, retries
        As in :func:`send`.

    Returns
    -------
    dict or None
        :func:`send`'s result plus ``"starts"`` (how many Starts the message announced).

    Examples
    --------
    >>> end = {"eventTime": "2025-03-04T09:00:00Z", "insightDetails": {"state": "End"}}
    >>> notify_new_starts([end], "https://example.invalid/hook", dead_letter=None) is None
    True
    """
    check_target(url, fmt)
    starts = _starts(events)
    if not starts:
        return None
    result = send(url, payload(starts, fmt=fmt), timeout=timeout, retries=retries, dead_letter=dead_letter)
    result["starts"] = len(starts)
    return result
