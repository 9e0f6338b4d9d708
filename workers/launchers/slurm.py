"""A fleet of tuneserve workers as ONE Slurm job array: render its sbatch script, and read squeue.
Pure (no subprocess here): `tuneserve slurm ...` (service/cli/slurm.py) runs sbatch, squeue and
scancel with what this module builds, and the unit tests check the text.

Why a rendered script rather than submitit: the script is the whole contract with Slurm, a user can
read it (`--dry-run` prints it) and resubmit it by hand, and no pickled callable has to survive a
requeue.

What the script does, per array task:
  - `exec tuneserve worker --study S --exit-when-done ...`: `exec`, so the python process IS the
    batch step's shell and `--signal=B:USR1@T` (B: = the batch shell) reaches it. Without `exec`, bash
    would get the signal and, waiting on its child, pass nothing on.
  - USR1 T seconds before the time limit (or a preemption with GraceTime): the worker releases its
    trial at once (POST /trials/{id}/release), so it goes back to the queue now, not when its lease
    runs out, and exits 0.
  - `--requeue`: a task that Slurm requeues (node failure, preemption with PreemptMode=REQUEUE)
    starts again and claims work again; its worker id carries SLURM_RESTART_COUNT.
  - `--exit-when-done`: the task ends when the study has nothing left for it, freeing its node.
Secrets: the token is never in the script. By default sbatch runs with TUNESERVE_TOKEN in its
environment and the script says `--export=ALL`, so Slurm hands it to the task (slurmctld keeps a
job's environment in its state directory, readable by root and SlurmUser only). With a token file
(chmod 600, on a filesystem the nodes share), the script reads it at run time instead.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

JOB_PREFIX = "tuneserve-"
SQUEUE_FORMAT = "%i|%T|%M|%l|%R|%j"  # job id (array: 123_4), state, time used, limit, reason/nodes, name
DEFAULT_SIGNAL_LEAD = 120  # seconds: a trial's release and the worker's exit take ~1 s; KillWait adds more


def job_name(study: str) -> str:
    """`tuneserve-<study>`: what status and cancel find the study's jobs by (squeue/scancel --name).
    Characters Slurm or a shell would mind become `_`."""
    return JOB_PREFIX + re.sub(r"[^A-Za-z0-9._-]", "_", study)[:200]


def parse_time(value: str) -> int:
    """A Slurm time limit (`M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`) in seconds."""
    try:
        if "-" in value:
            d, rest = value.split("-", 1)
            parts = [int(p) for p in rest.split(":")]
            if len(parts) > 3:
                raise ValueError
            days, (h, m, s) = int(d), parts + [0] * (3 - len(parts))
        else:
            parts = [int(p) for p in value.split(":")]
            days, (h, m, s) = 0, {1: lambda: (0, parts[0], 0), 2: lambda: (0, *parts), 3: lambda: tuple(parts)}[len(parts)]()
    except (ValueError, KeyError):
        raise ValueError(f"not a Slurm time: {value!r}") from None
    return int(days) * 86400 + h * 3600 + m * 60 + s


@dataclass(frozen=True)
class SlurmFleet:
    study: str
    server: str
    workers: int
    gpus_per_worker: int = 0
    slots: int = 1
    cpus_per_worker: int = 1
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    setup: str | None = None                # shell lines run before the worker: module load, venv
    signal_lead: int = DEFAULT_SIGNAL_LEAD  # seconds before the time limit that USR1 arrives
    requeue: bool = True
    output: str = "tuneserve-slurm/%x-%A_%a.log"  # %x job name, %A array job, %a task
    token_file: str | None = None           # read at run time; else TUNESERVE_TOKEN from sbatch's environment
    worker_command: str = "tuneserve worker"
    worker_args: tuple[str, ...] = ()       # extra `tuneserve worker` options (e.g. --idle-max 1)
    sbatch_options: tuple[str, ...] = ()    # extra #SBATCH lines, e.g. --qos=long
    env: dict[str, str] = field(default_factory=dict)  # plain (non-secret) exports

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.slots < 1 or self.gpus_per_worker < 0 or self.cpus_per_worker < 1:
            raise ValueError("--slots and --cpus-per-worker must be at least 1, --gpus-per-worker at least 0")
        if self.signal_lead < 1:
            raise ValueError("--signal-lead must be at least 1 second")
        if self.time is not None:
            limit = parse_time(self.time)
            if limit <= self.signal_lead:
                raise ValueError(f"--signal-lead {self.signal_lead}s must be shorter than --time {self.time} "
                                 f"({limit}s), or the warning comes before the task starts")
        if not self.study or not self.server:
            raise ValueError("a study and a server URL are needed")

    @property
    def name(self) -> str:
        return job_name(self.study)

    def sbatch_lines(self) -> list[str]:
        lines = [f"--job-name={self.name}", f"--array=0-{self.workers - 1}", "--ntasks=1",
                 f"--cpus-per-task={self.cpus_per_worker * (1 if self.gpus_per_worker else self.slots)}"]
        if self.gpus_per_worker:
            lines.append(f"--gres=gpu:{self.gpus_per_worker}")
        for flag, value in (("partition", self.partition), ("time", self.time), ("account", self.account)):
            if value:
                lines.append(f"--{flag}={value}")
        lines += [f"--signal=B:USR1@{self.signal_lead}", "--requeue" if self.requeue else "--no-requeue",
                  "--open-mode=append", f"--output={self.output}", "--export=ALL", *self.sbatch_options]
        return lines

    def worker_argv(self) -> list[str]:
        device = "auto" if self.gpus_per_worker else "cpu"
        return [*shlex.split(self.worker_command), "--server", self.server, "--study", self.study,
                "--slots", str(self.slots), "--device", device, "--exit-when-done", *self.worker_args]

    def render(self) -> str:
        out = ["#!/bin/bash",
               f"# tuneserve worker fleet for study {self.study!r}: {self.workers} array task(s), "
               f"written by `tuneserve slurm submit`.",
               *[f"#SBATCH {line}" for line in self.sbatch_lines()],
               "",
               "# USR1 comes --signal lead seconds before the time limit (or a preemption): the worker",
               "# releases its trial at once and exits. `exec` below makes python the process it reaches.",
               "set -eo pipefail"]
        if self.setup:
            out += ["", "# --setup", self.setup]
        out.append("")
        for key, value in sorted(self.env.items()):
            out.append(f"export {key}={shlex.quote(value)}")
        if self.token_file:
            out.append(f"export TUNESERVE_TOKEN=\"$(cat {shlex.quote(self.token_file)})\"  # chmod 600: never in this file")
        else:
            out.append("# TUNESERVE_TOKEN comes from sbatch's environment (--export=ALL); it is not in this file.")
        out.append('WORKER_ID="slurm-${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID:-0}'
                   '.${SLURM_RESTART_COUNT:-0}-$(hostname -s)"')
        out.append("trap '' USR1  # a warning before python takes over must not kill it (workers/preempt.py)")
        out.append("exec " + " ".join(shlex.quote(a) for a in self.worker_argv()) + ' --worker-id "$WORKER_ID"')
        return "\n".join(out) + "\n"


def sbatch_argv(script_path: str) -> list[str]:
    return ["sbatch", "--parsable", script_path]


def parse_sbatch(stdout: str) -> str:
    """`sbatch --parsable` prints `jobid` or `jobid;cluster`."""
    text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job = text.split(";")[0].strip()
    if not job.isdigit():
        raise ValueError(f"sbatch did not print a job id: {stdout.strip()!r}")
    return job


def squeue_argv(study: str, user: str | None = None) -> list[str]:
    """Every array task on its own line (-r), found by the fleet's job name."""
    argv = ["squeue", "--noheader", "--array", f"--name={job_name(study)}", f"--format={SQUEUE_FORMAT}"]
    return argv + ([f"--user={user}"] if user else [])


@dataclass(frozen=True)
class SlurmTask:
    job_id: str      # 123_4 for an array task; 123_[5-9] for tasks not yet started
    state: str       # PENDING, RUNNING, COMPLETING, ...
    elapsed: str
    limit: str
    where: str       # the node, or the reason it waits: (Resources), (Priority), ...
    name: str


def parse_squeue(stdout: str) -> list[SlurmTask]:
    tasks = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 6:
            raise ValueError(f"unexpected squeue line: {line!r}")
        tasks.append(SlurmTask(*(p.strip() for p in parts)))
    return tasks


def scancel_argv(study: str, user: str | None = None, signal: str | None = None) -> list[str]:
    """`scancel --name tuneserve-<study>`: SIGTERM, so each worker finishes its epoch and releases.
    `signal="USR1"` with `--batch` sends the warning instead (release at once, then exit)."""
    argv = ["scancel", f"--name={job_name(study)}"]
    if signal:
        argv += [f"--signal={signal}", "--batch"]
    return argv + ([f"--user={user}"] if user else [])
