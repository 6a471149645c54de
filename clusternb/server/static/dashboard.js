// clusternb dashboard: one WebSocket, one render function per topic, ages re-computed every second.
// In a JupyterLab tab (a same-origin iframe) it uses the Lab page's shared connection (window.parent.clusternb)
// instead of its own socket, and follows Lab's theme; "#node=<name>" in the address filters to one node.
(function () {
  "use strict";
  const base = document.body.dataset.baseUrl;
  const METRIC_FIELDS = ["cpu_percent", "mem_used_percent", "net_rx_bps", "net_tx_bps"];
  const MAX_LINES = 8, MAX_ROWS = 300;
  const SUBSCRIPTION = ["status", "workers", "kernels", "alerts", "cache", { topic: "metrics", since: "15m", fields: METRIC_FIELDS }];
  const state = { received: {}, workers: null, metrics: null, filter: "" };
  const $ = (id) => document.getElementById(id);
  // Text into HTML (table cells, attributes): every text that came from a node goes through esc().
  const HTML_ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => HTML_ENTITIES[c]);
  // Text into plotly (trace names, legend, hover): mirrors clusternb.widgets.charts.plotly_text. plotly reads
  // <a href>, <b>, <br>, <span style> in such text as markup, and $...$ as TeX where MathJax is loaded; it decodes
  // only &amp; &lt; &gt; and numeric entities, so quotes and $ become numeric ones and the text reads unchanged.
  const PLOTLY_ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "$": "&#36;" };
  const plotlyText = (s) => String(s ?? "").replace(/[&<>"'$]/g, (c) => PLOTLY_ENTITIES[c]);

  // -- formatting: units.js (window.clusternbUnits) mirrors clusternb/units.py, the one unit convention --------
  const U = window.clusternbUnits;
  const pct = U.percent, num = U.number, bytes = U.humanBytes, rate = U.humanRate;
  function ago(iso) {
    const ms = iso ? Date.parse(iso) : NaN;
    if (!Number.isFinite(ms)) return U.DASH;
    const s = Math.max(0, (Date.now() - ms) / 1000);
    // Floored, like the alert messages: "2 min ago" is never said before two minutes have passed.
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }
  const badge = (v) => `<span class="badge badge-${esc(v)}">${esc(v)}</span>`;
  function bar(v) {
    if (U.missing(v)) return U.DASH;
    const cls = v >= 90 ? "hot" : v >= 75 ? "warm" : "";
    return `<span class="bar ${cls}"><span style="width:${Math.min(100, Math.max(0, v)).toFixed(0)}%"></span></span>${num(v, U.DECIMALS)}`;
  }
  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) { el.textContent = text; el.classList.remove("changed"); void el.offsetWidth; el.classList.add("changed"); }
  }

  // -- renderers, one per topic -------------------------------------------------------------------------
  function renderStatus(body) {
    const s = body.data[0]; if (!s) return;
    setText("c-nodes", `${s.nodes_online} / ${s.nodes_total}`);
    $("c-nodes-sub").textContent = `${s.nodes_stale} stale · ${s.nodes_offline} offline · ${U.count(s.cpu_count, "CPU")}`;
    setText("c-cpu", pct(s.cpu_percent));
    $("c-cpu-sub").textContent = `newest sample ${ago(s.newest_sample)}`;
    setText("c-mem", pct(s.mem_used_percent));
    $("c-mem-sub").textContent = `${bytes(s.mem_used_bytes)} of ${bytes(s.mem_total_bytes)}`;
    setText("c-alerts", String(s.alerts_firing));
    $("c-alerts-sub").textContent = `${s.alerts_critical} critical`;
    const h = $("health"); h.className = `badge badge-${s.health}`; h.textContent = s.health;
    renderShared(s);
  }

  // Where the numbers come from: Redis, or (during an outage) the server's last view; and rejected records.
  // textContent only: the reason and the rejected records' node names are text from the network.
  function renderShared(s) {
    const parts = [];
    if (s.redis_state && s.redis_state !== "connected") {
      const since = s.redis_down_since ? ` since ${U.clock(s.redis_down_since)}` : "";
      parts.push(`Redis ${s.redis_state}${since}: showing the server's last view (${s.redis_error || "no reason given"})`);
    }
    if (s.records_rejected) parts.push(`${U.count(s.records_rejected, "record")} from Redis rejected: ${s.rejected}`);
    const el = $("shared");
    el.hidden = parts.length === 0;
    if (el.textContent !== parts.join(" · ")) el.textContent = parts.join(" · ");
  }

  function showNotice(text) {
    const el = $("notice");
    el.hidden = !text;
    if (el.textContent !== text) el.textContent = text;
  }

  // The workers table's columns after Node come with the page, from the field catalogue
  // (clusternb.tables.dashboard_columns): name, heading, format (how units.js writes it) and cell class.
  const COLUMNS = JSON.parse($("workers-columns").textContent);
  const FORMAT = {
    category: badge, percent: bar, bytes, rate, seconds: U.seconds,
    integer: (v) => num(v, 0), number: (v) => num(v), text: esc,
  };
  const TEXT_FORMATS = new Set(["category", "text"]); // left-aligned; every other column is a number or a time
  const align = (c) => (TEXT_FORMATS.has(c.format) ? "" : "num ");
  function workersHead() {
    const row = $("workers").tHead.rows[0];
    for (const c of COLUMNS) {
      const th = document.createElement("th");
      th.className = align(c).trim(); th.dataset.field = c.name; th.textContent = c.heading;
      row.appendChild(th);
    }
  }
  function cell(c, r) {
    const v = r[c.name], cls = `${align(c)}${esc(c.class)}`;
    if (c.format === "time") return `<td class="${cls}" data-ago="${esc(v)}">${ago(v)}</td>`;
    return `<td class="${cls}">${(FORMAT[c.format] || esc)(v)}</td>`;
  }

  function renderWorkers(body) { state.workers = body; drawWorkers(); }
  function drawWorkers() {
    const body = state.workers; if (!body) return;
    const f = state.filter.toLowerCase();
    const rows = f ? body.data.filter((r) => r.node.toLowerCase().includes(f) || (r.status || "").includes(f)) : body.data;
    $("workers-count").textContent = `(${body.data.length})`;
    const html = rows.slice(0, MAX_ROWS).map((r) =>
      `<tr data-node="${esc(r.node)}"><td>${esc(r.node)}</td>${COLUMNS.map((c) => cell(c, r)).join("")}</tr>`).join("");
    $("workers").tBodies[0].innerHTML = html || `<tr><td colspan="${COLUMNS.length + 1}" class="empty">No nodes reported yet</td></tr>`;
    $("workers-note").textContent = rows.length > MAX_ROWS ? `Showing ${MAX_ROWS} of ${U.count(rows.length, "node")}; filter to narrow.` : "";
  }

  // The kernels table: its columns come with the page too, from the kernel record's declarations.
  const KERNEL_COLUMNS = JSON.parse($("kernels-columns").textContent);
  (function kernelsHead() {
    const row = $("kernels").tHead.rows[0];
    for (const c of KERNEL_COLUMNS) {
      const th = document.createElement("th");
      th.className = align(c).trim(); th.textContent = c.heading;
      row.appendChild(th);
    }
  })();
  const kernelCell = (c, r) => (r[c.name] === null && c.format === "text" ? `<td class="${esc(c.class)}">—</td>` : cell(c, r));
  function renderKernels(body) {
    $("kernels-count").textContent = `(${body.data.length})`;
    const html = body.data.slice(0, MAX_ROWS).map((r) =>
      `<tr><td class="mono" title="${esc(r.kernel_id)}">${esc(String(r.kernel_id).slice(0, 8))}</td>${KERNEL_COLUMNS.map((c) => kernelCell(c, r)).join("")}</tr>`).join("");
    $("kernels").tBodies[0].innerHTML = html || `<tr><td colspan="${KERNEL_COLUMNS.length + 1}" class="empty">No kernels reported (servers with the extension publish theirs)</td></tr>`;
  }

  function renderAlerts(body) {
    const html = body.data.map((a) => `<tr><td>${badge(a.severity)}</td><td>${badge(a.state)}</td><td>${esc(a.node)}</td>
      <td>${esc(a.message)}</td><td class="num" data-ago="${esc(a.started_at)}">${ago(a.started_at)}</td></tr>`).join("");
    $("alerts").tBodies[0].innerHTML = html || `<tr><td colspan="5" class="empty">No active alerts</td></tr>`;
  }

  function renderCache(body) {
    const all = body.data.find((r) => r.namespace === "(all)");
    const ratio = (v) => (U.missing(v) ? U.DASH : pct(100 * v));
    setText("c-cache", body.backend || U.DASH);
    $("c-cache-sub").textContent = all ? `hit rate ${ratio(all.hit_rate)} · ${U.count(all.entries, "entry", "entries")}` : "";
    $("cache").tBodies[0].innerHTML = body.data.map((r) => `<tr><td>${esc(r.namespace)}</td><td class="num">${num(r.hits, 0)}</td>
      <td class="num">${num(r.misses, 0)}</td><td class="num">${ratio(r.hit_rate)}</td><td class="num">${num(r.entries, 0)}</td>
      <td class="num">${num(r.p99_get_us, 0)} µs</td></tr>`).join("");
  }

  const dark = () => document.documentElement.dataset.theme === "dark";
  const layout = (yTitle) => {
    const grid = dark() ? "#2c3440" : "#eef1f5";
    return {
      margin: { l: 48, r: 12, t: 8, b: 32 }, showlegend: true, legend: { orientation: "h", y: -0.18, font: { size: 10 } },
      xaxis: { type: "date", gridcolor: grid }, yaxis: { title: { text: yTitle, font: { size: 11 } }, gridcolor: grid, rangemode: "tozero" },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { size: 11, color: dark() ? "#e3e8ef" : "#1f2933" },
    };
  };
  // A bytes-per-second axis, as clusternb.widgets.charts.layout draws one: SI ticks with a "B/s" suffix (3kB/s,
  // 2MB/s), and at least 0-10 B/s, so an idle network never gets milli-byte ticks (200mB/s).
  const RATE_AXIS_MIN = 10; // charts.RATE_AXIS_MIN
  function rateLayout(top) {
    const out = layout("");
    Object.assign(out.yaxis, { ticksuffix: "B/s", tickformat: "~s", hoverformat: ".3~s" });
    if (!(top >= RATE_AXIS_MIN)) out.yaxis.range = [0, RATE_AXIS_MIN * 1.05];
    return out;
  }
  const config = { displayModeBar: false, responsive: true };
  function renderMetrics(body) { state.metrics = body; drawMetrics(); }
  function drawMetrics() {
    const body = state.metrics; if (!body) return;
    // The node filter narrows the charts too: a node's link in Lab's sidebar opens its charts this way.
    const f = state.filter.toLowerCase();
    const rowsShown = f ? body.data.filter((r) => String(r.node).toLowerCase().includes(f)) : body.data;
    const byNode = new Map();
    for (const r of rowsShown) { if (!byNode.has(r.node)) byNode.set(r.node, []); byNode.get(r.node).push(r); }
    // With many nodes, draw the busiest few: a chart of 1,000 lines shows nothing.
    const last = (rows, k) => rows[rows.length - 1][k] ?? 0;
    const nodes = [...byNode.keys()].sort((a, b) => last(byNode.get(b), "cpu_percent") - last(byNode.get(a), "cpu_percent")).slice(0, MAX_LINES);
    // A node's name is text from the network: plotlyText, so a name like <a href=...> reads as itself.
    const lines = (k) => nodes.map((n) => ({ x: byNode.get(n).map((r) => r.time), y: byNode.get(n).map((r) => r[k]), name: plotlyText(n), mode: "lines", type: "scatter", line: { width: 1.6 } }));
    Plotly.react("chart-cpu", lines("cpu_percent"), layout("%"), config);
    Plotly.react("chart-mem", lines("mem_used_percent"), layout("%"), config);
    // Network: cluster totals per 5-second bucket (nodes sample at their own instants).
    const buckets = new Map();
    for (const r of rowsShown) {
      const t = Math.floor(Date.parse(r.time) / 5000) * 5000;
      const b = buckets.get(t) || { rx: 0, tx: 0 }; b.rx += r.net_rx_bps || 0; b.tx += r.net_tx_bps || 0; buckets.set(t, b);
    }
    const ts = [...buckets.keys()].sort((a, b) => a - b);
    const x = ts.map((t) => new Date(t).toISOString());
    const top = Math.max(0, ...ts.map((t) => buckets.get(t).rx), ...ts.map((t) => buckets.get(t).tx));
    Plotly.react("chart-net", [
      { x, y: ts.map((t) => buckets.get(t).rx), name: "received", mode: "lines", type: "scatter", fill: "tozeroy", line: { width: 1.6 } },
      { x, y: ts.map((t) => buckets.get(t).tx), name: "sent", mode: "lines", type: "scatter", line: { width: 1.6 } },
    ], rateLayout(top), config);
  }

  const RENDER = { status: renderStatus, workers: renderWorkers, kernels: renderKernels, alerts: renderAlerts, cache: renderCache, metrics: renderMetrics };

  // -- ages tick locally; data arrives only on change ---------------------------------------------------
  function tickAges() {
    for (const el of document.querySelectorAll(".age[data-topic]")) {
      const got = state.received[el.dataset.topic];
      el.textContent = got ? `as of ${ago(got)}` : "waiting…";
    }
    for (const el of document.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago);
  }
  workersHead();
  setInterval(tickAges, 1000);
  function setFilter(text) { state.filter = text; drawWorkers(); drawMetrics(); }
  $("filter").addEventListener("input", (e) => setFilter(e.target.value));
  // "#node=<name>": open on one node (Lab's sidebar links here); later changes of the hash move the filter.
  function filterFromHash() {
    const m = /^#node=(.*)$/.exec(location.hash);
    const node = m ? decodeURIComponent(m[1]) : "";
    if (node !== state.filter) { $("filter").value = node; setFilter(node); }
  }
  window.addEventListener("hashchange", filterFromHash);
  filterFromHash();

  // -- inside JupyterLab: its shared connection and its theme (the Lab page is our same-origin parent) ------
  function labPage() {
    try { return window.parent !== window && window.parent.clusternb ? window.parent : null; } catch (e) { return null; }
  }
  function applyTheme() {
    const lab = labPage();
    const light = lab ? lab.document.body.dataset.jpThemeLight : undefined;
    const isDark = light === undefined ? !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches) : light === "false";
    const theme = isDark ? "dark" : "light";
    if (document.documentElement.dataset.theme !== theme) { document.documentElement.dataset.theme = theme; drawMetrics(); }
  }
  applyTheme();
  if (labPage()) {
    new MutationObserver(applyTheme).observe(labPage().document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  }

  // -- messages, from our own WebSocket or from Lab's shared connection ---------------------------------
  function showConn(up) {
    const conn = $("conn");
    conn.className = up ? "conn conn-up" : "conn conn-down"; conn.textContent = up ? "live" : "reconnecting…";
  }
  function onFrame(msg) {
    // The server's word on a problem is shown (as text), not only logged.
    if (msg.type === "error") { console.warn("clusternb:", msg.message); showNotice(msg.message); return false; }
    if (msg.type === "state") showNotice("");
    // Unchanged topics are confirmed now and then: their cards' "as of" is when the server last checked.
    if (msg.type === "fresh") { for (const t of msg.topics) state.received[t.topic] = t.as_of; tickAges(); return true; }
    if (msg.type !== "state") return true;
    state.received[msg.topic] = msg.body.as_of;
    try { RENDER[msg.topic](msg.body); } catch (err) { console.error("clusternb render", msg.topic, err); }
    tickAges();
    return true;
  }

  // In a Lab tab: one listener on the Lab page's connection for each topic; all let go when the tab closes.
  function useShared(connection) {
    const listener = (msg) => {
      if (msg.type === "open") showConn(true);
      else if (msg.type === "close") showConn(false);
      else onFrame(msg);
    };
    const handles = SUBSCRIPTION.map((spec) => connection.want(spec, listener));
    handles.push(connection.wantFresh()); // the cards' "as of" needs the server's confirmations
    window.addEventListener("pagehide", () => handles.forEach((h) => h.dispose()));
    if (connection.state === "live") showConn(true);
  }

  // -- the WebSocket, reconnecting with backoff ---------------------------------------------------------
  let delay = 1000;
  function connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${base}clusternb/api/ws`;
    const ws = new WebSocket(url);
    const conn = $("conn");
    const subscribe = () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ subscribe: SUBSCRIPTION }));
    };
    ws.onopen = () => {
      delay = 1000; conn.className = "conn conn-up"; conn.textContent = "live";
      subscribe();
    };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      // A refused subscription (the rate limit) is retried when the server says; a topic that failed on the
      // server follows by itself.
      if (!onFrame(msg) && msg.retry_after) setTimeout(subscribe, 1000 * msg.retry_after);
    };
    ws.onclose = () => {
      conn.className = "conn conn-down"; conn.textContent = "reconnecting…";
      setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
    };
  }
  const lab = labPage();
  if (lab) useShared(lab.clusternb.connection); else connect();
})();
