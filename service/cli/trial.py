"""`tuneserve trial show ID`: one trial's params, state, diagnosis (with the variant it proposes),
provenance, curve and the tail of its log; `tuneserve trial try-advice ID`: enqueue that variant;
`tuneserve trial rerun ID [--study NAME]`: enqueue the same run again."""
import json
from typing import Annotated

import typer
from rich.table import Table

from tuneserve_service.cli import _render as render
from tuneserve_service.cli import _workers
from tuneserve_service.cli._api import DEFAULT_SERVER, Api, JsonOption, ServerOption, TokenOption, out, print_json
from tuneserve_service.space import flatten_params

app = typer.Typer(help="Look at single trials.", no_args_is_help=True)

# The columns a practitioner reads first, in this order; any other metric follows.
CURVE_FIRST = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "update_ratio")


@app.command()
def show(
    trial_id: Annotated[int, typer.Argument(min=1, help="The trial's id.", show_default=False)],
    log_lines: Annotated[int, typer.Option("--log-lines", min=0, help="Lines of the trial's log to show.")] = 20,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Params, state, timings, the per-step curve, and the tail of the trial's log."""
    with Api(server, token) as api:
        trial = api.get(f"/trials/{trial_id}")
        log = api.get(f"/trials/{trial_id}/log", ok404=True) if log_lines else None
        ran_on = _workers.worker_line(api, trial.get("worker_id"))  # host, Slurm job / pod, GPU (issue 18)
    if as_json:
        print_json(trial)
        return
    out.print(f"[bold]trial {trial['id']}[/] (study {trial['study']}, #{trial['number']}): "
              f"{trial['state']}, value {render.number(trial['value'])}, method {trial['method']}, "
              f"attempt {trial['attempt']}, worker {trial.get('worker_id') or '-'}")
    if ran_on:
        out.print(ran_on, markup=False)
    if trial.get("fidelity"):  # what the value was measured at (service/cli/craft.py)
        out.print(f"fidelity: {render.fidelity_text(trial['fidelity'])} (data seed {trial['fidelity'].get('data_seed')})"
                  + (", a repeat of its configuration with another seed" if trial.get("method") == "repeat" else ""))
    for key in ("fail_kind", "fail_reason", "stop_reason"):
        if trial.get(key):
            out.print(f"{key.replace('_', ' ')}: {trial[key]}")
    diagnosis = trial.get("diagnosis")
    if diagnosis:
        how = ", ".join(x for x in (render.confidence_text(diagnosis), diagnosis.get("rule") and f"rule {diagnosis['rule']}",
                                    "provisional" if diagnosis.get("provisional") else "") if x)
        out.print(f"diagnosis: [bold]{diagnosis.get('label')}[/]"
                  + (f" ({diagnosis['cause']})" if diagnosis.get("cause") else "")
                  + (f" ({how})" if how else "")
                  + (f": {diagnosis['advice']}" if diagnosis.get("advice") else ""))
        variant = diagnosis.get("variant")
        if variant:
            out.print(f"variant to try ({variant.get('notch') or '-'}): {variant.get('why', '')}", markup=False)
            change = variant.get("params_change") or {}
            change = {**change, **flatten_params(change)}
            for key, value in sorted(flatten_params(variant.get("params") or {}).items()):
                mark = "  <- changed" if key in change else ""
                out.print(f"    {key} = {value if isinstance(value, str) else json.dumps(value)}{mark}", markup=False)
            out.print(f"  run it: tuneserve trial try-advice {trial['id']}", markup=False)
    if trial.get("rerun_of"):
        out.print(f"rerun of trial {trial['rerun_of']}")
    elif trial.get("parent_trial_id"):
        out.print(f"advice variant ({trial.get('advice_notch') or '-'}) of trial {trial['parent_trial_id']}")
    for line in provenance_lines(trial.get("provenance")):
        out.print(line, markup=False)
    out.print("params:")
    for key, value in sorted(flatten_params(trial["params"]).items()):
        out.print(f"  {key} = {value if isinstance(value, str) else json.dumps(value)}")
    reports = trial.get("reports") or []
    if reports:
        out.print(_curve(reports))
    text = _log_text(log)
    if text:
        tail = text.rstrip("\n").splitlines()[-log_lines:]
        out.print(f"[bold]log[/] (last {len(tail)} lines):")
        for line in tail:
            out.print(line, markup=False)


@app.command("try-advice")
def try_advice(
    trial_id: Annotated[int, typer.Argument(min=1, help="The diagnosed trial's id.", show_default=False)],
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Enqueue the variant the trial's diagnosis proposes (its params with the one change) into its
    study; it runs like any enqueued trial and records its parent (admin token)."""
    with Api(server, token) as api:
        new = api.post(f"/trials/{trial_id}/try-advice")
    if as_json:
        print_json(new)
        return
    out.print(f"enqueued trial {new['id']} (study {new['study']}, #{new['number']}): the {new.get('advice_notch')} "
              f"variant of trial {trial_id}", markup=False)
    for key, value in sorted(flatten_params(new["params"]).items()):
        out.print(f"  {key} = {value if isinstance(value, str) else json.dumps(value)}", markup=False)


@app.command()
def rerun(
    trial_id: Annotated[int, typer.Argument(min=1, help="The trial to run again.", show_default=False)],
    study: Annotated[str | None, typer.Option("--study", help="Enqueue into this study (default: the trial's own).")] = None,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Enqueue the trial's run again: the same params, seed, data subset and fidelity, into its study
    or another; the new trial records the one it reruns (admin token)."""
    with Api(server, token) as api:
        new = api.post(f"/trials/{trial_id}/rerun", json={"study": study} if study else None)
    if as_json:
        print_json(new)
        return
    out.print(f"enqueued trial {new['id']} (study {new['study']}, #{new['number']}): a rerun of trial {trial_id}",
              markup=False)
    for key, value in sorted(flatten_params(new["params"]).items()):
        out.print(f"  {key} = {value if isinstance(value, str) else json.dumps(value)}", markup=False)


def provenance_lines(p: dict | None) -> list[str]:
    """What the trial's worker said the run was: versions, device, code, command, seed and data."""
    if not p:
        return []
    versions = p.get("versions") or {}
    shown = ", ".join(f"{k} {versions[k]}" for k in ("python", "torch", "cuda", "cudnn", "tuneserve") if versions.get(k))
    lines = [f"provenance (attempt {p.get('attempt', '-')}, worker {p.get('worker_id') or '-'}, {p.get('device') or '-'}): "
             f"{shown or 'no versions'}"]
    code = p.get("code") or {}
    if code:
        git = (f"git {code['git_commit'][:12]}{' (dirty)' if code.get('git_dirty') else ''}, "
               if code.get("git_commit") else "")
        lines.append(f"  code: {code.get('path') or '-'} ({git}sha256 {str(code.get('sha256') or '-')[:16]})")
    if p.get("command"):
        lines.append(f"  command: {' '.join(p['command'])}")
    data = p.get("fidelity") or {}
    lines.append(f"  seed {p.get('seed', '-')}" + (f", data {p['dataset']}" if p.get("dataset") else "")
                 + (f", subset {data.get('subset_digest')} ({data.get('train_samples')} train)" if data else ""))
    flags = p.get("determinism") or {}
    if flags:
        lines.append("  determinism: " + ", ".join(f"{k} {v}" for k, v in flags.items() if v is not None))
    return lines


def _curve(reports: list[dict]) -> Table:
    """The per-step reports: a row per step, or, when the trial reported more metrics than steps (a
    short run of the built-in trainer with its costs), a row per metric, so a terminal of 80 columns
    shows every name whole."""
    names = {k for r in reports for k in r["metrics"]}
    cols = [k for k in CURVE_FIRST if k in names] + sorted(names - set(CURVE_FIRST))
    table = Table(box=None, header_style="bold", title="reports", title_justify="left")
    if len(cols) > len(reports):
        table.add_column("metric \\ step", justify="left")
        for r in reports:
            table.add_column(str(r["step"]), justify="right")
        for c in cols:
            table.add_row(c, *(render.number(r["metrics"].get(c)) for r in reports))
        return table
    table.add_column("step", justify="right")
    for c in cols:
        table.add_column(c, justify="right")
    for r in reports:
        table.add_row(str(r["step"]), *(render.number(r["metrics"].get(c)) for c in cols))
    return table


def _log_text(log) -> str:
    if log is None:
        return ""
    if isinstance(log, dict):
        return log.get("text") or log.get("log") or ""
    return str(log)
