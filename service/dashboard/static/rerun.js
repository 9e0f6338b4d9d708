/* tuneserve dashboard: a trial's provenance and its "Rerun" button. dashboard.js fires
 * `tuneserve:trial` with the trial page's data (which carries `provenance`, as the trial's worker
 * sent it); this draws it as a table and, on "Rerun", POSTs /api/v1/trials/{id}/rerun (with the
 * target study when one is typed) and links the new trial. Mirrors gates.js's "Try this". */
(function () {
  "use strict";

  const { $, el, enc } = window.tuneserveDom;  // dashboard.js

  function text(v) {
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v === "boolean") return v ? "yes" : "no";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  function rows(p, rerunOf) {
    const out = [];
    const add = (k, v) => { if (v !== null && v !== undefined && v !== "") out.push([k, text(v)]); };
    const versions = p.versions || {};
    ["python", "torch", "cuda", "cudnn", "numpy", "tuneserve"].forEach((k) => add(k, versions[k]));
    add("device", p.device);
    add("attempt", p.attempt);
    add("worker", p.worker_id);
    add("objective", p.objective);
    const code = p.code || {};
    add("code", code.path);
    if (code.git_commit) add("git commit", `${code.git_commit.slice(0, 12)}${code.git_dirty ? " (dirty)" : ""}`);
    add("sha256", code.sha256 ? code.sha256.slice(0, 16) : null);
    if (p.command) add("command", p.command.join(" "));
    add("seed", p.seed);
    add("dataset", p.dataset);
    const f = p.fidelity || {};
    const sizes = [["train_samples", "train"], ["val_samples", "val"]].filter(([k]) => f[k] !== undefined).map(([k, w]) => `${f[k]} ${w}`);
    if (f.subset_digest) add("data subset", `${f.subset_digest}${sizes.length ? ` (${sizes.join(", ")})` : ""}`);
    const flags = p.determinism || {};
    Object.keys(flags).forEach((k) => add(k.replace(/_/g, " "), flags[k]));
    return out;
  }

  let seen = "";
  document.addEventListener("tuneserve:trial", (ev) => {
    const t = ev.detail.trial;
    const p = ev.detail.provenance;
    const sig = JSON.stringify([t.rerun_of, p]);
    if (sig === seen) return;
    seen = sig;
    const of = $("#provenance-rerun-of");
    of.hidden = !t.rerun_of;
    of.replaceChildren(...(t.rerun_of ? ["A rerun of ", el("a", { href: `/dashboard/trials/${t.rerun_of}`, text: `trial ${t.rerun_of}` }), "."] : []));
    $("#provenance-none").hidden = !!p;
    $("#provenance-facts").replaceChildren(...(p ? rows(p) : []).map(([k, v]) =>
      el("tr", null, el("td", { text: k }), el("td", { text: v }))));
    $("#btn-rerun").hidden = t.kind && t.kind !== "trial";
  });

  $("#btn-rerun").addEventListener("click", async () => {
    const button = $("#btn-rerun");
    const msg = $("#rerun-msg");
    const study = $("#rerun-study").value.trim();
    button.disabled = true;
    try {
      const resp = await fetch(`/api/v1/trials/${enc(document.body.dataset.trial)}/rerun`, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(study ? { study } : {}),
        headers: { accept: "application/json", "content-type": "application/json" } });
      const data = await resp.json().catch(() => null);
      if (!resp.ok) {
        const d = data && data.detail;
        throw new Error(Array.isArray(d) ? d.map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".")}: ${e.msg}`).join("; ") : d || resp.statusText);
      }
      msg.hidden = false;
      msg.className = "msg ok";
      msg.replaceChildren("Enqueued as ", el("a", { href: `/dashboard/trials/${data.id}`, text: `trial #${data.number}` }),
        ` (id ${data.id}) in study ${data.study}.`);
    } catch (err) {
      msg.hidden = false;
      msg.className = "msg bad";
      msg.textContent = `Not enqueued: ${err.message}`;
    } finally { button.disabled = false; }
  });
})();
