/* tuneserve dashboard: fetches the chart-data endpoints (/dashboard/api/...), draws with plotly.js
 * (served from the installed plotly package), and polls for changes. Charts are redrawn with
 * Plotly.react and table rows are updated in place, so live updates never reload or flicker.
 * Each page is a list of panels ({load, render}); a later panel (a trial's diagnosis, a study's
 * advice) is one more entry whose `when` says if the data has its fields. */
(function () {
  "use strict";

  // The value lists are the server's enums (tuneserve/schemas/enums.py), rendered into the page
  // (service/dashboard/pages.py): a state or label added there shows here without an edit.
  const ENUMS = JSON.parse(document.getElementById("ts-enums").textContent);
  const T = ENUMS.TrialState, GOAL = ENUMS.Goal, STUDY = ENUMS.StudyState;
  const STATES = Object.values(T);
  const ACTIVE = Object.values(ENUMS.ACTIVE_STATES), ENDED = Object.values(ENUMS.ENDED_STATES);
  // A trial's diagnosis (service/diagnosis): the table's badges and its filter.
  const LABELS = Object.values(ENUMS.DiagnosisLabel);
  const COLORS = {
    completed: "#2f7d4f", running: "#2563eb", waiting: "#8792a2", pruned: "#d97706",
    failed: "#dc2626", diverged: "#7c3aed", best: "#111827",
  };
  const POLL_MS = 3000;
  // No mode bar: it covers small charts; drag zooms, a double click resets.
  const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  const BASE_LAYOUT = {
    margin: { l: 56, r: 16, t: 8, b: 40 }, font: { family: "system-ui, sans-serif", size: 12, color: "#1c2430" },
    paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "closest",
    legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0, font: { size: 11 } },
    xaxis: { gridcolor: "#eef1f5", zeroline: false }, yaxis: { gridcolor: "#eef1f5", zeroline: false },
  };

  // ---- small helpers ----------------------------------------------------------------------------
  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const enc = encodeURIComponent;
  // The same helpers for the panels' scripts (craft.js, gates.js), which run after this one (deferred).
  window.tuneserveDom = { $, el, enc };

  class HttpError extends Error {
    constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; this.detail = detail; }
  }

  // Requests started while plotly.js is still being parsed (see the end of this file); the first
  // api() call for the same path takes the answer.
  const PREFETCH = new Map();
  function prefetch(path) {
    PREFETCH.set(path, fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } }));
  }

  async function api(path, options) {
    const opts = Object.assign({ credentials: "same-origin", headers: { accept: "application/json" } }, options || {});
    if (opts.body !== undefined) opts.headers["content-type"] = "application/json";
    let pending = null;
    if (!options && PREFETCH.has(path)) { pending = PREFETCH.get(path); PREFETCH.delete(path); }
    const resp = await (pending || fetch(path, opts));
    if (resp.status === 401) { location.href = "/dashboard/login?next=" + enc(location.pathname); throw new HttpError(401, "login"); }
    const body = resp.status === 204 ? null : await resp.json();
    if (!resp.ok) throw new HttpError(resp.status, errorText(body));
    return body;
  }

  function errorText(body) {
    if (!body) return "error";
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    return body.detail || JSON.stringify(body);
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e6) return String(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits === undefined ? 2 : digits - 1);
    return v.toPrecision(digits || 4).replace(/\.?0+$/, "");
  }

  function ago(iso) {
    if (!iso) return "–";
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (s < 5) return "just now";
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return new Date(iso).toLocaleDateString();
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 90) return `${seconds.toFixed(1)} s`;
    if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  const badge = (state) => el("span", { class: `badge ${state}`, text: state });

  function setText(node, text) { if (node && node.textContent !== text) node.textContent = text; }

  function react(div, traces, layout) {
    const merged = Object.assign({}, BASE_LAYOUT, layout || {});
    merged.xaxis = Object.assign({}, BASE_LAYOUT.xaxis, (layout || {}).xaxis);
    merged.yaxis = Object.assign({}, BASE_LAYOUT.yaxis, (layout || {}).yaxis);
    merged.datarevision = Date.now();
    return Plotly.react(div, traces, merged, PLOT_CONFIG);
  }

  function emptyChart(div, text) {
    if (div.dataset.empty === text) return;
    if (div.data) Plotly.purge(div);
    div.dataset.empty = text;
    div.replaceChildren(el("div", { class: "empty", text }));
  }

  function chartReady(div) { if (div.dataset.empty) { div.replaceChildren(); delete div.dataset.empty; } }

  // Polls `tick` every POLL_MS while the tab is visible; the header's "live" mark shows the state.
  function poll(tick) {
    const live = $("#live");
    let timer = null;
    const run = async () => {
      timer = null;
      if (!document.hidden) {
        try { await tick(); live.className = "live on"; live.title = "live: updated " + new Date().toLocaleTimeString(); }
        catch (err) { live.className = "live off"; live.title = "live updates failing: " + err.message; }
      }
      timer = setTimeout(run, POLL_MS);
    };
    document.addEventListener("visibilitychange", () => { if (!document.hidden && timer) { clearTimeout(timer); run(); } });
    timer = setTimeout(run, POLL_MS);
  }

  // Steps are whole epochs: with few of them, tick every one instead of at 1.2, 1.4, ...
  const stepTicks = (maxStep) => (maxStep <= 20 ? { tick0: 0, dtick: 1 } : {});

  function ready() { if (!window.__readyAt) window.__readyAt = performance.now(); document.body.dataset.ready = "1"; }

  const DEFAULT_QUERY = () => ({ states: new Set(), labels: new Set(), vmin: "", vmax: "", params: [], sort: "number", order: "desc", limit: 50, offset: 0 });

  function buildTableUrl(base, query) {
    const qs = new URLSearchParams();
    for (const s of query.states) qs.append("state", s);
    for (const l of query.labels) qs.append("diagnosis", l);
    if (query.vmin !== "") qs.set("value_min", query.vmin);
    if (query.vmax !== "") qs.set("value_max", query.vmax);
    for (const f of query.params) qs.append("param", f.spec);
    qs.set("sort", query.sort); qs.set("order", query.order); qs.set("limit", query.limit); qs.set("offset", query.offset);
    return `${base}/trials?${qs}`;
  }

  // Charts below the fold are drawn when they scroll into view (WebGL charts cost seconds without
  // a GPU); until then a redraw only marks them stale.
  const pendingDraws = new Map();
  const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      const draw = pendingDraws.get(e.target);
      if (draw) { pendingDraws.delete(e.target); draw(); }
    }
  }, { rootMargin: "150px" }) : null;
  function drawWhenVisible(div, draw) {
    const r = div.getBoundingClientRect();
    const visible = r.bottom >= -150 && r.top <= window.innerHeight + 150;
    if (!observer || visible) { pendingDraws.delete(div); draw(); return; }
    if (!pendingDraws.has(div)) observer.observe(div);
    pendingDraws.set(div, () => { observer.unobserve(div); draw(); });
  }

  // ---- the studies page -------------------------------------------------------------------------
  function studiesPage() {
    const table = $("#studies");
    const tbody = table.tBodies[0];
    let rows = [];
    let sortKey = "last_activity";
    let desc = true;

    const sortValue = (s, key) => {
      if (key === "progress") return s.budget ? s.ended / s.budget : s.ended;
      if (key in s.counts) return s.counts[key];
      if (key === "best_value") return s.best_value === null ? Infinity : s.best_value;
      return s[key] || "";
    };

    function render() {
      const sorted = rows.slice().sort((a, b) => {
        const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
        return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
      });
      for (const th of table.tHead.rows[0].cells) {
        th.classList.toggle("sorted", th.dataset.key === sortKey);
        th.classList.toggle("desc", th.dataset.key === sortKey && desc);
      }
      const existing = new Map([...tbody.rows].map((r) => [r.dataset.name, r]));
      sorted.forEach((s) => {
        let tr = existing.get(s.name);
        if (!tr) {
          tr = el("tr", { "data-name": s.name });
          for (let i = 0; i < 11; i++) tr.append(el("td"));
          [3, 4, 5, 6, 7, 8, 9, 10].forEach((i) => tr.cells[i].classList.add("num"));
          tr.cells[0].append(el("a", { href: `/dashboard/studies/${enc(s.name)}`, text: s.name }));
          tr.cells[3].append(el("span", { class: "mini" }, el("i")), el("span"));
        }
        existing.delete(s.name);
        const sanity = s.sanity_state === ENUMS.SanityState.FAILED || s.sanity_state === ENUMS.SanityState.RUNNING ? s.sanity_state : "";
        if (tr.cells[1].dataset.state !== s.state + sanity) {
          tr.cells[1].dataset.state = s.state + sanity;
          tr.cells[1].replaceChildren(badge(s.state), sanity ? el("span", { class: `badge sanity-${sanity}`, title: `the sanity check ${sanity === "failed" ? "failed: see the study's page" : "is running: trials wait for it"}`, text: `sanity ${sanity}` }) : "");
        }
        setText(tr.cells[2], s.method);
        const share = s.budget ? Math.min(1, s.ended / s.budget) : 0;
        tr.cells[3].querySelector("i").style.width = `${(share * 100).toFixed(1)}%`;
        setText(tr.cells[3].lastChild, s.budget ? `${s.ended} / ${s.budget}` : `${s.ended}`);
        setText(tr.cells[4], String(s.counts.running));
        setText(tr.cells[5], String(s.counts.waiting));
        setText(tr.cells[6], String(s.counts.failed));
        setText(tr.cells[7], String(s.counts.pruned));
        setText(tr.cells[8], String(s.counts.diverged));
        setText(tr.cells[9], s.best_value === null ? "–" : fmt(s.best_value, 5));
        tr.cells[9].title = s.best_value === null ? "" : `${s.goal} ${s.metric}`;
        setText(tr.cells[10], ago(s.last_activity));
        tr.cells[10].title = s.last_activity || "";
        tbody.append(tr);  // moves an existing row into its sorted place without rebuilding it
      });
      for (const tr of existing.values()) tr.remove();
      $("#studies-empty").hidden = rows.length > 0;
      setText($("#studies-count"), `${rows.length} ${rows.length === 1 ? "study" : "studies"}`);
    }

    table.tHead.addEventListener("click", (ev) => {
      const th = ev.target.closest("th[data-key]");
      if (!th) return;
      if (sortKey === th.dataset.key) desc = !desc; else { sortKey = th.dataset.key; desc = th.dataset.key !== "name"; }
      render();
    });

    const load = async () => { rows = await api("/dashboard/api/studies"); render(); };
    load().then(ready).catch((err) => { console.error(err); ready(); });
    poll(load);
  }

  // ---- the study page ---------------------------------------------------------------------------
  function studyPage() {
    const name = document.body.dataset.study;
    const base = `/dashboard/api/studies/${enc(name)}`;
    const st = { summary: null, stamp: null, completed: -1, paramsAt: 0, table: null };
    const query = DEFAULT_QUERY();

    // Panels: `load` fetches, `render` draws. A further panel (advice, sanity verdict) is one
    // more entry here with `when: (summary) => "advice" in summary.study`.
    const panels = {
      history: { url: "/history", render: renderHistory },
      curves: { url: "/curves", render: renderCurves },
      params: { url: "/params", render: renderParams },
      importance: { url: "/importance", render: (d) => drawWhenVisible($("#chart-importance"), () => renderImportance(d)) },
    };
    const latest = {};

    async function loadPanel(key) {
      const p = panels[key];
      const data = await api(base + p.url);
      latest[key] = data;
      timed(key, () => p.render(data));
    }

    // -- header and controls
    function renderSummary(sum) {
      const s = sum.study;
      const state = $("#study-state");
      state.className = `badge ${s.state}`;
      setText(state, s.state);
      setText($("#study-desc"), s.description || "");
      const c = s.counts;
      const ended = c.completed + c.pruned + c.failed + c.diverged;
      const facts = [
        ["method", s.method], ["metric", `${s.metric.goal} ${s.metric.name}`],
        ["progress", s.max_trials ? `${ended} / ${s.max_trials} ended` : `${ended} ended`],
        ["best", s.best_trial ? `${fmt(s.best_trial.value, 5)} (trial #${s.best_trial.number})` : "–"],
        ["pruner", s.pruner && s.pruner.type ? s.pruner.type : "none"],
        ["concurrency", s.max_concurrent || "unlimited"], ["seed", s.seed],
      ];
      const box = $("#study-facts");
      box.replaceChildren(...facts.map(([k, v]) => {
        const span = el("span", null, el("span", { class: "k", text: k }));
        if (k === "best" && s.best_trial) span.append(el("a", { href: `/dashboard/trials/${s.best_trial.id}`, text: String(v) }));
        else span.append(String(v));
        return span;
      }));
      const total = Math.max(s.max_trials || 0, c.total, 1);
      const bar = $("#study-bar");
      bar.replaceChildren(...[...ENDED, ...ACTIVE.slice().reverse()].map((k) =>
        el("div", { class: "seg", style: `width:${(100 * c[k]) / total}%;background:${COLORS[k]}`, title: `${k}: ${c[k]}` })));
      $("#study-counts").replaceChildren(...STATES.map((k) =>
        el("span", { class: "chip" }, el("span", { class: "dot", style: `background:${COLORS[k]}` }), k, el("b", { text: String(c[k]) }))));
      $("#btn-pause").disabled = s.state !== STUDY.RUNNING;
      $("#btn-resume").disabled = s.state !== STUDY.PAUSED;
      $("#btn-stop").disabled = !(s.state === STUDY.RUNNING || s.state === STUDY.PAUSED);
      // Panels in their own files (craft.js: stages, lineage, refine, configurations) draw from this.
      document.dispatchEvent(new CustomEvent("tuneserve:summary", { detail: sum }));
    }

    document.querySelectorAll(".controls button").forEach((btn) => btn.addEventListener("click", async () => {
      const action = btn.dataset.action;
      if (action === "stop" && !confirm(`Stop ${name}? No new trials will start; running trials are told to stop.`)) return;
      const msg = $("#control-msg");
      try {
        await api(`/api/v1/studies/${enc(name)}/${action}`, { method: "POST" });
        msg.className = "msg ok"; msg.textContent = `${action}: done`;
      } catch (err) {
        msg.className = "msg bad"; msg.textContent = `${action} failed: ${err.detail || err.message}`;
      }
      msg.hidden = false;
      await refresh(true);
    }));

    // -- optimisation history
    function renderHistory(h) {
      const div = $("#chart-history");
      if (h.states) { h.state = h.state.map((i) => h.states[i]); delete h.states; }
      const n = h.number.length;
      if (!n) { emptyChart(div, "No trials yet"); return; }
      chartReady(div);
      const gl = n > 3000 ? "scattergl" : "scatter";
      const traces = [];
      const values = h.value.filter((v) => v !== null);
      const top = values.length ? (h.goal === GOAL.MINIMIZE ? Math.max(...values) : Math.min(...values)) : 0;
      // A value means little without its fidelity (2 epochs on 10% of the data is not a full run).
      const fid = (i) => (h.fidelity ? h.fidelities[h.fidelity[i]] : h.fidelity_label || "");
      for (const state of [T.COMPLETED, T.PRUNED, T.RUNNING, T.FAILED, T.DIVERGED]) {  // drawing order
        const xs = [], ys = [], ids = [], fids = [];
        for (let i = 0; i < n; i++) {
          if (h.state[i] !== state) continue;
          const failed = state === T.FAILED || state === T.DIVERGED;
          if (!failed && h.value[i] === null) continue;
          xs.push(h.number[i]); ys.push(failed ? top : h.value[i]); ids.push(h.id[i]); fids.push(fid(i));
        }
        if (!xs.length) continue;
        const failed = state === T.FAILED || state === T.DIVERGED;
        const at = h.fidelity || h.fidelity_label ? "<br>at %{text}" : "";
        traces.push({
          type: gl, mode: "markers", name: failed ? `${state} (no value)` : state, x: xs, y: ys, customdata: ids, text: fids,
          marker: { color: COLORS[state], size: n > 3000 ? 4 : 7, symbol: failed ? "x" : "circle", opacity: state === T.COMPLETED ? 0.8 : 0.7 },
          hovertemplate: failed ? `trial #%{x}: ${state}${at}<extra></extra>` : `trial #%{x}<br>${h.metric} %{y:.5g}${at}<extra>${state}</extra>`,
        });
      }
      if (!traces.length) { emptyChart(div, `No finished trials yet (${n} waiting or running)`); return; }
      traces.push({
        type: gl, mode: "lines", name: "best so far", x: h.number, y: h.best, line: { color: COLORS.best, width: 2, shape: "hv" },
        hovertemplate: `best so far %{y:.5g}<extra></extra>`, connectgaps: false,
      });
      const log = $("#history-log").checked;
      react(div, traces, { xaxis: { title: { text: "trial number" } }, yaxis: { title: { text: h.metric }, type: log ? "log" : "linear" } });
      setText($("#history-note"), `${n} trial${n === 1 ? "" : "s"}; failed and diverged trials are marked along the top`);
      if (!div.dataset.clicks) {
        div.dataset.clicks = "1";
        div.on("plotly_click", (ev) => { const id = ev.points[0] && ev.points[0].customdata; if (id) location.href = `/dashboard/trials/${id}`; });
      }
    }

    // -- learning curves: one trace per state, trials separated by gaps (a few traces draw fast)
    function renderCurves(c) {
      const div = $("#chart-curves");
      if (!c.trials.length) { emptyChart(div, "No reports yet"); return; }
      chartReady(div);
      const best = c.trials.filter((t) => t.state === T.COMPLETED && t.value !== null)
        .sort((a, b) => (c.goal === GOAL.MINIMIZE ? a.value - b.value : b.value - a.value))[0];
      const traces = [];
      for (const state of [T.COMPLETED, T.FAILED, T.DIVERGED, T.PRUNED, T.RUNNING]) {  // drawing order
        const xs = [], ys = [], text = [], ids = [];
        for (const t of c.trials) {
          if (t.state !== state) continue;
          for (let i = 0; i < t.steps.length; i++) { xs.push(t.steps[i]); ys.push(t.values[i]); text.push(`#${t.number}`); ids.push(t.id); }
          xs.push(null); ys.push(null); text.push(""); ids.push(null);
        }
        if (!xs.length) continue;
        traces.push({
          type: "scatter", mode: "lines", name: state, x: xs, y: ys, text, customdata: ids, connectgaps: false,
          line: { color: COLORS[state], width: state === T.RUNNING ? 1.6 : 1.1, dash: state === T.RUNNING ? "dot" : "solid" },
          opacity: state === T.COMPLETED ? 0.45 : 0.75,
          hovertemplate: `trial %{text} step %{x}<br>${c.metric} %{y:.5g}<extra>${state}</extra>`,
        });
      }
      const cut = c.trials.filter((t) => t.state === T.PRUNED);
      if (cut.length) {
        traces.push({
          type: "scatter", mode: "markers", name: "pruned here", x: cut.map((t) => t.steps[t.steps.length - 1]),
          y: cut.map((t) => t.values[t.values.length - 1]), customdata: cut.map((t) => t.id), text: cut.map((t) => `#${t.number}`),
          marker: { symbol: "x-thin-open", size: 9, color: COLORS.pruned, line: { width: 2, color: COLORS.pruned } },
          hovertemplate: `trial %{text} stopped at step %{x}<extra>pruned</extra>`,
        });
      }
      if (best) {
        traces.push({
          type: "scatter", mode: "lines", name: `best (#${best.number})`, x: best.steps, y: best.values, customdata: best.steps.map(() => best.id),
          line: { color: COLORS.best, width: 2.5 }, hovertemplate: `best trial #${best.number} step %{x}<br>${c.metric} %{y:.5g}<extra></extra>`,
        });
      }
      const log = $("#curves-log").checked;
      const maxStep = Math.max(...c.trials.map((t) => t.steps[t.steps.length - 1]));
      react(div, traces, { xaxis: Object.assign({ title: { text: "step (epoch)" } }, stepTicks(maxStep)), yaxis: { title: { text: c.metric }, type: log ? "log" : "linear" } });
      setText($("#curves-note"), c.shown < c.total
        ? `${c.shown} of ${c.total} trials: the best, the running ones and an even sample of the rest`
        : `${c.shown} trials; an × marks where a pruned trial was stopped`);
      if (!div.dataset.clicks) {
        div.dataset.clicks = "1";
        div.on("plotly_click", (ev) => { const id = ev.points[0] && ev.points[0].customdata; if (id) location.href = `/dashboard/trials/${id}`; });
      }
    }

    // -- parallel coordinates and slices share one payload
    function axisFor(meta, column) {
      if (meta.kind === "categorical") {
        const labels = meta.values.map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
        const index = new Map(labels.map((l, i) => [l, i]));
        return { values: column.map((v) => (v === null ? null : index.get(v))), tickvals: labels.map((_, i) => i), ticktext: labels, range: [0, Math.max(1, labels.length - 1)] };
      }
      if (meta.log) {
        const logs = column.map((v) => (v > 0 ? Math.log10(v) : null));
        const lo = Math.floor(Math.min(...logs.filter((v) => v !== null), meta.min > 0 ? Math.log10(meta.min) : Infinity));
        const hi = Math.ceil(Math.max(...logs.filter((v) => v !== null), meta.max > 0 ? Math.log10(meta.max) : -Infinity));
        const ticks = [];
        for (let e = lo; e <= hi; e++) ticks.push(e);
        return { values: logs, tickvals: ticks, ticktext: ticks.map((e) => `1e${e}`), range: [lo, hi] };
      }
      return { values: column };
    }

    function renderParams(p) {
      drawWhenVisible($("#chart-parallel"), () => timed("parallel", () => renderParallel(p)));
      drawWhenVisible($("#chart-slices"), () => timed("slices", () => renderSlices(p)));
    }

    function timed(key, fn) {
      const t0 = performance.now();
      fn();
      // How long each chart took to draw (read by benchmarks/dashboard.py).
      (window.__renderMs = window.__renderMs || {})[key] = Math.round(performance.now() - t0);
    }

    // Parallel coordinates draw with WebGL, which costs about 1.5 ms a line without a GPU: at most
    // PARCOORDS_LINES lines, the best 40% of them and an even sample of the rest.
    const PARCOORDS_LINES = 400;
    function parcoordsRows(p) {
      const n = p.id.length;
      if (n <= PARCOORDS_LINES) return [...Array(n).keys()];
      const sign = p.goal === GOAL.MINIMIZE ? 1 : -1;
      const order = [...Array(n).keys()].sort((a, b) => sign * (p.value[a] - p.value[b]));
      const best = order.slice(0, Math.floor(PARCOORDS_LINES * 0.4));
      const rest = order.slice(best.length).sort((a, b) => a - b);
      const want = PARCOORDS_LINES - best.length;
      const sample = [...Array(want).keys()].map((i) => rest[Math.floor((i * rest.length) / want)]);
      return best.concat(sample).sort((a, b) => a - b);
    }

    function renderParallel(p) {
      const div = $("#chart-parallel");
      if (!p.id.length) { emptyChart(div, "No completed trials yet"); return; }
      chartReady(div);
      const rows = parcoordsRows(p);
      const pick = (arr) => rows.map((i) => arr[i]);
      const dims = p.params.map((m) => Object.assign({ label: m.name + (m.log ? " (log)" : "") }, axisFor(m, pick(p.columns[m.name]))));
      dims.push({ label: p.metric, values: pick(p.value) });
      react(div, [{
        type: "parcoords", dimensions: dims,
        line: { color: pick(p.value), colorscale: "Viridis", reversescale: p.goal === GOAL.MAXIMIZE, showscale: true, colorbar: { thickness: 10, title: { text: p.metric, side: "right" } } },
        labelfont: { size: 11 }, tickfont: { size: 10 },
      }], { margin: { l: 48, r: 56, t: 36, b: 24 } });
      setText($("#parallel-note"), rows.length < p.total ? `${rows.length} of ${p.total} completed and pruned trials (the best and an even sample); darker is better` : `${rows.length} completed and pruned trials; darker is better`);
    }

    function renderSlices(p) {
      const div = $("#chart-slices");
      const metas = p.params;
      if (!p.id.length || !metas.length) { emptyChart(div, "No completed trials yet"); return; }
      chartReady(div);
      const cols = Math.min(4, metas.length);
      const rows = Math.ceil(metas.length / cols);
      div.style.height = `${Math.max(260, rows * 230)}px`;
      const layout = { showlegend: false, margin: { l: 56, r: 16, t: 26, b: 36 }, annotations: [] };
      const traces = [];
      const gapX = 0.06, gapY = 0.12;
      const w = (1 - gapX * (cols - 1)) / cols, h = (1 - gapY * (rows - 1)) / rows;
      const text = p.number.map((n, i) => `#${n} (${p.state[i]})`);
      metas.forEach((m, i) => {
        const r = Math.floor(i / cols), c = i % cols;
        const sfx = i === 0 ? "" : String(i + 1);
        const x0 = c * (w + gapX), y1 = 1 - r * (h + gapY);
        layout[`xaxis${sfx}`] = { domain: [x0, x0 + w], anchor: `y${sfx}`, gridcolor: "#eef1f5", zeroline: false,
          type: m.kind === "categorical" ? "category" : m.log ? "log" : "linear", tickfont: { size: 10 } };
        if (m.kind === "categorical") Object.assign(layout[`xaxis${sfx}`], { categoryorder: "array", categoryarray: m.values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))) });
        layout[`yaxis${sfx}`] = { domain: [y1 - h, y1], anchor: `x${sfx}`, gridcolor: "#eef1f5", zeroline: false, tickfont: { size: 10 } };
        layout.annotations.push({ text: `<b>${m.name}</b>${m.log ? " (log)" : ""}`, x: x0, y: y1, xref: "paper", yref: "paper", xanchor: "left", yanchor: "bottom", showarrow: false, font: { size: 11 } });
        traces.push({
          type: "scattergl", mode: "markers", x: p.columns[m.name], y: p.value, xaxis: `x${sfx}`, yaxis: `y${sfx}`,
          text, customdata: p.id, marker: { size: 5, color: p.number, colorscale: "Blues", opacity: 0.75, line: { width: 0 } },
          hovertemplate: `%{text}<br>${m.name} %{x}<br>${p.metric} %{y:.5g}<extra></extra>`,
        });
      });
      react(div, traces, layout);
    }

    function renderImportance(imp) {
      const div = $("#chart-importance");
      if (!imp.params.length) {
        emptyChart(div, imp.completed < imp.min_trials ? `Needs ${imp.min_trials} completed trials (${imp.completed} so far)` : "No spread in the values yet");
        setText($("#importance-note"), imp.method);
        return;
      }
      chartReady(div);
      const items = imp.params.slice().reverse();
      react(div, [{
        type: "bar", orientation: "h", x: items.map((p) => p.importance), y: items.map((p) => p.name),
        error_x: { type: "data", array: items.map((p) => p.std), color: "#9aa5b1", thickness: 1 },
        marker: { color: "#1f4e79" }, hovertemplate: "%{y}: %{x:.1%}<extra></extra>",
      }], { margin: { l: 110, r: 16, t: 8, b: 36 }, xaxis: { tickformat: ".0%", title: { text: "share of importance" }, rangemode: "tozero" }, yaxis: { automargin: true } });
      setText($("#importance-note"), `${imp.method}; ${imp.trials} completed trials, forest R² ${imp.r2 === null ? "–" : imp.r2.toFixed(2)} on the scored trials (low R²: read the ranking loosely).`);
    }

    // -- the trial table: filtered, sorted and paginated by the server; rows updated in place
    function tableUrl() {
      return buildTableUrl(base, query);
    }

    function tableColumns(params, fidelity) {
      return [
        { key: "number", label: "#", num: true }, { key: "state", label: "State" }, { key: "value", label: "Value", num: true },
        ...(fidelity ? [{ key: "fidelity", label: "Fidelity", nosort: true }] : []),
        { key: "diagnosis", label: "Diagnosis", nosort: true },
        ...params.map((p) => ({ key: `params.${p}`, label: p, num: true, param: p })),
        { key: "last_step", label: "Steps", num: true }, { key: "attempt", label: "Attempt", num: true },
        { key: "worker_id", label: "Worker" }, { key: "duration", label: "Duration", num: true, nosort: true },
        { key: "started_at", label: "Started", num: true }, { key: "actions", label: "", nosort: true },
      ];
    }

    function renderTable(page) {
      const table = $("#trials");
      const hasFidelity = page.items.some((t) => t.fidelity_label);
      const cols = tableColumns(page.params, hasFidelity);
      const headKey = cols.map((c) => c.key).join("|");
      if (table.dataset.cols !== headKey) {
        table.dataset.cols = headKey;
        table.tHead.replaceChildren(el("tr", null, ...cols.map((c) => el("th", { class: c.num ? "num" : null, "data-key": c.nosort ? null : c.key, text: c.label }))));
        table.tBodies[0].replaceChildren();
      }
      for (const th of table.tHead.rows[0].cells) {
        th.classList.toggle("sorted", th.dataset.key === query.sort);
        th.classList.toggle("desc", th.dataset.key === query.sort && query.order === "desc");
      }
      const best = st.summary && st.summary.study.best_trial ? st.summary.study.best_trial.id : null;
      const tbody = table.tBodies[0];
      const existing = new Map([...tbody.rows].map((r) => [r.dataset.id, r]));
      for (const t of page.items) {
        let tr = existing.get(String(t.id));
        if (!tr) {
          tr = el("tr", { "data-id": String(t.id) });
          cols.forEach((c) => tr.append(el("td", { class: c.num ? "num" : null })));
          tr.cells[0].append(el("a", { href: `/dashboard/trials/${t.id}`, text: `#${t.number}` }));
          tr.cells[cols.length - 1].append(el("span", { class: "row-actions" },
            el("button", { type: "button", title: "prefill the enqueue form from this trial", text: "copy", onclick: () => prefill(t.id, true) })));
        }
        existing.delete(String(t.id));
        if (tr.cells[1].dataset.state !== t.state) {
          tr.cells[1].dataset.state = t.state;
          const note = t.state === T.PRUNED && t.stop_step ? ` @${t.stop_step}` : t.fail_kind && t.state !== T.DIVERGED ? ` (${t.fail_kind})` : "";
          tr.cells[1].replaceChildren(...[badge(t.state), note ? el("span", { class: "muted small", text: note }) : null].filter(Boolean));
        }
        setText(tr.cells[2], fmt(t.value, 5));
        tr.cells[2].classList.toggle("best", t.id === best);
        const f = hasFidelity ? 1 : 0;
        if (hasFidelity) setText(tr.cells[3], t.fidelity_label || "–");
        const cell = tr.cells[3 + f];  // the diagnosis badge (gates.js draws it; the advice is its tooltip)
        const diag = t.diagnosis ? JSON.stringify(t.diagnosis) : "";
        if (cell.dataset.diag !== diag) {
          cell.dataset.diag = diag;
          cell.replaceChildren(t.diagnosis ? window.tuneserveDiagnosisBadge(t.diagnosis) : el("span", { class: "muted", text: "–" }));
        }
        page.params.forEach((p, i) => setText(tr.cells[4 + f + i], fmt(t.params[p], 4)));
        const k = 4 + f + page.params.length;
        setText(tr.cells[k], fmt(t.last_step));
        setText(tr.cells[k + 1], fmt(t.attempt));
        setText(tr.cells[k + 2], t.worker_id || "–");
        setText(tr.cells[k + 3], duration(t.duration_s));
        setText(tr.cells[k + 4], t.started_at ? new Date(t.started_at).toLocaleTimeString() : "–");
        tbody.append(tr);
      }
      for (const tr of existing.values()) tr.remove();
      const pages = Math.max(1, Math.ceil(page.total / query.limit));
      const current = Math.floor(query.offset / query.limit) + 1;
      setText($("#page-info"), `page ${current} of ${pages}`);
      setText($("#trials-note"), `${page.total} matching trial${page.total === 1 ? "" : "s"}`);
      $("#page-prev").disabled = query.offset === 0;
      $("#page-next").disabled = query.offset + query.limit >= page.total;
      st.table = page;
      fillEnqueueFrom();
    }

    async function loadTable() {
      try { renderTable(await api(tableUrl())); }
      catch (err) { setText($("#trials-note"), `filter error: ${err.detail || err.message}`); if (err.status !== 422) throw err; }
    }

    $("#trials").tHead.addEventListener("click", (ev) => {
      const th = ev.target.closest("th[data-key]");
      if (!th) return;
      if (query.sort === th.dataset.key) query.order = query.order === "asc" ? "desc" : "asc";
      else { query.sort = th.dataset.key; query.order = th.dataset.key === "number" ? "desc" : "asc"; }
      query.offset = 0;
      loadTable();
    });
    $("#page-prev").addEventListener("click", () => { query.offset = Math.max(0, query.offset - query.limit); loadTable(); });
    $("#page-next").addEventListener("click", () => { query.offset += query.limit; loadTable(); });
    $("#page-size").addEventListener("change", (ev) => { query.limit = Number(ev.target.value); query.offset = 0; loadTable(); });

    function buildFilters(params) {
      const box = $("#filter-states");
      for (const s of STATES) {
        box.append(el("label", { class: "state" }, el("input", { type: "checkbox", value: s, "data-state": s }), ` ${s}`));
      }
      const labels = $("#filter-labels");
      for (const l of LABELS) {
        labels.append(el("label", { class: "state" }, el("input", { type: "checkbox", value: l, "data-label": l }), ` ${l.replace(/_/g, " ")}`));
      }
      const select = $("#filter-param");
      select.replaceChildren(el("option", { value: "", text: "(choose)" }), ...params.map((m) => el("option", { value: m.name, text: m.name })));
      select.addEventListener("change", () => {
        const m = params.find((x) => x.name === select.value);
        const slot = $("#filter-param-input");
        if (!m) { slot.replaceChildren(); return; }
        if (m.kind === "categorical") {
          slot.replaceChildren(el("select", { id: "filter-param-value" }, ...m.values.map((v) => {
            const label = typeof v === "string" ? v : JSON.stringify(v);
            return el("option", { value: label, text: label });
          })));
        } else {
          slot.replaceChildren(
            el("input", { type: "number", step: "any", id: "filter-param-min", placeholder: m.min !== undefined ? `min ${fmt(m.min)}` : "min" }),
            " – ",
            el("input", { type: "number", step: "any", id: "filter-param-max", placeholder: m.max !== undefined ? `max ${fmt(m.max)}` : "max" }));
        }
      });
      $("#filter-add").addEventListener("click", () => {
        const m = params.find((x) => x.name === select.value);
        if (!m) return;
        let spec, label;
        if (m.kind === "categorical") {
          const v = $("#filter-param-value").value;
          spec = `${m.name}=${v}`; label = `${m.name} = ${v}`;
        } else {
          const lo = $("#filter-param-min").value, hi = $("#filter-param-max").value;
          if (lo === "" && hi === "") return;
          spec = `${m.name}:${lo}:${hi}`; label = `${lo === "" ? "" : lo + " ≤ "}${m.name}${hi === "" ? "" : " ≤ " + hi}`;
        }
        query.params = query.params.filter((f) => f.name !== m.name).concat([{ name: m.name, spec, label }]);
        renderChips();
      });
      $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); applyFilters(); });
      $("#filter-clear").addEventListener("click", () => {
        document.querySelectorAll("#filter-states input, #filter-labels input").forEach((i) => { i.checked = false; });
        $("#filter-vmin").value = ""; $("#filter-vmax").value = "";
        query.params = []; renderChips(); applyFilters();
      });
    }

    function renderChips() {
      $("#filter-chips").replaceChildren(...query.params.map((f) => el("span", { class: "chip" }, f.label,
        el("span", { class: "x", title: "remove", text: "×", onclick: () => { query.params = query.params.filter((g) => g !== f); renderChips(); } }))));
    }

    function applyFilters() {
      query.states = new Set([...document.querySelectorAll("#filter-states input:checked")].map((i) => i.value));
      query.labels = new Set([...document.querySelectorAll("#filter-labels input:checked")].map((i) => i.value));
      query.vmin = $("#filter-vmin").value; query.vmax = $("#filter-vmax").value;
      query.offset = 0;
      return loadTable();
    }

    // -- enqueue: one field per parameter, prefilled from a trial
    function buildEnqueue(params) {
      const box = $("#enqueue-fields");
      box.replaceChildren(...params.map((m) => {
        let input;
        if (m.kind === "categorical") {
          input = el("select", { name: m.name }, ...m.values.map((v, i) => el("option", { value: String(i), text: typeof v === "string" ? v : JSON.stringify(v) })));
        } else {
          input = el("input", { name: m.name, type: "number", step: "any", required: true });
        }
        const hint = m.kind === "categorical" ? "" : `${m.kind}${m.log ? ", log" : ""}${m.min !== undefined ? ` in [${fmt(m.min)}, ${fmt(m.max)}]` : ""}`;
        return el("label", null, m.name, input, hint ? el("span", { class: "hint", text: hint }) : null);
      }));
      $("#enqueue-from").addEventListener("change", (ev) => { if (ev.target.value) prefill(Number(ev.target.value), false); });
      $("#enqueue-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const out = {};
        for (const m of params) {
          const input = box.querySelector(`[name="${CSS.escape(m.name)}"]`);
          if (m.kind === "categorical") out[m.name] = m.values[Number(input.value)];
          else out[m.name] = m.kind === "int" ? parseInt(input.value, 10) : Number(input.value);
        }
        const msg = $("#enqueue-msg");
        try {
          const t = await api(`/api/v1/studies/${enc(name)}/enqueue`, { method: "POST", body: JSON.stringify({ params: out }) });
          msg.className = "msg ok"; msg.replaceChildren("enqueued as ", el("a", { href: `/dashboard/trials/${t.id}`, text: `trial #${t.number}` }));
          refresh(true);
        } catch (err) {
          msg.className = "msg bad"; msg.textContent = `not enqueued: ${err.detail || err.message}`;
        }
      });
    }

    function fillEnqueueFrom() {
      const select = $("#enqueue-from");
      const keep = select.value;
      const options = [el("option", { value: "", text: "(choose a trial)" })];
      const best = st.summary && st.summary.study.best_trial;
      if (best) options.push(el("option", { value: String(best.id), text: `best: #${best.number} (${fmt(best.value, 5)})` }));
      for (const t of (st.table ? st.table.items : [])) {
        if (best && t.id === best.id) continue;
        options.push(el("option", { value: String(t.id), text: `#${t.number} ${t.state} ${t.value === null ? "" : fmt(t.value, 5)}` }));
      }
      const signature = options.map((o) => o.value + o.textContent).join("|");
      if (select.dataset.sig !== signature) { select.dataset.sig = signature; select.replaceChildren(...options); select.value = keep; }
    }

    async function prefill(trialId, scroll) {
      const detail = await api(`/dashboard/api/trials/${trialId}?points=4`);
      const flat = flatten(detail.trial.params);
      for (const m of st.summary.params) {
        const input = $(`#enqueue-fields [name="${CSS.escape(m.name)}"]`);
        if (!input || !(m.name in flat)) continue;
        if (m.kind === "categorical") {
          const want = JSON.stringify(flat[m.name]);
          const idx = m.values.findIndex((v) => JSON.stringify(v) === want);
          if (idx >= 0) input.value = String(idx);
        } else input.value = flat[m.name];
      }
      const select = $("#enqueue-from");
      if (![...select.options].some((o) => o.value === String(trialId))) select.append(el("option", { value: String(trialId), text: `#${detail.trial.number}` }));
      select.value = String(trialId);
      setText($("#enqueue-msg"), `prefilled from trial #${detail.trial.number}: edit and enqueue`);
      $("#enqueue-msg").className = "msg";
      if (scroll) $("#panel-enqueue").scrollIntoView({ behavior: "smooth", block: "center" });
    }

    function flatten(obj, prefix) {
      const out = {};
      for (const [k, v] of Object.entries(obj || {})) {
        const key = prefix ? `${prefix}.${k}` : k;
        if (v && typeof v === "object" && !Array.isArray(v)) Object.assign(out, flatten(v, key));
        else out[key] = v;
      }
      return out;
    }

    document.addEventListener("tuneserve:refresh", () => refresh(true).catch((err) => console.error(err)));
    $("#history-log").addEventListener("change", () => latest.history && renderHistory(latest.history));
    $("#curves-log").addEventListener("change", () => latest.curves && renderCurves(latest.curves));

    // -- loading and live refresh
    async function refresh(force) {
      const sum = await api(base);
      const changed = force || sum.stamp !== st.stamp;
      st.summary = sum; st.stamp = sum.stamp;
      renderSummary(sum);
      if (!changed) return;
      const jobs = [loadPanel("history"), loadPanel("curves"), loadTable()];
      const completed = sum.study.counts.completed + sum.study.counts.pruned;
      // Parameters and importance only change when a trial ends; refit at most every 15 s.
      if (completed !== st.completed && (force || Date.now() - st.paramsAt > 15000)) {
        st.completed = completed; st.paramsAt = Date.now();
        jobs.push(loadPanel("params"), loadPanel("importance"));
      }
      await Promise.all(jobs);
    }

    (async () => {
      try {
        const sum = await api(base);
        st.summary = sum; st.stamp = sum.stamp;
        st.completed = sum.study.counts.completed + sum.study.counts.pruned; st.paramsAt = Date.now();
        renderSummary(sum);
        buildFilters(sum.params);
        buildEnqueue(sum.params);
        await Promise.all([loadPanel("history"), loadPanel("curves"), loadPanel("params"), loadPanel("importance"), loadTable()]);
        const from = new URLSearchParams(location.search).get("from");
        if (from) await prefill(Number(from), true);
        else if (sum.study.best_trial) await prefill(sum.study.best_trial.id, false);
      } catch (err) {
        console.error(err);
        if (err.status === 404) setText($("#study-desc"), `No study named ${name}.`);
      }
      ready();
      poll(() => refresh(false));
    })();
  }

  // ---- the trial page ---------------------------------------------------------------------------
  function trialPage() {
    const id = document.body.dataset.trial;
    // What the model costs (the built-in trainer's costs.py) goes in the facts, not in a chart of its own.
    const COSTS = [["param_count", "params"], ["flops", "flops"], ["latency_ms", "latency ms/image"], ["peak_memory_mb", "peak memory MB"]];
    const KNOWN = new Set(["train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "update_ratio", ...COSTS.map(([k]) => k)]);
    let lastKey = null;

    function lineTrace(d, name, color, dash) {
      return { type: "scatter", mode: d.steps.length > 60 ? "lines" : "lines+markers", name, x: d.steps, y: d.series[name],
        line: { color, width: 2, dash: dash || "solid" }, marker: { size: 5 }, connectgaps: false,
        hovertemplate: `step %{x}<br>${name} %{y:.5g}<extra></extra>` };
    }

    function stopShapes(t) {
      if (t.state !== T.PRUNED && !t.stop_reason) return {};
      const step = t.stop_step !== null && t.stop_step !== undefined ? t.stop_step : t.last_step;
      if (step === null || step === undefined) return {};
      return {
        shapes: [{ type: "line", xref: "x", yref: "paper", x0: step, x1: step, y0: 0, y1: 1, line: { color: COLORS.pruned, width: 2, dash: "dash" } }],
        annotations: [{ x: step, y: 1, xref: "x", yref: "paper", yanchor: "bottom", showarrow: false, font: { size: 11, color: COLORS.pruned }, text: `pruner: stop at step ${step}` }],
      };
    }

    function smallChart(div, d, names, opts) {
      const present = names.filter((n) => d.series[n] && d.series[n].some((v) => v !== null));
      if (!present.length) { emptyChart(div, "not reported"); return; }
      chartReady(div);
      const palette = ["#1f4e79", "#d97706", "#2f7d4f", "#7c3aed"];
      const traces = present.map((n, i) => lineTrace(d, n, palette[i % palette.length]));
      const extra = (opts && opts.ref) ? { shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: opts.ref, y1: opts.ref, line: { color: "#9aa5b1", dash: "dot", width: 1 } }] } : {};
      react(div, traces, Object.assign({ margin: { l: 56, r: 12, t: 8, b: 34 }, showlegend: present.length > 1,
        xaxis: Object.assign({ title: { text: "step" } }, stepTicks(d.steps[d.steps.length - 1] || 0)), yaxis: opts && opts.log ? { type: "log", tickformat: ".1e", nticks: 5 } : { type: "linear" } }, extra));
    }

    function render(d) {
      const t = d.trial;
      document.title = `Trial #${t.number} · ${t.study} · tuneserve`;
      const crumb = $("#crumb-study");
      crumb.href = `/dashboard/studies/${enc(t.study)}`; setText(crumb, t.study);
      setText($("#crumb-trial"), `trial #${t.number}`);
      const special = { sanity: "Sanity check run", lr_range: "LR range test run" }[t.kind];
      setText($("#trial-title"), special ? `${special} #${t.number}` : `Trial #${t.number}`);
      const note = $("#trial-special");
      note.hidden = !special;
      setText(note, special ? `A special run (${t.kind.replace("_", " ")}), not a trial of the search: its verdict is on the study's page, and it is left out of the study's counts and charts.` : "");
      $("#trial-enqueue").hidden = Boolean(special);
      const state = $("#trial-state"); state.className = `badge ${t.state}`; setText(state, t.state);
      $("#trial-enqueue").href = `/dashboard/studies/${enc(t.study)}?from=${t.id}#enqueue`;
      const out = $("#trial-outcome");
      let text = "", cls = "outcome";
      if (t.state === T.COMPLETED) text = `Completed with ${d.metric} = ${fmt(t.value, 6)}.`;
      else if (t.state === T.PRUNED) { text = `Pruned at step ${t.stop_step !== null ? t.stop_step : t.last_step}: ${t.stop_reason || "stopped early"}.`; cls += " warn"; }
      else if (t.state === T.FAILED || t.state === T.DIVERGED) { text = `${t.state === T.DIVERGED ? "Diverged" : "Failed"} (${t.fail_kind || "error"}): ${t.fail_reason || "no reason given"}`; cls += " bad"; }
      else if (t.state === T.RUNNING) text = t.stop_reason ? `Running; the pruner said stop at step ${t.stop_step}: ${t.stop_reason}` : `Running on ${t.worker_id || "a worker"}, ${t.last_step || 0} steps reported.`;
      else text = "Waiting for a worker.";
      out.className = cls; setText(out, text);
      const facts = [
        ["value", fmt(t.value, 6)], ["method", t.method], ["attempt", t.attempt], ["worker", t.worker_id || "–"],
        ["steps", t.last_step === null ? "–" : t.last_step], ["created", t.created_at ? new Date(t.created_at).toLocaleString() : "–"],
        ["started", t.started_at ? new Date(t.started_at).toLocaleString() : "–"], ["finished", t.finished_at ? new Date(t.finished_at).toLocaleString() : "–"],
        ["duration", duration(d.duration_s)],
      ];
      if (t.stop_reason) facts.push(["pruner", `stop at step ${t.stop_step === null ? "?" : t.stop_step}`]);
      if (t.fail_kind) facts.push(["fail kind", t.fail_kind]);
      for (const [k, label] of COSTS) {
        const v = k in (t.metrics || {}) ? t.metrics[k] : (d.series[k] || []).filter((x) => x !== null).pop();
        if (typeof v === "number") facts.push([label, fmt(v, 4)]);
      }
      $("#trial-facts").replaceChildren(...facts.map(([k, v]) => el("span", null, el("span", { class: "k", text: k }), String(v))));
      const flat = {};
      (function walk(o, p) { for (const [k, v] of Object.entries(o || {})) { const key = p ? `${p}.${k}` : k; if (v && typeof v === "object" && !Array.isArray(v)) walk(v, key); else flat[key] = v; } })(t.params, "");
      $("#trial-params").replaceChildren(...Object.keys(flat).sort().map((k) => el("tr", null, el("td", { text: k }), el("td", { text: typeof flat[k] === "number" ? fmt(flat[k], 6) : typeof flat[k] === "string" ? flat[k] : JSON.stringify(flat[k]) }))));

      // One chart for train and validation loss (the study metric too when it is another one).
      const lossNames = ["train_loss", "val_loss"];
      if (!lossNames.includes(d.metric) && d.series[d.metric] && !d.metric.endsWith("acc")) lossNames.push(d.metric);
      const lossDiv = $("#chart-loss");
      const present = lossNames.filter((n) => d.series[n]);
      if (!present.length) emptyChart(lossDiv, "No loss reported yet");
      else {
        chartReady(lossDiv);
        const traces = present.map((n) => lineTrace(d, n, n === "train_loss" ? "#1f4e79" : n === "val_loss" ? "#d97706" : "#2f7d4f", n === "train_loss" ? "solid" : n === "val_loss" ? "solid" : "dot"));
        react(lossDiv, traces, Object.assign({ xaxis: Object.assign({ title: { text: "step (epoch)" } }, stepTicks(d.steps[d.steps.length - 1] || 0)), yaxis: { title: { text: "loss" }, type: $("#loss-log").checked ? "log" : "linear" } }, stopShapes(t)));
      }
      smallChart($("#chart-acc"), d, ["train_acc", "val_acc"]);
      smallChart($("#chart-lr"), d, ["lr"], { log: true });
      smallChart($("#chart-grad"), d, ["grad_norm"]);
      smallChart($("#chart-ratio"), d, ["update_ratio"], { log: true, ref: 1e-3 });
      const others = Object.keys(d.series).filter((n) => !KNOWN.has(n) && n !== d.metric && d.series[n].some((v) => v !== null)).slice(0, 6);
      $("#panel-other").hidden = !others.length;
      const box = $("#other-charts");
      if (box.dataset.names !== others.join("|")) {
        box.dataset.names = others.join("|");
        box.replaceChildren(...others.map((n) => el("div", null, el("h3", { text: n }), el("div", { class: "chart small", "data-metric": n }))));
      }
      box.querySelectorAll("[data-metric]").forEach((div) => smallChart(div, d, [div.dataset.metric]));
      document.dispatchEvent(new CustomEvent("tuneserve:trial", { detail: d }));
    }

    let latest = null;
    $("#loss-log").addEventListener("change", () => latest && render(latest));
    const load = async () => {
      const d = await api(`/dashboard/api/trials/${id}`);
      const key = JSON.stringify([d.trial.state, d.trial.last_step, d.steps.length, d.trial.stop_reason, d.trial.diagnosis]);
      if (key === lastKey) return d;
      lastKey = key; latest = d;
      render(d);
      return d;
    };
    load().catch((err) => {
      console.error(err);
      if (err.status === 404) setText($("#trial-outcome"), `No trial ${id}.`);
    }).finally(ready);
    poll(async () => {
      if (latest && !ACTIVE.includes(latest.trial.state)) return;
      await load();
    });
  }

  const PAGES = { studies: studiesPage, study: studyPage, trial: trialPage };
  // This script runs at the end of <body>, before the deferred plotly.js is evaluated: start the
  // page's first requests now, and draw once the document (and plotly) is ready.
  const page = document.body.dataset.page;
  if (page === "studies") prefetch("/dashboard/api/studies");
  if (page === "trial") prefetch(`/dashboard/api/trials/${document.body.dataset.trial}`);
  if (page === "study") {
    const base = `/dashboard/api/studies/${enc(document.body.dataset.study)}`;
    for (const path of [base, `${base}/history`, `${base}/curves`, `${base}/params`, `${base}/importance`,
      buildTableUrl(base, DEFAULT_QUERY())]) prefetch(path);
  }
  document.addEventListener("DOMContentLoaded", () => { if (PAGES[page]) PAGES[page](); });
})();
