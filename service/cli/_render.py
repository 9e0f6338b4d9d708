"""How the CLI shows studies and trials: status blocks, tables, export rows. Reads the API's JSON."""
import json
import math
from typing import Any

from rich.table import Table

from tuneserve_service.cli._api import out
from tuneserve.schemas.enums import ENDED_STATES
from tuneserve_service.space import flatten_params

STATE_STYLE = {"completed": "green", "running": "cyan", "waiting": "white", "pruned": "yellow",
               "failed": "red", "diverged": "magenta"}


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def progress_text(study: dict) -> str:
    done = sum(study["counts"][s] for s in ENDED_STATES)
    return f"{done}/{study['max_trials']}" if study.get("max_trials") else str(done)


def counts_text(counts: dict) -> str:
    shown = ("running", "waiting", "completed", "pruned", "failed", "diverged")
    return ", ".join(f"{k} {counts[k]}" for k in shown if counts.get(k))


def study_line(study: dict) -> str:
    metric = study["metric"]
    method = study["method"]
    if study.get("engine") and study["engine"] != method:
        method = f"{method} (engine {study['engine']})"
    target = f" to {number(metric['target'])}" if metric.get("target") is not None else ""
    parts = [f"method {method}", f"{metric['goal']} {metric['name']}{target}"]
    if study.get("max_trials"):
        parts.append(f"budget {study['max_trials']} trials")
    if study.get("display_name") and study["display_name"] != study["name"]:
        parts.insert(0, repr(study["display_name"]))
    return ", ".join(parts)


def print_status(study: dict) -> None:
    out.print(f"[bold]{study['name']}[/]: {study['state']}, {study_line(study)}")
    out.print(f"trials: {progress_text(study)} done" + (f" ({counts_text(study['counts'])})" if study["counts"]["total"] else ""))
    if study.get("target_reached_by") is not None:
        out.print(f"target reached by trial #{study['target_reached_by']}: the study finished")
    if study.get("runner_warning"):
        out.print(f"[yellow]warning:[/] {study['runner_warning']}")
    elif "runnable_by_workers" in study and study["state"] == "running":
        out.print(f"workers able to run it: {study['runnable_by_workers']}")
    best = study.get("best_trial")
    print_objectives(study)
    if best:
        at = f" at {study['fidelity_label']}" if study.get("fidelity_label") else ""
        flag = " [yellow](least infeasible: no trial meets the constraints yet)[/]" \
            if study.get("best_is_feasible") is False else ""
        # "trial N" is an id everywhere in the CLI (trial show N); the study's own numbering is "#n".
        out.print(f"best: trial {best['id']} (#{best['number']}), {study['metric']['name']} = "
                  f"{number(best['value'])}{at}{flag}")
        for key, value in sorted(flatten_params(best["params"]).items()):
            out.print(f"  {key} = {json.dumps(value) if not isinstance(value, str) else value}")
    print_craft(study)
    print_gates(study, advice=False)
    tried = study.get("advice_tried") or {}
    if tried.get("tried") or tried.get("pending"):
        out.print(advice_tried_text(tried))
    for key in ("warnings", "advice"):
        for item in study.get(key) or []:
            if isinstance(item, dict) and str(item.get("kind", "")).startswith("sanity_"):
                continue  # the sanity line above says it
            text = item.get("message") or item.get("text") if isinstance(item, dict) else item
            out.print(f"[yellow]{key[:-1] if key.endswith('s') else key}:[/] {text}")


def print_objectives(study: dict) -> None:
    """Several objectives and constraints: what they are, and the front (from the study read)."""
    objectives = study.get("objectives") or []
    constraints = study.get("constraints") or []
    if len(objectives) > 1:
        out.print("objectives: " + ", ".join(f"{o['goal']} {o['name']}" for o in objectives))
        if study.get("pruning_note"):
            out.print(f"  ({study['pruning_note']})")
    if constraints:
        out.print("constraints: " + ", ".join(constraint_text(c) for c in constraints))
    front = study.get("pareto_front")
    if front:
        out.print(front_table(objectives, front))


