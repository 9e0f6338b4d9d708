"""Trial logs: the worker uploads the tail of a program's output while it holds the trial (fenced by
its lease token, like a report); anyone may read the latest attempt's, or a given attempt's."""
from __future__ import annotations

from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core.protocol import not_held
from tuneserve_service.domain.core.views import utc
from tuneserve_service.errors import LogNotFound, TrialNotFound
from tuneserve.schemas.logs import LOG_KEEP_CHARS, TrialLogRead
from tuneserve_service.store import logs as log_store
from tuneserve_service.store import trials as trial_store


def _read(row: dict) -> TrialLogRead:
    size = row["size"]
    return TrialLogRead(trial_id=row["trial_id"], attempt=row["attempt"], text=row["text"], size=size,
                        truncated=size > len(row["text"].encode("utf-8")), updated_at=utc(row["updated_at"]))


def put_log(db: Database, trial_id: int, token: str, text: str, size: int | None,
            holder: str | None = None) -> TrialLogRead:
    kept = text[-LOG_KEEP_CHARS:]
    whole = max(size if size is not None else 0, len(text.encode("utf-8")))
    with db.transaction() as s:
        row = trial_store.touch_held(s, trial_id, token, holder)  # fenced; also a sign of life for the lease
        if row is None:
            raise not_held(s, trial_id, token, holder)
        return _read(log_store.put_log(s, trial_id, row["attempt"], kept, whole))


def get_log(db: Database, trial_id: int, attempt: int | None) -> TrialLogRead:
    with db.transaction() as s:
        row = log_store.get_log(s, trial_id, attempt)
        if row is None:
            if trial_store.get_trial_row(s, trial_id) is None:
                raise TrialNotFound(trial_id)
            raise LogNotFound(trial_id, attempt)
        return _read(row)
