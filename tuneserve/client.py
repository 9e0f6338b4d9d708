"""The typed Python client for the tuneserve API (`from tuneserve import Client`).

    from tuneserve import Client
    client = Client()                     # TUNESERVE_SERVER (else the local default) and TUNESERVE_TOKEN
    study = client.create_study(name="nb", metric={"name": "val_loss", "goal": "minimize"},
                                parameters={"lr": {"distribution": "log_uniform_values",
                                                   "min": 1e-4, "max": 1e-1}}, max_trials=10)
    trial = client.ask("nb")[0]                         # a Trial: params, report(), complete(), ...
    trial.report(1, val_loss=0.3)
    trial.complete(0.3)
    client.get_study("nb").best_trial.value
    # Several objectives: metrics=[{"name": "val_loss"}, {"name": "param_count"}], constraints=
    # [{"name": "latency_ms", "max": 5}]; report every metric, then client.pareto("nb").front

Answers are the server's own wire types (pydantic models from tuneserve.schemas: StudyRead,
TrialRead, TrialLease, Decision, ...), so attribute names and enums are the API's. Errors are
tuneserve.errors types; calls retry connection errors and 5xx (honouring Retry-After) for
`retry_seconds` (30 by default; None retries for ever). `JsonClient` makes the same calls and answers
the server's JSON as it is (dicts and lists): the command line and scripts that print or forward it.
"""
from __future__ import annotations

import threading
from typing import Any

from pydantic import TypeAdapter

from tuneserve.schemas.craft_requests import RepeatResponse
from tuneserve.schemas.logs import TrialLogRead
from tuneserve.schemas.multiobjective import ParetoRead
from tuneserve.schemas.studies import StudyRead
from tuneserve.schemas.trials import CompleteResponse, Decision, LeaseVerdict, TrialLease, TrialPage, TrialRead
from tuneserve._defaults import api_token, server_url
from tuneserve._transport import OnRetry, Transport

_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(model: Any) -> TypeAdapter:
    if model not in _ADAPTERS:
        _ADAPTERS[model] = TypeAdapter(model)
    return _ADAPTERS[model]


