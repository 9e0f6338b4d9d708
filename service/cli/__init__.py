"""The `tuneserve` command line (typer): the server, the database, tokens, studies and trials over
REST, the worker daemon and the demo.

Every client command takes --server and --token after the subcommand, or TUNESERVE_SERVER and
TUNESERVE_TOKEN from the environment, and turns errors into one readable line. `worker` is defined
beside the daemon (workers/cli.py) and imported only when it is asked for (_Commands below), so a
server needs no torch; the console script (service/console.py) names the extra to install when a
command's dependencies are missing.
"""
import importlib
import sys

import click
import typer
from typer.core import TyperGroup

from tuneserve_service.cli import demo as demo_cmd
from tuneserve_service.cli import server as server_cmds
from tuneserve_service.cli import slurm, study, trial
from tuneserve_service.cli import craft  # noqa: F401  (registers `study refine` and `study repeat`)
from tuneserve_service.cli import gates  # noqa: F401  (registers `study sanity`, `study lr-range-test`, `study narrow`)

# Commands that live in another package, imported when asked for: name -> (module, its typer app).
LAZY = {"worker": ("tuneserve_workers.cli", "app")}


class _Commands(TyperGroup):
    """The registered commands plus the LAZY ones, each loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return super().list_commands(ctx) + [name for name in LAZY if name not in self.commands]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and name not in self.commands:
            module, attr = LAZY[name]
            command = typer.main.get_command(getattr(importlib.import_module(module), attr))
            command.name = name
            self.commands[name] = command
        return super().get_command(ctx, name)


app = typer.Typer(
    name="tuneserve", cls=_Commands, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Hyperparameter tuning for CNNs: a server, worker daemons and W&B-style sweeps.",
)
app.command("server")(server_cmds.server)
app.command("dashboard")(server_cmds.dashboard)
app.add_typer(server_cmds.db_app, name="db")
app.add_typer(server_cmds.token_app, name="token")
app.add_typer(study.app, name="study")
app.add_typer(trial.app, name="trial")
app.command("demo")(demo_cmd.demo)
app.add_typer(slurm.app, name="slurm")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="tuneserve", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