def constraint_text(c: dict) -> str:
    return f"{c['name']} <= {number(c['max'])}" if c.get("max") is not None else f"{c['name']} >= {number(c['min'])}"


def front_table(objectives: list[dict], points: list[dict], title: str | None = None) -> Table:
    """The front (or every ranked trial): trial number, each objective, and rank/feasibility when given."""
    table = Table(title=title or f"Pareto front ({len(points)} trials)")
    table.add_column("trial", justify="right")
    for o in objectives:
        table.add_column(f"{o['name']} ({'min' if o['goal'] == 'minimize' else 'max'})", justify="right")
    ranked = any("rank" in p for p in points)
    if ranked:
        table.add_column("rank", justify="right")
        table.add_column("feasible")
    for p in points:
        cells = [str(p["number"]), *(number(v) for v in p["values"])]
        if ranked:
            cells += ["-" if p.get("rank") is None else str(p["rank"]),
                      "yes" if p.get("feasible") else f"no (violation {number(p.get('violation'))})"]
        table.add_row(*cells)
    return table


GATE_STYLE = {"passed": "green", "done": "green", "failed": "red", "skipped": "yellow", "pending": "white",
              "running": "cyan"}


def print_gates(study: dict, advice: bool = True) -> None:
    """The sanity verdict, the range test's suggestion and narrowing, and (`advice`) the advice."""
    gate = study.get("gate")
    if gate:
        what = "sanity check" if gate == "sanity" else "lr range test"
        out.print(f"[cyan]gate:[/] ordinary trials wait for the {what} to end")
    sanity = study.get("sanity")
    if sanity:
        state = sanity["state"]
        note = " (overridden: the study was resumed over it)" if sanity.get("overridden") else ""
        verdict = sanity["verdict"].removeprefix("sanity check skipped: ")  # the state says it
        out.print(f"sanity check: [{GATE_STYLE.get(state, '')}]{state}[/]{note}: {verdict}")
    lr = study.get("lr_range")
    if lr:
        state = lr["state"]
        out.print(f"lr range test: [{GATE_STYLE.get(state, '')}]{state}[/]: {lr.get('message', '')}")
        n = lr.get("narrowing")
        if n:
            out.print(f"  {n['path']} narrowed: {spec_text(n['before'])} -> {spec_text(n['after'])}")
    for item in (study.get("advice") or []) if advice else []:
        out.print(f"[yellow]advice:[/] {item['message']}")


def advice_tried_text(tried: dict) -> str:
    """"advice tried 3 times, helped 2 (1 more running or waiting)": the study's advice_tried."""
    n, k, pending = tried.get("tried", 0), tried.get("helped", 0), tried.get("pending", 0)
    more = f" ({pending} more waiting or running)" if pending else ""
    return f"advice tried {n} time{'s' if n != 1 else ''}, helped {k}{more}"


def confidence_text(diagnosis: dict) -> str:
    confidence = diagnosis.get("confidence")
    return "" if confidence is None else f"confidence {confidence:.2f}"


def diagnosis_text(diagnosis: dict | None) -> str:
    if not diagnosis:
        return "-"
    text = diagnosis["label"] + (f" ({diagnosis['cause']})" if diagnosis.get("cause") else "")
    return text + ("?" if diagnosis.get("provisional") else "")


def param_number(value: Any) -> str:
    """A parameter in a table cell: 3 significant digits (the full value is in `trial show` and export)."""
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return number(value)


