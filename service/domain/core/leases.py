"""Lease expiry: the sweep every server replica runs in the background (safe to run concurrently),
and, at most once an hour, forgetting workers not seen for a day (store.workers)."""
from __future__ import annotations

import logging
import time

from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import hooks
from tuneserve_service.domain.core.hooks import TrialEnding
from tuneserve_service.domain.core.studies import settle
from tuneserve_service.store import studies as study_store
from tuneserve_service.store import trials as trial_store
from tuneserve_service.store import workers as worker_store
from tuneserve_service.observability import metrics as observe

log = logging.getLogger("tuneserve.leases")
WORKERS_KEPT_SECONDS = 86_400.0  # a worker's row outlives its last claim by a day
WORKERS_PRUNE_EVERY = 3_600.0
_last_prune = -WORKERS_PRUNE_EVERY


def reap_expired(db: Database) -> tuple[int, int]:
    """Requeue or fail trials whose lease ran out; returns (requeued, failed)."""
    with db.transaction() as s:
        requeued, failed = trial_store.expire_leases(s)
        failed.sort(key=lambda row: (row["study_id"], row["id"]))  # id order: concurrent sweeps lock studies alike
        for row in failed:
            hooks.after_trial_ends(s, row, TrialEnding(study_store.study_header(s, row["study_id"]).metric_name))
        failed_studies = [row["study_id"] for row in failed]
        # ... and every study whose budget is spent with nothing active: an ending that saw the
        # budget unspent (core.studies.settle's `budget`) may have raced a reservation of its last numbers.
        for study_id in sorted(set(failed_studies) | set(study_store.spent_studies(s))):
            settle(s, study_id)
    observe.leases_expired(len(requeued), len(failed_studies))
    if requeued or failed_studies:
        log.info("lease expiry: %d trial(s) requeued, %d failed after their retries", len(requeued), len(failed_studies))
    return len(requeued), len(failed_studies)


def forget_idle_workers(db: Database, force: bool = False) -> int:
    """Drop workers not seen for WORKERS_KEPT_SECONDS, at most every WORKERS_PRUNE_EVERY seconds
    per process (`force`: now); returns how many went."""
    global _last_prune
    now = time.monotonic()
    if not force and now - _last_prune < WORKERS_PRUNE_EVERY:
        return 0
    _last_prune = now
    with db.transaction() as s:
        gone = worker_store.forget_idle(s, WORKERS_KEPT_SECONDS)
    if gone:
        log.info("forgot %d worker(s) not seen for %.0f h", gone, WORKERS_KEPT_SECONDS / 3600)
    return gone
