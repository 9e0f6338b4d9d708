"""`tuneserve slurm submit|status|cancel STUDY`: a study's worker fleet as one Slurm job array.

The script comes from tuneserve_workers.launchers.slurm (pure: rendered text and parsed squeue
output); this module only runs sbatch, squeue and scancel. The jobs are found by their name,
`tuneserve-<study>`, so status and cancel need nothing stored between commands.
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlparse

import typer
from rich.table import Table

from tuneserve_service.cli._api import ServerOption, TokenOption, JsonOption, err, fail, out, print_json

app = typer.Typer(help="Run a study's workers on a Slurm cluster (one job array).", no_args_is_help=True)

StudyArg = Annotated[str, typer.Argument(help="The study's name.", show_default=False)]


def _launcher():
    from tuneserve_workers.launchers import slurm  # pure: no torch, no service

    return slurm


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    if shutil.which(argv[0]) is None:
        fail(f"`{argv[0]}` is not on PATH: run this on a Slurm login node (or load the slurm module)")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"`{' '.join(argv)}` did not answer within {timeout:g}s: is slurmctld up?")
    if done.returncode != 0:
        fail(f"`{' '.join(argv)}` failed ({done.returncode}): {(done.stderr or done.stdout).strip()[:500]}")
    return done


@app.command()
def submit(
    study: StudyArg,
    workers: Annotated[int, typer.Option("--workers", "-n", min=1, help="Array tasks: one worker each.")] = 1,
    gpus_per_worker: Annotated[int, typer.Option("--gpus-per-worker", min=0, help="GPUs per task (--gres=gpu:G); 0: CPU.")] = 0,
    slots: Annotated[int, typer.Option("--slots", min=1, help="Trials each worker runs at once (`tuneserve worker --slots`).")] = 1,
    cpus_per_worker: Annotated[int, typer.Option("--cpus-per-worker", min=1, help="CPUs per slot (per task with GPUs).")] = 1,
    partition: Annotated[Optional[str], typer.Option("--partition", "-p", help="Slurm partition.")] = None,
    time: Annotated[Optional[str], typer.Option("--time", "-t", help="Time limit per task (Slurm format: 30, 4:00:00, 1-0).")] = None,
    account: Annotated[Optional[str], typer.Option("--account", "-A", help="Slurm account.")] = None,
    setup: Annotated[Optional[str], typer.Option("--setup", help="Shell run before the worker, e.g. 'module load cuda; source venv/bin/activate'.")] = None,
    signal_lead: Annotated[int, typer.Option("--signal-lead", min=1, help="Seconds before the time limit that USR1 warns the worker (it releases its trial and exits). Keep it above Slurm's polling granularity (~30-60 s) on a real cluster.")] = 120,
    requeue: Annotated[bool, typer.Option("--requeue/--no-requeue", help="Let Slurm requeue a task (node failure, preemption).")] = True,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="A chmod-600 file on a shared filesystem the task reads the token from; default: TUNESERVE_TOKEN passes through sbatch's environment.")] = None,
    output: Annotated[str, typer.Option("--output", help="Per-task log path (Slurm patterns).")] = "tuneserve-slurm/%x-%A_%a.log",
    worker_arg: Annotated[Optional[list[str]], typer.Option("--worker-arg", help="Extra `tuneserve worker` argument (repeatable).")] = None,
    sbatch_option: Annotated[Optional[list[str]], typer.Option("--sbatch-option", help="Extra #SBATCH line, e.g. --qos=long (repeatable).")] = None,
    script_dir: Annotated[Path, typer.Option("--script-dir", help="Where the sbatch script is written.")] = Path("tuneserve-slurm"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the sbatch script; submit nothing.")] = False,
    server: ServerOption = "http://127.0.0.1:8000", token: TokenOption = None,
) -> None:
    """Submit ONE job array of N workers for STUDY; each task exits when the study has nothing left."""
    slurm = _launcher()
    if token_file is not None and token_file.exists() and token_file.stat().st_mode & 0o077:
        fail(f"{token_file} is readable by others: chmod 600 {token_file}")
    try:
        fleet = slurm.SlurmFleet(
            study=study, server=server, workers=workers, gpus_per_worker=gpus_per_worker, slots=slots,
            cpus_per_worker=cpus_per_worker, partition=partition, time=time, account=account, setup=setup,
            signal_lead=signal_lead, requeue=requeue, output=output,
            token_file=str(token_file.resolve()) if token_file else None,
            worker_args=tuple(worker_arg or ()), sbatch_options=tuple(sbatch_option or ()))
    except ValueError as exc:
        fail(str(exc))
    script = fleet.render()
    if dry_run:
        out.print(script, markup=False, end="")
        return
    if urlparse(server).hostname in ("127.0.0.1", "localhost", "::1"):
        err.print(f"note: the workers will call {server}: that reaches the server only on this node")
    script_dir.mkdir(parents=True, exist_ok=True)
    Path(fleet.output).parent.mkdir(parents=True, exist_ok=True)
    path = script_dir / f"{fleet.name}.sbatch"
    path.write_text(script)
    env = dict(os.environ)
    if token and not token_file:
        env["TUNESERVE_TOKEN"] = token  # travels with --export=ALL; never written to the script
    done = _run(slurm.sbatch_argv(str(path)), env=env)
    job = slurm.parse_sbatch(done.stdout)
    out.print(f"submitted job array {job} ({fleet.name}, {workers} task(s)); script {path}")


@app.command()
def status(study: StudyArg, as_json: JsonOption = False,
           all_users: Annotated[bool, typer.Option("--all-users", help="Not only your own jobs.")] = False) -> None:
    """The study's array tasks in squeue: state, time used, limit, node (or why it waits)."""
    slurm = _launcher()
    tasks = slurm.parse_squeue(_run(slurm.squeue_argv(study, None if all_users else getpass.getuser())).stdout)
    if as_json:
        print_json([t.__dict__ for t in tasks])
        return
    if not tasks:
        out.print(f"no Slurm jobs named {slurm.job_name(study)}")
        return
    table = Table(box=None, header_style="bold")
    for col in ("job", "state", "time", "limit", "node / reason"):
        table.add_column(col)
    for t in tasks:
        table.add_row(t.job_id, t.state, t.elapsed, t.limit, t.where)
    out.print(table)


@app.command()
def cancel(study: StudyArg,
           now: Annotated[bool, typer.Option("--now", help="Send USR1 (release the trial at once, exit) instead of SIGTERM (finish the epoch, release, exit).")] = False) -> None:
    """Cancel the study's jobs (`scancel --name tuneserve-<study>`); each worker gives its trial back."""
    slurm = _launcher()
    _run(slurm.scancel_argv(study, getpass.getuser(), "USR1" if now else None))
    out.print(f"cancelled the jobs named {slurm.job_name(study)}" + (" (USR1: trials released at once)" if now else ""))