def trial_table(trials: list[dict], width: int | None = None) -> tuple[str | None, Table]:
    """The trial table, and the line of parameters every row shares ("same in every row: ...").

    Parameters that differ get a column each while the table fits `width` (the console's); when they
    do not fit, they share one wrapped `params` column of name=value pairs instead, so nothing is
    cut to an ellipsis in 80 columns."""
    flats = [flatten_params(t["params"]) for t in trials]
    names = sorted({k for f in flats for k in f})
    shared = [n for n in names if len(trials) > 1 and len({repr(f.get(n)) for f in flats}) == 1]
    varying = [n for n in names if n not in shared]
    fidelity = any(t.get("fidelity") for t in trials)
    rows = []
    for t, flat in zip(trials, flats):
        number_text = str(t["number"]) if t.get("kind", "trial") == "trial" else f"{t['number']} ({t['kind']})"
        rows.append({"id": str(t["id"]), "#": number_text, "state": t["state"], "value": number(t["value"]),
                     "step": number(t.get("last_step")),
                     **({"fidelity": fidelity_text(t.get("fidelity"))} if fidelity else {}),
                     **{n: param_number(flat.get(n)) for n in varying},
                     "diagnosis": diagnosis_text(t.get("diagnosis")), "worker": t.get("worker_id") or "-"})
    columns = list(rows[0]) if rows else ["id", "#", "state", "value", "step", "diagnosis", "worker"]
    needed = sum(max([len(c)] + [len(r[c]) for r in rows]) + 2 for c in columns)
    stacked = width is not None and needed > width and bool(varying)
    table = Table(box=None, header_style="bold", expand=stacked, collapse_padding=stacked, pad_edge=not stacked)
    for c in columns:
        if not (stacked and c in varying):
            table.add_column(c, justify="right" if c not in ("fidelity", "diagnosis", "worker") else "left",
                             no_wrap=c != "diagnosis")
    if stacked:   # last, so it takes the width that is left: name=value pairs wrap between pairs
        table.add_column("params", ratio=1, overflow="fold")
    for r in rows:
        style = STATE_STYLE.get(r["state"], "")
        cells = []
        for c in columns:
            if not (stacked and c in varying):
                cells.append(f"[{style}]{r[c]}[/]" if c == "state" and style else r[c])
        if stacked:
            cells.append(" ".join(f"{n}={r[n]}" for n in varying))
        table.add_row(*cells)
    line = ("same in every row: " + ", ".join(f"{n}={param_number(flats[0].get(n))}" for n in shared)) if shared else None
    return line, table


# ---- the craft: lineage, stages, fidelity, repeats -----------------------------------------------

def fidelity_text(record: dict | None) -> str:
    """"2 ep, 10%" for a fidelity record; "-" for none."""
    if not record:
        return "-"
    parts = [f"{record['epochs']} ep"] if record.get("epochs") else []
    parts.append(f"{100 * record.get('data_fraction', 1.0):.3g}%")
    if record.get("classes"):
        parts.append(f"{record['classes']} cl")
    return ", ".join(parts)


def spec_text(spec: Any) -> str:
    if isinstance(spec, dict) and "min" in spec and "max" in spec:
        return f"[{number(spec['min'])}, {number(spec['max'])}]"
    if isinstance(spec, dict) and "values" in spec:
        return "{" + ", ".join(map(str, spec["values"])) + "}"
    if isinstance(spec, dict) and "value" in spec:
        return str(spec["value"])
    return json.dumps(spec)


def ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out) or "-"


def mean_std(group: dict) -> str:
    if group.get("mean") is None:
        return "no completed run"
    std = f" ± {group['std']:.2g}" if group.get("std") is not None else ""
    return f"{number(group['mean'])}{std} (n={group['count']})"


def group_text(group: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(flatten_params(group["params"]).items()))
    failed = f", {group['failures']} failed" if group.get("failures") else ""
    return f"{mean_std(group)}{failed}: {params} [trials {ranges(group['trials'])}]"


