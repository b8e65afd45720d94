// fieldwatch status page: polls /api/v1/overview (ETag, every 2 s while visible) and renders
// sites and endpoints worst first. No framework, no build step; every text goes through
// textContent (never innerHTML), so names and reasons from the field cannot inject markup.
"use strict";
(() => {
  const STATES = ["down", "faulty", "stale", "connecting", "up", "disabled"]; // worst first
  const RANK = Object.fromEntries(STATES.map((s, i) => [s, i]));
  const SYMBOL = { down: "▼", faulty: "✖", stale: "◷", connecting: "↻", up: "▲", disabled: "⊘" };
  const POLL_MS = 2000;
  const STALE_AFTER_MS = 10000; // five polls without an answer: say so
  const PAGE_SIZE = 200; // rows in the DOM at once; 10,000 endpoints are paged
  const TOKEN_KEY = "fieldwatch.token"; // sessionStorage only: never a cookie or the URL
  const $ = (id) => document.getElementById(id);

  const params = new URL(location.href).searchParams;
  const view = {
    q: params.get("q") || "",
    state: STATES.includes(params.get("state")) ? params.get("state") : "",
    site: params.get("site") || "",
    page: Math.max(1, parseInt(params.get("page") || "1", 10) || 1),
    kiosk: params.get("kiosk") === "1",
  };
  let data = null;
  let rows = [];
  let etag = null;
  let lastOk = 0;
  let lastError = null;
  let skew = 0; // server clock minus ours (ms), when they disagree by more than 3 s
  let timer = null;
  const collapsed = new Set();
  const siteEls = new Map();
  let siteIds = 0;
  const epEls = new Map();
  let visible = [];
  let feedSig = {};
  // ms from a changed snapshot's arrival to the page rendered (parse, prepare, render), the
  // last 50: read by benchmarks/page_bench.py; bounded so a wall screen left for weeks does not grow
  const timings = (window.fieldwatchTimings = []);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function now() {
    return Date.now() + skew;
  }
  function duration(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    s %= 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  }
  function toMs(value) {
    if (value === null || value === undefined) return null;
    return typeof value === "number" ? value * 1000 : Date.parse(value);
  }
  function localTime(ms) {
    const t = el("time", "when", new Date(ms).toLocaleTimeString());
    t.dateTime = new Date(ms).toISOString();
    t.title = `${new Date(ms).toLocaleString()} (UTC ${t.dateTime})`;
    return t;
  }
  function badge(state, node) {
    const b = node || el("span");
    b.className = `badge s-${state}`;
    b.replaceChildren(el("span", "sym", SYMBOL[state] || "?"), document.createTextNode(` ${state}`));
    b.firstChild.setAttribute("aria-hidden", "true");
    return b;
  }

  // -- data --------------------------------------------------------------------

  function prepare(body) {
    const col = Object.fromEntries(body.columns.map((c, i) => [c, i]));
    const topicKinds = new Set(body.topic_kinds || []); // kinds whose endpoints list discovered topics
    rows = body.endpoints.map((r) => ({
      site: r[col.site], name: r[col.name], kind: r[col.kind], enabled: r[col.enabled], state: r[col.state],
      since: toMs(r[col.since]), reason: r[col.reason], downSince: toMs(r[col.down_since]),
      lastData: toMs(r[col.last_data_at]), rtt: r[col.rtt_ms], topics: topicKinds.has(r[col.kind]),
    }));
    for (const r of rows) {
      r.key = `${r.site}/${r.name}`;
      r.text = `${r.key} ${r.kind} ${r.state} ${r.reason || ""}`.toLowerCase();
      r.start = r.state === "down" && r.downSince ? r.downSince : r.since;
    }
  }
  function matches(r, terms) {
    if (view.state && r.state !== view.state) return false;
    if (view.site && r.site !== view.site) return false;
    return terms.every((term) => r.text.includes(term));
  }
  function byWorst(a, b) {
    return RANK[a.state] - RANK[b.state] || (a.start || 0) - (b.start || 0) || a.key.localeCompare(b.key);
  }
  function arrange() {
    const groups = new Map();
    const terms = view.q.toLowerCase().split(/\s+/).filter(Boolean);
    for (const s of data.sites) groups.set(s.name, { name: s.name, enabled: s.enabled, all: [], shown: [] });
    for (const r of rows) {
      if (!groups.has(r.site)) groups.set(r.site, { name: r.site, enabled: true, all: [], shown: [] });
      const g = groups.get(r.site);
      g.all.push(r);
      if (matches(r, terms)) g.shown.push(r);
    }
    const filtering = Boolean(view.q || view.state || view.site);
    const list = [];
    for (const g of groups.values()) {
      g.shown.sort(byWorst);
      g.worst = g.all.reduce((w, r) => (RANK[r.state] < RANK[w] ? r.state : w), "disabled");
      g.up = g.all.filter((r) => r.state === "up").length;
      if (g.shown.length || (!filtering && !g.all.length) || (view.site === g.name && !view.q && !view.state)) {
        list.push(g);
      }
    }
    list.sort((a, b) => (a.shown.length ? byWorst(a.shown[0], b.shown[0] || a.shown[0]) : 0) ||
      (b.shown.length - a.shown.length) || a.name.localeCompare(b.name));
    return list;
  }

  // -- rendering ---------------------------------------------------------------

  function sync(parent, nodes) {
    nodes.forEach((node, i) => {
      const current = parent.children[i];
      if (current !== node) parent.insertBefore(node, current || null);
    });
    while (parent.children.length > nodes.length) parent.lastElementChild.remove();
  }

  function siteSection(g) {
    let s = siteEls.get(g.name);
    if (!s) {
      const id = `site-${++siteIds}`;
      s = { section: el("section", "site"), toggle: el("button", "toggle", g.name), badge: el("span"),
        upn: el("span", "upn"), act: el("button", "act"), list: el("ul", "eps") };
      s.section.dataset.site = g.name;
      s.toggle.type = s.act.type = "button";
      s.toggle.setAttribute("aria-controls", id);
      s.list.id = id;
      s.list.setAttribute("aria-label", `Endpoints of ${g.name}`);
      s.toggle.addEventListener("click", () => {
        if (collapsed.has(g.name)) collapsed.delete(g.name);
        else collapsed.add(g.name);
        render();
      });
      s.act.addEventListener("click", () => {
        const enable = !s.group.enabled;
        const verb = enable ? "Enable" : "Disable";
        command(`${verb} site ${g.name}? ${enable ? "Its connections start now." : "All its connections stop now."}`,
          `${verb} site`, `/api/v1/sites/${encodeURIComponent(g.name)}/${verb.toLowerCase()}`, null,
          `Site ${g.name} ${verb.toLowerCase()}d`);
      });
      const h3 = el("h3");
      h3.append(s.toggle, s.badge, s.upn, s.act);
      s.section.append(h3, s.list);
      siteEls.set(g.name, s);
    }
    s.group = g;
    const open = !collapsed.has(g.name);
    s.toggle.setAttribute("aria-expanded", String(open));
    s.list.hidden = !open;
    if (g.all.length) badge(g.enabled ? g.worst : "disabled", s.badge);
    else setText(s.badge, "no endpoints");
    setText(s.upn, `${g.up}/${g.all.length} up`);
    const verb = g.enabled ? "Disable" : "Enable";
    setText(s.act, `${verb} site`);
    s.act.setAttribute("aria-label", `${verb} site ${g.name}`);
    return s;
  }

  function epItem(r, siteEnabled) {
    let e = epEls.get(r.key);
    if (!e) {
      e = { li: el("li", "ep"), badge: el("span"), name: el("span", "name", r.name), kind: el("span", "kind", r.kind),
        dur: el("span", "dur"), reason: el("span", "reason"), facts: el("span", "facts"), acts: el("span", "acts"),
        toggle: el("button"), restart: el("button", "", "Restart") };
      e.li.dataset.endpoint = r.key;
      e.toggle.type = e.restart.type = "button";
      e.restart.setAttribute("aria-label", `Restart endpoint ${r.key}`);
      e.toggle.addEventListener("click", () => endpointCommand(e.row, e.row.enabled ? "disable" : "enable"));
      e.restart.addEventListener("click", () => endpointCommand(e.row, "restart"));
      e.acts.append(e.toggle, e.restart);
      if (r.topics) {
        const topics = el("button", "", "Topics");
        topics.type = "button";
        topics.setAttribute("aria-label", `Topics of endpoint ${r.key}`);
        topics.addEventListener("click", () => showTopics(e.row));
        e.acts.append(topics);
      }
      const main = el("span", "what");
      main.append(e.dur, document.createTextNode(" "), e.reason);
      e.li.append(e.badge, e.name, e.kind, e.facts, main, e.acts);
      epEls.set(r.key, e);
    }
    const sig = [r.state, r.since, r.reason, r.enabled, siteEnabled].join("|");
    if (e.sig !== sig) {
      e.sig = sig;
      e.li.dataset.state = r.state;
      badge(r.state, e.badge);
      setText(e.reason, r.reason || "");
      const verb = r.enabled ? "Disable" : "Enable";
      setText(e.toggle, verb);
      e.toggle.setAttribute("aria-label", `${verb} endpoint ${r.key}`);
      e.toggle.hidden = !siteEnabled;
      e.restart.hidden = !r.enabled;
      e.dur.title = r.start ? `since ${new Date(r.start).toLocaleString()} (UTC ${new Date(r.start).toISOString()})` : "";
    }
    e.row = r;
    visible.push(e);
    return e.li;
  }

  function render() {
    if (!data) return;
    document.body.classList.toggle("kiosk", view.kiosk);
    renderCounts();
    renderSites();
    const groups = arrange();
    const total = groups.reduce((n, g) => n + (collapsed.has(g.name) ? 0 : g.shown.length), 0);
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    view.page = Math.min(view.page, pages);
    const start = (view.page - 1) * PAGE_SIZE, end = start + PAGE_SIZE;
    const sections = [];
    const used = new Set();
    visible = [];
    let pos = 0;
    for (const g of groups) {
      const shut = collapsed.has(g.name);
      const n = shut ? 0 : g.shown.length;
      const part = g.shown.slice(Math.max(0, start - pos), Math.max(0, end - pos));
      const onPage = n ? pos < end && pos + n > start : (pos >= start && pos < end) || (view.page === pages && pos >= start);
      pos += n;
      if (!onPage) continue;
      const s = siteSection(g);
      const items = shut ? [] : part.map((r) => epItem(r, g.enabled));
      items.forEach((li) => used.add(li.dataset.endpoint));
      sync(s.list, items);
      sections.push(s.section);
    }
    sync($("sites"), sections);
    const listed = new Set(groups.map((g) => g.name));
    for (const name of siteEls.keys()) if (!listed.has(name)) siteEls.delete(name); // deleted or filtered out
    for (const [key, e] of epEls) if (!used.has(key)) { e.li.remove(); epEls.delete(key); }
    const filtered = total !== rows.length ? ` (${rows.length} in all)` : "";
    setText($("shown"), total ? `Showing ${start + 1}–${Math.min(end, total)} of ${total} endpoints${filtered}, worst first`
      : `No endpoint matches${filtered}.`);
    $("pager").hidden = pages < 2;
    setText($("pageinfo"), `Page ${view.page} of ${pages}`);
    $("prev").disabled = view.page <= 1;
    $("next").disabled = view.page >= pages;
    renderFeeds();
    tick();
  }

  function renderCounts() {
    const ul = $("counts");
    if (!ul.children.length) {
      for (const state of STATES) {
        const b = el("button");
        b.type = "button";
        b.dataset.count = state;
        b.addEventListener("click", () => setView({ state: view.state === state ? "" : state }));
        const li = el("li");
        li.append(b);
        ul.append(li);
      }
    }
    for (const b of ul.querySelectorAll("button")) {
      const state = b.dataset.count;
      const n = data.counts[state] || 0;
      if (b.dataset.n !== String(n)) {
        b.dataset.n = String(n);
        b.replaceChildren(badge(state), el("span", "n", String(n)));
      }
      b.setAttribute("aria-pressed", String(view.state === state));
      b.title = view.state === state ? "show every state" : `show only ${state}`;
    }
  }

  function renderSites() {
    const select = $("site");
    const names = data.sites.map((s) => s.name);
    if (select.dataset.names !== names.join("\n")) {
      select.dataset.names = names.join("\n");
      select.replaceChildren(el("option", "", "all sites"), ...names.map((n) => el("option", "", n)));
      select.firstChild.value = "";
    }
    select.value = view.site;
  }

  function feed(id, items, line) {
    const sig = JSON.stringify(items);
    if (feedSig[id] === sig) return;
    feedSig[id] = sig;
    const ul = $(id);
    ul.replaceChildren(...(items.length ? items.map(line) : [el("li", "empty", "none")]));
  }
  function renderFeeds() {
    feed("alerts", data.alerts, (a) => {
      const li = el("li");
      const severity = el("span", `badge sev-${a.severity === "critical" ? "critical" : "warning"}`, a.severity);
      li.append(localTime(toMs(a.triggered_at)), severity,
        document.createTextNode(` ${a.site || "?"}/${a.endpoint || "?"} ${a.condition}: ${a.message || ""}`));
      return li;
    });
    feed("events", data.events, (ev) => {
      const li = el("li");
      li.append(localTime(toMs(ev.time)), document.createTextNode(
        `${String(ev.level).toUpperCase()} ${ev.site || "-"}/${ev.endpoint || "-"} ${ev.event}: ${ev.message || ""}`));
      return li;
    });
    feed("warnings", data.warnings, (w) => el("li", "", w.line));
  }

  function tick() {
    const t = now();
    for (const e of visible) {
      const r = e.row;
      setText(e.dur, r.start ? `${r.state} ${duration(t - r.start)}` : r.state);
      let facts = r.lastData ? `data ${duration(t - r.lastData)} ago` : "no data yet";
      if (r.rtt !== null && r.rtt !== undefined) facts += ` · rtt ${r.rtt} ms`;
      setText(e.facts, facts);
    }
    status();
  }

  function status() {
    const age = Date.now() - lastOk;
    setText($("updated"), lastOk ? `updated ${duration(age)} ago` : "loading…");
    const banner = $("banner");
    let message = "";
    if (lastError && (!lastOk || age > STALE_AFTER_MS)) {
      message = lastOk
        ? `Stale data: no answer from the daemon for ${duration(age)} (${lastError}). Shown as of ${new Date(lastOk).toLocaleTimeString()}.`
        : `The daemon is unreachable (${lastError}).`;
    } else if (data && !data.ready) {
      message = `The daemon is not ready: ${data.ready_reason || "starting"}.`;
    } else if (data && data.storage_error) {
      message = `Alerts and events unavailable: ${data.storage_error}`;
    }
    setText(banner, message);
    banner.hidden = !message;
  }

  // -- polling -----------------------------------------------------------------

  async function poll() {
    clearTimeout(timer);
    if (document.hidden) return;
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const resp = await fetch("/api/v1/overview", { headers, cache: "no-store" });
      if (resp.status === 304) {
        lastOk = Date.now();
        lastError = null;
      } else if (resp.ok) {
        const started = performance.now();
        const body = await resp.json();
        etag = resp.headers.get("ETag");
        const served = Date.parse(resp.headers.get("Date") || "");
        skew = Number.isFinite(served) && Math.abs(served - Date.now()) > 3000 ? served - Date.now() : 0;
        data = body;
        prepare(body);
        lastOk = Date.now();
        lastError = null;
        render();
        timings.push(Math.round((performance.now() - started) * 10) / 10);
        if (timings.length > 50) timings.shift();
      } else {
        lastError = `HTTP ${resp.status}`;
      }
    } catch (err) {
      lastError = `unreachable: ${err.message}`;
    }
    status();
    timer = setTimeout(poll, POLL_MS);
  }

  // -- commands ----------------------------------------------------------------

  function dialog(id, prepareDialog) {
    const d = $(id);
    const before = document.activeElement;
    if (prepareDialog) prepareDialog(d);
    return new Promise((resolve) => {
      d.addEventListener("close", () => {
        if (before && before.isConnected) before.focus();
        resolve(d.returnValue);
      }, { once: true });
      d.returnValue = "";
      d.showModal();
    });
  }
  function notice(text) {
    setText($("notice"), text);
  }
  async function token() {
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) return kept;
    const input = $("token-input");
    input.value = "";
    const answer = await dialog("token");
    const value = input.value.trim();
    input.value = "";
    if (answer !== "ok" || !value) return null;
    sessionStorage.setItem(TOKEN_KEY, value);
    return value;
  }
  async function command(question, button, path, body, done) {
    const answer = await dialog("confirm", () => {
      setText($("confirm-text"), question);
      setText($("confirm-ok"), button);
    });
    if (answer !== "ok") return false;
    const secret = await token();
    if (!secret) return false;
    notice(`${button}…`);
    let resp;
    try {
      resp = await fetch(path, {
        method: "POST",
        headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      notice(`${button} failed: the daemon is unreachable (${err.message}).`);
      return false;
    }
    if (resp.status === 401 || resp.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      notice(`${button} refused: the token is wrong or the daemon has none (HTTP ${resp.status}). It will be asked again.`);
      return false;
    }
    if (!resp.ok) {
      const err = await resp.json().catch(() => ({}));
      notice(`${button} failed: HTTP ${resp.status} ${err.title || ""}${err.description ? ": " + err.description : ""}`);
      return false;
    }
    notice(`${done}.`);
    poll();
    return true;
  }
  function endpointCommand(r, action) {
    const what = { enable: "Its connection starts now.", disable: "Its connection stops now.",
      restart: "Its connection is closed and opened again." }[action];
    const verb = action[0].toUpperCase() + action.slice(1);
    command(`${verb} endpoint ${r.key}? ${what}`, `${verb} endpoint`,
      `/api/v1/endpoints/${encodeURIComponent(r.site)}/${encodeURIComponent(r.name)}/${action}`, null,
      `Endpoint ${r.key}: ${action} done`);
  }
  async function showTopics(r) {
    const list = $("topic-list");
    setText($("topics-title"), `Topics of ${r.key}`);
    const load = async () => {
      const q = new URLSearchParams({ site: r.site, endpoint: r.name, limit: "500" });
      const resp = await fetch(`/api/v1/topics?${q}`);
      const items = resp.ok ? (await resp.json()).items : [];
      list.replaceChildren(...(items.length ? items.map((t) => {
        const li = el("li");
        const b = el("button", "", t.is_active ? "Stop processing" : "Process");
        b.type = "button";
        b.setAttribute("aria-label", `${t.is_active ? "Stop processing" : "Process"} topic ${t.topic}`);
        b.addEventListener("click", async () => {
          const action = t.is_active ? "disable" : "enable";
          if (await command(`${t.is_active ? "Stop processing" : "Process"} topic ${t.topic} of ${r.key}?`,
            t.is_active ? "Stop processing" : "Process", `/api/v1/topics/${action}`,
            { site: r.site, endpoint: r.name, topic: t.topic }, `Topic ${t.topic}: ${action}d`)) load();
        });
        li.append(el("span", "", `${t.topic} (${t.count} messages, ${t.is_active ? "processed" : "not processed"})`), b);
        return li;
      }) : [el("li", "empty", "no topics seen yet")]));
    };
    await load();
    dialog("topics");
  }

  // -- filters and keys ----------------------------------------------------------

  function setView(change) {
    Object.assign(view, { page: 1 }, change);
    const url = new URL(location.href);
    for (const key of ["q", "state", "site", "page"]) {
      const value = key === "page" ? (view.page > 1 ? String(view.page) : "") : view[key];
      if (value) url.searchParams.set(key, value);
      else url.searchParams.delete(key);
    }
    history.replaceState(null, "", url);
    $("q").value = view.q;
    $("state").value = view.state;
    render();
  }

  function init() {
    const stateSelect = $("state");
    for (const s of STATES) stateSelect.append(el("option", "", s));
    $("q").value = view.q;
    stateSelect.value = view.state;
    $("filters").addEventListener("submit", (ev) => ev.preventDefault());
    $("token-input").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { // implicit submission would pick the first button (Cancel)
        ev.preventDefault();
        $("token").close("ok");
      }
    });
    $("q").addEventListener("input", () => setView({ q: $("q").value }));
    stateSelect.addEventListener("change", () => setView({ state: stateSelect.value }));
    $("site").addEventListener("change", () => setView({ site: $("site").value }));
    $("prev").addEventListener("click", () => setView({ page: view.page - 1 }));
    $("next").addEventListener("click", () => setView({ page: view.page + 1 }));
    document.addEventListener("keydown", (ev) => {
      const typing = ev.target.closest && ev.target.closest("input, select, textarea, dialog");
      if (ev.key === "/" && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
        ev.preventDefault();
        $("q").focus();
      }
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
    setInterval(tick, 1000);
    poll();
  }
  init();
})();
