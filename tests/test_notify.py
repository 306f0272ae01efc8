"""Webhook alerts (insights_kit.notify) against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from insights_kit import notify
from insights_kit.notify import notify_new_starts, payload, send

HOSTILE = [
    "<script>alert(1)</script>",
    "[click](http://evil.example/x)",
    "@everyone",
    "`rm -rf`",
    "line1\nline2\r\n# heading",
    "<!channel> <https://evil.example|click>",
    "*bold* _it_ ~strike~",
]


def insight(i: int = 0, *, state: str = "Start", kind: str = "IpInsight", obj: str = "203.0.113.9", count: int = 7):
    return {
        "eventId": f"E{i}-{state}",
        "sharedEventId": f"S{i}",
        "eventTime": f"2025-03-04T08:{i % 60:02d}:00Z",
        "acsRegion": "cn-hangzhou",
        "recipientAccountId": "1234567890",
        "insightDetails": {
            "state": state,
            "insightType": kind,
            "insightObject": obj,
            "insightContext": {"statistics": {"insightCount": count}, "attributions": [], "model": {}},
        },
    }


class Hook:
    """What the test server answers and what it received."""

    def __init__(self) -> None:
        self.plan: list[tuple] = []  # (status, delay[, headers]) per request; then 200
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def next(self) -> tuple[int, float, dict]:
        with self.lock:
            status, delay, *headers = self.plan.pop(0) if self.plan else (200, 0.0)
        return status, delay, headers[0] if headers else {}


@pytest.fixture
def server():
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, delay, headers = hook.next()
            with hook.lock:
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook?access_token=SECRET123"
    try:
        yield hook
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def fast_sleep(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(notify, "_sleep", lambda s: waits.append(s))
    return waits


def test_generic_body_carries_the_starts(server):
    events = [insight(0), insight(1, kind="AkInsight", obj="LTAI5t"), insight(0, state="End")]
    result = notify_new_starts(events, server.url, dead_letter=None)
    assert result == {"delivered": True, "attempts": 1, "status": 200, "error": None, "starts": 2}
    (req,) = server.requests
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["User-Agent"] == "insights-kit"
    assert req["path"] == "/hook?access_token=SECRET123"
    body = json.loads(req["body"])
    assert body["source"] == "insights-kit" and body["count"] == 2
    assert body["insights"] == events[:2]


@pytest.mark.parametrize("fmt", ["dingtalk", "slack"])
def test_chat_bodies_parse_and_list_each_start(server, fmt):
    events = [insight(i, obj=f"198.51.100.{i}", count=10 + i) for i in range(3)]
    result = notify_new_starts(events, server.url, fmt=fmt, dead_letter=None)
    assert result["delivered"] and result["starts"] == 3
    body = json.loads(server.requests[0]["body"])
    if fmt == "dingtalk":
        assert body["msgtype"] == "markdown"
        assert "3 new" in body["markdown"]["title"]
        text = body["markdown"]["text"]
    else:
        assert "3 new" in body["text"]
        assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in body["blocks"])
        text = "\n".join(b["text"]["text"] for b in body["blocks"])
    for i in range(3):
        assert f"198.51.100.{i}" in text and f"insightCount {10 + i}" in text
        assert f"2025-03-04T08:{i:02d}:00Z" in text
    assert "cn-hangzhou" in text and "IpInsight" in text


def test_chat_messages_cap_lines_and_values():
    events = [insight(i, obj="x" * 500) for i in range(60)]
    for fmt in ("dingtalk", "slack"):
        body = payload(events, fmt=fmt)
        text = body["markdown"]["text"] if fmt == "dingtalk" else "\n".join(b["text"]["text"] for b in body["blocks"])
        assert text.count("x" * 199 + "\u2026") == 50
        assert "x" * 201 not in text
        assert "... and 10 more" in text
    slack = payload(events, fmt="slack")
    assert len(slack["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"])
    assert payload(events, fmt="generic")["count"] == 60


def test_retries_500_then_delivered(server, fast_sleep):
    server.plan = [(500, 0), (503, 0)]
    result = send(server.url, {"a": 1}, retries=3, backoff=0.01)
    assert result == {"delivered": True, "attempts": 3, "status": 200, "error": None}
    assert len(server.requests) == 3
    assert fast_sleep == [0.01, 0.02]


def test_429_honours_retry_after_up_to_the_cap(server, fast_sleep):
    server.plan = [(429, 0, {"Retry-After": "120"}), (503, 0, {"Retry-After": "2"}), (429, 0)]
    result = send(server.url, {"a": 1}, retries=3, backoff=0.01)
    assert result["delivered"] and result["attempts"] == 4
    assert fast_sleep == [30.0, 2.0, 0.04]  # capped, honoured, then the exponential backoff
    assert notify._retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None


def test_gives_up_after_retries(server, fast_sleep):
    server.plan = [(502, 0)] * 5
    result = send(server.url, {"a": 1}, retries=2, backoff=0.01)
    assert result["delivered"] is False and result["attempts"] == 3 and result["status"] == 502
    assert "SECRET123" not in result["error"] and "access_token" not in result["error"]


def test_no_retry_on_400(server, tmp_path):
    server.plan = [(400, 0)]
    dead = tmp_path / "dead.jsonl"
    result = send(server.url, {"a": 1}, retries=3, backoff=0.01, dead_letter=dead)
    assert result["delivered"] is False and result["attempts"] == 1 and result["status"] == 400
    assert len(server.requests) == 1
    assert "SECRET123" not in result["error"] and "HTTP 400" in result["error"]
    assert json.loads(dead.read_text())["body"] == {"a": 1}


def test_timeout_is_retried_then_dead_lettered(server, tmp_path):
    server.plan = [(200, 1.0), (200, 1.0)]
    dead = tmp_path / "nested" / "dir" / "dead.jsonl"
    body = payload([insight(0)], fmt="generic")
    result = send(server.url, body, timeout=0.2, retries=1, backoff=0.01, dead_letter=dead)
    assert result["delivered"] is False and result["attempts"] == 2 and result["status"] is None
    assert "timed out" in result["error"]
    assert len(server.requests) == 2
    text = dead.read_text()
    assert "SECRET123" not in text and "access_token" not in text
    (line,) = text.splitlines()
    entry = json.loads(line)
    assert entry["body"] == body
    assert entry["url"] == server.url.split("?")[0]
    assert entry["time"].endswith("Z")
    assert [p.name for p in dead.parent.iterdir()] == ["dead.jsonl"]  # no temp file left


def test_unreachable_port_dead_letters_and_appends(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook?token=SECRET123"
    dead = tmp_path / "dead.jsonl"
    for n in (1, 2):
        result = notify_new_starts([insight(n)], url, dead_letter=dead, retries=2, timeout=2)
        assert result["delivered"] is False and result["attempts"] == 3 and result["starts"] == 1
        assert "SECRET123" not in result["error"]
    lines = dead.read_text().splitlines()
    assert len(lines) == 2
    assert [json.loads(x)["body"]["insights"][0]["eventId"] for x in lines] == ["E1-Start", "E2-Start"]
    assert "SECRET123" not in dead.read_text()


@pytest.mark.parametrize("fmt", ["dingtalk", "slack"])
def test_hostile_strings_are_neutralised(fmt):
    events = [insight(i, obj=s, kind=s) for i, s in enumerate(HOSTILE)]
    events.append({**insight(99), "acsRegion": "<@U123>", "eventTime": "[x](javascript:alert(1))"})
    body = payload(events, fmt=fmt)
    if fmt == "dingtalk":
        texts = [body["markdown"]["text"], body["markdown"]["title"]]
    else:
        texts = [body["text"]] + [b["text"]["text"] for b in body["blocks"]]
        assert all(b["text"]["verbatim"] is True for b in body["blocks"])
    # our own markup: DingTalk "####"/"- " prefixes, Slack *title* and bullets
    values = "\n".join(texts)
    for bad in ("<script>", "](", "[click]", "@everyone", "`", "<!channel>", "<https:", "<@U123>",
                "http://", "javascript:alert(1)", "*bold*", "_it_", "~strike~", "# heading"):
        assert bad not in values, (fmt, bad)
    if fmt == "slack":
        assert "&lt;script&gt;" in values
    # each line is one Start: no value introduced a line break
    lines = [x for t in texts for x in t.splitlines() if "insightCount" in x]
    assert len(lines) == len(events)
    # JSON-wise the body is still valid and round-trips
    assert json.loads(json.dumps(body)) == body


def test_end_events_and_empty_lists_send_nothing(server):
    assert notify_new_starts([], server.url, dead_letter=None) is None
    assert notify_new_starts([insight(0, state="End")], server.url, fmt="slack", dead_letter=None) is None
    assert server.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "example.com/hook", "http://"])
def test_non_http_url_raises(url):
    with pytest.raises(ValueError) as info:
        send(url, {"a": 1})
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError):
        notify_new_starts([insight(0)], url, dead_letter=None)


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="unknown webhook format"):
        payload([insight(0)], fmt="teams")


def test_redact_url_drops_query_and_credentials():
    assert notify.redact_url("https://user:pw@hooks.example.com:8443/a/b?token=x#frag") == "https://hooks.example.com:8443/a/b"