def print_craft(study: dict) -> None:
    """What `study status` adds for the craft: fidelity, lineage, stages, the best configuration."""
    if study.get("fidelity_label"):
        out.print(f"fidelity: {study['fidelity_label']} (data seed {study['fidelity'].get('data_seed')})")
    parent = study.get("parent")
    if parent:
        out.print(f"parent: {parent['name']} ({parent['relation']}, {parent['state']})")
    children = study.get("children") or []
    if children:
        out.print("children: " + ", ".join(f"{c['name']} ({c['relation']}, {c['state']})" for c in children))
    for stage in study.get("stages") or []:
        mark = "→" if stage.get("study") == study.get("active_stage") else " "
        refine = f", refine top {stage['refine']['top_k']}" if stage.get("refine") else ""
        repeat = (f", repeat top {stage['repeat_top']['top_k']} x {stage['repeat_top']['seeds']}"
                  if stage.get("repeat_top") else "")
        where = f"{stage['study']}: {stage['state']}, {stage['ended']}/{stage['total']} ended, best " \
                f"{number(stage.get('best_value'))}" if stage.get("study") else "pending"
        out.print(f"{mark} stage {stage['index']}: {stage['trials']} trials at {stage['fidelity_label']}"
                  f"{refine}{repeat} | {where}")
    if study.get("stage_note"):
        out.print(f"[yellow]stages:[/] {study['stage_note']}")
    config = study.get("best_configuration")
    if config and study.get("repeat_groups"):  # without repeats the best trial above says it all
        sure = config.get("p_best_over_runner_up")
        out.print(f"best configuration: {mean_std(config)}, trials {ranges(config['trials'])}"
                  + (f"; beats the runner-up with probability {sure:.2f}" if sure is not None else ""))
        out.print(f"  {config['statement']}")
    for group in study.get("repeat_groups") or []:
        out.print(f"  repeats: {group_text(group)}")


EXPORT_FIRST = ("number", "kind", "state", "value", "method", "attempt", "worker_id", "last_step", "fail_kind",
                "fail_reason", "stop_reason", "diagnosis", "diagnosis_cause", "parent_trial_id", "advice_notch",
                "created_at", "started_at", "finished_at")


def space_leaves(study: dict) -> list[str] | None:
    """The flat names of the study's parameters, so a parameter whose value is a mapping stays one
    column; None when the stored document cannot be read (every dict is then a level)."""
    from tuneserve_service.space import parse_parameters

    try:
        return list(parse_parameters(study["parameters"]).names)
    except (ValueError, KeyError, TypeError):
        return None


def export_row(trial: dict, leaves: list[str] | None = None) -> dict[str, Any]:
    row = {k: trial.get(k) for k in EXPORT_FIRST}
    diagnosis = trial.get("diagnosis") or {}
    row["kind"] = trial.get("kind", "trial")
    row["diagnosis"], row["diagnosis_cause"] = diagnosis.get("label"), diagnosis.get("cause")
    for key, value in (trial.get("fidelity") or {}).items():
        row[f"fidelity.{key}"] = value
    for key, value in flatten_params(trial["params"], leaves).items():
        row[f"params.{key}"] = json.dumps(value) if isinstance(value, (list, dict)) or value is None else value
    # Several objectives and constraints: feasibility and front rank (the CLI's export adds the rank).
    for key in ("feasible", "violation", "front_rank"):
        if trial.get(key) is not None or key in trial:
            row[key] = trial.get(key)
    metrics = {**((trial.get("last_report") or {}).get("metrics") or {}), **(trial.get("metrics") or {})}
    for key, value in metrics.items():
        row[f"metrics.{key}"] = value
    return row


def export_columns(rows: list[dict[str, Any]]) -> list[str]:
    seen = {k for r in rows for k in r}
    rest = sorted(k for k in seen if k not in EXPORT_FIRST)
    order = {"feasible": -3, "violation": -2, "front_rank": -1, "fidelity": 0, "params": 1, "metrics": 2}
    rest.sort(key=lambda k: (order.get(k.split(".", 1)[0], 3), k))
    return [k for k in EXPORT_FIRST] + rest
