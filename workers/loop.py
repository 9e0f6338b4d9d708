"""The worker daemon's loop: claim a trial, run the objective, report every step, end the trial,
claim the next; heartbeats in a background thread; SIGTERM/SIGINT drain; backoff when idle or cut off.

How each way a trial can end is told to the server:
  objective returned                -> complete (with claim_next, saving a round trip)
  a special run ended (lease kind   -> complete with value None and its outcome: the sanity check's
    sanity or lr_range)                figures, the range test's curve, or supported=false and why
  server said stop (pruner, study)  -> prune
  NaN/inf loss (Diverged)           -> fail kind=diverged
  CUDA out of memory                -> fail kind=oom, cache emptied, keep serving
  a program exited non-zero         -> fail kind=error with the tail of its stderr (oom when it ran out of memory)
  any other exception in user code  -> fail kind=error with the traceback's tail, keep serving
  409/404 on the held trial         -> nothing: the lease is lost, abandon the trial and carry on
  first SIGTERM/SIGINT              -> finish the epoch, report it, release; claim nothing new; exit 0
  second SIGTERM/SIGINT             -> abandon the epoch at once, release, exit 0
  SIGUSR1 (a scheduler's warning    -> abandon the epoch at once, release (the trial is requeued now,
    before a time limit or preemption:  not when its lease runs out), claim nothing new, exit 0
    Slurm's --signal=B:USR1@T)
  --exit-when-done and the study    -> exit 0 (a Slurm array task ends when its study has nothing left
    has nothing left to hand out       for it; trials still running elsewhere keep it polling, since
                                       one of them may come back to the queue)

A worker started with `--study` learns from the study what runs it (its program, or its objective)
before it claims anything; each claim says what this worker runs, so the server hands it only
trials of studies it can run. It speaks to the server through the typed SDK (tuneserve.Client).

Logs are one line per event, `event=... worker=... trial=...`, so they grep and parse well.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
import traceback
from typing import Any, Callable

from urllib.parse import quote

import torch

from tuneserve.schemas.enums import StopKind, StudyState, TrialKind
from tuneserve.schemas.objectives import BUILTIN_CNN, PROGRAM, normalize_objective
from tuneserve.schemas.trials import TrialLease
from tuneserve.client import Client
from tuneserve.errors import ApiError, LeaseLost, NotFound, ServerUnavailable
from tuneserve_workers import preempt, provenance
from tuneserve_workers.backoff import Backoff
from tuneserve_workers.program import ProgramFailed, ProgramRunner, ProgramSpec
from tuneserve_workers.training.lr_range import run_lr_range_objective
from tuneserve_workers.training.objective import (Context, Diverged, LrRangeRequest, Objective, SanityRequest, load_objective,
                                        metric_value)
from tuneserve_workers.training.sanity import run_sanity_objective

log = logging.getLogger("tuneserve.worker")
TRACEBACK_TAIL = 4000  # characters of a user traceback sent with fail(kind=error)


class Abandon(BaseException):
    """A second stop signal: leave the current step now. BaseException so user code's
    `except Exception` cannot swallow it."""


class ConfigError(Exception):
    """The worker cannot serve what it was asked to (wrong objective for the study, and the like)."""


class ServerContext(Context):
    """The context a daemon hands to objectives: each report goes to the server, whose answer
    (or a heartbeat's, or a drain) decides whether the objective goes on."""

    def __init__(self, worker: "Worker", lease: TrialLease):
        super().__init__(worker.device, lease.params, lease.trial_id)
        self.worker, self.lease = worker, lease
        if lease.kind == TrialKind.SANITY and lease.sanity is not None:
            self.sanity = SanityRequest(lease.sanity.samples, lease.sanity.max_epochs, tuple(lease.sanity.lrs))
        if lease.kind == TrialKind.LR_RANGE and lease.lr_range is not None:
            r = lease.lr_range
            self.lr_range = LrRangeRequest(r.start_lr, r.end_lr, r.steps)
        self.lease_lost = False
        self.stop_kind: StopKind | None = None  # the server's reason to stop, as a value (never its wording)
        self.provenance_sent = False
        # When the lease was last renewed and nothing else was asked for (a claim, or a report whose
        # answer said needs_heartbeat=false): the heartbeat skips a beat that falls within a third
        # of the lease of it.
        self.renewed_at = time.monotonic()

    def provenance_once(self) -> dict[str, Any] | None:
        """The run's provenance (workers/provenance.py) the first time it is asked for, then None:
        it rides on the attempt's first report, or on the completion of a run that reported nothing."""
        if self.provenance_sent:
            return None
        self.provenance_sent = True
        w, lease = self.worker, self.lease
        try:
            return provenance.for_run(device=str(w.device), worker_id=w.worker_id, objective_name=w.objective_name,
                                      objective=w.objective, params=lease.params, attempt=lease.attempt,
                                      extra=self.provenance)
        except Exception as exc:  # noqa: BLE001 - best effort: a trial never fails for its provenance
            w.event("provenance_failed", self.trial_id, level=logging.WARNING, error=exc)
            return None

    def _send(self, step: int, metrics: dict[str, float]) -> bool:
        w = self.worker
        sent = self.provenance_once()
        at = time.monotonic()
        try:
            answer = w.client.report(self.trial_id, self.lease.lease_token, step, metrics, provenance=sent,
                                     **w.call_options(self.lease))
        except ApiError as exc:
            if sent is None or exc.status != 422 or "provenance" not in json.dumps(exc.detail, default=str):
                raise
            # A server that predates provenance (or refuses this one): the report matters, the rest does not.
            w.event("provenance_refused", self.trial_id, level=logging.WARNING, detail=exc.detail)
            answer = w.client.report(self.trial_id, self.lease.lease_token, step, metrics,
                                     **w.call_options(self.lease))
        if not answer.needs_heartbeat:
            self.renewed_at = at
        w.event("report", self.trial_id, step=step, **{k: metrics[k] for k in sorted(metrics)})
        if answer.should_stop and self.stop_reason is None:
            self.stop_reason, self.stop_kind = answer.reason or "stop", answer.stop_kind
        if self.lease_lost:
            raise LeaseLost(409, "heartbeat found the lease lost")
        if w.draining.is_set() and self.stop_reason is None:
            self.stop_reason = "draining"
        return not self.should_stop()

    def upload_log(self, text: str, size: int, final: bool = False) -> bool:
        """Store the tail of the trial's output log on the server; best effort (False on failure)."""
        try:
            self.worker.client.put_trial_log(self.trial_id, self.lease.lease_token, text, size,
                                             retry_seconds=10.0 if final else 0.0, cancel=threading.Event())
            return True
        except (ApiError, ServerUnavailable) as exc:
            self.worker.event("log_upload_failed", self.trial_id, level=logging.WARNING, error=exc)
            return False


class Heartbeat(threading.Thread):
    """Renews the lease every lease_seconds/3 while the objective runs (an epoch can outlast a
    lease), and passes a stop decision or a lost lease to the context. A report renews the lease
    too: a beat that falls within lease_seconds/3 of a report whose answer asked for no heartbeat
    is skipped, so a worker that reports every epoch sends no heartbeats. Renewals go through
    POST /leases/renew (one call renews every lease a caller holds); a server without that route
    gets /trials/{id}/heartbeat."""

    def __init__(self, worker: "Worker", context: ServerContext):
        super().__init__(name=f"heartbeat-{context.trial_id}", daemon=True)
        self.worker, self.context = worker, context
        self.interval = max(0.2, float(context.lease.lease_seconds) / 3)
        self.done = threading.Event()
        self.batched = True
        # Its own connection pool: the main thread may be blocked in a long report retry.
        self.client = Client(worker.client.base_url, worker.token or "", timeout=self.interval)

    def _due_in(self) -> float:
        return max(0.05, self.interval - (time.monotonic() - self.context.renewed_at))

    def _renew(self):
        ctx = self.context
        if self.batched:
            try:
                (verdict,) = self.client.renew_leases([(ctx.trial_id, ctx.lease.lease_token)], retry_seconds=0)
            except NotFound:  # a server from before POST /leases/renew
                self.batched = False
            else:
                if not verdict.held:
                    raise LeaseLost(409, verdict.reason, verdict.error, "renew")
                return verdict
        return self.client.heartbeat(ctx.trial_id, ctx.lease.lease_token, retry_seconds=0)

    def run(self) -> None:
        ctx = self.context
        try:
            while not self.done.wait(self._due_in()):
                if time.monotonic() - ctx.renewed_at < self.interval:
                    continue  # a report renewed the lease meanwhile
                try:
                    answer = self._renew()
                except LeaseLost as exc:
                    ctx.lease_lost = True
                    self.worker.event("lease_lost", ctx.trial_id, level=logging.WARNING, detail=exc.detail)
                    return
                except (ServerUnavailable, ApiError) as exc:
                    self.worker.event("heartbeat_failed", ctx.trial_id, level=logging.WARNING, error=exc)
                    ctx.renewed_at = time.monotonic()  # try again a third of the lease later, as before
                    continue
                ctx.renewed_at = time.monotonic()
                if answer.should_stop and ctx.stop_reason is None:
                    ctx.stop_reason, ctx.stop_kind = answer.reason or "stop", answer.stop_kind
        finally:
            self.client.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=self.interval + 1)


