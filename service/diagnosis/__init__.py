"""Know why a run went wrong: trial diagnosis, study advice and the sanity gate, as pure rules.

No database, no FastAPI, no torch: curves, params and figures in, value objects out (each with
to_json/from_json), thresholds in thresholds.py.

  trial.py   diagnose_trial(reports, state=, fail_kind=, fail_reason=, ...) -> Diagnosis | None
  study.py   study_advice(trials, space, goal) -> list[Advice]
  sanity.py  SanityConfig, sanity_params, sanity_lrs, figures_from_reports, sanity_verdict -> SanityResult
  curve.py   reports (pairs, API dicts or ORM rows; "NaN" strings included) as numeric series

Metric names the rules read: train_loss, val_loss, train_acc, val_acc, lr, grad_norm, update_ratio,
and at step 1 initial_loss (the loss before any update) and num_classes; for the sanity run also
input_std and input_nonfinite. Any may be missing.

How the server uses them (README "The sanity gate and a diagnosis of every trial"):
  - the sanity check is a gate (service/domain/gates.py): while `studies.gate` is 'sanity' the study
    hands out only its special trial (kind 'sanity', a negative number, never against the budget);
    the study's state stays what it was (no extra study state). The verdict, from
    figures_from_reports and sanity_verdict, is stored in studies.sanity; a failed check pauses the
    study, and `resume` is the user's recorded override;
  - diagnoses (service/domain/diagnoses.py): diagnose_trial runs when a trial ends, in the same
    transaction, and is refreshed at a running trial's heartbeats (provisional); stored in
    trials.diagnosis (migration 0006);
  - study advice: GET /studies/{name} computes study_advice from the most recent ended ordinary
    trials.
Everything that counts trials counts kind 'trial' only (budget, best trial, optimizer history,
pruner cohorts).
"""
from tuneserve_service.diagnosis.sanity import (
    SanityConfig,
    SanityConfigError,
    SanityResult,
    figures_from_reports,
    sanity_lrs,
    sanity_params,
    sanity_verdict,
)
from tuneserve_service.diagnosis.study import Advice, TrialSummary, study_advice
from tuneserve_service.diagnosis.thresholds import THRESHOLDS, Thresholds
from tuneserve_service.diagnosis.trial import CONFIDENT, Diagnosis, diagnose_trial, finite_json
from tuneserve_service.diagnosis.variant import BUILTIN_CNN_DEFAULTS, Variant, notches, propose_variant

__all__ = [
    "Advice", "BUILTIN_CNN_DEFAULTS", "CONFIDENT", "Diagnosis", "SanityConfig", "SanityConfigError", "SanityResult",
    "THRESHOLDS", "Thresholds", "TrialSummary", "Variant", "diagnose_trial", "figures_from_reports", "finite_json",
    "notches", "propose_variant", "sanity_lrs", "sanity_params", "sanity_verdict", "study_advice",
]
