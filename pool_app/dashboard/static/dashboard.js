// ebook-pool dashboard: live updates over server-sent events, actions over POST + token.
// Data from the server is only ever put into the page as text (textContent); the one HTML
// fragment inserted (an ebook's pages) is rendered and escaped by the server.
"use strict";
(() => {
  const body = document.body;
  const page = body.dataset.page;
  const readOnly = body.dataset.readonly === "1";
  const readOnlyWhy = body.dataset.readonlyWhy || "Read-only";
  const TOKEN_KEY = "ebook-pool.dashboard.token";
  const $ = (id) => document.getElementById(id);

  // --- small DOM helpers ---------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const dash = "–";
  const num = (v) => (typeof v === "number" ? v.toLocaleString("en") : dash);
  const fixed = (v, d) => (typeof v === "number" ? v.toFixed(d) : dash);
  function when(ms) {
    if (typeof ms !== "number") return dash;
    const d = new Date(ms);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString("en-GB") : d.toLocaleString("en-GB");
  }
  function uptime(s) {
    if (typeof s !== "number") return dash;
    if (s < 120) return `${Math.round(s)}s`;
    if (s < 7200) return `${Math.round(s / 60)}m`;
    return `${(s / 3600).toFixed(1)}h`;
  }
  function setText(id, value) {
    const node = $(id);
    if (node) node.textContent = value;
  }
  function progress(done, failed, total) {
    const ok = total ? (100 * done) / total : 0;
    const bad = total ? (100 * failed) / total : 0;
    const bar = el("div", { class: "bar", title: `${done}/${total} done, ${failed} failed` });
    const okPart = el("span", { class: "ok" });
    okPart.style.width = `${ok.toFixed(1)}%`;
    const badPart = el("span", { class: "bad" });
    badPart.style.width = `${bad.toFixed(1)}%`;
    bar.append(okPart, badPart);
    return bar;
  }

  // --- messages --------------------------------------------------------------------------
  function flash(message, kind) {
    const box = $("flash");
    box.textContent = message;
    box.className = `flash ${kind}`;
    box.hidden = false;
  }
  function banner(lines) {
    const box = $("banner");
    box.replaceChildren(...lines.map((line) => el("div", { text: line })));
    box.hidden = lines.length === 0;
  }

  // --- the operator token ------------------------------------------------------------------
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  function showTokenState() {
    const has = token() !== "";
    if (readOnly) return;
    setText("token-state", has ? "unlocked" : "locked: actions need the token");
    $("token-clear").hidden = !has;
    $("token-input").hidden = has;
    $("token-save").hidden = has;
  }
  function setupToken() {
    const form = $("token-form");
    if (readOnly) {
      form.title = readOnlyWhy;
      return;
    }
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      const result = await post("/api/auth", {}, value, false);
      if (result) {
        sessionStorage.setItem(TOKEN_KEY, value);
        $("token-input").value = "";
        flash("Unlocked: actions are on for this tab.", "ok");
      }
      showTokenState();
    });
    $("token-clear").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
      flash("Locked.", "ok");
    });
    showTokenState();
  }

  // --- actions -------------------------------------------------------------------------------
  async function post(url, payload, tokenValue, announce = true) {
    const headers = { "Content-Type": "application/json" };
    const t = tokenValue === undefined ? token() : tokenValue;
    if (t) headers["X-Dashboard-Token"] = t;
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify(payload || {}),
        credentials: "same-origin",
      });
    } catch (err) {
      flash(`Could not reach the server: ${err}`, "error");
      return null;
    }
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = {};
    }
    if (!response.ok) {
      flash(`Refused (${response.status}): ${data.error || response.statusText}`, "error");
      return null;
    }
    if (announce) flash(data.message || "Done.", "ok");
    return data;
  }
  function arm(button, handler) {
    const holder = button.parentElement;
    if (readOnly) {
      button.disabled = true;
      if (holder) holder.title = readOnlyWhy;
      return;
    }
    if (button.dataset.never !== undefined) {
      button.disabled = true;
      if (holder) holder.title = "This payload is invalid or truncated: it would fail again.";
      return;
    }
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await handler();
      } finally {
        if (!button.dataset.finished) button.disabled = false;
      }
    });
  }
  function actionButton(label, cls, handler) {
    const button = el("button", { type: "button", class: cls, text: label });
    const holder = el("span", { class: "action" }, button);
    arm(button, handler);
    return holder;
  }

  // --- live feed -------------------------------------------------------------------------------
  function live(url, onData) {
    const source = new EventSource(url);
    const dot = $("live");
    source.onmessage = (ev) => {
      const data = JSON.parse(ev.data);
      dot.textContent = data.error ? "Redis unavailable" : `live · ${when(data.at)}`;
      dot.className = data.error ? "live down" : "live up";
      onData(data);
    };
    source.onerror = () => {
      dot.textContent = "reconnecting…";
      dot.className = "live down";
    };
  }
  function pauseLines(s) {
    const lines = [];
    if (s.error) lines.push(s.error);
    if (s.operatorPause) {
      const since = s.operatorPause.since ? ` since ${when(s.operatorPause.since)}` : "";
      lines.push(`Pool paused by an operator${since}: ${s.operatorPause.reason}`);
    }
    for (const p of s.pools || []) {
      if (p.paused) lines.push(`Process ${p.id} is paused: ${p.paused}`);
    }
    return lines;
  }

  // --- chart (inline SVG) -------------------------------------------------------------------------
  const points = [];
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function drawChart() {
    const box = $("chart");
    if (!box) return;
    const w = Math.max(box.clientWidth, 300);
    const h = 170;
    const pad = { l: 44, r: 52, t: 10, b: 22 };
    const root = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}` });
    // The window is the history we have, from one minute up to ten.
    const now = points.length ? points[points.length - 1][0] : Date.now();
    const first = points.length ? points[0][0] : now;
    const span = Math.min(Math.max(now - first, 60 * 1000), 10 * 60 * 1000);
    const t0 = now - span;
    const x = (t) => pad.l + ((t - t0) / span) * (w - pad.l - pad.r);
    const maxLeft = Math.max(1, ...points.map((p) => Math.max(p[1], p[2])));
    const maxRight = Math.max(1, ...points.map((p) => p[3]));
    const yl = (v) => h - pad.b - (v / maxLeft) * (h - pad.t - pad.b);
    const yr = (v) => h - pad.b - (v / maxRight) * (h - pad.t - pad.b);
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (i * (h - pad.t - pad.b)) / 4;
      root.append(svg("line", { x1: pad.l, x2: w - pad.r, y1: y, y2: y, class: "gridline" }));
      root.append(svg("text", { x: pad.l - 6, y: y + 4, class: "axis depth", "text-anchor": "end" },
        String(Math.round(maxLeft * (1 - i / 4)))));
      root.append(svg("text", { x: w - pad.r + 6, y: y + 4, class: "axis rate" },
        (maxRight * (1 - i / 4)).toFixed(maxRight < 10 ? 1 : 0)));
    }
    for (let i = 0; i <= 5; i++) {
      const ago = (span * (5 - i)) / 5 / 1000;
      const label = ago === 0 ? "now" : ago < 120 ? `-${Math.round(ago)}s` : `-${(ago / 60).toFixed(0)}m`;
      root.append(svg("text", { x: x(now - ago * 1000), y: h - 6, class: "axis", "text-anchor": "middle" },
        label));
    }
    const line = (idx, y, cls) => {
      const shown = points.filter((p) => p[0] >= t0);
      if (!shown.length) return;
      const d = shown.map((p) => `${x(p[0]).toFixed(1)},${y(p[idx]).toFixed(1)}`).join(" ");
      root.append(svg("polyline", { points: d, class: `series ${cls}` }));
    };
    line(2, yl, "inflight");
    line(1, yl, "depth");
    line(3, yr, "rate");
    box.replaceChildren(root);
  }
  function addPoints(s) {
    if (Array.isArray(s.history)) {
      points.length = 0;
      points.push(...s.history);
    } else if (Array.isArray(s.sample)) {
      const last = points[points.length - 1];
      if (!last || s.sample[0] > last[0]) points.push(s.sample);
    }
    while (points.length > 600) points.shift();
    drawChart();
  }

  // --- overview ---------------------------------------------------------------------------------
  const rendered = {};
  function changed(name, value) {
    const text = JSON.stringify(value);
    if (rendered[name] === text) return false;
    rendered[name] = text;
    return true;
  }
  function fillTable(id, rows, empty, columns) {
    const tbody = $(id).querySelector("tbody");
    if (!rows.length) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "muted", text: empty })));
      return;
    }
    tbody.replaceChildren(...rows);
  }
  function renderOverview(s) {
    banner(pauseLines(s));
    if (s.error) return;
    addPoints(s);
    setText("c-queue", num(s.queueDepth));
    setText("c-inflight", num(s.inFlight));
    setText("c-rate", fixed(s.pagesPerMin, 1));
    setText("c-failed", num(s.failedCount));
    setText("c-pools", num((s.pools || []).length));
    if (s.budget) {
      setText("c-budget", `${Math.round(100 * s.budget.used)}%`);
      setText("c-budget-note", s.budget.note || "of the rate limit in use");
    }
    const state = $("pool-state");
    state.textContent = s.operatorPause ? `paused: ${s.operatorPause.reason}` : "running";
    state.className = s.operatorPause ? "pill paused" : "pill running";
    if (changed("pools", s.pools)) {
      fillTable("pools", s.pools.map((p) => el("tr", {},
        el("td", { title: `${p.host || ""} pid ${p.pid || "?"}` }, el("code", { text: p.id })),
        el("td", { text: num(p.workers) }),
        el("td", { text: num(p.active) }),
        el("td", { text: num(p.processed) }),
        el("td", { text: num(p.success) }),
        el("td", { text: num(p.failed) }),
        el("td", { text: fixed(p.pages_per_min, 1) }),
        el("td", { text: typeof p.p50_s === "number" ? `${p.p50_s.toFixed(1)}s` : dash }),
        el("td", { text: uptime(p.uptime_s) }),
        el("td", {}, el("span", {
          class: p.paused ? "pill paused" : "pill running",
          text: p.paused ? `paused: ${p.paused}` : "running",
        })),
      )), "No live pool process.", 10);
    }
    if (changed("ebooks", s.ebooks)) {
      fillTable("ebooks", s.ebooks.map((b) => el("tr", { dataset: { ebook: b.ebookId } },
        el("td", {}, el("a", { href: `/ebook?id=${encodeURIComponent(b.ebookId)}`, text: b.ebookId })),
        el("td", {}, el("span", { class: `state ${b.state}`, text: b.state })),
        el("td", { class: "wide" }, progress(b.done, b.failed, b.total)),
        el("td", { text: `${b.done}/${b.total}` }),
        el("td", { text: num(b.failed) }),
        el("td", { text: typeof b.cost === "number" ? `$${b.cost.toFixed(4)}` : "—" }),
        el("td", { text: when(b.createdAt) }),
      )), "No ebook yet.", 7);
      setText("ebooks-note", s.ebooksTruncated ? `the ${s.ebooks.length} most recent` : "");
    }
    if (changed("failed", s.failed)) {
      fillTable("failed", s.failed.map((f) => el("tr", { dataset: { fid: f.id } },
        el("td", { text: when(f.failedAt) }),
        el("td", { text: f.errorType || dash }),
        el("td", {}, f.ebookId
          ? el("a", { href: `/ebook?id=${encodeURIComponent(f.ebookId)}`, text: f.ebookId })
          : dash),
        el("td", { text: typeof f.pageIndex === "number" ? f.pageIndex + 1 : dash }),
        el("td", { text: num(f.attempts) }),
        el("td", { class: "err", text: f.error }),
        el("td", { class: "row-actions" },
          el("a", { class: "open", href: `/failed/${f.id}`, text: "open" }),
          f.retryable ? actionButton("Retry", "", () => post(`/api/failed/${f.id}/retry`)) : null,
          actionButton("Purge", "danger", () => post(`/api/failed/${f.id}/purge`)),
        ),
      )), "No failed job.", 7);
    }
    const shown = (s.failed || []).length;
    setText("failed-note", s.failedCount > shown ? `newest ${shown} of ${s.failedCount}` : "");
  }
  function setupOverview() {
    arm($("pause-btn"), () => post("/api/pause", { reason: $("pause-reason").value }));
    arm($("resume-btn"), () => post("/api/resume"));
    for (const button of document.querySelectorAll("[data-action=retry-all]")) {
      arm(button, () => post("/api/failed/retry-all"));
    }
    for (const button of document.querySelectorAll("[data-action=purge-all]")) {
      arm(button, async () => {
        if (window.confirm("Delete every failed job for good?")) await post("/api/failed/purge-all");
      });
    }
    window.addEventListener("resize", drawChart);
    live("/events", renderOverview);
  }

  // --- one ebook --------------------------------------------------------------------------------
  function setupEbook() {
    const id = body.dataset.ebook;
    let last = null;
    let refreshing = false;
    live(`/events?ebook=${encodeURIComponent(id)}`, async (s) => {
      banner(pauseLines(s));
      const b = s.ebook;
      if (!b) return;
      const state = $("e-state");
      state.textContent = b.state;
      state.className = `state ${b.state}`;
      $("e-bar").replaceChildren(progress(b.done, b.failed, b.total));
      setText("e-counts", `${b.done}/${b.total} pages done, ${b.failed} failed, ${b.pending} pending`);
      setText("e-when", b.finishedAt ? `finished ${when(b.finishedAt)}` : `created ${when(b.createdAt)}`);
      const key = `${b.state}/${b.done}/${b.failed}`;
      if (last !== null && key !== last && !refreshing) {
        refreshing = true;
        try {
          const r = await fetch(`/ebook/fragment?id=${encodeURIComponent(id)}`);
          if (r.ok) $("ebook-live").innerHTML = await r.text(); // server-rendered, escaped
        } finally {
          refreshing = false;
        }
      }
      last = key;
    });
  }

  // --- one failed job -------------------------------------------------------------------------
  function setupFailed() {
    const fid = body.dataset.fid;
    const done = (verb) => (result) => {
      if (!result) return;
      for (const b of document.querySelectorAll("[data-action]")) {
        b.disabled = true;
        b.dataset.finished = "1";
      }
      const note = el("p", { class: "notice", id: "failed-done", text: `${verb}. ` });
      const link = document.querySelector(".fields a");
      if (link) note.append(el("a", { href: link.getAttribute("href"), text: "Follow the ebook →" }));
      document.querySelector(".toolbar").after(note);
    };
    const retry = $("retry-btn");
    const purge = $("purge-btn");
    if (retry) arm(retry, async () => done("Back on the queue")(await post(`/api/failed/${fid}/retry`)));
    if (purge) arm(purge, async () => {
      if (window.confirm("Delete this failed job for good?")) {
        done("Deleted")(await post(`/api/failed/${fid}/purge`));
      }
    });
    live("/events", (s) => banner(pauseLines(s)));
  }

  // Progress bars rendered by the server carry their numbers; draw them (no inline styles).
  for (const bar of document.querySelectorAll(".bar[data-total]")) {
    const d = bar.dataset;
    bar.replaceWith(progress(Number(d.done), Number(d.failed), Number(d.total)));
  }
  setupToken();
  if (page === "overview") setupOverview();
  else if (page === "ebook") setupEbook();
  else if (page === "failed") setupFailed();
})();