class Worker:
    """`objective`: the callable to run, or None to learn it from `study` before the first claim
    (its program, or its objective, else `requested`). `objective_name` is what claims say this
    worker runs. `program_options` go to ProgramRunner (runs_dir, interpreter, kill_grace, log_interval)."""

    def __init__(self, server: str, objective: Objective | None, *, worker_id: str, device: str = "cpu",
                 study: str | None = None, token: str | None = None, idle_cap: float = 3.0,
                 parent_pid: int | None = None, objective_name: str | None = None,
                 requested: str | None = None, program_options: dict[str, Any] | None = None,
                 load: Callable[[str], Objective] = load_objective, exit_when_done: bool = False,
                 identity: dict[str, Any] | None = None):
        self.worker_id, self.study, self.token = worker_id, study, token
        self.objective, self.device = objective, torch.device(device)
        self.objective_name = normalize_objective(objective_name) if objective_name else None
        self.requested, self.program_options, self.load = requested, program_options or {}, load
        self.idle_cap, self.parent_pid = idle_cap, parent_pid
        self.exit_when_done, self.identity = exit_when_done, identity
        self.in_trial = False  # the objective is running: a SIGUSR1 abandons it at once
        self.draining = threading.Event()
        self.client = Client(server, token or "", retry_seconds=None, on_retry=self._on_retry)

    # --- logging ----------------------------------------------------------------------------------

    def event(self, name: str, trial: int | None = None, level: int = logging.INFO, **fields: Any) -> None:
        parts = [f"event={name}", f"worker={self.worker_id}"] + ([f"trial={trial}"] if trial is not None else [])
        parts += [f"{k}={_fmt(v)}" for k, v in fields.items()]
        log.log(level, " ".join(parts))

    def _on_retry(self, call: str, error: Exception, delay: float) -> None:
        self.event("server_unreachable", level=logging.WARNING, call=call, error=error, retry_in=f"{delay:.2f}s")

    # --- signals ----------------------------------------------------------------------------------

    def request_drain(self, signum: int | None = None, frame: Any = None) -> None:
        if self.draining.is_set() and signum is not None:
            self.event("abandon", level=logging.WARNING, signal=signum)
            raise Abandon()
        self.draining.set()
        self.event("draining", signal=signum)

    def request_release(self, signum: int | None = None, frame: Any = None) -> None:
        """A scheduler's warning before it kills us (Slurm `--signal=B:USR1@T` ahead of a time limit
        or preemption): give the trial back now, so it is requeued at once rather than when its lease
        runs out, and claim nothing new. The epoch is abandoned, not finished: the kill may be seconds away."""
        self.draining.set()
        self.event("preempt_warning", level=logging.WARNING, signal=signum, in_trial=self.in_trial)
        if self.in_trial:
            raise Abandon()

    def call_options(self, lease: TrialLease) -> dict[str, Any]:
        """Retry policy for a call about a held trial: forever while serving (the lease is the
        server's to expire), but only about one lease period once draining, so a worker told to stop
        while the server is down still exits."""
        if self.draining.is_set():
            return {"retry_seconds": float(lease.lease_seconds), "cancel": threading.Event()}
        return {"retry_seconds": None, "cancel": self.draining}

    # --- what this worker runs ----------------------------------------------------------------------

    def resolve(self) -> bool:
        """Learn what runs `study` (waiting for the study to exist); False when a drain began first."""
        backoff = Backoff(base=0.5, cap=self.idle_cap)
        while not self.draining.is_set():
            try:
                study = self.client.get_study(self.study, cancel=self.draining)
            except NotFound:
                self.event("waiting_for_study", level=logging.WARNING, study=self.study)
                self.draining.wait(backoff.next())
                continue
            except ServerUnavailable:
                return False
            except ApiError as exc:  # e.g. a wrong token: say so and keep trying, as claims do
                self.event("study_refused", level=logging.WARNING, status=exc.status, detail=exc.detail)
                self.draining.wait(backoff.next())
                continue
            self.objective_name, self.objective = self._runner_for(study)
            self.event("objective", study=self.study, objective=self.objective_name)
            return True
        return False

    def _runner_for(self, study: Any) -> tuple[str, Objective]:
        requested = normalize_objective(self.requested) if self.requested else None
        spec = ProgramSpec.from_document(getattr(study, "program", None), getattr(study, "command", None))
        if spec is not None:
            if requested not in (None, PROGRAM):
                raise ConfigError(f"study {study.name!r} runs its program ({spec.program or spec.command}); "
                                  f"this worker was started with --objective {requested}: drop --objective")
            return PROGRAM, ProgramRunner(spec, **self.program_options)
        if requested == PROGRAM:
            raise ConfigError(f"study {study.name!r} has no `program` or `command` to run")
        wanted = normalize_objective(study.objective)
        if wanted and requested and requested != wanted:
            raise ConfigError(f"study {study.name!r} is run by {wanted}; this worker was started with "
                              f"--objective {requested}")
        name = wanted or requested or BUILTIN_CNN
        return name, self.load(name)

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self.request_drain)
            previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self.request_release)
            if preempt.warned():  # warned while starting: serve nothing
                self.request_release(signal.SIGUSR1)
        if self.parent_pid:
            threading.Thread(target=self._watch_parent, name="parent-watch", daemon=True).start()
        self.event("started", device=self.device, study=self.study or "*", pid=os.getpid())
        idle = Backoff(base=0.25, cap=self.idle_cap)
        lease: TrialLease | None = None
        try:
            if self.objective is None and not self.resolve():
                return 0
            self._register()
            while not self.draining.is_set():
                if lease is None:
                    lease = self._claim()
                    if lease is None:
                        if self.exit_when_done and self._study_done():
                            self.event("study_done", study=self.study)
                            break
                        self.draining.wait(idle.next())
                        continue
                    idle.reset()
                lease = self.run_trial(lease)
            if lease is not None:  # claimed by complete's claim_next just as a drain began
                self._end(lease, "release")
        except Abandon:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.client.close()
            self.event("stopped")
        return 0

    def _register(self) -> None:
        """Tell the server where this worker runs (host, Slurm job, pod, GPU: workers/identity.py),
        for the trial page and `tuneserve trial show`. Best effort: an older server has no route."""
        if not self.identity:
            return
        try:
            self.client.request("PUT", f"/workers/{quote(self.worker_id, safe='')}", json=self.identity,
                                retry_seconds=5.0, cancel=self.draining)
            self.event("registered", **self.identity)
        except (ApiError, ServerUnavailable) as exc:
            self.event("register_failed", level=logging.WARNING, error=exc)

    def _study_done(self) -> bool:
        """The study will hand this worker nothing more: stopped or finished, or its budget is
        drawn and no trial is waiting or running (a running one could still be released back)."""
        if not self.study:
            return False
        try:
            study = self.client.get_study(self.study, retry_seconds=5.0, cancel=self.draining)
        except (ApiError, ServerUnavailable):
            return False
        if study.state in (StudyState.STOPPED, StudyState.FINISHED):
            return True
        c = study.counts
        return (study.max_trials is not None and c.waiting == 0 and c.running == 0
                and c.total >= study.max_trials)

    def _claim(self) -> TrialLease | None:
        try:
            lease = self.client.claim(self.worker_id, self.study, self.objective_name, cancel=self.draining)
        except ServerUnavailable:
            return None  # only when draining began during the retries
        except ApiError as exc:  # e.g. the study does not exist yet: wait for it, do not crash
            self.event("claim_refused", level=logging.WARNING, status=exc.status, detail=exc.detail)
            return None
        if lease is not None:
            special = {"kind": lease.kind} if lease.kind != TrialKind.TRIAL else {}
            self.event("claimed", lease.trial_id, study=lease.study, number=lease.number,
                       attempt=lease.attempt, params=lease.params, **special)
        return lease

    def run_trial(self, lease: TrialLease) -> TrialLease | None:
        """Run one trial (or special run: the sanity check, the lr range test) to its end; returns
        the next lease when complete handed one out. A special run ends as a trial does (stopped,
        lost, failed) except that it completes with value None and its `outcome`."""
        trial_id = lease.trial_id
        ctx = ServerContext(self, lease)
        heartbeat = Heartbeat(self, ctx)
        heartbeat.start()
        try:
            try:
                self.in_trial = True
                if lease.kind == TrialKind.SANITY:
                    outcome = self._sanity_outcome(lease, ctx)
                elif lease.kind == TrialKind.LR_RANGE:
                    outcome = self._lr_range_outcome(lease, ctx)
                else:
                    outcome, result = None, self.objective(lease.params, ctx)
            finally:
                self.in_trial = False
                heartbeat.stop()
            if ctx.lease_lost:
                raise LeaseLost(409, "lease lost while the objective ran")
            if ctx.stop_reason == "draining":
                return self._end(lease, "release")
            if ctx.stop_reason is not None:
                if ctx.stop_kind == StopKind.DIVERGED:  # the server already ended it
                    self.event("diverged", trial_id, reason=ctx.stop_reason)
                    return None
                return self._end(lease, "prune", reason=ctx.stop_reason)
            if outcome is not None:
                self._log_special(lease, outcome)
                return self._end(lease, "complete", value=None, metrics={}, outcome=outcome)
            value, metrics = metric_value(result, lease.metric.name)
            if value is not None and not math.isfinite(value):
                raise Diverged(f"final {lease.metric.name}={value}")
            return self._end(lease, "complete", value=value, metrics=metrics, provenance=ctx.provenance_once())
        except LeaseLost as exc:
            self.event("abandoned", trial_id, level=logging.WARNING, reason="lease lost", detail=exc.detail)
        except Diverged as exc:
            self._end(lease, "fail", kind="diverged", reason=exc.reason)
        except Abandon:
            self._end(lease, "release")
            raise
        except ServerUnavailable as exc:  # a drain cut a retry short: hand the trial back
            self.event("server_unreachable", trial_id, level=logging.WARNING, error=exc)
            self._end(lease, "release")
        except ProgramFailed as exc:
            self._end(lease, "fail", kind="oom" if _is_oom(exc) else "error", reason=exc.reason[-TRACEBACK_TAIL:])
        except Exception as exc:  # noqa: BLE001 - user code may raise anything; the worker must survive
            if _is_oom(exc):
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._end(lease, "fail", kind="oom", reason=f"{type(exc).__name__}: {exc}"[:TRACEBACK_TAIL])
            else:
                tail = traceback.format_exc()[-TRACEBACK_TAIL:]
                self._end(lease, "fail", kind="error", reason=tail)
        return None

    # --- special runs ------------------------------------------------------------------------------

    def _sanity_outcome(self, lease: TrialLease, ctx: ServerContext) -> dict[str, Any]:
        if ctx.sanity is None:
            raise ValueError(f"lease of kind sanity for trial {lease.trial_id} carries no `sanity` request")
        done = run_sanity_objective(self.objective, lease.params, ctx)
        return {"supported": done.supported, "figures": {k: _finite(v) for k, v in done.figures.items()},
                "message": done.message}

    def _lr_range_outcome(self, lease: TrialLease, ctx: ServerContext) -> dict[str, Any]:
        if ctx.lr_range is None:
            raise ValueError(f"lease of kind lr_range for trial {lease.trial_id} carries no `lr_range` request")
        done = run_lr_range_objective(self.objective, lease.params, ctx)
        return {"supported": done.supported, "curve": done.curve, "message": done.message}

    def _log_special(self, lease: TrialLease, outcome: dict[str, Any]) -> None:
        """`event=sanity_done` / `event=lr_range_done` with the figures a reader looks for first."""
        fields: dict[str, Any] = {"supported": outcome["supported"]}
        if lease.kind == TrialKind.SANITY:
            figures = outcome["figures"]
            fields.update({k: figures[k] for k in ("reached", "diverged", "epochs", "initial_loss", "final_loss",
                                                   "best_acc", "lr") if figures.get(k) is not None})
        elif outcome["curve"] is not None:
            lrs, losses = outcome["curve"]["lr"], outcome["curve"]["loss"]
            finite = [(loss, lr) for lr, loss in zip(lrs, losses) if loss is not None]
            fields["points"] = len(lrs)
            if finite:
                fields["min_loss"], fields["min_loss_lr"] = min(finite, key=lambda p: p[0])
                fields["last_lr"] = lrs[-1]
        if outcome["message"]:
            fields["message"] = outcome["message"]
        self.event(f"{lease.kind}_done", lease.trial_id, **fields)

    def _end(self, lease: TrialLease, how: str, **body: Any) -> TrialLease | None:
        """Tell the server how the trial ended; a lost lease or an unreachable server while
        draining is logged, not raised: either way the trial is no longer ours."""
        trial_id, token = lease.trial_id, lease.lease_token
        options = self.call_options(lease)
        try:
            if how == "complete":
                claim_next = None if self.draining.is_set() else {
                    "worker_id": self.worker_id, "study": self.study,
                    **({"objective": self.objective_name} if self.objective_name else {})}
                try:
                    answer = self.client.complete(trial_id, token, body["value"], body["metrics"],
                                                  claim_next=claim_next, outcome=body.get("outcome"),
                                                  provenance=body.get("provenance"), **options)
                except ApiError as exc:  # a server that predates provenance: complete without it
                    if not body.get("provenance") or exc.status != 422 or "provenance" not in str(exc.detail):
                        raise
                    answer = self.client.complete(trial_id, token, body["value"], body["metrics"],
                                                  claim_next=claim_next, outcome=body.get("outcome"), **options)
                self.event("completed", trial_id, state=answer.trial.state, value=answer.trial.value)
                nxt = answer.next
                if nxt is not None:
                    self.event("claimed", nxt.trial_id, study=nxt.study, number=nxt.number,
                               attempt=nxt.attempt, params=nxt.params, via="claim_next")
                return nxt
            if how == "prune":
                self.client.prune(trial_id, token, body["reason"], **options)
                self.event("pruned", trial_id, reason=body["reason"])
            elif how == "fail":
                self.client.fail(trial_id, token, body["reason"], body["kind"], **options)
                last_line = body["reason"].strip().splitlines()[-1] if body["reason"].strip() else ""
                self.event("failed", trial_id, level=logging.WARNING, kind=body["kind"], reason=last_line)
            else:
                self.client.release(trial_id, token, **options)
                self.event("released", trial_id)
        except LeaseLost as exc:
            self.event("abandoned", trial_id, level=logging.WARNING, reason=f"lease lost on {how}", detail=exc.detail)
        except (ServerUnavailable, ApiError) as exc:
            self.event(f"{how}_failed", trial_id, level=logging.WARNING, error=exc)
        return None

    def _watch_parent(self) -> None:
        # A slot whose supervisor died drains instead of serving on unsupervised.
        while not self.draining.wait(1.0):
            if os.getppid() != self.parent_pid:
                self.event("parent_gone", level=logging.WARNING)
                self.draining.set()


def _finite(value: Any) -> float | None:
    """A figure as JSON carries it: NaN and infinities become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    text = str(value).replace("\n", " | ")
    return json.dumps(text) if " " in text or not text else text
