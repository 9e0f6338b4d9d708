/* tuneserve dashboard: where a trial ran. dashboard.js fires `tuneserve:trial` with the trial page's
 * data on every poll, which carries `ran_on` (what the trial's worker registered at start: PUT
 * /api/v1/workers/{id}); this writes "Ran on host …, Slurm job …, GPU …" under the trial's facts. */
(function () {
  "use strict";

  const { $ } = window.tuneserveDom;  // dashboard.js

  function describe(id) {
    const parts = [];
    if (id.host) parts.push(`host ${id.host}`);
    if (id.scheduler === "slurm" && id.job_id) parts.push(`Slurm job ${id.job_id}`);
    if (id.pod) parts.push(`pod ${id.pod}${id.node ? ` on node ${id.node}` : ""}`);
    parts.push(id.gpu ? `GPU ${id.gpu}` : `device ${id.device || "cpu"}`);
    return parts.join(", ");
  }

  document.addEventListener("tuneserve:trial", (ev) => {
    const node = $("#trial-ran-on");
    if (!node || !ev.detail) return;
    const worker = ev.detail.trial && ev.detail.trial.worker_id;
    const where = ev.detail.ran_on;
    node.hidden = !(worker && where);
    node.textContent = worker && where ? `Ran on ${describe(where)} (worker ${worker}).` : "";
  });
})();
