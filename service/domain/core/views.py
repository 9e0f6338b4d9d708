"""Turn stored rows (ORM objects or Core row mappings) into wire types."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from tuneserve_service.domain.core.fidelity import lease_params
from tuneserve.schemas.enums import TrialKind
from tuneserve.schemas.provenance import RERUN
from tuneserve.schemas.trials import Metric, ReportRead, TrialLease, TrialRead
from tuneserve_service.space import unflatten_params
from tuneserve_service.store.times import utc


def _get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def _opt(obj: Any, key: str) -> Any:
    """A column some row shapes may lack (rows read before it existed in a partial select)."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def epoch_to_datetime(x: float | None) -> datetime | None:
    return None if x is None else datetime.fromtimestamp(x, timezone.utc)


def json_safe_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities are not JSON (PostgreSQL's jsonb refuses them): keep them as strings."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        out[k] = v
    return out


def trial_read(trial: Any, study_name: str, reports: list[Any] | None = None) -> TrialRead:
    return TrialRead(
        id=_get(trial, "id"),
        study=study_name,
        number=_get(trial, "number"),
        state=_get(trial, "state"),
        params=unflatten_params(_get(trial, "params")),
        method=_get(trial, "method"),
        attempt=_get(trial, "attempt"),
        worker_id=_get(trial, "worker_id"),
        value=_get(trial, "value"),
        metrics=_get(trial, "metrics") or {},
        last_step=_get(trial, "last_step"),
        stop_reason=_get(trial, "stop_reason"),
        stop_step=_get(trial, "stop_step"),
        fail_kind=_get(trial, "fail_kind"),
        fail_reason=_get(trial, "fail_reason"),
        lease_expires_at=epoch_to_datetime(_get(trial, "lease_expires_at")),
        created_at=utc(_get(trial, "created_at")),
        started_at=utc(_get(trial, "started_at")),
        finished_at=utc(_get(trial, "finished_at")),
        fidelity=_get(trial, "fidelity"),
        config_key=_get(trial, "config_key"),
        kind=_get(trial, "kind") or TrialKind.TRIAL,
        diagnosis=_get(trial, "diagnosis"),
        parent_trial_id=_opt(trial, "parent_trial_id"),
        advice_notch=_opt(trial, "advice_notch"),
        objectives=_opt(trial, "objectives"),
        feasible=_opt(trial, "feasible"),
        violation=_opt(trial, "violation"),
        rerun_of=_opt(trial, "parent_trial_id") if _opt(trial, "advice_notch") == RERUN else None,
        reports=None if reports is None else [
            ReportRead(step=r.step, metrics=r.metrics, created_at=utc(r.created_at)) for r in reports
        ],
    )


def trial_lease(row: dict[str, Any], study: Any) -> TrialLease:
    """The lease a worker gets; a study that manages its fidelity puts its knobs into the params
    (service/domain/core/fidelity.py), so the trainer runs at that fidelity."""
    study_fidelity = getattr(study, "fidelity", None)
    return TrialLease(
        trial_id=row["id"],
        study=study.name,
        number=row["number"],
        params=unflatten_params(lease_params(row["params"], study_fidelity)),
        fidelity=row.get("fidelity"),
        attempt=row["attempt"],
        lease_token=row["lease_token"],
        lease_expires_at=epoch_to_datetime(row["lease_expires_at"]),
        lease_seconds=study.lease_seconds,
        metric=Metric(name=study.metric_name, goal=study.goal),
        method=row["method"],
        kind=row.get("kind") or TrialKind.TRIAL,
        # A special run's request (service/domain/features/gates.py puts it on the claimed row).
        sanity=row.get("sanity_request"),
        lr_range=row.get("lr_range_request"),
    )
