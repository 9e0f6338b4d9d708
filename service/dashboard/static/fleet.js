/* tuneserve dashboard: where a trial ran. dashboard.js fires `tuneserve:trial` with the trial page's
 * data on every poll; this asks the server for the trial's worker (GET /api/v1/workers/{id}: what the
 * worker registered at start) and writes "Ran on host …, Slurm job …, GPU …" under the trial's facts.
 * It asks again only when the worker changes (a requeued trial runs on another worker). */
(function () {
  "use strict";

  const { $, enc } = window.tuneserveDom;  // dashboard.js
  let shown = null;

  function describe(id) {
    const parts = [];
    if (id.host) parts.push(`host ${id.host}`);
    if (id.scheduler === "slurm" && id.job_id) parts.push(`Slurm job ${id.job_id}`);
    if (id.pod) parts.push(`pod ${id.pod}${id.node ? ` on node ${id.node}` : ""}`);
    parts.push(id.gpu ? `GPU ${id.gpu}` : `device ${id.device || "cpu"}`);
    return parts.join(", ");
  }

  document.addEventListener("tuneserve:trial", async (ev) => {
    const node = $("#trial-ran-on");
    const worker = ev.detail && ev.detail.trial && ev.detail.trial.worker_id;
    if (!node || !worker || worker === shown) return;
    shown = worker;
    try {
      const resp = await fetch(`/api/v1/workers/${enc(worker)}`, { credentials: "same-origin", headers: { accept: "application/json" } });
      const data = resp.ok ? await resp.json() : null;
      node.hidden = !(data && data.identity);
      node.textContent = data && data.identity ? `Ran on ${describe(data.identity)} (worker ${worker}).` : "";
    } catch (err) {
      node.hidden = true;
    }
  });
})();
