"""`tuneserve study refine` and `tuneserve study repeat`: coarse to fine and repeats from the command
line (POST /studies/{name}/refine and /repeat). `study status` shows what they made (_render.py)."""
from typing import Annotated, Any, Optional

import typer

from tuneserve_service.cli import _render as render
from tuneserve_service.cli._api import DEFAULT_SERVER, Api, JsonOption, ServerOption, TokenOption, out, print_json
from tuneserve_service.cli.study import NameArg, app
from tuneserve.schemas.enums import StudyMethod


@app.command()
def refine(
    name: NameArg,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Refine around this many of the best trials.")] = 5,
    max_trials: Annotated[int, typer.Option("--max-trials", "-n", min=1, help="The child's own budget.")] = 20,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="The child's epochs (default: the objective's).")] = None,
    data_fraction: Annotated[Optional[float], typer.Option(
        "--data-fraction", min=0.0, max=1.0, help="The child's share of the training data (default: all).")] = None,
    classes: Annotated[Optional[int], typer.Option(min=2, help="Train on this many classes (default: all).")] = None,
    child: Annotated[Optional[str], typer.Option("--name", help="The child's name (default: NAME-refined).")] = None,
    method: Annotated[Optional[StudyMethod], typer.Option(help="The child's method (default: the parent's).")] = None,
    margin: Annotated[Optional[float], typer.Option(min=0.0, help="Widen each range by this share of its width.")] = None,
    no_rerun: Annotated[bool, typer.Option("--no-rerun", help="Do not run the top k first in the child.")] = False,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Coarse to fine: a child study with the ranges shrunk around the top k trials, at a higher fidelity."""
    body: dict[str, Any] = {"top_k": top_k, "max_trials": max_trials, "rerun_top": not no_rerun}
    for key, value in (("epochs", epochs), ("data_fraction", data_fraction), ("classes", classes),
                       ("name", child), ("method", method.value if method else None), ("margin", margin)):
        if value is not None:
            body[key] = value
    with Api(server, token) as api:
        study = api.post(f"/studies/{name}/refine", json=body)
    if as_json:
        print_json(study)
        return
    out.print(f"created study [bold]{study['name']}[/], refined from {name} "
              f"({study.get('fidelity_label') or 'all the data'}, budget {study['max_trials']} trials)")
    for change in (study.get("refine") or {}).get("changes", []):
        out.print(f"  {change['path']}: {render.spec_text(change['before'])} -> {render.spec_text(change['after'])}"
                  f" ({change['action']})")
    rerun = (study.get("refine") or {}).get("rerun") or []
    if rerun:
        out.print(f"  runs first: {name}'s trials {', '.join(map(str, rerun))} at the new fidelity")
    out.print(f"  run it:   tuneserve worker --server {server} --study {study['name']}")


@app.command()
def repeat(
    name: NameArg,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Repeat this many configurations, best first.")] = 3,
    seeds: Annotated[int, typer.Option(min=1, max=100, help="New seeds per configuration.")] = 3,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Re-run the top configurations with other seeds (added to the budget), for a noise-aware best."""
    with Api(server, token) as api:
        answer = api.post(f"/studies/{name}/repeat", json={"top_k": top_k, "seeds": seeds})
    if as_json:
        print_json(answer)
        return
    numbers = [t["number"] for t in answer["trials"]]
    out.print(f"enqueued {len(numbers)} repeat trial{'s' if len(numbers) != 1 else ''} in {name} "
              f"(trials {render.ranges(numbers)}); budget now {answer['max_trials'] or 'unbounded'}")
    for group in answer["configurations"]:
        out.print(f"  {render.group_text(group)}")