class Client:
    """A client for one server. `server` and `token` default to TUNESERVE_SERVER (else
    tuneserve._defaults.DEFAULT_SERVER) and TUNESERVE_TOKEN. `retry_seconds`: how long a call keeps retrying an
    unreachable or failing server (None: for ever). `cancel`: an Event that stops retrying early.
    `http_transport`: an httpx transport to use instead of the network (tests: httpx.MockTransport)."""

    def __init__(self, server: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 retry_seconds: float | None = 30.0, backoff_cap: float = 5.0,
                 cancel: threading.Event | None = None, on_retry: OnRetry | None = None,
                 http_transport: Any = None):
        self.transport = Transport(server_url(server), api_token(token), timeout=timeout, retry_seconds=retry_seconds,
                                   backoff_cap=backoff_cap, cancel=cancel, on_retry=on_retry,
                                   http_transport=http_transport)

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    @property
    def token(self) -> str | None:
        return self.transport.token

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Any API call (path under /api/v1), answered as decoded JSON."""
        return self.transport.request(method, path, **kw)

    def _as(self, model: Any, data: Any) -> Any:
        """Turn an answer into its wire type (JsonClient overrides this to keep plain JSON)."""
        return None if data is None else _adapter(model).validate_python(data)

    def health(self) -> bool:
        return self.transport.health()

    # --- studies --------------------------------------------------------------------------------

    def create_study(self, spec: dict[str, Any] | None = None, **fields: Any) -> StudyRead:
        """POST /studies with a study or W&B sweep document (a dict, keyword fields, or both)."""
        return self._as(StudyRead, self.request("POST", "/studies", json={**(spec or {}), **fields}))

    def create_study_yaml(self, document: str) -> StudyRead:
        """POST /studies with a W&B sweep document as YAML text."""
        return self._as(StudyRead, self.request("POST", "/studies", content=document.encode(),
                                                headers={"Content-Type": "application/yaml"}))

    def list_studies(self, state: str | None = None, **kw: Any) -> list[StudyRead]:
        return self._as(list[StudyRead], self.request("GET", "/studies", params={"state": state} if state else None, **kw))

    def get_study(self, name: str, **kw: Any) -> StudyRead:
        return self._as(StudyRead, self.request("GET", f"/studies/{name}", **kw))

    def delete_study(self, name: str) -> None:
        self.request("DELETE", f"/studies/{name}")

    def pause_study(self, name: str) -> StudyRead:
        return self._as(StudyRead, self.request("POST", f"/studies/{name}/pause"))

    def resume_study(self, name: str) -> StudyRead:
        return self._as(StudyRead, self.request("POST", f"/studies/{name}/resume"))

    def stop_study(self, name: str) -> StudyRead:
        return self._as(StudyRead, self.request("POST", f"/studies/{name}/stop"))

    def enqueue(self, name: str, params: dict[str, Any]) -> TrialRead:
        return self._as(TrialRead, self.request("POST", f"/studies/{name}/enqueue", json={"params": params}))

    def refine(self, name: str, top_k: int = 5, max_trials: int = 20, **options: Any) -> StudyRead:
        """Coarse to fine: a child study around the top k trials; options: epochs, data_fraction,
        classes, name, method, margin, min_fraction, rerun_top, max_concurrent."""
        body = {"top_k": top_k, "max_trials": max_trials, **options}
        return self._as(StudyRead, self.request("POST", f"/studies/{name}/refine", json=body))

    def repeat(self, name: str, top_k: int = 3, seeds: int = 3) -> RepeatResponse:
        """Re-run the top configurations with `seeds` new seeds each (added to the budget)."""
        return self._as(RepeatResponse, self.request("POST", f"/studies/{name}/repeat",
                                                     json={"top_k": top_k, "seeds": seeds}))

    def pareto(self, name: str, **kw: Any) -> ParetoRead:
        """The Pareto front of a study with several objectives (and every valued trial's rank and
        feasibility); a single-objective study's trials ranked by value."""
        return self._as(ParetoRead, self.request("GET", f"/studies/{name}/pareto", **kw))

    def ask(self, name: str, count: int = 1, worker_id: str = "sdk") -> list["Trial"]:
        """`count` trials to run yourself (ask/tell), each under a lease: report, then complete."""
        leases = self.request("POST", f"/studies/{name}/ask", json={"count": count, "worker_id": worker_id})
        return [self._held(lease) for lease in leases]

    def _held(self, lease: dict[str, Any]) -> Any:
        return Trial(self, _adapter(TrialLease).validate_python(lease))

    def trials(self, name: str, state: str | None = None, limit: int | None = None,
               offset: int | None = None) -> TrialPage:
        query = {k: v for k, v in {"state": state, "limit": limit, "offset": offset}.items() if v is not None}
        return self._as(TrialPage, self.request("GET", f"/studies/{name}/trials", params=query or None))

    def get_trial(self, trial_id: int, **kw: Any) -> TrialRead:
        """One trial with every report."""
        return self._as(TrialRead, self.request("GET", f"/trials/{trial_id}", **kw))

    def rerun(self, trial_id: int, study: str | None = None) -> TrialRead:
        """Enqueue the trial's run again (same params, seed, data subset and fidelity) into `study`, or
        its own study; the new trial's `rerun_of` is `trial_id` (admin token)."""
        body = {"study": study} if study is not None else None
        return self._as(TrialRead, self.request("POST", f"/trials/{trial_id}/rerun", json=body))

    def trial_log(self, trial_id: int, attempt: int | None = None) -> TrialLogRead:
        """The tail of the output log of a trial run by a program (the latest attempt by default)."""
        query = {"attempt": attempt} if attempt is not None else None
        return self._as(TrialLogRead, self.request("GET", f"/trials/{trial_id}/log", params=query))

    # --- the worker protocol --------------------------------------------------------------------

    def claim(self, worker_id: str, study: str | None = None, objective: str | None = None,
              **kw: Any) -> TrialLease | None:
        """A trial under a fresh lease, or None when there is no work. `objective` says what this
        worker runs, so it is only handed trials of studies it can run."""
        body: dict[str, Any] = {"worker_id": worker_id, "study": study}
        if objective is not None:
            body["objective"] = objective
        return self._as(TrialLease, self.request("POST", "/trials/claim", json=body, **kw))

    def heartbeat(self, trial_id: int, lease_token: str, **kw: Any) -> Decision:
        return self._as(Decision, self.request("POST", f"/trials/{trial_id}/heartbeat",
                                               json={"lease_token": lease_token}, held=True, **kw))

    def renew_leases(self, leases: list[tuple[int, str]], **kw: Any) -> list[LeaseVerdict]:
        """Renew several held leases ((trial id, lease token) pairs) in one call: one verdict per lease,
        in order (held=false with `error` for one this caller no longer holds; nothing is raised for it)."""
        body = {"leases": [{"trial_id": tid, "lease_token": tok} for tid, tok in leases]}
        return self._as(list[LeaseVerdict], self.request("POST", "/leases/renew", json=body, **kw)["leases"])

    def report(self, trial_id: int, lease_token: str, step: int, metrics: dict[str, float],
               provenance: dict[str, Any] | None = None, **kw: Any) -> Decision:
        """`provenance` (tuneserve.schemas.provenance.Provenance): what this run is, sent once per
        attempt with its first report."""
        body: dict[str, Any] = {"lease_token": lease_token, "step": step, "metrics": metrics}
        if provenance is not None:
            body["provenance"] = provenance
        return self._as(Decision, self.request("POST", f"/trials/{trial_id}/report", json=body, held=True, **kw))

    def report_many(self, trial_id: int, lease_token: str, reports: list[dict[str, Any]], **kw: Any) -> Decision:
        """`reports`: [{"step": int, "metrics": {...}}, ...]"""
        return self._as(Decision, self.request("POST", f"/trials/{trial_id}/report",
                                               json={"lease_token": lease_token, "reports": reports},
                                               held=True, **kw))

    def complete(self, trial_id: int, lease_token: str, value: float | None = None,
                 metrics: dict[str, float] | None = None, claim_next: dict[str, Any] | None = None,
                 outcome: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None,
                 **kw: Any) -> CompleteResponse:
        """The ended trial and, with claim_next = {"worker_id", "study", "objective"}, the next lease.
        `outcome`: a special run's result (lease kind sanity or lr_range; tuneserve.schemas.gates.
        SpecialOutcome: supported, figures, curve, message), sent with value None and no metrics."""
        body = {"lease_token": lease_token, "value": value, "metrics": metrics or {}, "claim_next": claim_next}
        if outcome is not None:
            body["outcome"] = outcome
        if provenance is not None:  # a run that reported nothing: its provenance comes here
            body["provenance"] = provenance
        return self._as(CompleteResponse, self.request("POST", f"/trials/{trial_id}/complete", json=body,
                                                       held=True, **kw))

    def prune(self, trial_id: int, lease_token: str, reason: str = "", **kw: Any) -> TrialRead:
        return self._as(TrialRead, self.request("POST", f"/trials/{trial_id}/prune",
                                                json={"lease_token": lease_token, "reason": reason},
                                                held=True, **kw))

    def fail(self, trial_id: int, lease_token: str, reason: str, kind: str = "error", **kw: Any) -> TrialRead:
        return self._as(TrialRead, self.request("POST", f"/trials/{trial_id}/fail",
                                                json={"lease_token": lease_token, "reason": reason, "kind": kind},
                                                held=True, **kw))

    def release(self, trial_id: int, lease_token: str, **kw: Any) -> TrialRead:
        return self._as(TrialRead, self.request("POST", f"/trials/{trial_id}/release",
                                                json={"lease_token": lease_token}, held=True, **kw))

    def put_trial_log(self, trial_id: int, lease_token: str, text: str, size: int | None = None,
                      **kw: Any) -> TrialLogRead:
        """Store the tail of a held trial's output log (the server keeps the last 64 KiB)."""
        body: dict[str, Any] = {"lease_token": lease_token, "text": text}
        if size is not None:
            body["size"] = size
        return self._as(TrialLogRead, self.request("PUT", f"/trials/{trial_id}/log", json=body, held=True, **kw))


