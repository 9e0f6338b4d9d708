"""`tuneserve study ...`: create, list, status (--watch), pareto, trials, pause, resume, stop, delete, export."""
import csv
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuneserve_service.cli._api import DEFAULT_SERVER, Api, JsonOption, ServerOption, TokenOption, fail, out, print_json
from tuneserve_service.cli import _render as render
from tuneserve.schemas.enums import ENDED_STATES, StudyState, TrialState

app = typer.Typer(help="Create, watch and steer studies.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The study's name (its URL slug).", show_default=False)]


def _read_document(path: Path) -> tuple[str, str]:
    """The file's text and content type: YAML by extension, else JSON if it parses as JSON."""
    try:
        text = path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    if path.suffix.lower() in (".yaml", ".yml"):
        return text, "application/yaml"
    try:
        json.loads(text)
        return text, "application/json"
    except ValueError:
        return text, "application/yaml"


@app.command()
def create(
    file: Annotated[Path, typer.Argument(help="A W&B sweep YAML or a JSON study document.", show_default=False)],
    name: Annotated[Optional[str], typer.Option(help="Use this name instead of the document's.")] = None,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Create a study from a sweep file, as W&B's `wandb sweep sweep.yaml` would."""
    text, ctype = _read_document(file)
    if name is not None:
        try:
            doc = yaml.safe_load(text) if ctype == "application/yaml" else json.loads(text)
        except (yaml.YAMLError, ValueError) as exc:
            fail(f"{file} is not valid {'YAML' if ctype == 'application/yaml' else 'JSON'}: {exc}")
        if not isinstance(doc, dict):
            fail(f"{file} must hold a mapping (a sweep or study document)")
        doc["name"] = name
        text, ctype = json.dumps(doc), "application/json"
    with Api(server, token) as api:
        study = api.post("/studies", content=text.encode(), headers={"content-type": ctype})
    if as_json:
        print_json(study)
        return
    out.print(f"created study [bold]{study['name']}[/] ({render.study_line(study)})")
    out.print(f"  run it:   tuneserve worker --server {server} --study {study['name']}")
    out.print(f"  watch it: tuneserve study status {study['name']} --watch")


@app.command("list")
def list_(
    state: Annotated[Optional[StudyState], typer.Option(help="Only studies in this state.")] = None,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Every study with its state, progress and best value."""
    with Api(server, token) as api:
        studies = api.get("/studies", params={"state": state.value} if state else None)
    if as_json:
        print_json(studies)
        return
    if not studies:
        out.print("no studies yet: create one with `tuneserve study create sweep.yaml`")
        return
    table = Table(box=None, header_style="bold")
    for col in ("name", "state", "method", "done", "running", "failed", "best"):
        table.add_column(col, justify="right" if col in ("done", "running", "failed", "best") else "left")
    for s in studies:
        c = s["counts"]
        best = s.get("best_trial")
        table.add_row(s["name"], s["state"], s["method"], render.progress_text(s), str(c["running"]),
                      str(c["failed"] + c["diverged"]), render.number(best["value"]) if best else "-")
    out.print(table)


def _final(study: dict) -> bool:
    stages = study.get("stages")
    if stages:  # a staged study goes on in its later stages (service/cli/craft.py)
        return (stages[-1]["state"] == StudyState.FINISHED or bool(study.get("stage_note"))
                or any(s["state"] == StudyState.STOPPED for s in stages))
    return study["state"] in (StudyState.FINISHED, StudyState.STOPPED)


@app.command()
def status(
    name: NameArg,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow live until the study ends (Ctrl-C stops watching).")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Counts, best trial, the sanity verdict, the range test and the advice; with --watch, a live
    progress bar until the study ends."""
    with Api(server, token) as api:
        study = api.get(f"/studies/{name}")
        if as_json and not watch:
            print_json(study)
            return
        if watch and not _final(study):
            study = _watch(api, name, study, interval)
    render.print_status(study)


def _watch(api: Api, name: str, study: dict, interval: float) -> dict:
    total = study.get("max_trials")
    columns = [TextColumn("[bold]{task.fields[name]}[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[counts]}"), TextColumn("best {task.fields[best]}"), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=out, transient=False) as bar:
            task = bar.add_task("", total=total, name=name, counts="", best="-")
            while True:
                # A staged study: the bar follows the stage that runs now.
                active = study.get("active_stage")
                shown = api.get(f"/studies/{active}") if active and active != study["name"] else study
                c = shown["counts"]
                best = shown.get("best_trial")
                bar.update(task, completed=sum(c[s] for s in ENDED_STATES), total=shown.get("max_trials"),
                           name=shown["name"], counts=render.counts_text(c),
                           best=render.number(best["value"]) if best else "-")
                if _final(study):
                    break
                time.sleep(interval)
                study = api.get(f"/studies/{name}")
    except KeyboardInterrupt:
        out.print("stopped watching (the study goes on)")
    return study


@app.command()
def pareto(
    name: NameArg,
    all_: Annotated[bool, typer.Option("--all", help="Every valued trial with its rank, not only the front.")] = False,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """The Pareto front of a study with several objectives: trial, each objective, rank, feasibility."""
    with Api(server, token) as api:
        front = api.get(f"/studies/{name}/pareto")
    if as_json:
        print_json(front)
        return
    objectives = front["objectives"]
    points = front["trials"] if all_ else front["front"]
    out.print(render.front_table(objectives, points, title=f"{name}: " + (
        f"every valued trial ({len(points)})" if all_ else f"Pareto front ({len(points)} trials)")))
    if front["constraints"]:
        out.print("constraints: " + ", ".join(render.constraint_text(c) for c in front["constraints"]))
    if front.get("hypervolume") is not None:
        out.print(f"hypervolume (objectives normalised over the feasible trials, reference 1.1): "
                  f"{render.number(front['hypervolume'])}")


@app.command()
def trials(
    name: NameArg,
    state: Annotated[Optional[TrialState], typer.Option(help="Only trials in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many trials (by number).")] = 0,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """The trial table: number (special runs below zero), state, value, params, diagnosis, worker."""
    query: dict[str, Any] = {"limit": limit, "offset": offset, **({"state": state.value} if state else {})}
    with Api(server, token) as api:
        page = api.get(f"/studies/{name}/trials", params=query)
    if as_json:
        print_json(page)
        return
    shared, table = render.trial_table(page["items"], width=out.width)
    out.print(table)
    if shared:
        out.print(shared)
    shown = len(page["items"])
    if page["total"] > offset + shown:
        out.print(f"{offset + 1}-{offset + shown} of {page['total']}: --offset {offset + shown} for more")


def _lifecycle(action: str, doc: str):
    def command(name: NameArg, server: ServerOption = DEFAULT_SERVER, token: TokenOption = None,
                as_json: JsonOption = False) -> None:
        with Api(server, token) as api:
            study = api.post(f"/studies/{name}/{action}")
        if as_json:
            print_json(study)
        else:
            out.print(f"study {study['name']} is {study['state']}")

    command.__doc__ = doc
    return command


app.command("pause")(_lifecycle("pause", "Pause: no new trials are handed out; running ones are told to stop."))
app.command("resume")(_lifecycle("resume", "Resume a paused study (one the sanity check paused: the recorded override)."))
app.command("stop")(_lifecycle("stop", "Stop for good: no more trials are handed out."))


@app.command()
def delete(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None,
) -> None:
    """Delete the study with all its trials and reports."""
    if not yes and not typer.confirm(f"delete study {name!r} and all its trials?"):
        raise typer.Exit(1)
    with Api(server, token) as api:
        api.delete(f"/studies/{name}")
    out.print(f"deleted study {name}")


@app.command()
def export(
    name: NameArg,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None,
) -> None:
    """Every trial with its state, value, method, fail kind and reason, fidelity, params and metrics.

    CSV columns: the trial's fields, then (several objectives or constraints) `feasible`, `violation`
    and `front_rank` (1: the Pareto front), `fidelity.*`, `params.*` and `metrics.*` (every metric of
    the final report); JSON: the API's trial objects, with `front_rank` added likewise.
    """
    if fmt not in ("csv", "json"):
        fail(f"--format must be csv or json, got {fmt!r}")
    with Api(server, token) as api:
        study = api.get(f"/studies/{name}")
        leaves = render.space_leaves(study)
        rows = api.all_trials(name)
        if study.get("objectives") or study.get("constraints"):
            # Several objectives or constraints: each trial's front rank (1: the front; None: infeasible
            # or without every objective), next to its feasible and violation fields.
            ranks = {p["trial_id"]: p["rank"] for p in api.get(f"/studies/{name}/pareto")["trials"]}
            rows = [{**r, "front_rank": ranks.get(r["id"])} for r in rows]
    stream = open(output, "w", newline="") if output else sys.stdout
    try:
        if fmt == "json":
            json.dump(rows, stream, indent=2)
            stream.write("\n")
        else:
            flat = [render.export_row(r, leaves) for r in rows]
            fields = render.export_columns(flat)
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flat)
    finally:
        if output:
            stream.close()
    if output:
        out.print(f"wrote {len(rows)} trials to {output}")
