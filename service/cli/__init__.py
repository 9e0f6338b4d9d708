"""The `tuneserve` command line (typer): the server, the database, tokens, studies and trials over
REST, and the worker and demo (imported only when run, so a server needs no torch).

Every client command takes --server and --token after the subcommand, or TUNESERVE_SERVER and
TUNESERVE_TOKEN from the environment, and turns errors into one readable line.
"""
import sys
from typing import Annotated

import typer

from tuneserve_service.cli import server as server_cmds
from tuneserve_service.cli import slurm, study, trial
from tuneserve_service.cli import craft  # noqa: F401  (registers `study refine` and `study repeat`)
from tuneserve_service.cli import gates  # noqa: F401  (registers `study sanity`, `study lr-range-test`, `study narrow`)

app = typer.Typer(
    name="tuneserve", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Hyperparameter tuning for CNNs: a server, worker daemons and W&B-style sweeps.",
)
app.command("server")(server_cmds.server)
app.command("dashboard")(server_cmds.dashboard)
app.add_typer(server_cmds.db_app, name="db")
app.add_typer(server_cmds.token_app, name="token")
app.add_typer(study.app, name="study")
app.add_typer(trial.app, name="trial")
app.add_typer(slurm.app, name="slurm")  # worker fleets on Slurm (issue 18)

# `worker` and `demo` parse their own options (workers/cli.py, workers/demo.py): these entries only
# list them in --help; main() hands their arguments over untouched.
_PASSTHROUGH = {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True,
                                     "help_option_names": []}, "add_help_option": False}


@app.command("worker", **_PASSTHROUGH)
def _worker(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
    """Run a worker daemon: pull trials and train them (`tuneserve worker --help`)."""
    raise typer.Exit(_run_worker(args or []))


@app.command("demo", **_PASSTHROUGH)
def _demo(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
    """Server + two CPU workers + a study on digits, with live progress (`tuneserve demo --help`)."""
    raise typer.Exit(_run_demo(args or []))


def _run_worker(argv: list[str]) -> int:
    from tuneserve_workers.cli import main as worker_main

    return worker_main(argv) or 0


def _run_demo(argv: list[str]) -> int:
    from tuneserve_workers.demo import main as demo_main

    return demo_main(argv) or 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Straight to the worker's and demo's own parsers: typer would otherwise claim their --help.
    if argv[:1] == ["worker"]:
        return _run_worker(argv[1:])
    if argv[:1] == ["demo"]:
        return _run_demo(argv[1:])
    try:
        app(args=argv, prog_name="tuneserve", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