class Trial:
    """A trial this client holds (from ask): its lease plus the calls that need it."""

    def __init__(self, client: Client, lease: TrialLease):
        self.client, self.lease = client, lease

    @property
    def id(self) -> int:
        return self.lease.trial_id

    @property
    def params(self) -> dict[str, Any]:
        return self.lease.params

    @property
    def token(self) -> str:
        return self.lease.lease_token

    def __repr__(self) -> str:
        return f"Trial(id={self.id}, study={self.lease.study!r}, number={self.lease.number}, params={self.params!r})"

    def heartbeat(self) -> Decision:
        return self.client.heartbeat(self.id, self.token)

    def report(self, step: int, **metrics: float) -> bool:
        """Store one step's metrics; False when the server says stop (a pruner, a paused study)."""
        return not self.client.report(self.id, self.token, step, metrics).should_stop

    def complete(self, value: float | None = None, **metrics: float) -> TrialRead:
        return self.client.complete(self.id, self.token, value, metrics).trial

    def prune(self, reason: str = "") -> TrialRead:
        return self.client.prune(self.id, self.token, reason)

    def fail(self, reason: str, kind: str = "error") -> TrialRead:
        return self.client.fail(self.id, self.token, reason, kind)

    def release(self) -> TrialRead:
        return self.client.release(self.id, self.token)


