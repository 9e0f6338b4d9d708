/* tuneserve dashboard: several objectives and constraints. On every `tuneserve:summary` (dashboard.js)
 * of a study with two or more objectives, or with constraints, this fetches
 * /dashboard/api/studies/{name}/pareto and draws the trials for the two objectives chosen in the
 * x / y selects: the front (rank 1 among feasible trials) highlighted and joined as a step line,
 * other feasible trials grey, infeasible ones as crosses; and the hypervolume history. */
(function () {
  "use strict";

  const { $, el, enc } = window.tuneserveDom;  // dashboard.js
  const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  const LAYOUT = {
    margin: { l: 64, r: 16, t: 8, b: 44 }, font: { family: "system-ui, sans-serif", size: 12, color: "#1c2430" },
    paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "closest",
    legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0, font: { size: 11 } },
  };
  const name = document.body.dataset.study;
  let data = null;
  let stamp = null;

  function label(o) { return `${o.name} (${o.goal === "maximize" ? "max" : "min"})`; }

  function fillSelects(objectives) {
    for (const [id, pick] of [["#pareto-x", 0], ["#pareto-y", 1]]) {
      const sel = $(id);
      if (sel.options.length === objectives.length) continue;
      sel.replaceChildren(...objectives.map((o, i) => el("option", { value: String(i), text: label(o) })));
      sel.value = String(Math.min(pick, objectives.length - 1));
      sel.addEventListener("change", draw);
    }
  }

  function trace(points, i, j, opts) {
    return Object.assign({
      x: points.map((p) => p.values[i]), y: points.map((p) => p.values[j]), type: "scatter", mode: "markers",
      text: points.map((p) => `trial ${p.number}${p.rank ? ` · rank ${p.rank}` : ""}${p.feasible ? "" : ` · infeasible (violation ${p.violation === null ? "?" : p.violation.toPrecision(3)})`}`),
      hoverinfo: "text+x+y", customdata: points.map((p) => p.id),
    }, opts);
  }

  function draw() {
    if (!data) return;
    const objs = data.objectives;
    const i = Number($("#pareto-x").value || 0);
    const j = Number($("#pareto-y").value || Math.min(1, objs.length - 1));
    const front = data.trials.filter((p) => p.rank === 1);
    const rest = data.trials.filter((p) => p.feasible && p.rank !== 1);
    const infeasible = data.trials.filter((p) => !p.feasible);
    // The front in the chosen pair, sorted along x.
    const sx = objs[i].goal === "maximize" ? -1 : 1;
    const line = front.slice().sort((a, b) => sx * (a.values[i] - b.values[i]));
    const traces = [
      trace(rest, i, j, { name: "dominated", marker: { color: "#b8c2cf", size: 7 } }),
      trace(infeasible, i, j, { name: "infeasible", marker: { color: "#d1495b", symbol: "x", size: 8 } }),
      // Two objectives: the front as a step line; with more, a projection of it (markers only: a
      // front trial may look dominated in this pair).
      trace(line, i, j, { name: "Pareto front", mode: objs.length === 2 ? "lines+markers" : "markers",
        line: { shape: "hv", color: "#2f6fde", width: 1.5 },
        marker: { color: "#2f6fde", size: 10, line: { color: "#0f2f6e", width: 1 } } }),
    ];
    Plotly.react($("#chart-pareto"), traces, Object.assign({}, LAYOUT, {
      xaxis: { title: { text: label(objs[i]) }, gridcolor: "#eef1f5", zeroline: false },
      yaxis: { title: { text: label(objs[j]) }, gridcolor: "#eef1f5", zeroline: false },
      datarevision: Date.now() }), PLOT_CONFIG);
    const div = $("#chart-pareto");
    if (!div.dataset.clicks) {   // a point opens its trial
      div.dataset.clicks = "1";
      div.on("plotly_click", (ev) => { const id = ev.points[0] && ev.points[0].customdata; if (id) location.href = `/dashboard/trials/${id}`; });
    }
    $("#pareto-note").textContent = `${front.length} on the front, ${rest.length} dominated, ${infeasible.length} infeasible`;
    const hv = data.hypervolume;
    $("#panel-hypervolume").hidden = objs.length < 2;
    if (objs.length >= 2) {
      Plotly.react($("#chart-hypervolume"), [{ x: hv.map((h) => h.number), y: hv.map((h) => h.hypervolume),
        type: "scatter", mode: "lines+markers", line: { shape: "hv", color: "#2f6fde" }, name: "hypervolume" }],
        Object.assign({}, LAYOUT, { showlegend: false, xaxis: { title: { text: "trial" }, gridcolor: "#eef1f5" },
          yaxis: { title: { text: "hypervolume" }, gridcolor: "#eef1f5", rangemode: "tozero" }, datarevision: Date.now() }),
        PLOT_CONFIG);
    }
  }

  async function refresh(sum) {
    const s = sum.study;
    const several = (s.objectives || []).length > 1;
    const constrained = (s.constraints || []).length > 0;
    $("#panel-pareto").hidden = !(several || constrained);
    if (!(several || constrained) || sum.stamp === stamp) return;
    stamp = sum.stamp;
    const resp = await fetch(`/dashboard/api/studies/${enc(name)}/pareto`, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (!resp.ok) return;
    data = await resp.json();
    fillSelects(data.objectives);
    if (typeof Plotly === "undefined") window.addEventListener("load", draw, { once: true }); else draw();
  }

  if (document.body.dataset.page === "study") {
    document.addEventListener("tuneserve:summary", (ev) => { refresh(ev.detail).catch(() => {}); });
  }
})();
