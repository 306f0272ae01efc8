"""detect --notify and export --format ocsf through the CLI, against a real local HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from insights_kit.simulate import simulate


@pytest.fixture
def hook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?access_token=secret", received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("alerts") / "sim"
    simulate(out, days=4, seed=3, scale=0.005)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "insights_kit.cli", *args], capture_output=True, text=True, timeout=300)


def test_new_starts_are_posted_once_and_a_rerun_sends_nothing(tmp_path, sim, hook):
    url, received = hook
    args = ["detect", str(sim), "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"), "--notify", url]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    assert len(received) == 1 and received[0]["source"] == "insights-kit"
    starts = received[0]["insights"]
    assert starts and {e["insightDetails"]["state"] for e in starts} == {"Start"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["notify"]["delivered"] and summary["notify"]["starts"] == len(starts)
    assert "secret" not in (tmp_path / "out" / "summary.json").read_text()
    again = _cli(*args)
    assert again.returncode == 0 and len(received) == 1  # nothing new: nothing sent


def test_an_unreachable_webhook_is_a_warning_and_a_dead_letter(tmp_path, sim):
    (tmp_path / "c.toml").write_text("[detect]\nnotify_retries = 1\n")
    done = _cli("detect", str(sim), "--out", str(tmp_path / "out"), "--notify", "http://127.0.0.1:9/x?token=secret",
                "--notify-format", "slack", "--config", str(tmp_path / "c.toml"))  # fmt: skip
    assert done.returncode == 0, done.stderr  # the Insights are written; the alert is not lost
    assert "webhook not reached after 2 attempt(s)" in done.stderr and "secret" not in done.stderr
    letter = json.loads((tmp_path / "out" / "notify-dead-letter.jsonl").read_text().splitlines()[0])
    assert letter["body"]["blocks"] and "secret" not in json.dumps(letter)
    bad = _cli("detect", str(sim), "--out", str(tmp_path / "o2"), "--notify-format", "teams")
    assert bad.returncode == 2 and bad.stderr.startswith("insights-kit: error: --notify")


def test_export_writes_ocsf_detection_findings(tmp_path, sim):
    from insights_kit.detect import run_detect

    run_detect([sim], tmp_path / "out")
    done = _cli("export", str(tmp_path / "out"), "--format", "ocsf", "--out", str(tmp_path / "findings.jsonl"))
    assert done.returncode == 0, done.stderr
    findings = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert findings and {f["class_uid"] for f in findings} == {2004}
    assert {f["activity_id"] for f in findings} <= {1, 3}
    assert _cli("export", str(tmp_path / "out"), "--format", "cef", "--out", str(tmp_path / "x")).returncode == 2
