// clusternb dashboard: one WebSocket, one render function per topic, ages re-computed every second.
(function () {
  "use strict";
  const base = document.body.dataset.baseUrl;
  const METRIC_FIELDS = ["cpu_percent", "mem_used_percent", "net_rx_bps", "net_tx_bps"];
  const MAX_LINES = 8, MAX_ROWS = 300;
  const state = { received: {}, workers: null, filter: "" };
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  // -- formatting ---------------------------------------------------------------------------------------
  const pct = (v) => (v == null ? "–" : v.toFixed(1) + " %");
  const num = (v, d = 2) => (v == null ? "–" : v.toFixed(d));
  function bytes(v) {
    if (v == null) return "–";
    const u = ["B", "KB", "MB", "GB", "TB", "PB"]; let i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return v.toFixed(v >= 100 || i === 0 ? 0 : 1) + " " + u[i];
  }
  const rate = (v) => (v == null ? "–" : bytes(v) + "/s");
  function ago(iso) {
    if (!iso) return "–";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  const badge = (v) => `<span class="badge badge-${esc(v)}">${esc(v)}</span>`;
  function bar(v) {
    if (v == null) return "–";
    const cls = v >= 90 ? "hot" : v >= 75 ? "warm" : "";
    return `<span class="bar ${cls}"><span style="width:${Math.min(100, v).toFixed(0)}%"></span></span>${v.toFixed(1)}`;
  }
  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) { el.textContent = text; el.classList.remove("changed"); void el.offsetWidth; el.classList.add("changed"); }
  }

  // -- renderers, one per topic -------------------------------------------------------------------------
  function renderStatus(body) {
    const s = body.data[0]; if (!s) return;
    setText("c-nodes", `${s.nodes_online} / ${s.nodes_total}`);
    $("c-nodes-sub").textContent = `${s.nodes_stale} stale · ${s.nodes_offline} offline · ${s.cpu_count} CPUs`;
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
      const since = s.redis_down_since ? ` since ${new Date(s.redis_down_since).toLocaleTimeString()}` : "";
      parts.push(`Redis ${s.redis_state}${since}: showing the server's last view (${s.redis_error || "no reason given"})`);
    }
    if (s.records_rejected) parts.push(`${s.records_rejected} records from Redis rejected: ${s.rejected}`);
    const el = $("shared");
    el.hidden = parts.length === 0;
    if (el.textContent !== parts.join(" · ")) el.textContent = parts.join(" · ");
  }

  function renderWorkers(body) { state.workers = body; drawWorkers(); }
  function drawWorkers() {
    const body = state.workers; if (!body) return;
    const f = state.filter.toLowerCase();
    const rows = f ? body.data.filter((r) => r.node.toLowerCase().includes(f) || (r.status || "").includes(f)) : body.data;
    $("workers-count").textContent = `(${body.data.length})`;
    const html = rows.slice(0, MAX_ROWS).map((r) => `<tr data-node="${esc(r.node)}">
      <td>${esc(r.node)}</td><td>${badge(r.status)}</td><td class="num cpu">${bar(r.cpu_percent)}</td>
      <td class="num">${num(r.load_1)}</td><td class="num">${bar(r.mem_used_percent)}</td><td class="num">${bar(r.disk_used_percent)}</td>
      <td class="num">${rate(r.net_rx_bps)}</td><td class="num">${rate(r.net_tx_bps)}</td><td class="num">${r.gpu_count ?? 0}</td>
      <td class="num" data-ago="${esc(r.last_seen)}">${ago(r.last_seen)}</td></tr>`).join("");
    $("workers").tBodies[0].innerHTML = html || `<tr><td colspan="10" class="empty">No nodes reported yet</td></tr>`;
    $("workers-note").textContent = rows.length > MAX_ROWS ? `Showing ${MAX_ROWS} of ${rows.length} nodes; filter to narrow.` : "";
  }

  function renderAlerts(body) {
    const html = body.data.map((a) => `<tr><td>${badge(a.severity)}</td><td>${badge(a.state)}</td><td>${esc(a.node)}</td>
      <td>${esc(a.message)}</td><td class="num" data-ago="${esc(a.started_at)}">${ago(a.started_at)}</td></tr>`).join("");
    $("alerts").tBodies[0].innerHTML = html || `<tr><td colspan="5" class="empty">No active alerts</td></tr>`;
  }

  function renderCache(body) {
    const all = body.data.find((r) => r.namespace === "(all)");
    setText("c-cache", body.backend || "–");
    $("c-cache-sub").textContent = all ? `hit rate ${(100 * all.hit_rate).toFixed(0)} % · ${all.entries} entries` : "";
    $("cache").tBodies[0].innerHTML = body.data.map((r) => `<tr><td>${esc(r.namespace)}</td><td class="num">${r.hits}</td>
      <td class="num">${r.misses}</td><td class="num">${(100 * r.hit_rate).toFixed(0)} %</td><td class="num">${r.entries}</td>
      <td class="num">${num(r.p99_get_us, 0)} µs</td></tr>`).join("");
  }

  const layout = (yTitle) => ({
    margin: { l: 48, r: 12, t: 8, b: 32 }, showlegend: true, legend: { orientation: "h", y: -0.18, font: { size: 10 } },
    xaxis: { type: "date", gridcolor: "#eef1f5" }, yaxis: { title: { text: yTitle, font: { size: 11 } }, gridcolor: "#eef1f5", rangemode: "tozero" },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { size: 11, color: "#1f2933" },
  });
  const config = { displayModeBar: false, responsive: true };
  function renderMetrics(body) {
    const byNode = new Map();
    for (const r of body.data) { if (!byNode.has(r.node)) byNode.set(r.node, []); byNode.get(r.node).push(r); }
    // With many nodes, draw the busiest few: a chart of 1,000 lines shows nothing.
    const last = (rows, k) => rows[rows.length - 1][k] ?? 0;
    const nodes = [...byNode.keys()].sort((a, b) => last(byNode.get(b), "cpu_percent") - last(byNode.get(a), "cpu_percent")).slice(0, MAX_LINES);
    const lines = (k) => nodes.map((n) => ({ x: byNode.get(n).map((r) => r.time), y: byNode.get(n).map((r) => r[k]), name: n, mode: "lines", type: "scatter", line: { width: 1.6 } }));
    Plotly.react("chart-cpu", lines("cpu_percent"), layout("%"), config);
    Plotly.react("chart-mem", lines("mem_used_percent"), layout("%"), config);
    // Network: cluster totals per 5-second bucket (nodes sample at their own instants).
    const buckets = new Map();
    for (const r of body.data) {
      const t = Math.floor(Date.parse(r.time) / 5000) * 5000;
      const b = buckets.get(t) || { rx: 0, tx: 0 }; b.rx += r.net_rx_bps || 0; b.tx += r.net_tx_bps || 0; buckets.set(t, b);
    }
    const ts = [...buckets.keys()].sort((a, b) => a - b);
    const x = ts.map((t) => new Date(t).toISOString());
    Plotly.react("chart-net", [
      { x, y: ts.map((t) => buckets.get(t).rx), name: "received", mode: "lines", type: "scatter", fill: "tozeroy", line: { width: 1.6 } },
      { x, y: ts.map((t) => buckets.get(t).tx), name: "sent", mode: "lines", type: "scatter", line: { width: 1.6 } },
    ], layout("bytes/s"), config);
  }

  const RENDER = { status: renderStatus, workers: renderWorkers, alerts: renderAlerts, cache: renderCache, metrics: renderMetrics };

  // -- ages tick locally; data arrives only on change ---------------------------------------------------
  function tickAges() {
    for (const el of document.querySelectorAll(".age[data-topic]")) {
      const got = state.received[el.dataset.topic];
      el.textContent = got ? `as of ${ago(got)}` : "waiting…";
    }
    for (const el of document.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago);
  }
  setInterval(tickAges, 1000);
  $("filter").addEventListener("input", (e) => { state.filter = e.target.value; drawWorkers(); });

  // -- the WebSocket, reconnecting with backoff ---------------------------------------------------------
  let delay = 1000;
  function connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${base}clusternb/api/ws`;
    const ws = new WebSocket(url);
    const conn = $("conn");
    ws.onopen = () => {
      delay = 1000; conn.className = "conn conn-up"; conn.textContent = "live";
      ws.send(JSON.stringify({ subscribe: ["status", "workers", "alerts", "cache", { topic: "metrics", since: "15m", fields: METRIC_FIELDS }] }));
    };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "error") { console.warn("clusternb:", msg.message); return; }
      if (msg.type !== "state") return;
      state.received[msg.topic] = msg.body.as_of;
      try { RENDER[msg.topic](msg.body); } catch (err) { console.error("clusternb render", msg.topic, err); }
      tickAges();
    };
    ws.onclose = () => {
      conn.className = "conn conn-down"; conn.textContent = "reconnecting…";
      setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
