"""Run one trial of a sweep's program: start it with W&B's command line, relay its reports,
stop it when told, and turn how it ended into the trial's outcome.

- The program runs in its own session (process group) with the worker's environment, minus the API
  token, plus the TUNESERVE_* variables below, pinned to the worker's device (CUDA_VISIBLE_DEVICES;
  the slot's MPS variables are inherited). The worker's interpreter directory is put first on PATH,
  so `${interpreter}` (`python`) is the Python the worker runs in, as in an activated virtualenv.
- stdout and stderr go to `<runs_dir>/<study>/trial-<id>-<attempt>/output.log`; the tail of that
  file is uploaded to the server every `log_interval` seconds while it grows, and once at the end.
- A stop (the pruner, a stopped study, a draining worker) is answered `continue: false` on the
  report channel; a program still running STOP_NOTICE seconds later gets SIGTERM, and SIGKILL
  `kill_grace` seconds after that (W&B's agent waits 30 s). A stop seen on a heartbeat sends SIGTERM
  at once. Processes the program left behind in its group are killed when it exits.
- Exit 0: the trial completes with the study metric from the program's summary, else its last
  reported value. Non-zero exit or death by a signal we did not send: ProgramFailed with the tail of
  stderr (the worker fails the trial; "out of memory" in it makes the kind `oom`).

Environment a program sees: TUNESERVE_TRIAL_ID, TUNESERVE_TRIAL_NUMBER, TUNESERVE_ATTEMPT,
TUNESERVE_STUDY, TUNESERVE_METRIC, TUNESERVE_METRIC_GOAL, TUNESERVE_DEVICE (`cuda:0` or `cpu`, as
seen through CUDA_VISIBLE_DEVICES), TUNESERVE_REPORT_SOCKET, TUNESERVE_RUN_DIR (its own directory,
for checkpoints), TUNESERVE_PARAMS_FILE (the parameters as JSON), PYTHONUNBUFFERED=1 unless set.
Special runs add their request: the sanity check TUNESERVE_SANITY_SAMPLES, TUNESERVE_SANITY_MAX_EPOCHS,
TUNESERVE_SANITY_LRS (a program takes part by reporting sanity_done=1 at some step, alone or with that
epoch's metrics: the marker itself never goes to the server; its figures are its reports), the range test TUNESERVE_LR_RANGE_START_LR, TUNESERVE_LR_RANGE_END_LR,
TUNESERVE_LR_RANGE_STEPS (a program takes part by reporting `lr` and `loss` per mini-batch, step = the
batch's index; every 25th goes on to the server, the whole curve comes back in the outcome). One that
exits 0 without taking part ends the run with Unsupported (outcome supported=false, how to opt in).
W&B's WANDB_SWEEP_ID / WANDB_RUN_ID are not set: with them, a script that also calls wandb.init()
would try to attach its run to a W&B sweep that does not exist.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tuneserve_workers.program.channel import Message, ReportChannel
from tuneserve_workers.program.command import CommandError, build_argv, wandb_order
from tuneserve_workers.provenance import code_of_file
from tuneserve_workers.training.objective import LrRangeRequest, SanityRequest, Unsupported

TOKEN_VARS = ("TUNESERVE_TOKEN", "TUNESERVE_API_TOKEN")
STDERR_TAIL = 4000       # characters of stderr in a failed trial's reason
LOG_TAIL_BYTES = 65_536  # what is uploaded of the log (the server keeps as much)
STOP_NOTICE = 5.0        # seconds a program told `continue: false` has to exit by itself
SANITY_DONE = "sanity_done"  # the metric a program reports (= 1) to say it ran the sanity check
LR_RANGE_FORWARD_EVERY = 25  # range test: every 25th mini-batch's report goes to the server (progress, stops)

SANITY_OPT_IN = (
    "the program did not run the sanity check (it never reported sanity_done=1): to take part, read "
    "TUNESERVE_SANITY_SAMPLES, TUNESERVE_SANITY_MAX_EPOCHS and TUNESERVE_SANITY_LRS from the environment, "
    "train on that many training examples with no regularisation, report train_loss and train_acc every "
    "epoch and sanity_done=1 once (see workers/README.md)")
LR_RANGE_OPT_IN = (
    "the program did not run the lr range test (it reported no lr and loss): to take part, read "
    "TUNESERVE_LR_RANGE_START_LR, TUNESERVE_LR_RANGE_END_LR and TUNESERVE_LR_RANGE_STEPS from the environment, "
    "raise the lr geometrically from start to end over that many mini-batches and report lr and loss for each "
    "(step = the batch's index) (see workers/README.md)")


class ProgramFailed(Exception):
    """The program could not start, exited non-zero, or reported no value of the study metric."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProgramSpec:
    """What runs a study's trials: its `program` and `command` (W&B's keys)."""

    program: str | None
    command: tuple[Any, ...] | None

    @classmethod
    def from_document(cls, program: Any, command: Any) -> "ProgramSpec | None":
        if program is None and not command:
            return None
        return cls(None if program is None else str(program), tuple(command) if command else None)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "study"


