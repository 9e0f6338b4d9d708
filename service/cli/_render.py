"""How the CLI shows studies and trials: status blocks, tables, export rows. Reads the API's JSON."""
import json
import math
from typing import Any

from rich.table import Table

from service.cli._api import out
from service.schemas.enums import ENDED_STATES
from service.space import flatten_params

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
        out.print(f"target reached by trial {study['target_reached_by']}: the study finished")
    if study.get("runner_warning"):
        out.print(f"[yellow]warning:[/] {study['runner_warning']}")
    elif "runnable_by_workers" in study and study["state"] == "running":
        out.print(f"workers able to run it: {study['runnable_by_workers']}")
    best = study.get("best_trial")
    if best:
        out.print(f"best: trial {best['number']}, {study['metric']['name']} = {number(best['value'])}")
        for key, value in sorted(flatten_params(best["params"]).items()):
            out.print(f"  {key} = {json.dumps(value) if not isinstance(value, str) else value}")
    for key in ("warnings", "advice"):
        for item in study.get(key) or []:
            text = item.get("message") or item.get("text") if isinstance(item, dict) else item
            out.print(f"[yellow]{key[:-1] if key.endswith('s') else key}:[/] {text}")


def trial_table(trials: list[dict]) -> Table:
    names = sorted({k for t in trials for k in flatten_params(t["params"])})
    table = Table(box=None, header_style="bold")
    for col in ("#", "state", "value", "step"):
        table.add_column(col, justify="right")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("worker")
    for t in trials:
        flat = flatten_params(t["params"])
        style = STATE_STYLE.get(t["state"], "")
        table.add_row(str(t["number"]), f"[{style}]{t['state']}[/]" if style else t["state"], number(t["value"]),
                      number(t.get("last_step")), *(number(flat.get(n)) for n in names), t.get("worker_id") or "-")
    return table


EXPORT_FIRST = ("number", "state", "value", "method", "attempt", "worker_id", "last_step", "fail_kind",
                "fail_reason", "stop_reason", "created_at", "started_at", "finished_at")


def space_leaves(study: dict) -> list[str] | None:
    """The flat names of the study's parameters, so a parameter whose value is a mapping stays one
    column; None when the stored document cannot be read (every dict is then a level)."""
    from service.space import parse_parameters

    try:
        return list(parse_parameters(study["parameters"]).names)
    except (ValueError, KeyError, TypeError):
        return None


def export_row(trial: dict, leaves: list[str] | None = None) -> dict[str, Any]:
    row = {k: trial.get(k) for k in EXPORT_FIRST}
    for key, value in (trial.get("fidelity") or {}).items():
        row[f"fidelity.{key}"] = value
    for key, value in flatten_params(trial["params"], leaves).items():
        row[f"params.{key}"] = json.dumps(value) if isinstance(value, (list, dict)) or value is None else value
    metrics = {**((trial.get("last_report") or {}).get("metrics") or {}), **(trial.get("metrics") or {})}
    for key, value in metrics.items():
        row[f"metrics.{key}"] = value
    return row


def export_columns(rows: list[dict[str, Any]]) -> list[str]:
    seen = {k for r in rows for k in r}
    rest = sorted(k for k in seen if k not in EXPORT_FIRST)
    order = {"fidelity": 0, "params": 1, "metrics": 2}
    rest.sort(key=lambda k: (order.get(k.split(".", 1)[0], 3), k))
    return [k for k in EXPORT_FIRST] + rest
