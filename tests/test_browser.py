"""The HTML report in a real headless Chromium: charts drawn, no console errors, nothing fetched.

Talks to Chromium over the DevTools protocol (a few messages on one websocket) to read the
rendered size of every chart and to collect exceptions and console errors. Skips, saying why,
when Chromium or the websocket client is missing (``make browser-deps`` installs Chromium).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from insights_kit import report
from test_report import write_hostile_tree

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,2000"]
# Every chart as drawn: <img> (nbconvert embeds SVG as data: images) and inline <svg>.
CHARTS_JS = """JSON.stringify({
  imgs: Array.from(document.images).map(i => ({w: i.naturalWidth, h: i.naturalHeight,
        rw: i.getBoundingClientRect().width, rh: i.getBoundingClientRect().height, src: i.src.slice(0, 26)})),
  svgs: Array.from(document.querySelectorAll('svg')).map(s => s.getBoundingClientRect().width),
  scripts: Array.from(document.scripts).map(s => s.src).filter(Boolean),
  links: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')),
  title: document.title, alerts: window.__alerts || 0})"""


class Chromium:
    """A headless Chromium and one DevTools session on its first page."""

    def __init__(self, profile: Path) -> None:
        import websocket  # websocket-client

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            self.call(method)
        # a dialog would block the page: count alert() calls instead (there must be none)
        self.call("Page.addScriptToEvaluateOnNewDocument",
                  source="window.__alerts=0; window.alert=()=>{window.__alerts++};")

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.time() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.time() < deadline, f"{url} did not load"
            self.events.append(json.loads(self.ws.recv()))
        time.sleep(0.5)  # let late scripts report their errors
        self.call("Runtime.evaluate", expression="1")

    def evaluate(self, js: str):
        return json.loads(self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"])

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                found.append(json.dumps(p["exceptionDetails"])[:300])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append(json.dumps(p["args"])[:300])
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(p["entry"].get("text", "")[:300])
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium not found (apt-get install -y chromium, or make browser-deps)")
    pytest.importorskip("websocket", reason="websocket-client is needed to talk to Chromium")
    chrome = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


@pytest.fixture(scope="module")
def built_report(tmp_path_factory):
    try:
        import insights_kit.detectors.call_rate  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"detection is not importable yet: {exc}")
    root = tmp_path_factory.mktemp("browser")
    src = write_hostile_tree(root / "src", regions=("cn-hangzhou",))
    result = report.run_report([src], root / "out", regions=["cn-hangzhou"], jobs=1)
    assert result["failed"] == []
    return root / "out"


def _png_is_not_blank(path: Path) -> bool:
    import zlib

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG")
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return len(set(raw[i:i + 3] for i in range(0, min(len(raw), 3_000_000), 997))) > 20


def test_index_pages_render_without_errors(browser, built_report):
    browser.open((built_report / "index.html").as_uri())
    state = browser.evaluate(CHARTS_JS)
    assert browser.errors() == []
    assert "open_open/index.html" in state["links"]
    browser.open((built_report / "open_open" / "index.html").as_uri())
    state = browser.evaluate(CHARTS_JS)
    assert browser.errors() == [] and state["alerts"] == 0
    assert "cn-hangzhou/report.html" in state["links"]
    assert all(u.startswith(("file:", "data:")) for u in browser.requests())


def test_region_page_draws_its_charts_offline(browser, built_report, tmp_path):
    page = built_report / "open_open" / "cn-hangzhou" / "report.html"
    browser.open(page.as_uri())
    state = browser.evaluate(CHARTS_JS)
    assert browser.errors() == [], "console errors on the region page"
    assert state["alerts"] == 0 and state["scripts"] == []
    charts = [i for i in state["imgs"] if i["src"].startswith("data:image/svg+xml")]
    assert len(charts) >= 5, state["imgs"]
    assert all(i["w"] > 100 and i["h"] > 30 and i["rw"] > 100 and i["rh"] > 30 for i in charts), charts
    remote = [u for u in browser.requests() if not u.startswith(("file:", "data:"))]
    assert remote == [], f"the page fetched {remote}"
    shot = tmp_path / "page.png"
    browser.screenshot(shot)
    assert _png_is_not_blank(shot)


def test_cli_flags_screenshot_and_console(built_report, tmp_path):
    """The plain command line (no DevTools): --screenshot is not blank, stderr has no console errors."""
    if CHROMIUM is None:
        pytest.skip("chromium not found (apt-get install -y chromium, or make browser-deps)")
    page = built_report / "open_open" / "cn-hangzhou" / "report.html"
    shot = tmp_path / "shot.png"
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                          "--v=0", f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists() and _png_is_not_blank(shot), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]
    assert console == []
