"""`tuneserve study sanity`, `study lr-range-test` and `study narrow`: the gates from the command line
(POST /studies/{name}/sanity, /lr-range-test, POST and DELETE /narrowing). With --wait each follows
the special run to its verdict; `study status` shows the verdict, the suggestion and the advice."""
import time
from typing import Annotated, Any, Optional

import typer

from tuneserve_service.cli import _render as render
from tuneserve_service.cli._api import DEFAULT_SERVER, Api, JsonOption, ServerOption, TokenOption, fail, out, print_json
from tuneserve_service.cli.study import NameArg, app

WaitOption = Annotated[bool, typer.Option("--wait", help="Follow the run until its verdict (Ctrl-C stops waiting).")]
Interval = 1.0


def _wait(api: Api, name: str, key: str) -> dict:
    """Poll until the gate `key` (sanity, lr_range) is no longer pending or running."""
    try:
        while True:
            study = api.get(f"/studies/{name}")
            if (study.get(key) or {}).get("state") not in ("pending", "running"):
                return study
            time.sleep(Interval)
    except KeyboardInterrupt:
        out.print("stopped waiting (the run goes on)")
        raise typer.Exit(130) from None


def _start(name: str, route: str, key: str, body: dict[str, Any], wait: bool, server: str, token: str | None,
           as_json: bool) -> None:
    """Open the gate `key` through POST /studies/{name}/{route}; with `wait`, follow it to its end."""
    with Api(server, token) as api:
        study = api.post(f"/studies/{name}/{route}", json=body)
        if wait:
            study = _wait(api, name, key)
    if as_json:
        print_json(study)
        return
    render.print_gates(study)
    if not wait:
        out.print(f"  follow it: tuneserve study status {name}   (a worker runs it: tuneserve worker --study {name})")


@app.command()
def sanity(
    name: NameArg,
    samples: Annotated[Optional[int], typer.Option(min=2, help="Training examples to fit (default: the study's, or 64).")] = None,
    max_epochs: Annotated[Optional[int], typer.Option("--max-epochs", min=1, help="Give up after this many epochs.")] = None,
    sweep: Annotated[Optional[bool], typer.Option("--sweep/--no-sweep", help="Try three learning rates.")] = None,
    wait: WaitOption = False,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Run the sanity check now: can the largest model overfit a tiny subset? Trials wait for the verdict."""
    body: dict[str, Any] = {k: v for k, v in (("samples", samples), ("max_epochs", max_epochs), ("sweep", sweep))
                            if v is not None}
    _start(name, "sanity", "sanity", body, wait, server, token, as_json)


@app.command("lr-range-test")
def lr_range_test(
    name: NameArg,
    apply: Annotated[bool, typer.Option("--apply", help="Narrow the study's lr to the suggested range by itself.")] = False,
    start_lr: Annotated[Optional[float], typer.Option("--start-lr", min=0.0, help="The ramp's first lr (default 1e-7).")] = None,
    end_lr: Annotated[Optional[float], typer.Option("--end-lr", min=0.0, help="The ramp's last lr (default 10).")] = None,
    steps: Annotated[Optional[int], typer.Option(min=20, help="Mini-batches in the ramp (default 200).")] = None,
    wait: WaitOption = False,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Run a learning-rate range test now: the lr grows geometrically until the loss blows up; the
    server suggests an lr and a range from the curve. Trials wait for it."""
    body: dict[str, Any] = {"apply": apply, **{k: v for k, v in (("start_lr", start_lr), ("end_lr", end_lr),
                                                               ("steps", steps)) if v is not None}}
    _start(name, "lr-range-test", "lr_range", body, wait, server, token, as_json)


@app.command()
def narrow(
    name: NameArg,
    low: Annotated[Optional[float], typer.Option(help="The new lower bound (default: the range test's).")] = None,
    high: Annotated[Optional[float], typer.Option(help="The new upper bound (default: the range test's).")] = None,
    param: Annotated[Optional[str], typer.Option("--param", help="The parameter's dotted name (default: the lr).")] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Restore the range as it was before the narrowing.")] = False,
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False,
) -> None:
    """Narrow the lr to the range test's suggested range (or --low/--high) for every trial not drawn yet."""
    if undo and (low is not None or high is not None or param is not None):
        fail("--undo takes no --low, --high or --param")
    with Api(server, token) as api:
        if undo:
            gone = (api.get(f"/studies/{name}").get("lr_range") or {}).get("narrowing") or {}
            study = api.delete(f"/studies/{name}/narrowing")
        else:
            body = {k: v for k, v in (("low", low), ("high", high), ("parameter", param)) if v is not None}
            study = api.post(f"/studies/{name}/narrowing", json=body)
    if as_json:
        print_json(study)
        return
    lr = study.get("lr_range") or {}
    if undo:
        out.print(f"restored {gone.get('path', 'the lr')} to {render.spec_text(gone.get('before'))}")
    else:
        n = lr.get("narrowing") or {}
        out.print(f"narrowed {n.get('path')}: {render.spec_text(n.get('before'))} -> {render.spec_text(n.get('after'))}"
                  f" for every trial not drawn yet (undo: tuneserve study narrow {name} --undo)")
