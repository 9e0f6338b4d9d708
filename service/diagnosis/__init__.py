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

Phase 2: wiring the gate and the diagnoses into the server
----------------------------------------------------------
Storage (migration 0006): `studies.sanity` JSON, `trials.kind` ('trial' | 'sanity', default
'trial'), `trials.diagnosis` JSON.

- studies.sanity = {"config": SanityConfig.to_json(), **SanityResult.to_json(), "trial_id": ..,
  "overridden": bool}; NULL when the study never asked. `sanity: {samples, max_epochs, sweep}` (or
  `sanity: true`) in the study document is parsed with SanityConfig.from_json; SanityConfigError
  carries the field for a 422 at loc ["body", "sanity", field].
- While the gate is pending or running the study must hand out no ordinary trial. Simplest with
  the current claim code (which filters `Study.state == "running"`): a study state `sanity` (add it
  to StudyState). Creating a study with `sanity`, or `POST /studies/{name}/sanity` (from running or
  paused; 409 while a sanity trial is waiting/running, and from stopped/finished), sets the state to
  `sanity`, stores {"state": "pending"} and inserts one trial with kind='sanity', state='waiting',
  a negative number (-1, then -2 for a rerun: unique per study, never against the budget),
  params = sanity_params(space, None, config.max_epochs) (the space's default lr is the geometric
  middle of a log range; the server cannot know an objective's own defaults), and the learning
  rates sanity_lrs(space, None, config.sweep). Trials already running when a rerun is asked finish.
- Claim: for studies in state `sanity`, claim only waiting kind='sanity' trials (one worker gets it);
  the lease carries `kind` and `sanity: {samples, max_epochs, lrs}`. Claiming sets sanity.state =
  running. The worker builds its context with SanityRequest(**lease["sanity"]) and calls
  tuneserve_workers.training.sanity.run_sanity_objective(objective, params, context) instead of the objective,
  then completes with the outcome (a `sanity` field on complete: {supported, figures, message}).
  A program runner passes SanityRequest.to_env() and counts a report holding `sanity_done: 1` as
  support.
- Ending the sanity trial: figures = figures_from_reports(stored reports, outcome figures);
  result = sanity_verdict(figures, samples, max_epochs); unsupported -> SanityResult.skipped(message);
  fail(kind=error|oom|...) or retries exhausted -> SanityResult.run_failed(kind, reason); a diverged
  run is judged from its figures. passed/skipped -> study state running (skipped also shows as
  study advice "sanity check skipped: ..."); failed -> study state paused, the verdict in
  studies.sanity. `resume` on such a study is the user's override: state running, overridden=true,
  the verdict kept.
- Everything counting trials must filter kind='trial': budget and next_number, TrialCounts, best
  trial, optimizer history and pending points, pruner cohorts (no pruning of sanity reports),
  finish_if_done, max_concurrent.
- Diagnoses: when a trial ends (complete, prune, fail, server-side diverged, expiry to failed), in
  the same transaction, trials.diagnosis = diagnose_trial(reports, state=, fail_kind=, fail_reason=,
  metric=study.metric_name).to_json() (None stays NULL). Running trials: after storing a report,
  recompute and store it (provisional=True is set for state running), so the report and heartbeat
  answers (`Decision.diagnosis`) and every view read it without extra queries. Reports are per
  epoch, so reading them per report is cheap; cap at the last 500 for very long curves.
  The worker should send a Diverged exception's `metrics` as a final report before `fail`
  (NaN allowed: the server already stores them as strings); until then the diagnosis reads the
  same figures from the fail reason, which the built-in trainer writes as `name=value`.
- Study advice: GET /studies/{name} computes study_advice(summaries, space, goal) from the ended
  ordinary trials (number, state, params, value, diagnosis); for very large studies, from the most
  recent few thousand.
- Wire types: TrialRead gains `kind` and `diagnosis`; StudyRead gains `sanity` and `advice`;
  Decision (report/heartbeat answers) gains `diagnosis`. CLI: `tuneserve study sanity NAME
  [--samples --max-epochs --sweep]`, the verdict and advice in `study status`, the diagnosis in
  `trial show`. `tuneserve demo` turns the gate on.
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
