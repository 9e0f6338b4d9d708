"""`tuneserve worker`: the worker daemon's command (typer). The `tuneserve` command line
(service/cli) lists it with its other commands and imports this module only when it runs it, so a
server needs no torch; `python -m tuneserve_workers.cli` (how --slots starts its processes) and
`main(argv)` run the same command. Every option can come from the TUNESERVE_* variable its help
names; --server and --token are the ones every client command takes (tuneserve/_defaults.py)."""
from __future__ import annotations

import logging
import os
import socket
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from tuneserve._defaults import DEFAULT_SERVER, ENV_SERVER, ENV_TOKEN
from tuneserve.errors import TuneserveError
from tuneserve.schemas.objectives import PROGRAM


class MpsMode(str, Enum):
    auto = "auto"
    off = "off"


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def resolve_devices(spec: str) -> list[str]:
    """The devices a worker (or its slots, round-robin) trains on."""
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return ["cpu"]
    if spec == "cuda":
        spec = "cuda:0"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise typer.BadParameter(f"{spec}: CUDA is not available on this machine", param_hint="--device")
        index = torch.device(spec).index or 0
        if index >= torch.cuda.device_count():
            raise typer.BadParameter(f"{spec}: only {torch.cuda.device_count()} CUDA device(s)", param_hint="--device")
    elif spec != "cpu":
        raise typer.BadParameter(f"must be auto, cpu, cuda or cuda:N, got {spec!r}", param_hint="--device")
    return [spec]


@app.command(help="Pull trials from a tuneserve server, run them, report every epoch. With --study, "
                  "the study says what runs its trials: its `program` (run as `wandb agent` runs it) "
                  "or its objective; otherwise --objective (default builtin:cnn).")
def worker(
    server: str = typer.Option(DEFAULT_SERVER, "--server", "-s", envvar=ENV_SERVER, show_envvar=True,
                               help="The tuneserve server's URL."),
    token: Optional[str] = typer.Option(None, "--token", envvar=ENV_TOKEN, show_envvar=True, show_default=False,
                                        help="API token (Authorization: Bearer), when the server requires one."),
    study: Optional[str] = typer.Option(None, envvar="TUNESERVE_STUDY",
                                        help="Serve only this study (default: any running study it can run)."),
    device: str = typer.Option("auto", envvar="TUNESERVE_DEVICE", help="auto | cpu | cuda | cuda:N"),
    slots: int = typer.Option(1, envvar="TUNESERVE_SLOTS", min=1,
                              help="Trials run at once on the device, one process each."),
    objective: Optional[str] = typer.Option(
        None, envvar="TUNESERVE_OBJECTIVE",
        help="builtin:cnn, module:function, file.py:function, or `program` (needs --study). "
             "Default: what the study names, else builtin:cnn."),
    worker_id: Optional[str] = typer.Option(None, envvar="TUNESERVE_WORKER_ID",
                                            help="Name in logs and on the server (default hostname-pid)."),
    mps: MpsMode = typer.Option(MpsMode.auto, envvar="TUNESERVE_MPS",
                            help="With --slots > 1 on CUDA, start an MPS daemon when nvidia-cuda-mps-control "
                                 "is available."),
    idle_max: float = typer.Option(3.0, envvar="TUNESERVE_IDLE_MAX",
                                   help="Longest sleep between claims when there is no work, seconds."),
    runs_dir: Path = typer.Option(Path("tuneserve-runs"), envvar="TUNESERVE_RUNS_DIR",
                                  help="Programs: where each trial's directory (output.log, params.json) goes."),
    interpreter: str = typer.Option("python", envvar="TUNESERVE_INTERPRETER",
                                    help="Programs: what ${interpreter} expands to (W&B: python)."),
    kill_grace: float = typer.Option(30.0, envvar="TUNESERVE_KILL_GRACE",
                                     help="Programs: seconds between SIGTERM and SIGKILL when a trial is stopped."),
    log_interval: float = typer.Option(30.0, envvar="TUNESERVE_LOG_INTERVAL",
                                       help="Programs: seconds between uploads of a running trial's log."),
    log_level: str = typer.Option("INFO", envvar="TUNESERVE_LOG_LEVEL"),
    exit_when_done: bool = typer.Option(False, "--exit-when-done", envvar="TUNESERVE_EXIT_WHEN_DONE",
                                        help="With --study: exit 0 once the study has nothing left to hand out "
                                             "(what a Slurm array task or a batch job wants)."),
    parent_pid: Optional[int] = typer.Option(None, hidden=True),
) -> None:
    from tuneserve_workers import preempt

    preempt.install_early()  # a scheduler's USR1 during startup is recorded, not fatal (workers/preempt.py)
    logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown events
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    if objective == PROGRAM and not study:
        raise typer.BadParameter("a worker that runs programs serves one study: add --study NAME",
                                 param_hint="--objective")
    devices = resolve_devices(device)
    if token:
        os.environ["TUNESERVE_TOKEN"] = token  # slots inherit it without it showing in `ps`
    if slots > 1:
        from tuneserve_workers.slots import run_slots

        child = ["--server", server, "--idle-max", str(idle_max), "--log-level", log_level,
                 "--runs-dir", str(runs_dir), "--interpreter", interpreter, "--kill-grace", str(kill_grace),
                 "--log-interval", str(log_interval)]
        child += (["--study", study] if study else []) + (["--objective", objective] if objective else [])
        child += ["--exit-when-done"] if exit_when_done else []
        raise typer.Exit(run_slots(child, slots, worker_id, devices, use_mps=mps == MpsMode.auto,
                                   exit_when_done=exit_when_done))

    from tuneserve_workers.identity import detect
    from tuneserve_workers.loop import ConfigError, Worker
    from tuneserve_workers.training.objective import load_objective

    program_options = dict(runs_dir=runs_dir, interpreter=interpreter, kill_grace=kill_grace,
                           log_interval=log_interval)
    if study:
        # What runs the study's trials is learned from the study before the first claim.
        fn, name = None, None
    else:
        name = objective or "builtin:cnn"
        try:
            fn = load_objective(name)  # a bad spec fails now, not on the first trial
        except (ValueError, ImportError, OSError) as err:
            raise typer.BadParameter(str(err), param_hint="--objective") from None
    try:
        w = Worker(server, fn, worker_id=worker_id, device=devices[0], study=study, token=token,
                   idle_cap=idle_max, parent_pid=parent_pid, objective_name=name, requested=objective,
                   program_options=program_options, exit_when_done=exit_when_done and bool(study),
                   identity=detect(devices[0]))
        code = w.run()
    except (ConfigError, ValueError, ImportError, TuneserveError) as err:
        typer.echo(f"tuneserve worker: {err}", err=True)
        code = 2
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command with `argv` (default sys.argv[1:]); returns the exit status."""
    command = typer.main.get_command(app)
    try:
        command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="tuneserve worker")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
