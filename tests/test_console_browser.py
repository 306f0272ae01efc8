"""The Insights console (``WINDOW/index.html``) in a real headless Chromium, offline.

Most tests take ``folder``, a built window folder (``index.html`` + ``console/``), and learn what
to search for from the index embedded in the page, so they run against each console in
``CONSOLES``: the hand-built sample here (every insight type, hostile strings, an open incident,
160 related events) and one written by the real builder from detection on a simulated tree.
"""

from __future__ import annotations

import hashlib
from html import escape
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from insights_kit.console import page
from test_browser import CHROMIUM, Chromium, _png_is_not_blank, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

TYPES = ["ApiCallRateInsight", "ApiErrorRateInsight", "IpInsight", "AkInsight", "PolicyChangeInsight",
         "PasswordChangeInsight", "TrailConcealmentInsight"]
HOSTILE_EVENT = "<img src=x onerror=window.__pwned=1>"
HOSTILE_UA = "</script><script>window.__pwned=1</script>"
HOSTILE_REGION = "ap-\"q'<b>bold</b>"
HOSTILE_PRINCIPAL = "admin\"'<b>root</b>"
SINCE = datetime(2025, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2025, 3, 8, tzinfo=timezone.utc)
COLUMNS = ["eventTime", "eventName", "serviceName", "sourceIpAddress", "principal", "errorCode", "userAgent",
           "eventId", "acsRegion"]


def iso(ts: datetime, *, seconds: bool = True) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%M:00Z")


# ----------------------------------------------------------------------------------------------
# The sample console: a hand-built index and detail files following the data contract.
# ----------------------------------------------------------------------------------------------

OTHER_ACCOUNT = "6543210987654321"


