"""Prometheus metrics (prometheus-client): what the server counts, and the collector that reads the
database at scrape time.

Counted in the process (counters and histograms):
  tuneserve_http_requests_total{route,method,status}     route = the route's template, not the raw path
  tuneserve_http_request_duration_seconds{route,method}  histogram
  tuneserve_trial_claims_total                           trials handed to a worker (claim, claim_next, ask)
  tuneserve_trial_reports_total                          per-step reports received
  tuneserve_trials_ended_total{state}                    completed | pruned | failed | diverged
  tuneserve_suggest_duration_seconds{method}             histogram of one optimizer call
  tuneserve_lease_expiries_total{outcome}                requeued | failed (out of retries)
Read from the database at each scrape (so every replica reports the same, and nothing is lost in
a restart):
  tuneserve_trials{study,state}                          the most recently updated MAX_STUDIES studies
  tuneserve_study_open_trials{study}                     running studies: waiting + running + budget not yet
                                                         drawn (what KEDA scales workers on: deploy/kubernetes)
  tuneserve_workers_seen                                 distinct workers active in the last 60 s
  tuneserve_database_up                                  1 when those reads worked

Several server processes: `tuneserve server --workers N` runs N processes behind one port, so a
scrape reaches any one of them. With PROMETHEUS_MULTIPROC_DIR set (prepare_multiprocess_dir does it)
prometheus-client's multiprocess mode keeps each process's values in files there and every scrape
sums them; the database-backed metrics are added once per scrape. Separate replicas (containers,
hosts) are scraped one by one, as usual. The directory must be set before this module is imported.
"""
from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from tuneserve_service.store import metrics as store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_STUDIES = 200  # studies exported by tuneserve_trials: bounds the scrape's cost and cardinality
WORKER_WINDOW = 60.0

_LATENCY = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter("tuneserve_http_requests", "HTTP requests by route template, method and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("tuneserve_http_request_duration_seconds", "HTTP request latency by route template",
                         ["route", "method"], buckets=_LATENCY)
CLAIMS = Counter("tuneserve_trial_claims", "Trials handed to a worker under a lease (claim, claim_next, ask)")
REPORTS = Counter("tuneserve_trial_reports", "Per-step reports received from workers")
ENDED = Counter("tuneserve_trials_ended", "Trials that ended, by final state", ["state"])
SUGGEST = Histogram("tuneserve_suggest_duration_seconds", "Time one optimizer call took, by study method",
                    ["method"], buckets=_LATENCY)
LEASE_EXPIRIES = Counter("tuneserve_lease_expiries", "Leases that ran out: requeued, or failed out of retries",
                         ["outcome"])


# ---- hooks called by the domain (one line each) -------------------------------------------------

def claimed(count: int = 1) -> None:
    if count:
        CLAIMS.inc(count)


def reported(steps: int) -> None:
    if steps:
        REPORTS.inc(steps)


def ended(state: str) -> None:
    ENDED.labels(state=state).inc()


def leases_expired(requeued: int, failed: int) -> None:
    if requeued:
        LEASE_EXPIRIES.labels(outcome="requeued").inc(requeued)
    if failed:
        LEASE_EXPIRIES.labels(outcome="failed").inc(failed)


def timed_suggest(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates the suggest flow's `compute(method, ...)`: its duration, labelled by `method`."""

    @wraps(fn)
    def wrapper(method: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(method, *args, **kwargs)
        finally:
            SUGGEST.labels(method=method).observe(time.perf_counter() - start)

    return wrapper


# ---- the database-backed collector --------------------------------------------------------------

class DatabaseCollector:
    """Reads trial counts and recent workers at scrape time, in one read-only session."""

    def __init__(self, get_db: Callable[[], Any]):
        self._get_db = get_db

    def describe(self):
        return []  # nothing to check for duplicates at registration; collect() runs per scrape

    def collect(self):
        trials = GaugeMetricFamily("tuneserve_trials", "Trials by study and state (most recently updated studies)",
                                   labels=["study", "state"])
        workers = GaugeMetricFamily("tuneserve_workers_seen", f"Distinct workers active in the last {WORKER_WINDOW:g} s")
        up = GaugeMetricFamily("tuneserve_database_up", "1 when the scrape could read the database")
        open_ = GaugeMetricFamily("tuneserve_study_open_trials",
                                  "Trials of a running study that still need a worker: waiting + running + budget not yet drawn",
                                  labels=["study"])
        try:
            db = self._get_db()
            since = datetime.now(timezone.utc) - timedelta(seconds=WORKER_WINDOW)
            with db.read() as s:
                counts = store.trial_counts(s, MAX_STUDIES)
                seen = store.workers_seen(s, WORKER_WINDOW, since)
                open_counts = store.open_trials(s, MAX_STUDIES)
        except Exception:  # noqa: BLE001 - a scrape during a database outage still answers
            up.add_metric([], 0)
            yield up
            return
        for study, state, n in counts:
            trials.add_metric([study, state], n)
        workers.add_metric([], seen)
        for study, n in open_counts:
            open_.add_metric([study], n)
        up.add_metric([], 1)
        yield trials
        yield open_
        yield workers
        yield up


class _Combined:
    """What one scrape exposes: the process (or multiprocess) registry, then the database."""

    def __init__(self, *sources):
        self._sources = sources

    def collect(self):
        for source in self._sources:
            yield from source.collect()


def exposition(get_db: Callable[[], Any]) -> bytes:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        process = registry
    else:
        process = REGISTRY
    return generate_latest(_Combined(process, DatabaseCollector(get_db)))


def prepare_multiprocess_dir(path: str | None = None) -> str:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory (created, or emptied of a previous run's
    files) and return it. Call it before the server processes start, e.g. in `tuneserve server
    --workers N`; the processes inherit the environment."""
    target = path or os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="tuneserve-metrics-")
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(target):
        if name.endswith(".db"):
            os.remove(os.path.join(target, name))
    os.environ[MULTIPROC_ENV] = target
    return target