class JsonClient(Client):
    """`Client` with every answer left as the server's JSON (dicts and lists); trials from `ask` are
    JsonTrials. For code that prints or forwards answers (the command line), and code written before
    the typed client (it was `tuneserve_workers.client.TuneClient`)."""

    def _as(self, model: Any, data: Any) -> Any:
        return data

    def _held(self, lease: dict[str, Any]) -> "JsonTrial":
        return JsonTrial(self, lease)

    def all_trials(self, name: str, state: str | None = None, page: int = 1000) -> list[dict[str, Any]]:
        """Every trial of a study (in number order), page by page."""
        rows: list[dict[str, Any]] = []
        while True:
            got = self.trials(name, state=state, limit=page, offset=len(rows))
            rows += got["items"]
            if not got["items"] or len(rows) >= got["total"]:
                return rows


class JsonTrial:
    """A trial a JsonClient holds (from ask): its lease (a dict) plus the calls that need it."""

    def __init__(self, client: JsonClient, lease: dict[str, Any]):
        self.client, self.lease = client, lease

    @property
    def id(self) -> int:
        return self.lease["trial_id"]

    @property
    def params(self) -> dict[str, Any]:
        return self.lease["params"]

    @property
    def token(self) -> str:
        return self.lease["lease_token"]

    def heartbeat(self) -> dict:
        return self.client.heartbeat(self.id, self.token)

    def report(self, step: int, **metrics: float) -> bool:
        """Store one step's metrics; False when the server says stop."""
        return not self.client.report(self.id, self.token, step, metrics).get("should_stop", False)

    def complete(self, value: float | None = None, **metrics: float) -> dict:
        return self.client.complete(self.id, self.token, value, metrics)["trial"]

    def prune(self, reason: str = "") -> dict:
        return self.client.prune(self.id, self.token, reason)

    def fail(self, reason: str, kind: str = "error") -> dict:
        return self.client.fail(self.id, self.token, reason, kind)

    def release(self) -> dict:
        return self.client.release(self.id, self.token)
