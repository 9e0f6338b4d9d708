/* tuneserve dashboard: the gates' panels. dashboard.js fires `tuneserve:summary` (the study page's
 * summary, on every poll) and `tuneserve:trial` (the trial page's data); this file draws from them:
 * the sanity check's verdict, the study's advice, the learning-rate range test (loss against lr on a
 * log axis, the suggestion and its range), the notice while a gate holds trials back, the buttons
 * that start or undo them, and a trial's diagnosis. Each panel redraws only when its data changed. */
(function () {
  "use strict";

  const { $, el, enc } = window.tuneserveDom;  // dashboard.js

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v !== "number") return typeof v === "string" ? v : JSON.stringify(v);
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e6) return String(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  async function call(method, path, body) {
    const resp = await fetch(path, { method, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
      headers: { accept: "application/json", "content-type": "application/json" } });
    const data = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (!resp.ok) {
      const d = data && data.detail;
      throw new Error(Array.isArray(d) ? d.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ") : d || resp.statusText);
    }
    return data;
  }

  function say(node, ok, text) { node.hidden = false; node.className = `msg ${ok ? "ok" : "bad"}`; node.textContent = text; }

  // healthy green; diverged and lr_too_high red; the others amber; provisional lighter.
  const TONE = { healthy: "good", diverged: "bad", lr_too_high: "bad" };
  function diagnosisBadge(d) {
    const tip = `${d.provisional ? "provisional (still running): " : ""}${d.advice || ""}`;
    return el("span", { class: `diag ${TONE[d.label] || "warn"}${d.provisional ? " provisional" : ""}`, title: tip, "data-label": d.label,
      text: d.label.replace(/_/g, " ") + (d.provisional ? "?" : "") });
  }
  window.tuneserveDiagnosisBadge = diagnosisBadge;  // the trial table (dashboard.js) draws the same badge

  const STATE_BADGE = { pending: "waiting", running: "running", passed: "completed", done: "completed", failed: "failed", skipped: "stopped", not_run: "stopped" };
  function stateBadge(node, state) {
    node.className = `badge ${STATE_BADGE[state] || "waiting"}`;
    if (node.textContent !== state) node.textContent = state.replace(/_/g, " ");
  }

  function specText(spec) {
    if (!spec) return "–";
    if ("values" in spec) return `one of ${JSON.stringify(spec.values)}`;
    if ("value" in spec) return `= ${fmt(spec.value)}`;
    return `${spec.distribution || "uniform"} [${fmt(spec.min)}, ${fmt(spec.max)}]`;
  }

  // ---- the study page ---------------------------------------------------------------------------
  function studyPanels() {
    const name = document.body.dataset.study;
    const base = `/api/v1/studies/${enc(name)}`;
    const seen = {};
    let runs = [];
    const changed = (key, value) => { const sig = JSON.stringify(value); if (seen[key] === sig) return false; seen[key] = sig; return true; };
    const refresh = () => document.dispatchEvent(new CustomEvent("tuneserve:refresh"));

    function runLink(box, number) {
      const run = runs.find((r) => r.number === number);
      // Special runs are numbered below zero ("#-1" reads as a defect): name the run by its kind and id.
      const what = (r) => `its run: the ${r.kind === "lr_range" ? "range test" : r.kind} run, trial ${r.id}`;
      box.replaceChildren(run ? el("a", { href: `/dashboard/trials/${run.id}`, text: what(run) })
        : number === null || number === undefined || number < 0 ? "" : `trial #${number}`);
    }

    function renderNotice(gate) {
      const p = $("#gate-notice");
      p.hidden = !gate;
      p.textContent = gate ? `Ordinary trials are held back until the ${gate === "sanity" ? "sanity check" : "range test"} ends.` : "";
    }

    function renderSanity(s) {
      const panel = $("#panel-sanity");
      panel.hidden = !s;
      if (!s) return;
      stateBadge($("#sanity-state"), s.state);
      const c = s.config || {};
      $("#sanity-config").textContent = "samples" in c ? `fit ${c.samples} examples in ${c.max_epochs} epochs${c.sweep ? ", three learning rates" : ""}` : "";
      $("#sanity-verdict").textContent = s.verdict;
      $("#sanity-verdict").className = `verdict ${s.state}`;
      $("#sanity-overridden").hidden = !s.overridden;
      runLink($("#sanity-link"), s.trial);
      $("#sanity-checks").tBodies[0].replaceChildren(...(s.checks || []).map((k) => el("tr", { class: k.ok ? "ok" : "not-ok" },
        el("td", { text: k.name }), el("td", { class: k.ok ? "tick" : "cross", text: k.ok ? "✓" : "✗" }), el("td", { text: k.detail || "" }))));
      $("#sanity-checks").hidden = !(s.checks || []).length;
      $("#sanity-figures").replaceChildren(...Object.keys(s.figures || {}).sort().map((k) =>
        el("tr", null, el("td", { text: k }), el("td", { text: fmt(s.figures[k]) }))));
    }

    function renderAdvice(items) {
      const list = $("#advice-list");
      if (!items.length) { list.replaceChildren(el("li", { class: "muted none", text: "No advice yet." })); return; }
      list.replaceChildren(...items.map((a) => el("li", { "data-kind": a.kind },
        el("span", { class: "kind", text: a.kind.replace(/_/g, " ") }), a.message)));
    }

    // "advice tried 3 times, helped 2": variants run with try-advice that beat their parent (the study's goal).
    function renderTried(t) {
      const node = $("#advice-tried");
      node.hidden = !(t && (t.tried || t.pending));
      if (node.hidden) return;
      node.textContent = `advice tried ${t.tried} time${t.tried === 1 ? "" : "s"}, helped ${t.helped}` +
        (t.pending ? ` (${t.pending} more waiting or running)` : "");
    }

    function renderLr(lr) {
      const panel = $("#panel-lr-range");
      panel.hidden = !lr;
      if (!lr) return;
      stateBadge($("#lr-range-state"), lr.state);
      const c = lr.config || {};
      $("#lr-range-config").textContent = "start_lr" in c ? `lr ${fmt(c.start_lr)} → ${fmt(c.end_lr)} over ${c.steps} batches${lr.parameter ? `, parameter ${lr.parameter}` : ""}` : (lr.parameter ? `parameter ${lr.parameter}` : "");
      $("#lr-range-message").textContent = lr.message || "";
      runLink($("#lr-range-link"), lr.trial);
      const n = lr.narrowing;
      $("#lr-range-narrowing").replaceChildren(...(n
        ? [el("b", { text: "In force: " }), `${n.path}: ${specText(n.before)} → ${specText(n.after)}`]
        : [el("span", { class: "muted", text: lr.suggestion ? `No narrowing in force; suggested range [${fmt(lr.suggestion.low)}, ${fmt(lr.suggestion.high)}].` : "No narrowing in force." })]));
      $("#btn-narrow").disabled = !(lr.suggestion && !n);
      $("#btn-restore").disabled = !n;
      drawCurve(lr);
    }

    function drawCurve(lr) {
      const div = $("#chart-lr-range");
      const curve = lr.curve;
      const xs = [], ys = [];
      if (curve && curve.lr) curve.lr.forEach((x, i) => { const y = curve.loss[i]; if (x > 0 && y !== null && isFinite(y)) { xs.push(x); ys.push(y); } });
      if (!xs.length) {
        if (div.data) Plotly.purge(div);
        div.replaceChildren(el("div", { class: "empty", text: lr.state === "pending" || lr.state === "running" ? "The curve comes when the test ends." : "No curve." }));
        return;
      }
      if (!div.data) div.replaceChildren();
      // The y axis from the lowest loss to a bit above the start: the blown-up tail would flatten the rest.
      const lo = Math.min(...ys);
      const start = ys.slice(0, Math.max(3, Math.floor(ys.length / 20))).reduce((a, b) => Math.max(a, b), -Infinity);
      const top = Math.min(Math.max(...ys), start + 0.4 * (start - lo));
      const pad = 0.05 * (top - lo || 1);
      const traces = [];
      const s = lr.suggestion;
      if (s) {
        traces.push({ type: "scatter", mode: "lines", name: `suggested range [${fmt(s.low)}, ${fmt(s.high)}]`, x: [s.low, s.high, s.high, s.low, s.low],
          y: [lo - pad, lo - pad, top + pad, top + pad, lo - pad], fill: "toself", fillcolor: "rgba(47,125,79,0.13)", line: { width: 0 }, hoverinfo: "skip" });
      }
      traces.push({ type: "scatter", mode: "lines", name: "loss", x: xs, y: ys, line: { color: "#1f4e79", width: 2 },
        hovertemplate: "lr %{x:.3g}<br>loss %{y:.4g}<extra></extra>" });
      if (s) {
        traces.push({ type: "scatter", mode: "lines", name: `suggested lr ${fmt(s.lr)}`, x: [s.lr, s.lr], y: [lo - pad, top + pad],
          line: { color: "#2f7d4f", width: 2, dash: "dash" }, hovertemplate: `suggested lr ${fmt(s.lr)} (${s.rule})<extra></extra>` });
        if (s.blowup_lr) {
          traces.push({ type: "scatter", mode: "lines", name: `blew up at ${fmt(s.blowup_lr)}`, x: [s.blowup_lr, s.blowup_lr], y: [lo - pad, top + pad],
            line: { color: "#dc2626", width: 1, dash: "dot" }, hovertemplate: `the loss blew up at lr ${fmt(s.blowup_lr)}<extra></extra>` });
        }
      }
      Plotly.react(div, traces, {
        margin: { l: 56, r: 16, t: 8, b: 44 }, font: { family: "system-ui, sans-serif", size: 12, color: "#1c2430" },
        paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "closest",
        legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0, font: { size: 11 } },
        xaxis: { type: "log", title: { text: "learning rate (log scale)" }, gridcolor: "#eef1f5", exponentformat: "power" },
        yaxis: { title: { text: "loss" }, range: [lo - pad, top + pad], gridcolor: "#eef1f5", zeroline: false },
      }, { displaylogo: false, responsive: true, displayModeBar: false });
    }

    document.addEventListener("tuneserve:summary", (ev) => {
      const s = ev.detail.study;
      runs = ev.detail.special_runs || [];
      if (changed("gate", s.gate || null)) renderNotice(s.gate);
      if (changed("sanity", [s.sanity || null, runs])) renderSanity(s.sanity || null);
      if (changed("advice", s.advice || [])) renderAdvice(s.advice || []);
      if (changed("tried", s.advice_tried || null)) renderTried(s.advice_tried || null);
      if (changed("lr", [s.lr_range || null, runs])) renderLr(s.lr_range || null);
    });

    // Start a gate: errors (a 409 when the objective cannot run it, ...) go where the other controls' do.
    function starter(button, path, what) {
      button.addEventListener("click", async () => {
        const msg = $("#control-msg");
        button.disabled = true;
        try {
          await call("POST", `${base}/${path}`, {});
          say(msg, true, `${what}: started`);
        } catch (err) {
          say(msg, false, `${what} not started: ${err.message}`);
        } finally { button.disabled = false; refresh(); }
      });
    }
    starter($("#btn-sanity"), "sanity", "sanity check");
    starter($("#btn-lr-range"), "lr-range-test", "LR range test");

    function narrowing(button, method, what) {
      button.addEventListener("click", async () => {
        const msg = $("#lr-range-msg");
        button.disabled = true;
        try {
          await call(method, `${base}/narrowing`, method === "POST" ? {} : undefined);
          say(msg, true, `${what}: done`);
        } catch (err) {
          say(msg, false, `${what} failed: ${err.message}`);
          button.disabled = false;
        } finally { refresh(); }
      });
    }
    narrowing($("#btn-narrow"), "POST", "apply the suggested range");
    narrowing($("#btn-restore"), "DELETE", "restore");
  }

  // ---- the trial page ---------------------------------------------------------------------------
  function trialPanels() {
    let seen = "";
    document.addEventListener("tuneserve:trial", (ev) => {
      const t = ev.detail.trial;
      const d = t.diagnosis;
      const sig = JSON.stringify([t.kind, d]);
      if (sig === seen) return;
      seen = sig;
      const special = t.kind && t.kind !== "trial";
      $("#diagnosis-label").replaceChildren(d ? diagnosisBadge(d) : el("span", { class: "muted small", text: special ? "judged by its gate" : "not diagnosed yet" }));
      $("#diagnosis-cause").textContent = d && d.cause ? `likely cause: ${d.cause.replace(/_/g, " ")}` : "";
      $("#diagnosis-advice").textContent = d ? `${d.provisional ? "Provisional, while the trial runs: " : ""}${d.advice}`
        : special ? "A special run is not diagnosed like a trial: its verdict is on the study page."
          : "The diagnosis comes with the first reports.";
      const ev2 = d ? d.evidence || {} : {};
      $("#diagnosis-evidence").replaceChildren(...Object.keys(ev2).sort().map((k) =>
        el("tr", null, el("td", { text: k.replace(/_/g, " ") }), el("td", { text: fmt(ev2[k]) }))));
      $("#diagnosis-confidence").textContent = d && d.confidence !== null && d.confidence !== undefined
        ? `confidence ${d.confidence.toFixed(2)}${d.rule ? `, rule ${d.rule}` : ""}` : "";
      const parent = $("#diagnosis-parent");
      const variantOf = t.rerun_of ? null : t.parent_trial_id;  // a rerun's origin is drawn by rerun.js
      parent.hidden = !variantOf;
      parent.replaceChildren(...(variantOf ? [`Runs the ${t.advice_notch || ""} variant of `,
        el("a", { href: `/dashboard/trials/${variantOf}`, text: `trial ${variantOf}` }), "'s advice."] : []));
      renderVariant(t, d && d.variant);
    });

    // The params the variant would run: the trial's own, the changed ones marked.
    function renderVariant(t, v) {
      const box = $("#diagnosis-variant");
      box.hidden = !v;
      if (!v) return;
      $("#variant-notch").textContent = v.notch ? `(${v.notch.replace(/_/g, " ")})` : "";
      $("#variant-why").textContent = v.why || "";
      const flat = {};
      const walk = (obj, prefix) => Object.keys(obj || {}).forEach((k) => {
        const val = obj[k];
        if (val && typeof val === "object" && !Array.isArray(val)) walk(val, `${prefix}${k}.`); else flat[`${prefix}${k}`] = val;
      });
      walk(t.params, "");
      const change = v.params_change || {};
      const rows = Object.keys({ ...flat, ...change }).sort().map((k) => k in change
        ? el("tr", { class: "changed" }, el("td", { text: k }), el("td", null, el("b", { text: `${fmt(flat[k])} → ${fmt(change[k])}` })))
        : el("tr", null, el("td", { text: k }), el("td", { text: fmt(flat[k]) })));
      $("#variant-params").replaceChildren(...rows);
    }

    $("#btn-try-advice").addEventListener("click", async () => {
      const button = $("#btn-try-advice");
      const msg = $("#try-advice-msg");
      button.disabled = true;
      try {
        const made = await call("POST", `/api/v1/trials/${enc(document.body.dataset.trial)}/try-advice`);
        msg.hidden = false;
        msg.className = "msg ok";
        msg.replaceChildren("Enqueued as ", el("a", { href: `/dashboard/trials/${made.id}`, text: `trial #${made.number}` }),
          ` (id ${made.id}) in study ${made.study}.`);
      } catch (err) {
        say(msg, false, `Not enqueued: ${err.message}`);
      } finally { button.disabled = false; }
    });
  }

  const page = document.body.dataset.page;
  if (page === "study") studyPanels();
  if (page === "trial") trialPanels();
})();