def physical_gpu(index: int, visible: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES entry for the worker's cuda:<index>, through the worker's own mask."""
    if visible:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if index < len(entries):
            return entries[index]
    return str(index)


def program_env(base: Mapping[str, str], *, device: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in TOKEN_VARS}
    bin_dir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        env["PATH"] = os.pathsep.join(p for p in (bin_dir, path) if p)
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        env["CUDA_VISIBLE_DEVICES"] = physical_gpu(index, base.get("CUDA_VISIBLE_DEVICES"))
        env["TUNESERVE_DEVICE"] = "cuda:0"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker's program must not take a GPU
        env["TUNESERVE_DEVICE"] = "cpu"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


def read_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> tuple[str, int]:
    """The last `limit` bytes of a file as text, and the file's size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except FileNotFoundError:
        return "", 0
    return data.decode("utf-8", "replace"), size


def special_env(ctx: Any) -> dict[str, str]:
    """The special run's request as environment variables (none for an ordinary trial)."""
    sanity: SanityRequest | None = getattr(ctx, "sanity", None)
    lr_range: LrRangeRequest | None = getattr(ctx, "lr_range", None)
    return {**(sanity.to_env() if sanity else {}), **(lr_range.to_env() if lr_range else {})}


def command_provenance(argv: list[str], program: str | None) -> dict[str, Any]:
    """The trial's provenance from its program: the command line as run (a token of the worker's
    environment masked, should a command expand one) and the program file's code reference
    (workers/provenance.py): `program`, else the first word of the command that is a .py file."""
    secrets = {os.environ[k] for k in TOKEN_VARS if os.environ.get(k)}
    command = ["<redacted>" if any(t in word for t in secrets) else word for word in argv]
    path = program if program is not None else next((w for w in argv if w.endswith(".py") and os.path.isfile(w)), None)
    return {"command": command, "code": code_of_file(path) if path and os.path.exists(path) else None}


def _finite_or_none(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


class ProgramRunner:
    """An objective `(params, context) -> metrics` that runs the study's program once per trial.
    It passes the special runs on to the program (their requests in its environment): a program
    takes part by what it reports, and one that does not ends the run with Unsupported."""

    supports_sanity = True
    supports_lr_range = True

    def __init__(self, spec: ProgramSpec, *, runs_dir: str | Path = "tuneserve-runs", interpreter: str = "python",
                 kill_grace: float = 30.0, log_interval: float = 30.0):
        self.spec, self.runs_dir = spec, Path(runs_dir)
        self.interpreter, self.kill_grace, self.log_interval = interpreter, kill_grace, log_interval

    def __call__(self, params: dict[str, Any], context: Any) -> dict[str, float]:
        return _Run(self, params, context).execute()


class _Run:
    def __init__(self, runner: ProgramRunner, params: dict[str, Any], ctx: Any):
        self.runner, self.params, self.ctx = runner, params, ctx
        lease = getattr(ctx, "lease", None)
        self.trial_id = ctx.trial_id if ctx.trial_id is not None else 0
        self.number = getattr(lease, "number", 0)
        self.attempt = getattr(lease, "attempt", 0)
        self.study = getattr(lease, "study", "local")
        metric = getattr(lease, "metric", None)
        self.metric = getattr(metric, "name", None) or getattr(ctx, "metric", None) or "val_loss"
        self.goal = getattr(metric, "goal", "minimize")
        self.dir = runner.runs_dir / safe_name(self.study) / f"trial-{self.trial_id}-{self.attempt}"
        self.log_path = self.dir / "output.log"
        self.stderr_tail: collections.deque[str] = collections.deque()
        self.stderr_chars = 0
        self.summary: dict[str, float] = {}
        self.signalled = False   # we sent it a signal
        self.told_stop = False   # a report was answered `continue: false`
        self.uploaded_size = -1
        self.special = "sanity" if getattr(ctx, "sanity", None) else "lr_range" if getattr(ctx, "lr_range", None) else None
        self.sanity_step: int | None = None                   # the step that reported sanity_done
        self.curve: dict[int, tuple[float | None, float | None]] = {}  # range test: step -> (lr, loss)

    # --- start --------------------------------------------------------------------------------

    def execute(self) -> dict[str, float]:
        self.dir.mkdir(parents=True, exist_ok=True)
        params_file = self.dir / "params.json"
        params_file.write_text(json.dumps(wandb_order(self.params)))
        sock_dir = tempfile.mkdtemp(prefix="tuneserve-")  # short path: AF_UNIX allows ~100 bytes
        channel = ReportChannel(sock_dir)
        try:
            try:
                argv = build_argv(self.runner.spec.command, self.runner.spec.program, self.params,
                                  args_json_file=str(params_file.resolve()), interpreter=self.runner.interpreter)
            except CommandError as err:
                raise ProgramFailed(str(err)) from None
            self.ctx.provenance.update(command_provenance(argv, self.runner.spec.program))
            env = program_env(os.environ, device=str(self.ctx.device), extra={
                "TUNESERVE_TRIAL_ID": str(self.trial_id), "TUNESERVE_TRIAL_NUMBER": str(self.number),
                "TUNESERVE_ATTEMPT": str(self.attempt), "TUNESERVE_STUDY": self.study,
                "TUNESERVE_METRIC": self.metric, "TUNESERVE_METRIC_GOAL": self.goal,
                "TUNESERVE_REPORT_SOCKET": channel.path, "TUNESERVE_RUN_DIR": str(self.dir.resolve()),
                "TUNESERVE_PARAMS_FILE": str(params_file.resolve()), **special_env(self.ctx),
            })
            with open(self.log_path, "ab") as log:
                log.write(f"# tuneserve: trial {self.trial_id} attempt {self.attempt}: {shlex.join(argv)}\n".encode())
                log.flush()
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE,
                                            env=env, start_new_session=True)
                except OSError as err:
                    raise ProgramFailed(f"cannot start {shlex.join(argv)}: {err}") from None
                pump = threading.Thread(target=self._pump_stderr, args=(proc, log), name="stderr", daemon=True)
                pump.start()
                try:
                    self._supervise(proc, channel)
                finally:
                    self._finish(proc)
                    channel.close()
                    pump.join(5)
        finally:
            shutil.rmtree(sock_dir, ignore_errors=True)
            self._upload(force=True)
        return self._outcome(proc.returncode)

    def _pump_stderr(self, proc: subprocess.Popen, log) -> None:
        fd = proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            log.write(chunk)
            log.flush()
            text = chunk.decode("utf-8", "replace")
            self.stderr_tail.append(text)
            self.stderr_chars += len(text)
            while self.stderr_chars - len(self.stderr_tail[0]) > STDERR_TAIL:
                self.stderr_chars -= len(self.stderr_tail.popleft())
        proc.stderr.close()

    # --- while it runs --------------------------------------------------------------------------

    def _supervise(self, proc: subprocess.Popen, channel: ReportChannel) -> None:
        ctx, grace = self.ctx, self.runner.kill_grace
        term_at: float | None = None    # when SIGTERM goes (or went) out
        killed = False
        last_upload = time.monotonic()
        while True:
            now = time.monotonic()
            if getattr(ctx, "lease_lost", False):
                term_at = min(term_at or now, now)  # someone else holds the trial now
            elif term_at is None and ctx.should_stop():
                term_at = now  # decided by a heartbeat (or an earlier report): no answer to wait on
            if term_at is not None and proc.poll() is None:
                if not self.signalled and now >= term_at:
                    self._signal(proc, signal.SIGTERM)
                elif self.signalled and not killed and now >= term_at + grace:
                    self._signal(proc, signal.SIGKILL)
                    killed = True
            try:
                message = channel.inbox.get(timeout=0.1)
            except queue.Empty:
                message = None
            if message is not None:
                if self._handle(message) is False and term_at is None:
                    term_at = time.monotonic() + min(STOP_NOTICE, grace)
                continue
            if proc.poll() is not None:
                # The program may have sent its last lines just before exiting: take them first.
                channel.close()
                while not channel.inbox.empty():
                    self._handle(channel.inbox.get_nowait())
                return
            if now - last_upload >= self.runner.log_interval:
                last_upload = now
                self._upload()

    def _handle(self, message: Message) -> bool:
        """Answer one message; False when the trial is to stop."""
        ctx = self.ctx
        if message.kind == "summary":
            self.summary.update(message.metrics)
            message.answer({"ok": True})
            return True
        if ctx.should_stop():
            self.told_stop = True
            message.answer({"continue": False, "reason": ctx.stop_reason or "stop"})
            return False
        metrics = message.metrics
        if self.special == "sanity" and SANITY_DONE in metrics:
            # The worker's marker, not a metric: kept from the server, so `report(last_epoch, sanity_done=1)`
            # after that epoch's report is no second, different report of one step (the server refuses those).
            if metrics[SANITY_DONE] == 1 and self.sanity_step is None:
                self.sanity_step = message.step
            metrics = {k: v for k, v in metrics.items() if k != SANITY_DONE}
            if not metrics:
                message.answer({"continue": True})
                return True
        elif self.special == "lr_range":
            metrics = self._curve_point(message.step, metrics)
            if metrics is None:  # answered here; only every LR_RANGE_FORWARD_EVERY-th batch goes to the server
                message.answer({"continue": True})
                return True
        try:
            go_on = ctx.report(message.step, **metrics)
        except BaseException:
            message.answer({"continue": False, "reason": "the trial has ended"})
            raise
        if go_on:
            message.answer({"continue": True})
        else:
            self.told_stop = True
            message.answer({"continue": False, "reason": ctx.stop_reason or "stop"})
        return go_on

    def _curve_point(self, step: int, metrics: dict[str, float]) -> dict[str, float] | None:
        """Keep a range-test report's (lr, loss), NaN/inf as None; the metrics to send to the server
        for this step (finite ones only), or None when it is not a step that goes there."""
        if "lr" in metrics or "loss" in metrics:
            lr, loss = metrics.get("lr"), metrics.get("loss")
            self.curve[step] = (None if lr is None else _finite_or_none(lr),
                                None if loss is None else _finite_or_none(loss))
        if step % LR_RANGE_FORWARD_EVERY:
            return None
        return {k: v for k, v in metrics.items() if _finite_or_none(v) is not None}

    def _special_result(self, finished: bool) -> dict[str, Any]:
        """What a special run returns: the sanity figures (after context.sanity_done) or the curve.
        A program that `finished` without taking part raises Unsupported with how to opt in."""
        if self.special == "lr_range":
            if not self.curve and finished:
                raise Unsupported(LR_RANGE_OPT_IN)
            steps = sorted(self.curve)
            return {"lr": [self.curve[s][0] for s in steps], "loss": [self.curve[s][1] for s in steps]}
        if self.sanity_step is None:
            if finished:
                raise Unsupported(SANITY_OPT_IN)
            return {}
        figures: dict[str, float] = {}  # every metric's last reported value, then the summary
        for _, step_metrics in getattr(self.ctx, "history", []):
            figures.update(step_metrics)
        figures.update(self.summary)
        figures.pop(SANITY_DONE, None)
        self.ctx.sanity_done(**figures)
        return figures

    def _signal(self, proc: subprocess.Popen, sig: int) -> None:
        self.signalled = True
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self, proc: subprocess.Popen) -> None:
        """Make sure the program and anything it left in its group are gone."""
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(self.runner.kill_grace)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers: data loader workers, shells' children
        except (ProcessLookupError, PermissionError):
            pass

    def _upload(self, force: bool = False) -> None:
        upload = getattr(self.ctx, "upload_log", None)
        if upload is None or not self.log_path.exists():
            return
        text, size = read_tail(self.log_path)
        if size == self.uploaded_size and not force:
            return
        if upload(text, size, final=force):
            self.uploaded_size = size

    # --- how it ended ---------------------------------------------------------------------------

    def _outcome(self, rc: int | None) -> dict[str, float]:
        ctx = self.ctx
        if getattr(ctx, "lease_lost", False) or self.told_stop or self.signalled:
            # The worker prunes or releases it; the exit status says nothing.
            return self._special_result(finished=False) if self.special else self._metrics()
        if rc != 0:
            if rc is not None and rc < 0:
                try:
                    how = f"was killed by {signal.Signals(-rc).name}"
                except ValueError:
                    how = f"was killed by signal {-rc}"
            else:
                how = f"exited with status {rc}"
            tail = "".join(self.stderr_tail)[-STDERR_TAIL:].strip()
            if not tail:
                tail = "(nothing on stderr) the end of its output:\n" + read_tail(self.log_path, 2000)[0].strip()
            raise ProgramFailed(f"the program {how}; stderr:\n{tail}")
        if self.special:
            ctx.stop_reason = None  # as below: it ran to its end
            return self._special_result(finished=True)
        metrics = self._metrics()
        if self.metric not in metrics:
            raise ProgramFailed(
                f"the program exited 0 but never reported {self.metric!r} (the study metric): send it with "
                f"report(step, {self.metric}=...) or summary({self.metric}=...)")
        # It finished before it could be told to stop (a stop seen on a heartbeat, a drain): the
        # whole run is done, so its result stands.
        ctx.stop_reason = None
        return metrics

    def _metrics(self) -> dict[str, float]:
        """The last report's metrics, the study metric's last reported value, then the summary."""
        history = getattr(self.ctx, "history", [])
        metrics: dict[str, float] = dict(history[-1][1]) if history else {}
        for _, step_metrics in reversed(history):
            if self.metric in step_metrics:
                metrics[self.metric] = step_metrics[self.metric]
                break
        metrics.update(self.summary)
        return metrics
