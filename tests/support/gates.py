"""The gates' data written straight into a study's rows, for the dashboard's tests: special runs
(kind sanity / lr_range, numbered below zero) with reports, diagnoses on trials, and the study's
`sanity`, `lr_range` and `gate` columns as the server stores them (service/diagnosis/sanity.py
SanityResult.to_json plus config/trial; service/craft/lr_range.py for the curve's suggestion)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import create_engine, insert, select

from tuneserve_service.craft.lr_range import suggest_lr
from tuneserve_service.db.models import Study, Trial, TrialReport

T0 = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)

SANITY_FAILED = {
    "state": "failed",
    "verdict": "The model could not fit 64 examples in 100 epochs (final train loss 1.93, chance is 2.30): "
               "check that the labels match the inputs and that the lr is not far too low.",
    "figures": {"final_train_loss": 1.93, "initial_loss": 2.31, "chance_loss": 2.303, "epochs": 100,
                "weight_change": 0.004, "input_std": 1.0},
    "checks": [
        {"name": "finite_loss", "ok": True, "detail": "no NaN or inf"},
        {"name": "initial_loss", "ok": True, "detail": "2.31 vs ln(10) = 2.30"},
        {"name": "fits_subset", "ok": False, "detail": "final train loss 1.93 > 0.1 after 100 epochs"},
    ],
    "config": {"samples": 64, "max_epochs": 100, "sweep": False},
    "trial": -1,
    "overridden": True,
}


def u_curve(points: int = 200, start: float = 1e-7, end: float = 10.0) -> dict[str, list[float]]:
    """A range test's curve: the loss flat at small lrs, falling fastest near 1e-3, lowest near
    1e-2, then blowing up past about 0.7 (one point per mini-batch, lr growing geometrically)."""
    lrs = [start * (end / start) ** (i / (points - 1)) for i in range(points)]
    losses = []
    for lr in lrs:
        x = math.log10(lr)
        fall = 1.8 / (1 + math.exp(-(x + 3) * 2.2))         # the drop, steepest at 1e-3
        rise = 0.5 * math.exp(3 * (x + 1.5)) if x > -2 else 0.0   # the blow-up past 1e-2
        losses.append(2.3 - fall + rise + 0.01 * math.sin(7 * x))
    return {"lr": lrs, "loss": losses}


def lr_range_done(parameter: str = "lr", narrowed: bool = True) -> dict[str, Any]:
    """A finished range test as studies.lr_range holds it, its suggestion computed by the real rule."""
    curve = u_curve()
    s = suggest_lr(curve["lr"], curve["loss"]).to_dict()
    before = {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}
    after = {"distribution": "log_uniform_values", "min": max(s["low"], 1e-4), "max": min(s["high"], 1.0)}
    return {
        "state": "done",
        "message": f"suggested lr {s['lr']:.3g}, range [{s['low']:.3g}, {s['high']:.3g}] (steepest descent)",
        "config": {"start_lr": 1e-7, "end_lr": 10.0, "steps": 200, "rule": "steepest", "apply": False},
        "trial": -2, "curve": curve, "suggestion": s, "parameter": parameter,
        "narrowing": {"path": f"parameters.{parameter}", "before": before, "after": after} if narrowed else None,
    }


def diagnosis(label: str, advice: str, cause: str | None = None, provisional: bool = False,
              **evidence: Any) -> dict[str, Any]:
    return {"label": label, "cause": cause, "evidence": evidence, "advice": advice, "provisional": provisional}


class Rows:
    """Direct writes to one database (the tests' back door: what the server would have stored)."""

    def __init__(self, database_url: str):
        self.engine = create_engine(database_url)

    def close(self) -> None:
        self.engine.dispose()

    def study_id(self, name: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(Study.__table__.c.id).where(Study.__table__.c.name == name)).scalar_one()

    def set_study(self, name: str, **columns: Any) -> None:
        """sanity=..., lr_range=..., gate=... on the study's row."""
        table = Study.__table__
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.name == name).values(**columns))

    def add_special_run(self, study: str, kind: str, number: int, state: str, value: float | None = None,
                        losses: list[float] = (), diagnosis_json: dict | None = None) -> int:
        """A special run with one report per loss (val_loss = train_loss = the loss); returns its id."""
        assert number < 0, "special runs are numbered below zero"
        sid = self.study_id(study)
        with self.engine.begin() as conn:
            tid = conn.execute(insert(Trial.__table__).values(
                study_id=sid, number=number, kind=kind, state=state, params={"lr": 0.01, "dropout": 0.0,
                                                                             "optimizer": "adam"},
                # The server's gates (service/domain/gates.py) record the kind as the method.
                method=kind, attempt=1, worker_id="w-special", value=value, metrics={},
                last_step=len(losses) or None, diagnosis=diagnosis_json, created_at=T0,
                started_at=T0, finished_at=T0 + timedelta(minutes=3) if state != "running" else None,
            ).returning(Trial.__table__.c.id)).scalar_one()
            if losses:
                conn.execute(insert(TrialReport.__table__), [
                    dict(trial_id=tid, step=i + 1, value=v, metrics={"val_loss": v, "train_loss": v},
                         created_at=T0 + timedelta(seconds=i)) for i, v in enumerate(losses)])
        return tid

    def set_diagnosis(self, study: str, number: int, diagnosis_json: dict | None) -> None:
        table = Trial.__table__
        sid = self.study_id(study)
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.study_id == sid, table.c.number == number)
                         .values(diagnosis=diagnosis_json))