def _incident(n: int, itype: str, obj: str, region: str, start: datetime, minutes: int | None, **extra) -> dict:
    sid = f"{n:08X}-5A72-4213-9AA1-{n:012X}"
    key = hashlib.sha256(sid.encode()).hexdigest()[:16]
    inc = {
        "id": sid, "type": itype, "object": obj, "region": region, "account": "1234567890123456",
        "start": iso(start, seconds=False), "end": None if minutes is None else iso(start + timedelta(minutes=minutes), seconds=False),
        "open": minutes is None, "durationMinutes": minutes if minutes is not None else int((UNTIL - start).total_seconds() // 60),
        "score": None, "ratio": None, "insightCount": 10, "startEventId": f"S{n:07d}-0000-4000-8000-000000000000",
        "endEventId": None if minutes is None else f"E{n:07d}-0000-4000-8000-000000000000", "ip": None,
        "eventName": None, "serviceName": None, "errorCode": None, "accessKeyId": None,
        "summary": f"{itype} on {obj}", "detail": f"console/d/{key}.js",
    }
    inc.update(extra)
    return inc


def _insight_event(inc: dict, state: str) -> dict:
    return {"eventVersion": "1", "eventType": "ActionTrailInsight", "eventCategory": "Insight",
            "eventId": inc["startEventId"] if state == "Start" else inc["endEventId"],
            "eventTime": inc["start"] if state == "Start" else inc["end"], "acsRegion": inc["region"],
            "recipientAccountId": inc["account"], "sharedEventId": inc["id"],
            "insightDetails": {"state": state, "insightType": inc["type"], "insightObject": inc["object"],
                               "insightContext": {"attributions": [
                                   {"attribute": "principalId", "insight": [{"value": HOSTILE_PRINCIPAL, "average": 2}]},
                                   {"attribute": "userAgent", "insight": [{"value": HOSTILE_UA, "average": 2}]}],
                                   "statistics": {"insight": 2, "insightDuration": inc["durationMinutes"], "baseline": 0,
                                                  "baselineDuration": 10080, "insightCount": inc["insightCount"]}}}}


def _detail(inc: dict, *, apis: list[tuple[str, int]], n_events: int, pages_out: dict) -> dict:
    """One detail payload; event pages are added to ``pages_out`` (path -> (key, payload))."""
    start = datetime.strptime(inc["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    end = datetime.strptime(inc["end"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) if inc["end"] else UNTIL
    # call times: spread each API's calls over the incident
    span = max(60, int((end - start).total_seconds()))
    api_rows, hourly, minutely = [], {}, {}
    for a, (api, calls) in enumerate(apis):
        times = [start + timedelta(seconds=(i * span) // max(1, calls) + a) for i in range(calls)]
        api_rows.append({"api": api, "calls": calls, "errors": a, "times": [iso(t) for t in times], "timesTruncated": False})
        for t in times:
            h = t.replace(minute=0, second=0)
            hourly[(h, api)] = hourly.get((h, api), 0) + 1
            m = t.replace(second=0)
            minutely[(m, api)] = minutely.get((m, api), 0) + 1
    # a little background before the incident so the chart has context
    for d in range(1, 5):
        h = (start - timedelta(hours=d * 7)).replace(minute=0, second=0)
        hourly[(h, apis[0][0])] = hourly.get((h, apis[0][0]), 0) + d

    def rows(counts):
        return [{"t": iso(t), "api": api, "calls": c} for (t, api), c in sorted(counts.items())]

    base = inc["detail"][len("console/"):-len(".js")]
    events_pages = []
    for p in range(0, max(1, -(-n_events // 100))):
        path = f"console/{base}-e{p}.js"
        rows_p = []
        for i in range(p * 100, min(n_events, p * 100 + 100)):
            api = apis[i % len(apis)][0]
            svc, name = api.split("/", 1)
            rows_p.append([iso(start + timedelta(seconds=i * 7)), name, svc, inc["ip"] or "192.0.2.1",
                           HOSTILE_PRINCIPAL, None if i % 9 else "Forbidden<b>", HOSTILE_UA,
                           f"EV{i:06d}-{inc['id'][:8]}", inc["region"]])
        pages_out[path] = (f"{base}-e{p}", {"rows": rows_p})
        events_pages.append(path)
    return {
        "id": inc["id"], "start": _insight_event(inc, "Start"), "end": _insight_event(inc, "End") if inc["end"] else None,
        "attributions": [{"attribute": "userIdentity.principalId", "value": HOSTILE_PRINCIPAL, "count": 12, "share": 0.9},
                         {"attribute": "userAgent", "value": HOSTILE_UA, "count": 3, "share": 0.1}],
        "trend": {"title": f"Calls from {inc['object']}" if inc["type"] == "IpInsight" else f"Calls related to {inc['object']}",
                  "buckets": [{"bucketMinutes": 60, "since": iso(SINCE), "until": iso(UNTIL), "rows": rows(hourly)},
                              {"bucketMinutes": 1, "since": iso(start - timedelta(hours=2)),
                               "until": iso(end + timedelta(hours=2)), "rows": rows(minutely)}]},
        "apis": api_rows,
        "heterogeneity": {"score": inc["score"], "threshold": 0.6, "scope": "over the whole incident", "dimensions": [
            {"name": "network", "verdict": "UNSEEN", "score": 1.0, "detail": "/24 never seen in 30 days"},
            {"name": "userAgent", "verdict": "RARE", "score": 0.7, "detail": HOSTILE_UA},
            {"name": "principal", "verdict": "FREQUENT", "score": 0.0, "detail": HOSTILE_PRINCIPAL}]}
        if inc["type"] == "IpInsight" else None,
        "rate": {"title": f"{inc['object']}: write calls per minute", "unit": "write calls",
                 "rows": [{"t": iso(start + timedelta(minutes=m - 60), seconds=False),
                           "count": (12 if 60 <= m < 60 + (inc["durationMinutes"] or 5) else m % 3),
                           "expected": 0.8, "upper": 3.1} for m in range(0, 180)]}
        if inc["type"] in ("ApiCallRateInsight", "ApiErrorRateInsight") else None,
        "incidentSpan": {"start": inc["start"], "end": inc["end"] or iso(UNTIL)},
        "events": {"total": n_events, "pageSize": 100, "columns": COLUMNS, "pages": events_pages},
    }


def build_sample(folder: Path, *, filler: int = 150) -> dict:
    """Write a sample console into ``folder`` with page.py; return facts the tests use."""
    regions = [
        {"region": "cn-hangzhou", "status": "ok", "error": None, "events": 20522, "learning": "", "page": "cn-hangzhou/report.html"},
        {"region": "cn-shanghai", "status": "ok", "error": None, "events": 812,
         "learning": "learning until 2025-03-02T00:00:00Z (no rate or IP insight before)", "page": "cn-shanghai/report.html"},
        {"region": HOSTILE_REGION, "status": "failed", "error": "boom <b>x</b>", "events": 3, "learning": "",
         "page": "javascript:window.__pwned=1"},
    ]
    t = datetime(2025, 3, 7, 10, 2, tzinfo=timezone.utc)
    main_ip = _incident(1, "IpInsight", "203.0.113.9", "cn-hangzhou", t, 38, ip="203.0.113.9", score=0.83,
                        insightCount=160, summary="160 calls from 203.0.113.9, 138 to write APIs")
    open_ip = _incident(2, "IpInsight", "198.51.100.7", "cn-shanghai", datetime(2025, 3, 7, 20, 5, tzinfo=timezone.utc), None,
                        ip="198.51.100.7", score=0.71)
    incidents = [
        main_ip, open_ip,
        _incident(3, "ApiCallRateInsight", "DeleteInstance", "cn-hangzhou", t + timedelta(minutes=3), 20, ratio=14.2,
                  eventName="DeleteInstance", serviceName="Ecs"),
        _incident(4, "ApiErrorRateInsight", "Forbidden.RAM", HOSTILE_REGION, t - timedelta(days=1), 9, ratio=6.5,
                  errorCode="Forbidden.RAM"),
        _incident(5, "AkInsight", "LTAI5tFAKEKEY0000001", "cn-shanghai", t - timedelta(days=2), 15, ratio=8.0,
                  accessKeyId="LTAI5tFAKEKEY0000001"),
        _incident(6, "PolicyChangeInsight", "Ram", "cn-hangzhou", t - timedelta(days=3), 1, score=0.95,
                  eventName=HOSTILE_EVENT, summary=f"AttachPolicyToUser by {HOSTILE_PRINCIPAL}"),
        _incident(7, "PasswordChangeInsight", "Ram", "cn-shanghai", t - timedelta(days=4), 1, score=0.6),
        _incident(8, "TrailConcealmentInsight", "Actiontrail", "cn-hangzhou", t - timedelta(hours=5), 1, score=1.0,
                  eventName="StopLogging"),
    ]
    for n in range(filler):
        itype = TYPES[n % 7]
        incidents.append(_incident(100 + n, itype, f"10.{n // 250}.{n % 250}.1" if itype == "IpInsight" else f"Obj{n}",
                                   ["cn-hangzhou", "cn-shanghai", HOSTILE_REGION][n % 3],
                                   SINCE + timedelta(days=1, minutes=53 * n), 5 + n % 40, score=round((n % 97) / 100, 2),
                                   # an organisation: every third filler incident is another member's
                                   **({"account": OTHER_ACCOUNT} if n % 3 == 1 else {})))
    incidents.sort(key=lambda i: (i["start"], i["id"]))
    index = {"version": 1, "title": "ActionTrail Insights 2025-03-01 → 2025-03-08",
             "window": {"name": "open_open", "since": iso(SINCE), "until": iso(UNTIL)},
             "homeRegion": "cn-hangzhou", "types": TYPES, "regions": regions, "vega": "console/vega.js",
             "incidents": incidents}
    write_console(folder, index)
    pages_out: dict = {}
    apis_main = [("Ecs/DeleteInstance", 140), ("Ecs/DescribeInstances", 12), ("Ram/ListUsers", 3),
                 ("Ecs/" + HOSTILE_EVENT, 20), ("Oss/GetBucket", 1), ("Ecs/StopInstance", 1), ("Vpc/DescribeVpcs", 1),
                 ("Sts/GetCallerIdentity", 1), ("Ecs/DescribeRegions", 1)]
    for inc in incidents:
        if inc is main_ip:
            detail = _detail(inc, apis=apis_main, n_events=160, pages_out=pages_out)
        else:
            detail = _detail(inc, apis=[("Ram/AttachPolicyToUser", 2), ("Ecs/" + HOSTILE_EVENT, 1)], n_events=3,
                             pages_out=pages_out)
        if inc["type"] == "TrailConcealmentInsight" and inc["object"] == "Actiontrail":
            # a sparse detail: no trend, no APIs, no attributions, no events
            detail.update(trend=None, apis=[], attributions=[], heterogeneity=None, rate=None,
                          events={"total": 0, "pageSize": 100, "columns": COLUMNS, "pages": []})
        key = inc["detail"][len("console/"):-len(".js")]
        (folder / inc["detail"]).write_text(page.data_script(key, detail), encoding="utf-8")
    for path, (key, payload) in pages_out.items():
        (folder / path).write_text(page.data_script(key, payload), encoding="utf-8")
    for region in ("cn-hangzhou", "cn-shanghai"):
        (folder / region).mkdir(exist_ok=True)
        (folder / region / "report.html").write_text(f"<!DOCTYPE html><title>{region}</title><p>{region}", encoding="utf-8")
    return {"main_ip": main_ip, "open_ip": open_ip}


_BUNDLE: list[str] = []


def write_console(folder: Path, index: dict) -> None:
    """index.html and console/vega.js (the offline bundle, made once per session)."""
    from insights_kit.console import vega_bundle

    if not _BUNDLE:
        _BUNDLE.append(vega_bundle())
    (folder / "console" / "d").mkdir(parents=True, exist_ok=True)
    (folder / "console" / "vega.js").write_text(_BUNDLE[0], encoding="utf-8")
    (folder / "index.html").write_text(page.render_index_html(index, title=index["title"]), encoding="utf-8")


@pytest.fixture(scope="module")
def sample_console(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("console") / "open_open"
    folder.mkdir()
    build_sample(folder)
    return folder


@pytest.fixture(scope="module")
def real_console(tmp_path_factory) -> Path:
    """The console as ``report`` writes it: detection on the hostile simulated tree, then write_console."""
    from insights_kit import store
    from insights_kit.console import write_console as write_real
    from insights_kit.detect import run_detect
    from insights_kit.readers import load
    from test_report import write_hostile_tree

    root = tmp_path_factory.mktemp("real-console")
    src = write_hostile_tree(root / "src", regions=("cn-hangzhou", "cn-beijing"))
    summary = run_detect([str(src)], root / "insights")
    regions = [{"region": r, "status": "ok", "error": None, "events": s.get("events"), "learning": "",
                "page": f"{r}/report.html"} for r, s in sorted(summary["regions"].items())]
    folder = root / "open_open"
    folder.mkdir()
    write_real(folder, insights=store.read_events(root / "insights"), events=load([src], progress=False).events,
               window="open_open", since=None, until=None, regions=regions, home_region=summary["homeRegion"])
    return folder


#: Fixtures that give a built window folder; the checks run against each.
CONSOLES = ["sample_console", "real_console"]


@pytest.fixture(params=CONSOLES)
def folder(request) -> Path:
    return request.getfixturevalue(request.param)


# ----------------------------------------------------------------------------------------------
# Driving the page
# ----------------------------------------------------------------------------------------------

def read_index(folder: Path) -> dict:
    """The index embedded in ``folder/index.html`` (its escapes are valid JSON)."""
    text = (folder / "index.html").read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="ik-index">(.*?)</script>', text, re.S)
    assert m, "index.html has no embedded index"
    return json.loads(m.group(1))


def js(browser: Chromium, expr: str):
    """Evaluate a JS expression in the page and return its value (via JSON)."""
    return browser.evaluate(f"JSON.stringify((() => {{ const v = ({expr}); return v === undefined ? null : v; }})())")


def wait_for(browser: Chromium, expr: str, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not js(browser, f"!!({expr})"):
        assert time.time() < deadline, f"timed out waiting for {what or expr}"
        time.sleep(0.05)


def open_console(browser: Chromium, folder: Path, fragment: str = "") -> None:
    # via about:blank so a fragment-only change still is a full load
    browser.open("about:blank")
    browser.open((folder / "index.html").as_uri() + fragment)
    wait_for(browser, "document.getElementById('ik-app').dataset.state === 'ready'", what="the console")


def rows(browser: Chromium) -> list[dict]:
    return js(browser, """Array.from(document.querySelectorAll('#ik-rows tr[data-id]')).map(tr => ({
        id: tr.dataset.id, type: tr.cells[0].textContent, object: tr.cells[1].textContent, region: tr.cells[2].textContent}))""")


def search(browser: Chromium, text: str) -> None:
    """Type into the search box as a user would (input events), then wait past the debounce."""
    browser.evaluate(f"""JSON.stringify((() => {{ const q = document.getElementById('ik-q'); q.focus(); q.value = '';
        for (const ch of {json.dumps(text)}) {{ q.value += ch; q.dispatchEvent(new Event('input', {{bubbles: true}})); }}
        return 1; }})())""")
    time.sleep(0.4)


def choose(browser: Chromium, select_id: str, value: str) -> None:
    browser.evaluate(f"""JSON.stringify((() => {{ const s = document.getElementById({json.dumps(select_id)});
        s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change', {{bubbles: true}})); return s.value; }})())""")


def open_incident(browser: Chromium, sid: str) -> None:
    clicked = js(browser, f"""(() => {{ const tr = Array.from(document.querySelectorAll('#ik-rows tr[data-id]'))
        .find(t => t.dataset.id === {json.dumps(sid)}); if (!tr) return false; tr.cells[3].click(); return true; }})()""")
    assert clicked, f"incident {sid} is not in the list"
    wait_for_detail(browser)


def wait_for_detail(browser: Chromium, sid: str | None = None) -> None:
    same = "true" if sid is None else f"document.getElementById('ik-detail').dataset.id === {json.dumps(sid)}"
    wait_for(browser, f"{same} && document.getElementById('ik-detail').dataset.state === 'ready'", what="the detail")
    wait_for(browser, f"{same} && document.getElementById('ik-detail').dataset.charts === 'drawn'", timeout=20, what="the charts")


def follow(browser: Chromium, fragment: str) -> None:
    """A link inside the page: only the fragment changes (hashchange), no reload."""
    js(browser, f"(location.hash = {json.dumps(fragment)}, 1)")


def counts(browser: Chromium) -> dict:
    return js(browser, """Object.fromEntries(Array.from(document.querySelectorAll('#ik-counts .ik-count-group')).map(g =>
        [g.querySelector('h3').textContent, Object.fromEntries(Array.from(g.querySelectorAll('.ik-chip')).map(c =>
        [c.dataset.value, Number(c.querySelector('.ik-chip-n').textContent.replace(/,/g, ''))]))]))""")


def assert_clean(browser: Chromium) -> None:
    assert browser.errors() == [], browser.errors()
    assert js(browser, "window.__alerts") == 0
    remote = [u for u in browser.requests() if not u.startswith(("file:", "data:"))]
    assert remote == [], f"the page fetched {remote}"
    assert js(browser, "typeof window.__pwned") == "undefined"
    assert js(browser, "document.querySelector('img[src=\"x\"]')") is None


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def default_range(index: dict) -> tuple[datetime | None, datetime | None]:
    """The console's default time range: the last 30 days of the window, clipped to its start."""
    window = index.get("window") or {}
    if not window.get("until"):
        return None, None
    until = _ts(window["until"])
    start = until - timedelta(days=30)
    if window.get("since"):
        start = max(start, _ts(window["since"]))
    return start, until


def shown_by_default(index: dict, inc: dict) -> bool:
    """Whether the incident overlaps the default time range (an open incident lasts to the end)."""
    lo, hi = default_range(index)
    if lo is None:
        return True
    end = None if inc["open"] or not inc.get("end") else _ts(inc["end"])
    return _ts(inc["start"]) <= hi and (end is None or end >= lo)


def ip_incident(index: dict, *, open_: bool | None = None) -> dict:
    found = [i for i in index["incidents"] if i["type"] == "IpInsight" and i.get("ip")
             and (open_ is None or i["open"] == open_)]
    assert found, "the console has no IpInsight"
    return max(found, key=lambda i: i.get("insightCount") or 0)


# ----------------------------------------------------------------------------------------------
# Tests on every console in CONSOLES
# ----------------------------------------------------------------------------------------------

def test_search_narrows_to_an_ip(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    inc = ip_incident(index)
    open_console(browser, folder)
    before = rows(browser)
    assert len(before) == min(100, len(index["incidents"])) or len(before) > 0
    search(browser, inc["ip"].upper())  # case-insensitive
    after = rows(browser)
    assert after
    expect = [i["id"] for i in index["incidents"] if inc["ip"] in json.dumps(
        [i.get(k) for k in ("object", "ip", "type", "id", "startEventId", "endEventId", "eventName", "accessKeyId")])]
    assert inc["id"] in [r["id"] for r in after]
    assert set(r["id"] for r in after) <= set(expect), "the search kept rows that do not match"
    assert len(after) < len(index["incidents"])
    assert "q=" + inc["ip"].upper() in js(browser, "location.hash")
    assert_clean(browser)


def test_type_and_region_filter_list_and_counts(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    inc = ip_incident(index)
    open_console(browser, folder)
    choose(browser, "ik-type", "IpInsight")
    got = rows(browser)
    assert got and all(r["type"] == "IpInsight" for r in got)
    c = counts(browser)
    assert list(c["By type"]) == ["IpInsight"]
    choose(browser, "ik-region", inc["region"])
    got = rows(browser)
    assert got and all(r["type"] == "IpInsight" and r["region"] == inc["region"] for r in got)
    c = counts(browser)
    expected = sum(1 for i in index["incidents"] if i["type"] == "IpInsight" and i["region"] == inc["region"]
                   and shown_by_default(index, i))
    assert c == {"By type": {"IpInsight": expected}, "By region": {inc["region"]: expected}}, c
    assert len(got) == min(100, expected)
    assert "type=IpInsight" in js(browser, "location.hash")
    assert_clean(browser)


def test_account_filter_for_an_organisation(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    accounts = sorted({i["account"] for i in index["incidents"]})
    open_console(browser, folder)
    shown = js(browser, "!!document.getElementById('ik-account') && document.getElementById('ik-account').isConnected")
    assert shown == (len(accounts) > 1)  # one account: no account filter on the page
    if len(accounts) < 2:
        return
    choose(browser, "ik-account", OTHER_ACCOUNT)
    expected = sum(1 for i in index["incidents"] if i["account"] == OTHER_ACCOUNT and shown_by_default(index, i))
    assert 0 < expected < len(index["incidents"])
    assert sum(counts(browser)["By type"].values()) == expected
    assert "account=" + OTHER_ACCOUNT in js(browser, "location.hash")
    choose(browser, "ik-account", "")
    assert sum(counts(browser)["By type"].values()) > expected
    assert_clean(browser)


def test_paging_and_sorting(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    open_console(browser, folder)
    total = js(browser, "document.getElementById('ik-status').textContent")
    # the time range defaults to the last 30 days of the data, clipped to the window's start
    lo, hi = default_range(index)
    if lo is not None:
        assert js(browser, "document.getElementById('ik-from').value") == lo.strftime("%Y-%m-%dT%H:%M")
        assert js(browser, "document.getElementById('ik-to').value") == hi.strftime("%Y-%m-%dT%H:%M")
    shown = sum(1 for i in index["incidents"] if shown_by_default(index, i))
    assert f"of {shown:,} incidents" in total or (shown == 0 and "No incident" in total), total
    if len(index["incidents"]) > 100:
        first = rows(browser)
        assert len(first) == 100
        js(browser, "document.getElementById('ik-next').click()")
        second = rows(browser)
        assert second and not set(r["id"] for r in first) & set(r["id"] for r in second), total
    js(browser, "document.querySelector('th button[data-key=\"score\"]').click()")
    assert js(browser, "document.querySelector('th[data-key=\"score\"]').getAttribute('aria-sort')") == "descending"
    assert rows(browser)[0]["id"] in [
        i["id"] for i in index["incidents"]
        if (i["score"] if i["score"] is not None else i["ratio"] if i["ratio"] is not None else -1) ==
        max((x["score"] if x["score"] is not None else x["ratio"] if x["ratio"] is not None else -1)
            for x in index["incidents"])]
    assert_clean(browser)


def test_ip_detail_chart_and_api_highlight(browser: Chromium, folder: Path, tmp_path: Path) -> None:
    index = read_index(folder)
    inc = ip_incident(index)
    open_console(browser, folder)
    search(browser, inc["id"])
    open_incident(browser, inc["id"])
    assert f"incident={inc['id']}" in js(browser, "location.hash")
    heading = js(browser, "document.getElementById('ik-detail-h').textContent")
    assert inc["type"] in heading and inc["object"] in heading
    charts = js(browser, """Array.from(document.querySelectorAll('#ik-detail .ik-chart')).map(c => {
        const s = c.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
        return {role: c.getAttribute('role'), label: c.getAttribute('aria-label'), w: r.width, h: r.height,
                marks: c.querySelectorAll('path, rect').length}; })""")
    assert charts, "no chart in the IP detail"
    assert all(c["role"] == "img" and c["label"] and c["w"] > 200 and c["h"] > 100 and c["marks"] > 3 for c in charts), charts
    assert inc["object"] in charts[0]["label"]
    assert js(browser, "!!window.vegaEmbed")
    apis = js(browser, "Array.from(document.querySelectorAll('#ik-apis button.ik-api')).map(b => b.textContent)")
    assert apis
    if js(browser, "!!document.getElementById('ik-dimensions')"):
        assert js(browser, "document.querySelectorAll('#ik-dimensions tbody tr').length") > 0
    # choose the busiest API: its total is shown and its call times are drawn in the chart
    top = js(browser, """(() => { const b = Array.from(document.querySelectorAll('#ik-apis tbody tr')).sort((x, y) =>
        Number(y.cells[1].textContent.replace(/,/g, '')) - Number(x.cells[1].textContent.replace(/,/g, '')))[0];
        return {api: b.cells[0].textContent, calls: b.cells[1].textContent}; })()""")
    rules_before = js(browser, "document.querySelectorAll('#ik-detail .ik-chart .mark-rule path, #ik-detail .ik-chart .mark-rule line').length")
    js(browser, f"""Array.from(document.querySelectorAll('#ik-apis button.ik-api')).find(b => b.textContent === {json.dumps(top['api'])}).click()""")
    wait_for(browser, "document.getElementById('ik-detail').querySelector('.ik-chart[data-drawn=\"1\"] .mark-rule')", what="the call marks")
    info = js(browser, "document.getElementById('ik-api-info').textContent")
    assert info.startswith(f"{top['api']}: {top['calls']} calls"), info
    rules_after = js(browser, "document.querySelectorAll('#ik-detail .ik-chart .mark-rule line, #ik-detail .ik-chart .mark-rule path').length")
    assert rules_after > rules_before
    assert "highlighting" in js(browser, "document.querySelector('#ik-detail .ik-chart[aria-label*=\"highlighting\"]').getAttribute('aria-label')")
    shot = tmp_path / "detail.png"  # a screenshot of the detail, checked not blank
    js(browser, "window.scrollTo(0, 0)")
    browser.screenshot(shot)
    assert _png_is_not_blank(shot)
    assert_clean(browser)


def test_tabs_events_paging_and_original(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    inc = ip_incident(index)
    open_console(browser, folder, "#incident=" + inc["id"])
    wait_for_detail(browser)
    wait_for(browser, "document.querySelector('#ik-events[data-page], .ik-events[data-page]')", what="the first events page")
    n_events = js(browser, "document.querySelectorAll('#ik-event-rows tr').length")
    assert n_events == min(100, inc["insightCount"]) or n_events > 0
    detail_text = (folder / inc["detail"]).read_text(encoding="utf-8")
    pages = json.loads(re.search(r'"pages":(\[.*?\])', detail_text).group(1))
    if len(pages) > 1:
        assert n_events == 100
        first_id = js(browser, "document.querySelector('#ik-event-rows tr').textContent")
        js(browser, "document.getElementById('ik-events-next').click()")
        wait_for(browser, "document.querySelector('.ik-events').dataset.page === '1'", what="the second events page")
        assert js(browser, "document.querySelector('#ik-event-rows tr').textContent") != first_id
        assert "101–" in js(browser, "document.getElementById('ik-events-info').textContent")
    js(browser, "document.getElementById('ik-tab-original').click()")
    assert js(browser, "document.getElementById('ik-tab-original').getAttribute('aria-selected')") == "true"
    pre = js(browser, "Array.from(document.querySelectorAll('#ik-panel-original pre')).map(p => p.textContent)")
    assert pre and inc["id"] in pre[0]
    json.loads(pre[0])  # pretty-printed JSON, as text
    assert_clean(browser)


def test_deep_links(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    inc = ip_incident(index, open_=True) if any(i["open"] and i["type"] == "IpInsight" for i in index["incidents"]) \
        else ip_incident(index)
    open_console(browser, folder, "#incident=" + inc["id"])
    wait_for_detail(browser)
    assert inc["object"] in js(browser, "document.getElementById('ik-detail-h').textContent")
    assert js(browser, "document.getElementById('ik-list').hidden")
    if inc["open"]:
        assert "open" in js(browser, "document.querySelector('#ik-detail .ik-facts').textContent")
    open_console(browser, folder, "#q=" + inc["ip"] + "&type=IpInsight")
    assert js(browser, "document.getElementById('ik-q').value") == inc["ip"]
    assert js(browser, "document.getElementById('ik-type').value") == "IpInsight"
    got = rows(browser)
    assert inc["id"] in [r["id"] for r in got] and all(r["type"] == "IpInsight" for r in got)
    # hashchange (a link followed inside the page) opens the incident too
    follow(browser, "#incident=" + inc["id"])
    wait_for_detail(browser, inc["id"])
    assert_clean(browser)


def test_hostile_strings_stay_text(browser: Chromium, folder: Path) -> None:
    index = read_index(folder)
    open_console(browser, folder)
    # every incident whose fields carry markup: open its detail, both tabs
    markup = re.compile(r"[<>\"']")
    risky = [i for i in index["incidents"] if any(markup.search(str(i.get(k) or "")) for k in ("object", "region", "eventName", "summary"))][:3]
    for inc in risky + [ip_incident(index)]:
        follow(browser, "#incident=" + inc["id"])
        wait_for_detail(browser, inc["id"])
        wait_for(browser, "document.querySelector('.ik-events[data-page]') || !document.getElementById('ik-event-rows')")
        js(browser, "document.getElementById('ik-tab-original').click()")
        assert_clean(browser)
        assert js(browser, "document.querySelectorAll('#ik-app b, #ik-regions b, #ik-app img, #ik-app script').length") == 0
    # where the data carries markup, it is shown as text
    body = js(browser, "document.body.textContent")
    for r in index["regions"]:
        assert r["region"] in body
    for inc in risky:
        assert str(inc["object"]) in body and str(inc["region"]) in body
    assert js(browser, "document.querySelectorAll('a[href^=\"javascript\"]').length") == 0


def test_keyboard_and_labels(browser: Chromium, folder: Path) -> None:
    open_console(browser, folder)
    unlabeled = js(browser, """Array.from(document.querySelectorAll('input, select')).filter(i =>
        !i.id || !document.querySelector('label[for="' + i.id + '"]')).map(i => i.outerHTML)""")
    assert unlabeled == []
    assert js(browser, "document.querySelectorAll('th button.ik-sort').length") == 8
    assert js(browser, "document.querySelectorAll('#ik-rows [onclick], #ik-rows div[tabindex]').length") == 0
    assert js(browser, "getComputedStyle(document.querySelector('#ik-rows code')).whiteSpace") == "nowrap"
    browser.call("Input.dispatchKeyEvent", type="keyDown", key="Tab", code="Tab", windowsVirtualKeyCode=9)
    browser.call("Input.dispatchKeyEvent", type="keyUp", key="Tab", code="Tab", windowsVirtualKeyCode=9)
    assert js(browser, "document.activeElement.id") == "ik-q"
    assert_clean(browser)


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

def test_rate_detail_draws_line_and_band(browser, sample_console):
    index = read_index(sample_console)
    inc = next(i for i in index["incidents"] if i["type"] == "ApiCallRateInsight" and i["object"] == "DeleteInstance")
    open_console(browser, sample_console, "#incident=" + inc["id"])
    wait_for_detail(browser)
    marks = js(browser, """Array.from(document.querySelectorAll('#ik-detail .ik-chart')).map(c => ({
        area: c.querySelectorAll('.mark-area path').length, line: c.querySelectorAll('.mark-line path').length,
        w: c.getBoundingClientRect().width, label: c.getAttribute('aria-label')}))""")
    assert any(m["area"] and m["line"] and m["w"] > 200 for m in marks), marks
    assert_clean(browser)


def test_tooltip_shows_markup_as_text(browser, sample_console):
    """Hover the bars of the hostile API (zoomed in by a from/to deep link): the tooltip is text."""
    inc = ip_incident(read_index(sample_console))
    open_console(browser, sample_console, "#from=2025-03-07T09%3A30%3A00Z&to=2025-03-07T11%3A30%3A00Z&incident=" + inc["id"])
    wait_for_detail(browser, inc["id"])
    assert js(browser, "document.getElementById('ik-from').value") == "2025-03-07T09:30"
    assert "per minute" in js(browser, "document.querySelector('#ik-detail .ik-chart').getAttribute('aria-label')")
    bars = js(browser, """Array.from(document.querySelectorAll('#ik-detail .ik-chart .mark-rect path')).map(p => {
        const r = p.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2, r.width, r.height]; })
        .filter(b => b[2] >= 1 && b[3] >= 2 && b[2] < 50)""")
    seen = None
    for x, y, _, _ in bars:
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        tip = js(browser, """(() => { const e = document.getElementById('vg-tooltip-element');
            return e && e.classList.contains('visible') ? {text: e.textContent,
            tags: Array.from(e.querySelectorAll('*')).map(n => n.tagName.toLowerCase())} : null; })()""")
        if tip and HOSTILE_EVENT in tip["text"]:
            seen = tip
            break
    assert seen, "no tooltip showed the hostile API"
    assert set(seen["tags"]) <= {"table", "tbody", "tr", "td"}, seen
    assert_clean(browser)


def test_csp_forbids_eval_and_network(browser, sample_console):
    """The page's own policy: a static probe script in a copy of index.html may run, eval and fetch may not.

    (Scripts injected over DevTools are exempt from CSP, so the probe has to be part of the page.)
    """
    probe = ("<script>window.__f = 'pending'; try { eval('1'); window.__e = 'ran'; } catch (e) { window.__e = e.name; }"
             "fetch('http://192.0.2.1/x').then(() => { window.__f = 'ok'; }, (e) => { window.__f = e.name; });</script>")
    html = (sample_console / "index.html").read_text(encoding="utf-8")
    copy = sample_console / "csp-probe.html"
    copy.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
    try:
        browser.open("about:blank")
        browser.open(copy.as_uri())
        wait_for(browser, "window.__f !== 'pending'")
        assert js(browser, "[window.__e, window.__f]") == ["EvalError", "TypeError"]
        assert not [u for u in browser.requests() if u.startswith("http")]
    finally:
        copy.unlink()


def test_sparse_detail_and_empty_range(browser, sample_console):
    index = read_index(sample_console)
    sparse = next(i for i in index["incidents"] if i["type"] == "TrailConcealmentInsight" and i["object"] == "Actiontrail")
    open_console(browser, sample_console, "#incident=" + sparse["id"])
    wait_for_detail(browser, sparse["id"])
    text = js(browser, "document.getElementById('ik-detail').textContent")
    assert "No attributions" in text and "No related management events" in text
    assert js(browser, "document.querySelectorAll('#ik-detail .ik-chart').length") == 0
    # a range with no call from the address: the chart is still drawn, empty, without errors
    inc = ip_incident(index)
    follow(browser, "#from=2025-03-01T00%3A00%3A00Z&to=2025-03-01T05%3A00%3A00Z&incident=" + inc["id"])
    wait_for_detail(browser, inc["id"])
    assert "0 calls" in js(browser, "document.querySelector('#ik-detail .ik-trend-note').textContent")
    # an unknown incident: a message, no detail
    follow(browser, "#incident=NOPE")
    wait_for(browser, "document.getElementById('ik-detail').hidden")
    assert "NOPE" in js(browser, "document.getElementById('ik-status').textContent")
    assert_clean(browser)


def test_list_screenshot(browser, sample_console, tmp_path):
    open_console(browser, sample_console)
    browser.screenshot(tmp_path / "list.png")
    assert _png_is_not_blank(tmp_path / "list.png")
    # the region pages stay reachable; the unsafe one is not linked
    links = js(browser, "Array.from(document.querySelectorAll('#ik-regions a')).map(a => a.getAttribute('href'))")
    assert links == ["cn-hangzhou/report.html", "cn-shanghai/report.html"]
    assert_clean(browser)


def test_ten_thousand_incidents_render_fast(browser, tmp_path):
    """10,000 incidents (about 3 MB of index): the first render is well under 2 s."""
    pytest.importorskip("vl_convert")
    folder = tmp_path / "big"
    folder.mkdir()
    incidents = [_incident(i, TYPES[i % 7], f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
                           ["cn-hangzhou", "cn-shanghai", "eu-central-1"][i % 3],
                           SINCE + timedelta(minutes=i), 5 + i % 30, score=(i % 100) / 100,
                           summary=f"incident {i} with a longer summary to make the index realistic in size")
                 for i in range(10_000)]
    index = {"version": 1, "title": "big", "window": {"name": "open_open", "since": iso(UNTIL - timedelta(days=60)), "until": iso(UNTIL)},
             "homeRegion": "cn-hangzhou", "types": TYPES,
             "regions": [{"region": r, "status": "ok", "error": None, "events": 1, "learning": "", "page": None}
                         for r in ("cn-hangzhou", "cn-shanghai", "eu-central-1")],
             "vega": "console/vega.js", "incidents": incidents}
    write_console(folder, index)
    assert (folder / "index.html").stat().st_size > 2_500_000
    open_console(browser, folder)
    ready = js(browser, "window.__ikReady")
    assert ready < 2000, f"first render took {ready:.0f} ms"
    print(f"10,000 incidents: first render at {ready:.0f} ms")
    assert js(browser, "document.getElementById('ik-from').value") == "2025-02-06T00:00"  # until - 30 days
    assert len(rows(browser)) == 100
    # the chart library is loaded lazily: not for the list
    assert js(browser, "typeof window.vegaEmbed") == "undefined"
    assert not [u for u in browser.requests() if u.endswith("/vega.js")], "vega was loaded for the list"
    start = time.time()
    search(browser, "10.0.1.")
    assert 0 < len(rows(browser)) <= 100
    assert time.time() - start < 2
    assert_clean(browser)


# ----------------------------------------------------------------------------------------------
# page.py without a browser
# ----------------------------------------------------------------------------------------------

def test_safe_json_cannot_close_a_script():
    text = page.safe_json({"a": "</script><b>&\u2028\u2029", "z": 1})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><b>&\u2028\u2029", "z": 1}
    with pytest.raises(ValueError):
        page.safe_json({"x": float("nan")})


def test_data_script_and_static_html():
    assert page.data_script("d/ab", {"rows": [["</script>"]]}) == 'window.__ikData("d/ab",{"rows":[["\\u003c/script\\u003e"]]});\n'
    index = {"version": 1, "window": {"since": None, "until": None}, "types": TYPES, "incidents": [], "vega": "console/vega.js",
             "regions": [{"region": HOSTILE_REGION, "status": "ok", "error": "<i>e</i>", "events": 1, "learning": "", "page": "../x.html"},
                         {"region": "cn-hangzhou", "status": "ok", "error": None, "events": 2, "learning": "", "page": "cn-hangzhou/report.html"}]}
    html = page.render_index_html(index, title="<b>t</b>")
    assert html.startswith("<!DOCTYPE html>") and "connect-src 'none'" in page.CSP
    assert f'http-equiv="Content-Security-Policy" content="{escape(page.CSP)}"' in html
    assert "<b>" not in html and "<i>" not in html and 'href="../x.html"' not in html
    assert 'href="cn-hangzhou/report.html"' in html and "<noscript>" in html
    assert html.count("</script>") == 2  # the index and the app: nothing in the data closes a script
