/* tuneserve dashboard: the craft's panels (coarse to fine, fidelity, repeats). dashboard.js fires
 * `tuneserve:summary` (the study page's summary, on every refresh) and `tuneserve:trial` (the trial
 * page's data); this file draws from them: the study's lineage (parent and children, linked both
 * ways), the stages as a timeline, the Refine form, the configurations table (repeats grouped as
 * one row with mean ± std) with a Repeat form, and the fidelity next to the values. */
(function () {
  "use strict";

  const { $, el, enc } = window.tuneserveDom;  // dashboard.js
  const studyLink = (name) => el("a", { href: `/dashboard/studies/${enc(name)}`, text: name });
  const fmt = (v, digits) => (v === null || v === undefined ? "–" : typeof v === "number" ? Number(v.toPrecision(digits || 5)).toString() : String(v));
  const meanStd = (g) => (g.mean === null || g.mean === undefined ? "no completed run"
    : `${fmt(g.mean)}${g.std === null || g.std === undefined ? "" : ` ± ${fmt(g.std, 2)}`} (n=${g.count})`);

  function flat(obj, prefix, out) {
    out = out || {};
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flat(v, key, out); else out[key] = v;
    }
    return out;
  }

  async function post(path, body) {
    const resp = await fetch(path, { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { accept: "application/json", "content-type": "application/json" } });
    const data = resp.status === 204 ? null : await resp.json();
    if (!resp.ok) {
      const d = data && data.detail;
      const text = Array.isArray(d) ? d.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ") : d || resp.statusText;
      throw new Error(text);
    }
    return data;
  }

  // ---- the study page ---------------------------------------------------------------------------
  function studyPanels() {
    const name = document.body.dataset.study;
    let signature = "";

    function renderLineage(s) {
      const box = $("#craft-lineage");
      const parts = [];
      if (s.parent) {
        parts.push(el("span", { class: "link-parent" }, s.parent.relation === "stage" ? `stage ${s.stage_index}, after ` : "refined from ",
          studyLink(s.parent.name), el("span", { class: `badge ${s.parent.state}`, text: s.parent.state })));
      }
      if (s.children.length) {
        parts.push(el("span", { class: "link-children" }, s.parent ? " · children: " : "children: ",
          ...s.children.flatMap((c, i) => [i ? ", " : "", studyLink(c.name),
            el("span", { class: "muted small", text: ` (${c.relation === "stage" ? `stage ${c.stage_index}` : "refine"})` })])));
      }
      if (s.refine && s.refine.changes) {
        const changed = s.refine.changes.filter((c) => c.action !== "kept").map((c) => c.path);
        parts.push(el("span", { class: "muted small refine-what" },
          ` · around ${s.parent ? s.parent.name : "the parent"}'s trials ${s.refine.top.join(", ")}; ${changed.length ? "changed " + changed.join(", ") : "nothing narrowed"}`));
      }
      if (!parts.length) parts.push(el("span", { class: "muted", text: "No parent or children yet: refine this study to search around its best trials at a higher fidelity." }));
      box.replaceChildren(...parts);
    }

    function renderStages(s) {
      const box = $("#craft-stages");
      box.hidden = !s.stages;
      const note = $("#craft-stage-note");
      note.hidden = !s.stage_note; note.textContent = s.stage_note || "";
      if (!s.stages) return;
      box.replaceChildren(...s.stages.flatMap((stage, i) => {
        const active = stage.study && stage.study === s.active_stage;
        const card = el("div", { class: `stage ${stage.state}${active ? " active" : ""}${stage.study === name ? " current" : ""}`, "data-index": String(stage.index) },
          el("div", { class: "stage-title" }, el("b", { text: `Stage ${stage.index}` }), " ",
            el("span", { class: `badge ${stage.state === "pending" ? "waiting" : stage.state}`, text: stage.state })),
          el("div", { class: "stage-fidelity", text: stage.fidelity_label }),
          el("div", { class: "muted small", text: `${stage.trials} trials${stage.refine ? `, refine top ${stage.refine.top_k}` : ""}${stage.repeat_top ? `, repeat top ${stage.repeat_top.top_k} × ${stage.repeat_top.seeds}` : ""}${stage.method ? `, ${stage.method}` : ""}` }),
          stage.study ? el("div", { class: "small" }, studyLink(stage.study), ` · ${stage.ended}/${stage.total} ended · best ${fmt(stage.best_value)}`)
            : el("div", { class: "muted small", text: "starts when the previous stage ends" }));
        return i ? [el("span", { class: "arrow", text: "→" }), card] : [card];
      }));
      const done = s.stages.filter((x) => x.state === "finished").length;
      $("#craft-note").textContent = `${s.stages.length} stages, ${done} finished${s.active_stage ? `; trials come from ${s.active_stage}` : ""}`;
    }

    // Facts in the header (dashboard.js rebuilds them on every refresh, before this runs).
    function renderFacts(s) {
      const facts = $("#study-facts");
      if (!facts || facts.querySelector(".fact-fidelity, .fact-config")) return;
      if (s.fidelity_label) facts.append(el("span", { class: "fact-fidelity" }, el("span", { class: "k", text: "fidelity" }), s.fidelity_label));
      const best = s.best_configuration;
      if (best && (s.repeat_groups || []).length) {
        facts.append(el("span", { class: "fact-config" }, el("span", { class: "k", text: "best configuration" }),
          el("a", { href: "#panel-configurations", text: meanStd(best) })));
      }
    }

    function renderConfigurations(s) {
      const groups = s.repeat_groups || [];
      const best = s.best_configuration;
      const p = $("#best-configuration");
      if (best && groups.length) {
        const sure = best.p_best_over_runner_up;
        p.replaceChildren(el("b", { text: "Best configuration: " }), `${meanStd(best)} over trials ${best.trials.join(", ")}`,
          sure === null || sure === undefined ? "" : ` — beats the runner-up with probability ${sure.toFixed(2)}`,
          el("div", { class: "muted small", text: best.statement }));
      } else {
        p.replaceChildren(el("span", { class: "muted", text: best ? `${best.statement}.` : "No completed trial yet." }));
      }
      const table = $("#configurations");
      // The best first, then the runner-up (a single run when it has no repeats), then the others.
      const rows = [...groups].sort((a, b) => (best && a.key === best.key ? -1 : best && b.key === best.key ? 1 : 0));
      if (groups.length && best && best.runner_up && !rows.some((g) => g.key === best.runner_up.key)) rows.splice(1, 0, best.runner_up);
      const names = [...new Set(rows.flatMap((g) => Object.keys(flat(g.params))))].sort();
      table.tHead.replaceChildren(el("tr", null, ...["", "mean ± std (n)", "failed", ...names, "trials"].map((c) => el("th", { text: c }))));
      table.tBodies[0].replaceChildren(...rows.map((g) => {
        const f = flat(g.params);
        return el("tr", { "data-key": g.key, class: best && g.key === best.key ? "best-row" : null },
          el("td", { text: best && g.key === best.key ? "best" : best && best.runner_up && g.key === best.runner_up.key ? "runner-up" : "" }),
          el("td", { class: "num", text: meanStd(g) }), el("td", { class: "num", text: String(g.failures) }),
          ...names.map((n) => el("td", { class: "num", text: fmt(f[n], 4) })),
          el("td", null, ...g.trials.flatMap((t, j) => [j ? " " : "", el("span", { class: "trial-no", text: `#${t}` })])));
      }));
      table.closest(".table-wrap").hidden = !groups.length;
    }

    document.addEventListener("tuneserve:summary", (ev) => {
      const s = ev.detail.study;
      renderFacts(s);
      const sig = JSON.stringify([s.parent, s.children, s.stages, s.stage_note, s.repeat_groups, s.best_configuration, s.active_stage]);
      if (sig === signature) return;
      signature = sig;
      renderLineage(s); renderStages(s); renderConfigurations(s);
    });

    $("#refine-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = ev.target, msg = $("#refine-msg");
      const body = { top_k: Number(form.top_k.value), max_trials: Number(form.max_trials.value), rerun_top: form.rerun_top.checked };
      if (form.epochs.value) body.epochs = Number(form.epochs.value);
      if (form.data_fraction.value) body.data_fraction = Number(form.data_fraction.value);
      if (form.name.value.trim()) body.name = form.name.value.trim();
      $("#refine-submit").disabled = true;
      try {
        const child = await post(`/api/v1/studies/${enc(name)}/refine`, body);
        msg.className = "msg ok";
        msg.replaceChildren("created ", studyLink(child.name), ` (${child.fidelity_label}, ${child.max_trials} trials)`);
      } catch (err) {
        msg.className = "msg bad"; msg.textContent = `not refined: ${err.message}`;
      } finally { $("#refine-submit").disabled = false; }
    });

    $("#repeat-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = ev.target, msg = $("#repeat-msg");
      $("#repeat-submit").disabled = true;
      try {
        const r = await post(`/api/v1/studies/${enc(name)}/repeat`, { top_k: Number(form.top_k.value), seeds: Number(form.seeds.value) });
        msg.className = "msg ok"; msg.textContent = `enqueued ${r.trials.length} repeat trials (budget now ${r.max_trials || "unbounded"})`;
      } catch (err) {
        msg.className = "msg bad"; msg.textContent = `not repeated: ${err.message}`;
      } finally { $("#repeat-submit").disabled = false; }
    });
  }

  // ---- the trial page ---------------------------------------------------------------------------
  function trialPanels() {
    document.addEventListener("tuneserve:trial", (ev) => {
      const t = ev.detail.trial;
      const facts = $("#trial-facts");
      if (!facts || facts.querySelector(".fact-fidelity")) return;
      const f = t.fidelity;
      const label = f ? [f.epochs ? `${f.epochs} epochs` : null, `${fmt(100 * (f.data_fraction ?? 1), 3)}% data`,
        f.classes ? `${f.classes} classes` : null, `data seed ${f.data_seed}`].filter(Boolean).join(", ") : "all the data (no managed fidelity)";
      facts.append(el("span", { class: "fact-fidelity" }, el("span", { class: "k", text: "fidelity" }), label));
      if (t.method === "repeat" || t.config_key) {
        facts.append(el("span", { class: "fact-config" }, el("span", { class: "k", text: "configuration" }),
          el("a", { href: `/dashboard/studies/${enc(t.study)}#panel-configurations`, text: (t.config_key || "").slice(0, 8) }),
          t.method === "repeat" ? el("span", { class: "muted small", text: " (a repeat with another seed)" }) : null));
      }
    });
  }

  const page = document.body.dataset.page;
  if (page === "study") studyPanels();
  if (page === "trial") trialPanels();
})();
