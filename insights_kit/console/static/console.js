/* insights-kit Insights console: the incident list, filters, counts and per-incident detail.
 *
 * Works offline from file://. The index is embedded as JSON; an incident's detail and each page of
 * its ActionTrail events are classic scripts injected on demand (fetch() of file: is blocked), and
 * each calls window.__ikData(key, payload). The Vega bundle is injected only when a chart is needed.
 *
 * Safety: every data string may be attacker-chosen. Data reaches the DOM only through
 * createTextNode / textContent / setAttribute of non-URL attributes; URLs come only from the
 * page/detail/pages fields and must pass safePath(). Vega-Lite specs carry data in data.values,
 * never in expressions.
 */
(function () {
  "use strict";

  const PAGE_SIZE = 100;
  const DAY_MS = 86400000;
  const DEBOUNCE_MS = 150;
  const TOP_APIS = 8;
  const PATH_RE = /^[A-Za-z0-9._\/-]+$/;
  const RATE_TYPES = new Set(["ApiCallRateInsight", "ApiErrorRateInsight"]);
  // Columns of the incident list: key, heading, how to sort.
  const COLUMNS = [
    ["type", "Type"], ["object", "Object"], ["region", "Region"], ["start", "Start (UTC)"],
    ["end", "End (UTC)"], ["duration", "Duration"], ["score", "Score / ratio"], ["status", "Status"],
  ];

  const index = JSON.parse(document.getElementById("ik-index").textContent);
  const app = document.getElementById("ik-app");

  /* ---------- DOM helpers (the only way data reaches the page) ---------- */

  // el("td", {class: "x"}, "text", node): strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "href" || key === "src") {
        const safe = safePath(value);
        if (safe) node.setAttribute(key, safe);
      } else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // IDs, IPs and event names go in <code> (styled nowrap so they never break).
  function code(value) {
    return el("code", {}, value == null ? "" : String(value));
  }

  // A relative path of plain characters, never "..", never absolute, never a scheme.
  function safePath(value) {
    if (typeof value !== "string" || !PATH_RE.test(value)) return null;
    if (value.startsWith("/") || value.includes("..") || value.includes("//")) return null;
    return value;
  }

  function debounce(fn, ms) {
    let timer = 0;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  /* ---------- time ---------- */

  function parseIso(value) {
    if (typeof value !== "string" || !value) return NaN;
    return Date.parse(value);
  }

  // Input text: ISO with Z/offset as is; "YYYY-MM-DDTHH:MM" (datetime-local) is read as UTC.
  function parseInput(value) {
    const text = String(value || "").trim();
    if (!text) return NaN;
    if (/(Z|[+-]\d\d:?\d\d)$/i.test(text)) return Date.parse(text);
    return Date.parse(text.replace(" ", "T") + (/T\d\d:\d\d/.test(text) ? "Z" : "T00:00Z"));
  }

  function isoOut(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  function inputValue(ms) {
    return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 16) : "";
  }

  function fmtTime(ms) {
    return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "";
  }

  function fmtDay(ms) {
    return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 10) : "";
  }

  function fmtDuration(minutes) {
    if (minutes == null || !Number.isFinite(minutes)) return "";
    if (minutes < 60) return `${minutes} min`;
    if (minutes < 1440) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
    return `${Math.floor(minutes / 1440)} d ${Math.floor((minutes % 1440) / 60)} h`;
  }

  function fmtNumber(value) {
    if (typeof value !== "number") return value == null ? "" : String(value);
    return Number.isInteger(value) ? value.toLocaleString("en-US") : String(Math.round(value * 1000) / 1000);
  }

  /* ---------- the index, prepared once ---------- */

  const types = Array.isArray(index.types) ? index.types.map(String) : [];
  const regionNames = [];
  const accountNames = []; // an organisation trail's member accounts (the filter shows when there are several)
  for (const r of index.regions || []) if (!regionNames.includes(String(r.region))) regionNames.push(String(r.region));

  const records = (index.incidents || []).map((inc, i) => {
    const start = parseIso(inc.start);
    const end = inc.end ? parseIso(inc.end) : NaN;
    const hay = [inc.object, inc.ip, inc.type, inc.id, inc.startEventId, inc.endEventId, inc.eventName, inc.accessKeyId, inc.account]
      .filter((v) => v != null).map((v) => String(v).toLowerCase()).join("\n");
    const region = String(inc.region);
    if (!regionNames.includes(region)) regionNames.push(region);
    const account = inc.account == null ? "" : String(inc.account);
    if (!accountNames.includes(account)) accountNames.push(account);
    return { inc, i, start, end, hay, region, account };
  });
  accountNames.sort();
  const byId = new Map(records.map((r) => [String(r.inc.id), r]));

  const windowSince = parseIso((index.window || {}).since);
  const windowUntil = (() => {
    const until = parseIso((index.window || {}).until);
    if (Number.isFinite(until)) return until;
    // an open window: the latest time the data shows
    let latest = NaN;
    for (const r of records) latest = Math.max(Number.isFinite(latest) ? latest : -Infinity, r.start, Number.isFinite(r.end) ? r.end : r.start);
    return Number.isFinite(latest) ? latest : Date.now();
  })();
  // The default time range: the last 30 days of the data, clipped to the window's start.
  const defaultFrom = Number.isFinite(windowSince) ? Math.max(windowSince, windowUntil - 30 * DAY_MS) : windowUntil - 30 * DAY_MS;
  const defaultTo = windowUntil;

  const state = {
    q: "", type: "", region: "", account: "", from: defaultFrom, to: defaultTo,
    sort: "start", dir: 1, page: 0, incident: null,
  };
  let filteredCache = null; // {key, list}
  const ui = {};

  /* ---------- filtering, sorting ---------- */

  function filterKey() {
    return JSON.stringify([state.q.toLowerCase(), state.type, state.region, state.account, state.from, state.to, state.sort, state.dir]);
  }

  function sortValue(r, key) {
    const inc = r.inc;
    switch (key) {
      case "type": return inc.type;
      case "object": return inc.object == null ? null : String(inc.object);
      case "region": return r.region;
      case "start": return r.start;
      case "end": return inc.open ? Infinity : r.end;
      case "duration": return inc.durationMinutes;
      case "score": return inc.score != null ? inc.score : inc.ratio;
      case "status": return inc.open ? 0 : 1;
      default: return r.i;
    }
  }

  function compare(a, b, key, dir) {
    const va = sortValue(a, key), vb = sortValue(b, key);
    const na = va == null || (typeof va === "number" && Number.isNaN(va));
    const nb = vb == null || (typeof vb === "number" && Number.isNaN(vb));
    if (na || nb) return na === nb ? a.i - b.i : na ? 1 : -1; // missing values last either way
    if (va < vb) return -dir;
    if (va > vb) return dir;
    return a.i - b.i; // stable: index order (start, then id)
  }

  function filtered() {
    const key = filterKey();
    if (filteredCache && filteredCache.key === key) return filteredCache.list;
    const q = state.q.trim().toLowerCase();
    const from = Number.isFinite(state.from) ? state.from : -Infinity;
    const to = Number.isFinite(state.to) ? state.to : Infinity;
    const list = records.filter((r) => {
      if (state.type && r.inc.type !== state.type) return false;
      if (state.region && r.region !== state.region) return false;
      if (state.account && r.account !== state.account) return false;
      if (q && !r.hay.includes(q)) return false;
      const end = r.inc.open || !Number.isFinite(r.end) ? Infinity : r.end;
      return r.start <= to && end >= from; // the incident overlaps the range
    });
    if (!(state.sort === "start" && state.dir === 1)) list.sort((a, b) => compare(a, b, state.sort, state.dir));
    filteredCache = { key, list };
    return list;
  }

  /* ---------- URL fragment ---------- */

  function writeHash() {
    const parts = [];
    if (state.q) parts.push("q=" + encodeURIComponent(state.q));
    if (state.type) parts.push("type=" + encodeURIComponent(state.type));
    if (state.region) parts.push("region=" + encodeURIComponent(state.region));
    if (state.account) parts.push("account=" + encodeURIComponent(state.account));
    if (state.from !== defaultFrom && Number.isFinite(state.from)) parts.push("from=" + encodeURIComponent(isoOut(state.from)));
    if (state.to !== defaultTo && Number.isFinite(state.to)) parts.push("to=" + encodeURIComponent(isoOut(state.to)));
    if (state.incident) parts.push("incident=" + encodeURIComponent(state.incident));
    const hash = parts.length ? "#" + parts.join("&") : "";
    if (hash === location.hash || (!hash && !location.hash)) return;
    try {
      history.replaceState(null, "", hash || location.pathname + location.search);
    } catch (err) {
      // some file:// setups refuse replaceState; the state still works, only the link is stale
    }
  }

  function readHash() {
    const params = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const name = eq < 0 ? part : part.slice(0, eq);
      try {
        params[name] = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
      } catch (err) {
        params[name] = ""; // malformed escape: ignore the value
      }
    }
    return params;
  }

  function applyHash() {
    const p = readHash();
    state.q = p.q || "";
    state.type = types.includes(p.type) ? p.type : "";
    state.region = regionNames.includes(p.region) ? p.region : "";
    state.account = accountNames.includes(p.account) && p.account !== "" ? p.account : "";
    const from = parseInput(p.from), to = parseInput(p.to);
    state.from = Number.isFinite(from) ? from : defaultFrom;
    state.to = Number.isFinite(to) ? to : defaultTo;
    state.page = 0;
    syncInputs();
    renderList();
    if (p.incident && byId.has(p.incident)) openDetail(p.incident, { focus: true });
    else {
      if (p.incident) setStatus(`No incident with the ID ${p.incident} in this report.`);
      closeDetail({ focus: false });
    }
  }

  /* ---------- the filters ---------- */

  function buildFilters() {
    const form = el("form", { class: "ik-filters", role: "search", "aria-label": "Filter incidents", onsubmit: (e) => e.preventDefault() });
    ui.q = el("input", { id: "ik-q", type: "search", autocomplete: "off", spellcheck: "false", placeholder: "IP, insight type, event ID…" });
    ui.type = el("select", { id: "ik-type" }, el("option", { value: "" }, "All types"), types.map((t) => el("option", { value: t }, t)));
    ui.region = el("select", { id: "ik-region" }, el("option", { value: "" }, "All regions"), regionNames.map((r) => el("option", { value: r }, r)));
    ui.account = el("select", { id: "ik-account" }, el("option", { value: "" }, "All accounts"),
      accountNames.map((a) => el("option", { value: a }, a || "(no account)")));
    ui.from = el("input", { id: "ik-from", type: "datetime-local", step: "60" });
    ui.to = el("input", { id: "ik-to", type: "datetime-local", step: "60" });
    const field = (id, label, input, cls) => el("div", { class: "ik-field " + (cls || "") }, el("label", { for: id }, label), input);
    append(form, [
      field("ik-q", "Search (IP, type, event ID)", ui.q, "ik-field-wide"),
      field("ik-type", "Insight type", ui.type),
      field("ik-region", "Region", ui.region),
      accountNames.length > 1 ? field("ik-account", "Account", ui.account) : null,
      field("ik-from", "From (UTC)", ui.from),
      field("ik-to", "To (UTC)", ui.to),
      el("div", { class: "ik-field ik-field-button" },
        el("button", { type: "button", id: "ik-reset", onclick: resetFilters }, "Reset filters")),
    ]);
    // typing is debounced so 10,000 incidents are not re-filtered per keystroke
    const onSearch = debounce(() => { state.q = ui.q.value; filtersChanged(); }, DEBOUNCE_MS);
    ui.q.addEventListener("input", onSearch);
    ui.type.addEventListener("change", () => { state.type = ui.type.value; filtersChanged(); });
    ui.region.addEventListener("change", () => { state.region = ui.region.value; filtersChanged(); });
    ui.account.addEventListener("change", () => { state.account = ui.account.value; filtersChanged(); });
    const onTime = (which, input) => () => {
      const value = parseInput(input.value);
      state[which] = Number.isFinite(value) ? value : which === "from" ? defaultFrom : defaultTo;
      filtersChanged({ keepDetail: true });
    };
    ui.from.addEventListener("change", onTime("from", ui.from));
    ui.to.addEventListener("change", onTime("to", ui.to));
    ui.from.addEventListener("input", debounce(onTime("from", ui.from), DEBOUNCE_MS * 2));
    ui.to.addEventListener("input", debounce(onTime("to", ui.to), DEBOUNCE_MS * 2));
    return form;
  }

  function syncInputs() {
    ui.q.value = state.q;
    ui.type.value = state.type;
    ui.region.value = state.region;
    ui.account.value = state.account;
    ui.from.value = inputValue(state.from);
    ui.to.value = inputValue(state.to);
  }

  function resetFilters() {
    Object.assign(state, { q: "", type: "", region: "", account: "", from: defaultFrom, to: defaultTo, page: 0 });
    syncInputs();
    filtersChanged();
  }

  // Search/type/region changes return to the list; a time change keeps an open detail (its chart follows).
  function filtersChanged(opts) {
    state.page = 0;
    if (state.incident && !(opts && opts.keepDetail)) closeDetail({ focus: false });
    renderList();
    if (state.incident && current) redrawTrend();
    writeHash();
  }

  /* ---------- counts ---------- */

  function renderCounts(list) {
    const byType = new Map(), byRegion = new Map();
    for (const r of list) {
      byType.set(r.inc.type, (byType.get(r.inc.type) || 0) + 1);
      byRegion.set(r.region, (byRegion.get(r.region) || 0) + 1);
    }
    const group = (title, counts, order, pick) => {
      const items = order.filter((k) => counts.has(k)).concat([...counts.keys()].filter((k) => !order.includes(k)));
      return el("div", { class: "ik-count-group" },
        el("h3", {}, title),
        items.length ? el("ul", { class: "ik-counts-list" }, items.map((k) =>
          el("li", {}, el("button", { type: "button", class: "ik-chip", "data-value": k, onclick: () => pick(k),
            title: `Show only ${k}` }, el("span", { class: "ik-chip-name" }, k), " ", el("span", { class: "ik-chip-n" }, fmtNumber(counts.get(k)))))))
          : el("p", { class: "ik-muted" }, "none"));
    };
    ui.counts.replaceChildren(
      group("By type", byType, types, (k) => { state.type = k; syncInputs(); filtersChanged(); }),
      group("By region", byRegion, regionNames, (k) => { state.region = k; syncInputs(); filtersChanged(); }));
  }

  /* ---------- the list ---------- */

  function buildList() {
    ui.counts = el("div", { class: "ik-counts", id: "ik-counts", "aria-label": "Counts of the filtered incidents" });
    ui.status = el("p", { class: "ik-status", id: "ik-status", role: "status", "aria-live": "polite" });
    ui.thead = el("tr");
    for (const [key, label] of COLUMNS) {
      ui.thead.appendChild(el("th", { scope: "col", "data-key": key },
        el("button", { type: "button", class: "ik-sort", "data-key": key, onclick: () => sortBy(key) }, label,
          el("span", { class: "ik-sort-mark", "aria-hidden": "true" }))));
    }
    ui.tbody = el("tbody", { id: "ik-rows" });
    ui.table = el("table", { class: "ik-table ik-incidents", id: "ik-incidents" },
      el("caption", { class: "ik-visually-hidden" }, "Incidents; activate a type to open its detail"),
      el("thead", {}, ui.thead), ui.tbody);
    ui.tbody.addEventListener("click", (e) => {
      const row = e.target.closest("tr[data-id]");
      if (row && !e.target.closest("button")) openDetail(row.getAttribute("data-id"), { focus: true });
    });
    ui.prev = el("button", { type: "button", id: "ik-prev", onclick: () => turnPage(-1) }, "‹ Previous");
    ui.next = el("button", { type: "button", id: "ik-next", onclick: () => turnPage(1) }, "Next ›");
    ui.pageInfo = el("span", { class: "ik-page-info", id: "ik-page-info" });
    ui.pager = el("nav", { class: "ik-pager", "aria-label": "Incident pages" }, ui.prev, ui.pageInfo, ui.next);
    ui.listView = el("section", { id: "ik-list", "aria-labelledby": "ik-list-h" },
      el("h2", { id: "ik-list-h" }, "Incidents"), ui.counts, ui.status, el("div", { class: "ik-scroll" }, ui.table), ui.pager);
    return ui.listView;
  }

  function sortBy(key) {
    if (state.sort === key) state.dir = -state.dir;
    else { state.sort = key; state.dir = key === "score" || key === "duration" ? -1 : 1; }
    state.page = 0;
    renderList();
    const button = ui.thead.querySelector(`button[data-key="${key}"]`); // key is one of COLUMNS, not data
    if (button) button.focus();
  }

  function turnPage(step) {
    const pages = Math.max(1, Math.ceil(filtered().length / PAGE_SIZE));
    state.page = Math.min(pages - 1, Math.max(0, state.page + step));
    renderList();
  }

  function scoreText(inc) {
    if (inc.score != null) return `score ${fmtNumber(inc.score)}`;
    if (inc.ratio != null) return `×${fmtNumber(inc.ratio)}`;
    return "";
  }

  function incidentRow(r) {
    const inc = r.inc;
    return el("tr", { "data-id": String(inc.id), class: inc.open ? "ik-open" : null },
      el("td", {}, el("button", { type: "button", class: "ik-link", "aria-label": `Open ${inc.type} ${inc.object == null ? "" : inc.object}`,
        onclick: () => openDetail(String(inc.id), { focus: true }) }, String(inc.type))),
      el("td", {}, code(inc.object)),
      el("td", {}, code(r.region)),
      el("td", { class: "ik-time" }, fmtTime(r.start)),
      el("td", { class: "ik-time" }, inc.open ? "—" : fmtTime(r.end)),
      el("td", { class: "ik-num" }, fmtDuration(inc.durationMinutes)),
      el("td", { class: "ik-num" }, scoreText(inc)),
      el("td", {}, el("span", { class: inc.open ? "ik-badge ik-badge-open" : "ik-badge" }, inc.open ? "open" : "closed")));
  }

  function renderList() {
    const list = filtered();
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const first = state.page * PAGE_SIZE;
    const fragment = document.createDocumentFragment();
    for (const r of list.slice(first, first + PAGE_SIZE)) fragment.appendChild(incidentRow(r));
    ui.tbody.replaceChildren(fragment);
    if (!list.length) ui.tbody.appendChild(el("tr", {}, el("td", { colspan: COLUMNS.length, class: "ik-muted" }, "No incident matches these filters.")));
    for (const th of ui.thead.children) {
      const key = th.getAttribute("data-key");
      if (key === state.sort) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
      th.querySelector(".ik-sort-mark").textContent = key === state.sort ? (state.dir > 0 ? " ▲" : " ▼") : "";
    }
    ui.prev.disabled = state.page === 0;
    ui.next.disabled = state.page >= pages - 1;
    ui.pageInfo.textContent = `Page ${state.page + 1} of ${pages}`;
    const range = `${fmtTime(state.from)} to ${fmtTime(state.to)} UTC`;
    setStatus(list.length
      ? `Showing ${fmtNumber(first + 1)}–${fmtNumber(Math.min(list.length, first + PAGE_SIZE))} of ${fmtNumber(list.length)} incidents (${fmtNumber(records.length)} in the report), ${range}.`
      : `No incident of ${fmtNumber(records.length)} matches, ${range}.`);
    renderCounts(list);
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  /* ---------- on-demand scripts ---------- */

  const dataCache = new Map();
  const waiting = new Map();
  const inflight = new Map();

  // Data files call this; only keys we asked for are accepted.
  window.__ikData = function (key, payload) {
    if (typeof key !== "string" || !waiting.has(key)) return;
    dataCache.set(key, payload);
    const resolve = waiting.get(key);
    waiting.delete(key);
    resolve(payload);
  };

  function loadScript(path) {
    const safe = safePath(path);
    if (!safe) return Promise.reject(new Error("refused an unsafe path"));
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = safe;
      script.async = true;
      script.onload = () => { script.remove(); resolve(); };
      script.onerror = () => { script.remove(); reject(new Error(`could not load ${safe}`)); };
      document.head.appendChild(script);
    });
  }

  function loadData(path) {
    const safe = safePath(path);
    if (!safe) return Promise.reject(new Error("refused an unsafe data path"));
    const key = safe.replace(/^console\//, "").replace(/\.js$/, "");
    if (dataCache.has(key)) return Promise.resolve(dataCache.get(key));
    if (inflight.has(key)) return inflight.get(key);
    const promise = new Promise((resolve, reject) => {
      waiting.set(key, resolve);
      loadScript(safe).then(() => {
        if (waiting.has(key)) { waiting.delete(key); reject(new Error(`${safe} did not provide its data`)); }
      }, (err) => { waiting.delete(key); reject(err); });
    });
    inflight.set(key, promise);
    promise.catch(() => inflight.delete(key));
    return promise;
  }

  let vegaPromise = null;
  function loadVega() {
    if (window.vegaEmbed) return Promise.resolve(window.vegaEmbed);
    if (!vegaPromise) {
      vegaPromise = loadScript(index.vega || "console/vega.js").then(() => {
        if (!window.vegaEmbed) throw new Error("the chart library did not load");
        return window.vegaEmbed;
      });
      vegaPromise.catch(() => { vegaPromise = null; });
    }
    return vegaPromise;
  }

  /* ---------- charts ---------- */

  const views = [];

  // The outer box is the accessible image; Vega draws into an inner element (vega-embed sets its
  // own role and label on the element it is given, which would hide ours).
  function chartBox(label) {
    return el("div", { class: "ik-chart", role: "img", "aria-label": label });
  }

  function chartWidth(box) {
    const width = box.clientWidth || (box.parentNode && box.parentNode.clientWidth) || 900;
    return Math.max(320, Math.min(1200, width - 8));
  }

  function draw(box, spec) {
    box.removeAttribute("data-drawn");
    const inner = el("div", { class: "ik-chart-inner" });
    box.replaceChildren(inner);
    // the whole view (axes, legend) fits the box width
    spec.autosize = { type: "fit-x", contains: "padding" };
    spec.config = Object.assign({ aria: false }, spec.config);
    // ast: true makes Vega interpret its expressions rather than compile them with Function(),
    // so the page's CSP can refuse eval. The default tooltip handler escapes values (text only).
    return loadVega().then((vegaEmbed) => vegaEmbed(inner, spec, { renderer: "svg", actions: false, ast: true }))
      .then((result) => {
        views.push(result);
        box.setAttribute("data-drawn", "1");
      })
      .catch((err) => {
        box.replaceChildren(el("p", { class: "ik-error" }, `The chart could not be drawn: ${err && err.message ? err.message : err}`));
        box.setAttribute("data-drawn", "error");
      });
  }

  function clearViews() {
    while (views.length) {
      try { views.pop().finalize(); } catch (err) { /* already gone */ }
    }
  }

  function spanLayer(span) {
    const start = span && parseIso(span.start);
    if (!Number.isFinite(start)) return null;
    const endMs = Number.isFinite(parseIso(span.end)) ? parseIso(span.end) : state.to;
    return {
      data: { values: [{ start: isoOut(start), end: isoOut(Math.max(endMs, start + 60000)), label: "incident" }] },
      mark: { type: "rect", color: "#f2b134", opacity: 0.22, clip: true },
      encoding: {
        x: { field: "start", type: "temporal", scale: { type: "utc" } },
        x2: { field: "end" },
        tooltip: [{ field: "label", type: "nominal", title: "span" }],
      },
    };
  }

  // Pick the finest resolution whose [since, until) covers the range, else the coarsest.
  function pickBuckets(trend, from, to) {
    const all = (trend.buckets || []).filter((b) => b && Array.isArray(b.rows)).slice()
      .sort((a, b) => a.bucketMinutes - b.bucketMinutes);
    if (!all.length) return null;
    const covering = all.find((b) => parseIso(b.since) <= from && parseIso(b.until) >= to);
    return covering || all[all.length - 1];
  }

  function trendData(detail, highlight) {
    const buckets = pickBuckets(detail.trend, state.from, state.to);
    if (!buckets) return null;
    const step = Math.max(1, Number(buckets.bucketMinutes) || 1) * 60000;
    const rows = buckets.rows.filter((row) => { const t = parseIso(row.t); return t >= state.from && t < state.to; });
    const totals = new Map();
    for (const row of rows) totals.set(String(row.api), (totals.get(String(row.api)) || 0) + (Number(row.calls) || 0));
    const top = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP_APIS).map((e) => e[0]);
    const merged = new Map();
    for (const row of rows) {
      const api = top.includes(String(row.api)) ? String(row.api) : "other";
      const key = row.t + "\n" + api;
      const prev = merged.get(key);
      if (prev) prev.calls += Number(row.calls) || 0;
      else {
        const t = parseIso(row.t);
        merged.set(key, { t: isoOut(t), t2: isoOut(t + step), time: fmtTime(t) + " UTC", api, calls: Number(row.calls) || 0, hl: api === highlight });
      }
    }
    const domain = top.slice();
    if ([...merged.values()].some((v) => v.api === "other")) domain.push("other");
    // Stack by hand (y0..y1, busiest API at the bottom): bars that span [t, t2) are ranged in x,
    // and Vega-Lite would then draw them as horizontal bars instead of stacking them.
    const values = [...merged.values()].sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : domain.indexOf(a.api) - domain.indexOf(b.api)));
    let lastT = null, level = 0;
    for (const v of values) {
      if (v.t !== lastT) { lastT = v.t; level = 0; }
      v.y0 = level;
      level += v.calls;
      v.y1 = level;
    }
    return { values, domain, bucketMinutes: buckets.bucketMinutes, total: rows.reduce((s, r) => s + (Number(r.calls) || 0), 0) };
  }

  function trendSpec(detail, data, highlight, width) {
    const x = { field: "t", type: "temporal", title: "time (UTC)", scale: { type: "utc", domain: [isoOut(state.from), isoOut(state.to)] }, axis: { format: "%m-%d %H:%M", labelAngle: -30, labelOverlap: true } };
    const layers = [];
    const span = spanLayer(detail.incidentSpan);
    if (span) layers.push(span);
    layers.push({
      data: { values: data.values },
      mark: { type: "bar", clip: true },
      encoding: {
        x, x2: { field: "t2" },
        y: { field: "y1", type: "quantitative", title: `calls per ${bucketLabel(data.bucketMinutes)}` },
        y2: { field: "y0" },
        color: { field: "api", type: "nominal", title: "API", scale: data.domain.length ? { domain: data.domain, scheme: "tableau10" } : { scheme: "tableau10" },
          legend: { labelLimit: 240, symbolLimit: 12 } },
        opacity: highlight ? { condition: { test: "datum.hl", value: 1 }, value: 0.25 } : { value: 0.9 },
        tooltip: [{ field: "time", type: "nominal", title: "time" }, { field: "api", type: "nominal", title: "API" },
          { field: "calls", type: "quantitative", title: "calls" }],
      },
    });
    if (highlight) {
      const api = (detail.apis || []).find((a) => String(a.api) === highlight);
      const ticks = ((api && api.times) || []).map(parseIso).filter((t) => t >= state.from && t < state.to)
        .map((t) => ({ t: isoOut(t), time: new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"), api: highlight }));
      if (ticks.length) {
        layers.push({
          data: { values: ticks },
          mark: { type: "rule", color: "#b3001b", strokeWidth: 1, opacity: 0.75 },
          encoding: { x, tooltip: [{ field: "time", type: "nominal", title: "call" }, { field: "api", type: "nominal", title: "API" }] },
        });
      }
    }
    return {
      title: { text: detail.trend.title ? String(detail.trend.title) : "Related calls", subtitle: `per ${bucketLabel(data.bucketMinutes)}, by API; shaded: the incident` },
      width, height: 210, layer: layers,
      config: { font: "system-ui, sans-serif", view: { stroke: "#ccc" }, axis: { labelFontSize: 11 } },
    };
  }

  function bucketLabel(minutes) {
    if (minutes === 1) return "minute";
    if (minutes === 60) return "hour";
    if (minutes === 1440) return "day";
    return `${minutes} minutes`;
  }

  function rateSpec(detail, width) {
    const rate = detail.rate;
    const values = (rate.rows || []).map((row) => {
      const t = parseIso(row.t);
      return { t: isoOut(t), time: fmtTime(t) + " UTC", count: row.count, expected: row.expected, upper: row.upper };
    });
    const x = { field: "t", type: "temporal", title: "time (UTC)", scale: { type: "utc" }, axis: { format: "%m-%d %H:%M", labelAngle: -30, labelOverlap: true } };
    const layers = [];
    const span = spanLayer(detail.incidentSpan);
    if (span) layers.push(span);
    layers.push({
      data: { values }, mark: { type: "area", color: "#7aa6d8", opacity: 0.35 },
      encoding: { x, y: { field: "expected", type: "quantitative", title: String(rate.unit || "calls") + " per minute" }, y2: { field: "upper" } },
    });
    layers.push({
      data: { values }, mark: { type: "line", color: "#1f3b73", strokeWidth: 1.5, point: values.length <= 240 ? { size: 14 } : false },
      encoding: { x, y: { field: "count", type: "quantitative" },
        tooltip: [{ field: "time", type: "nominal", title: "minute" }, { field: "count", type: "quantitative", title: "observed" },
          { field: "expected", type: "quantitative", title: "expected", format: ".2f" }, { field: "upper", type: "quantitative", title: "upper", format: ".2f" }] },
    });
    return {
      title: { text: String(rate.title || "Rate per minute"), subtitle: "line: observed; band: expected to upper bound; shaded: the incident" },
      width, height: 220, layer: layers,
      config: { font: "system-ui, sans-serif", view: { stroke: "#ccc" } },
    };
  }

  /* ---------- the detail view ---------- */

  let current = null; // {id, record, detail, highlight, trendBox, apiInfo}

  function buildDetail() {
    ui.detailView = el("section", { id: "ik-detail", class: "ik-detail", hidden: true, "aria-labelledby": "ik-detail-h" });
    return ui.detailView;
  }

  function closeDetail(opts) {
    const id = state.incident;
    state.incident = null;
    current = null;
    clearViews();
    ui.detailView.hidden = true;
    ui.detailView.replaceChildren();
    ui.listView.hidden = false;
    writeHash();
    if (opts && opts.focus && id) {
      const row = [...ui.tbody.querySelectorAll("tr[data-id]")].find((tr) => tr.getAttribute("data-id") === id);
      const button = row && row.querySelector("button");
      if (button) button.focus();
    }
  }

  function openDetail(id, opts) {
    const record = byId.get(id);
    if (!record) return;
    state.incident = id;
    writeHash();
    clearViews();
    const inc = record.inc;
    current = { id, record, detail: null, highlight: null };
    ui.listView.hidden = true;
    ui.detailView.hidden = false;
    ui.detailView.setAttribute("data-state", "loading");
    ui.detailView.setAttribute("data-id", id);
    ui.detailView.removeAttribute("data-charts");
    const heading = el("h2", { id: "ik-detail-h", tabindex: "-1" }, String(inc.type), " ", code(inc.object));
    const facts = el("dl", { class: "ik-facts" },
      fact("Region", code(record.region)), fact("Start", fmtTime(record.start) + " UTC"),
      fact("End", inc.open ? "— (still open)" : fmtTime(record.end) + " UTC"),
      fact("Status", el("span", { class: inc.open ? "ik-badge ik-badge-open" : "ik-badge" }, inc.open ? "open" : "closed")),
      fact("Duration", fmtDuration(inc.durationMinutes)),
      inc.score != null ? fact("Score", fmtNumber(inc.score)) : null,
      inc.ratio != null ? fact("Ratio", "×" + fmtNumber(inc.ratio)) : null,
      inc.insightCount != null ? fact("Events", fmtNumber(inc.insightCount)) : null,
      inc.account != null ? fact("Account", code(inc.account)) : null,
      fact("sharedEventId", code(inc.id)));
    ui.detailBody = el("div", { class: "ik-detail-body" }, el("p", { class: "ik-muted" }, "Loading the incident's detail…"));
    ui.detailView.replaceChildren(
      el("button", { type: "button", class: "ik-back", id: "ik-back", onclick: () => closeDetail({ focus: true }) }, "← Back to the list"),
      heading, facts, inc.summary ? el("p", { class: "ik-summary" }, String(inc.summary)) : null, ui.detailBody);
    if (opts && opts.focus) heading.focus();
    loadData(inc.detail).then((detail) => {
      if (!current || current.id !== id) return; // the user moved on
      current.detail = detail;
      renderDetail(current);
    }, (err) => {
      if (!current || current.id !== id) return;
      ui.detailBody.replaceChildren(el("p", { class: "ik-error" }, `The detail could not be loaded: ${err.message}`));
      ui.detailView.setAttribute("data-state", "error");
    });
  }

  function fact(name, value) {
    return [el("dt", {}, name), el("dd", {}, value)];
  }

  function renderDetail(cur) {
    const { detail, record } = cur;
    const inc = record.inc;
    const parts = [];
    const charts = [];
    if (RATE_TYPES.has(inc.type) && detail.rate && Array.isArray(detail.rate.rows)) {
      const rows = detail.rate.rows;
      const box = chartBox(`${detail.rate.title || "Rate"} for ${inc.object}, ${fmtTime(parseIso(rows.length ? rows[0].t : ""))} to ${fmtTime(parseIso(rows.length ? rows[rows.length - 1].t : ""))} UTC`);
      parts.push(el("section", { class: "ik-block" }, el("h3", {}, "Rate per minute"), box));
      charts.push(() => draw(box, rateSpec(detail, chartWidth(box))));
    }
    if (detail.trend) {
      cur.trendBox = el("div", { class: "ik-chart", role: "img" });
      cur.trendNote = el("p", { class: "ik-muted ik-trend-note" });
      const zoom = el("button", { type: "button", class: "ik-zoom", id: "ik-zoom", onclick: () => zoomToIncident(cur) },
        "Zoom the time range to this incident");
      parts.push(el("section", { class: "ik-block" }, el("h3", {}, inc.type === "IpInsight" ? "Calls from this address" : "Related calls"),
        el("div", { class: "ik-trend-head" }, cur.trendNote, zoom), cur.trendBox));
      charts.push(() => redrawTrend());
    }
    if (detail.heterogeneity) parts.push(heterogeneityBlock(detail.heterogeneity));
    if (Array.isArray(detail.apis) && detail.apis.length) parts.push(apisBlock(cur));
    parts.push(attributionsBlock(detail.attributions));
    parts.push(tabsBlock(cur));
    ui.detailBody.replaceChildren(...parts);
    ui.detailView.setAttribute("data-state", "ready");
    // charts after the DOM is in place (their width comes from it)
    Promise.all(charts.map((f) => f())).then(() => {
      if (current === cur) ui.detailView.setAttribute("data-charts", "drawn");
    });
  }

  function redrawTrend() {
    const cur = current;
    if (!cur || !cur.detail || !cur.detail.trend || !cur.trendBox) return Promise.resolve();
    const data = trendData(cur.detail, cur.highlight);
    const title = String(cur.detail.trend.title || "Related calls");
    if (!data) {
      cur.trendBox.replaceChildren(el("p", { class: "ik-muted" }, "No trend data."));
      return Promise.resolve();
    }
    cur.trendBox.setAttribute("aria-label",
      `${title} per ${bucketLabel(data.bucketMinutes)}, by API, ${fmtDay(state.from)} to ${fmtDay(state.to)}` + (cur.highlight ? `, highlighting ${cur.highlight}` : ""));
    cur.trendNote.textContent = `${fmtNumber(data.total)} calls from ${fmtTime(state.from)} to ${fmtTime(state.to)} UTC (the selected time range), per ${bucketLabel(data.bucketMinutes)}; top ${TOP_APIS} APIs, the rest as “other”.`;
    // finalize only the old trend view (the rate chart stays)
    const old = cur.trendView;
    if (old) { try { old.finalize(); } catch (err) { /* gone */ } }
    const spec = trendSpec(cur.detail, data, cur.highlight, chartWidth(cur.trendBox));
    const before = views.length;
    return draw(cur.trendBox, spec).then(() => {
      if (views.length > before) cur.trendView = views[views.length - 1];
    });
  }

  // The trend follows the selected time range; this narrows it to the incident, 1 hour either side.
  function zoomToIncident(cur) {
    const span = (cur.detail && cur.detail.incidentSpan) || {};
    const start = Number.isFinite(parseIso(span.start)) ? parseIso(span.start) : cur.record.start;
    const endRaw = Number.isFinite(parseIso(span.end)) ? parseIso(span.end) : Number.isFinite(cur.record.end) ? cur.record.end : windowUntil;
    const lo = Number.isFinite(windowSince) ? windowSince : -Infinity;
    state.from = Math.max(lo, start - 3600000);
    state.to = Math.min(windowUntil, endRaw + 3600000);
    if (state.to <= state.from) state.to = state.from + 3600000;
    syncInputs();
    filtersChanged({ keepDetail: true });
  }

  function heterogeneityBlock(h) {
    const dims = Array.isArray(h.dimensions) ? h.dimensions : [];
    return el("section", { class: "ik-block" },
      el("h3", {}, "Heterogeneity"),
      el("p", {}, el("strong", { class: "ik-big" }, fmtNumber(h.score)),
        h.threshold != null ? ` (threshold ${fmtNumber(h.threshold)})` : "", h.scope ? `, ${h.scope}` : ""),
      el("table", { class: "ik-table", id: "ik-dimensions" },
        el("thead", {}, el("tr", {}, ["Dimension", "Verdict", "Score", "Detail"].map((t) => el("th", { scope: "col" }, t)))),
        el("tbody", {}, dims.map((d) => el("tr", {},
          el("td", {}, String(d.name)), el("td", {}, el("span", { class: "ik-verdict ik-verdict-" + String(d.verdict).toLowerCase().replace(/[^a-z]/g, "") }, String(d.verdict))),
          el("td", { class: "ik-num" }, fmtNumber(d.score)), el("td", {}, d.detail == null ? "" : String(d.detail)))))));
  }

  function apisBlock(cur) {
    cur.apiInfo = el("p", { class: "ik-api-info", id: "ik-api-info", role: "status", "aria-live": "polite" },
      "Choose an API to highlight its calls in the chart.");
    const rows = cur.detail.apis.map((a) => el("tr", {},
      el("td", {}, el("button", { type: "button", class: "ik-api", "aria-pressed": "false", "data-api": String(a.api), onclick: (e) => pickApi(cur, a, e.currentTarget) }, code(a.api))),
      el("td", { class: "ik-num" }, fmtNumber(a.calls)),
      el("td", { class: "ik-num" }, fmtNumber(a.errors))));
    return el("section", { class: "ik-block" },
      el("h3", {}, "APIs called"), cur.apiInfo,
      el("table", { class: "ik-table", id: "ik-apis" },
        el("thead", {}, el("tr", {}, ["API", "Calls", "Errors"].map((t) => el("th", { scope: "col" }, t)))),
        el("tbody", {}, rows)));
  }

  function pickApi(cur, api, button) {
    const name = String(api.api);
    cur.highlight = cur.highlight === name ? null : name;
    for (const b of button.closest("tbody").querySelectorAll("button.ik-api")) b.setAttribute("aria-pressed", String(b === button && cur.highlight === name));
    if (!cur.highlight) {
      cur.apiInfo.textContent = "Choose an API to highlight its calls in the chart.";
    } else {
      const inRange = (api.times || []).map(parseIso).filter((t) => t >= state.from && t < state.to).length;
      cur.apiInfo.replaceChildren(code(name), `: ${fmtNumber(api.calls)} calls`,
        api.errors ? `, ${fmtNumber(api.errors)} errors` : "",
        `; ${fmtNumber(inRange)} call times in the selected range marked in the chart`,
        api.timesTruncated ? " (the list of times is truncated)" : "", ".");
    }
    redrawTrend();
  }

  function cellValue(value) {
    if (value == null) return "";
    if (typeof value === "number") return fmtNumber(value);
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function attributionsBlock(rows) {
    const list = Array.isArray(rows) ? rows.filter((r) => r && typeof r === "object") : [];
    const block = el("section", { class: "ik-block" }, el("h3", {}, "Attributions"));
    if (!list.length) return append(block, [el("p", { class: "ik-muted" }, "No attributions for this incident.")]);
    const columns = Object.keys(list[0]);
    for (const r of list) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
    return append(block, [el("table", { class: "ik-table", id: "ik-attributions" },
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, list.map((r) => el("tr", {}, columns.map((c) =>
        el("td", { class: typeof r[c] === "number" ? "ik-num" : null }, c === "value" ? code(cellValue(r[c])) : cellValue(r[c])))))))]);
  }

  /* ---------- tabs: events and the original Insights events ---------- */

  function tabsBlock(cur) {
    const tabs = [
      ["events", "ActionTrail Events", () => eventsPanel(cur)],
      ["original", "Original Insight Event", () => originalPanel(cur)],
    ];
    const list = el("div", { class: "ik-tablist", role: "tablist", "aria-label": "Incident records" });
    const panels = el("div", {});
    const buttons = [];
    const select = (n, focus) => {
      buttons.forEach((b, i) => {
        b.setAttribute("aria-selected", String(i === n));
        b.tabIndex = i === n ? 0 : -1;
      });
      const [key, , make] = tabs[n];
      panels.replaceChildren(el("div", { role: "tabpanel", id: `ik-panel-${key}`, "aria-labelledby": `ik-tab-${key}`, tabindex: "0" }, make()));
      if (focus) buttons[n].focus();
    };
    tabs.forEach(([key, label], n) => {
      const b = el("button", { type: "button", role: "tab", id: `ik-tab-${key}`, "aria-controls": `ik-panel-${key}`, onclick: () => select(n) }, label);
      // arrow keys move between tabs (the WAI-ARIA tabs pattern)
      b.addEventListener("keydown", (e) => {
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") { e.preventDefault(); select((n + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length, true); }
      });
      buttons.push(b);
      list.appendChild(b);
    });
    select(0);
    return el("section", { class: "ik-block ik-tabs" }, list, panels);
  }

  function originalPanel(cur) {
    const show = (label, obj) => [el("h4", {}, label), obj
      ? el("pre", { class: "ik-json" }, JSON.stringify(obj, null, 2))
      : el("p", { class: "ik-muted" }, label === "End" ? "No End event yet: the incident is still open." : "Not available.")];
    return el("div", { class: "ik-original" }, show("Start", cur.detail.start), show("End", cur.detail.end));
  }

  const ID_COLUMNS = /(^eventId$|Id$|IpAddress$|^principal$|^acsRegion$|^eventName$)/;

  function eventsPanel(cur) {
    const events = cur.detail.events || {};
    const columns = Array.isArray(events.columns) ? events.columns.map(String) : [];
    const pages = Array.isArray(events.pages) ? events.pages : [];
    const total = Number(events.total) || 0;
    const size = Number(events.pageSize) || PAGE_SIZE;
    const wrap = el("div", { class: "ik-events" });
    if (!pages.length) return append(wrap, [el("p", { class: "ik-muted" }, "No related management events.")]);
    const info = el("p", { class: "ik-status", role: "status", "aria-live": "polite", id: "ik-events-info" });
    const tbody = el("tbody", { id: "ik-event-rows" });
    const prev = el("button", { type: "button", id: "ik-events-prev" }, "‹ Previous");
    const next = el("button", { type: "button", id: "ik-events-next" }, "Next ›");
    let page = 0;
    const show = (n) => {
      page = n;
      prev.disabled = true; next.disabled = true;
      info.textContent = `Loading page ${n + 1} of ${pages.length}…`;
      loadData(pages[n]).then((payload) => {
        if (page !== n) return;
        const rows = Array.isArray(payload && payload.rows) ? payload.rows : [];
        tbody.replaceChildren(...rows.map((row) => el("tr", {}, columns.map((c, i) => {
          const v = Array.isArray(row) ? row[i] : null;
          return el("td", { class: c === "eventTime" ? "ik-time" : c === "userAgent" ? "ik-ua" : null }, ID_COLUMNS.test(c) && v != null ? code(v) : v == null ? "" : String(v));
        }))));
        info.textContent = `Events ${fmtNumber(n * size + 1)}–${fmtNumber(n * size + rows.length)} of ${fmtNumber(total)} (page ${n + 1} of ${pages.length}).`;
        wrap.setAttribute("data-page", String(n));
        prev.disabled = n === 0;
        next.disabled = n >= pages.length - 1;
      }, (err) => {
        if (page !== n) return;
        info.textContent = `Page ${n + 1} could not be loaded: ${err.message}`;
        prev.disabled = n === 0;
        next.disabled = n >= pages.length - 1;
      });
    };
    prev.addEventListener("click", () => show(Math.max(0, page - 1)));
    next.addEventListener("click", () => show(Math.min(pages.length - 1, page + 1)));
    append(wrap, [info,
      el("div", { class: "ik-scroll" }, el("table", { class: "ik-table ik-event-table", id: "ik-events" },
        el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))), tbody)),
      el("nav", { class: "ik-pager", "aria-label": "Event pages" }, prev, next)]);
    show(0);
    return wrap;
  }

  /* ---------- start ---------- */

  function start() {
    app.replaceChildren(buildFilters(), buildList(), buildDetail());
    window.addEventListener("hashchange", applyHash);
    applyHash();
    app.setAttribute("data-state", "ready");
    window.__ikReady = performance.now();
  }

  start();
})();
