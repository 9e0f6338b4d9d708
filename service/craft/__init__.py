"""The tuning craft as pure planners: learning rate first, coarse to fine, subsampled, repeated.

No database, no web, no torch: value objects in, value objects out, like optimizers/ and pruners/.

  lr_range.py   a range test's curve -> suggested lr and range (the rule is in its docstring);
                narrowing a study's lr parameter, recorded and reversible; the default configuration
  refine.py     parent space + top k trials -> child space (coarse to fine) and its warm start
  stages.py     a study document's `stages` list, the stage transition rule, the next stage's document
  repeats.py    repeats over seeds grouped by configuration; the noise-aware best and how sure it is
  fidelity.py   epochs / data_fraction / classes as a trial's fidelity, its cost and pruner resource
  trials.py     TrialResult, the trial value object the planners read

Phase 2 (wiring into the server; proposal)
------------------------------------------
Endpoints (routes call service/domain/craft.py, which uses these planners and the store):
  POST /studies/{name}/lr-range-test   {start_lr?, end_lr?, steps?, apply?: bool, rule?}
      202 with the study's `lr_range` object (state "pending"). 409 when one is pending or running,
      when the study is stopped/finished, or when its objective is a user objective that did not opt
      in (document key `objective_features: [lr_range_test]`; the built-in trainer always can).
  POST /studies/{name}/narrowing       {parameter?, low?, high?} narrow the lr (default: the range
      test's suggestion and lr_range.find_lr_parameter); DELETE /studies/{name}/narrowing restores.
  POST /studies/{name}/refine          {top_k, margin?, min_fraction?, epochs?, data_fraction?,
      classes?, max_trials, name?, rerun_top?: bool} -> 201 with the child study; 409 when the
      parent has no completed trial.
  POST /studies/{name}/repeat          {top_k, seeds} -> 201 with the enqueued trials, each linked to
      its configuration (config_key).
  GET /studies/{name} gains: parent, children (names, both directions), stage_index, stages (the
  timeline: per stage its study, state, fidelity, counts), fidelity, lr_range (state, curve,
  suggestion, narrowing), refine (how a child was made), best_configuration
  (repeats.BestStatement.to_dict()) and repeat_groups (mean +- std and count per configuration).
  GET /studies/{name}/trials and /trials/{id}: each trial's `fidelity` next to its value.

Study document fields: `lr_range_test: true | {start_lr, end_lr, steps, apply}` (run before the first
trial, `apply` narrows by itself), `stages: [...]` (stages.parse_stages), `repeat_top: {top_k,
seeds}` at the top level or per stage, `fidelity: {epochs, data_fraction, classes, data_seed}`.
Validation errors (StageError, FidelityError, LrRangeError, RefineError, RepeatError: ValueErrors
with a `path` and a `rule`) map to 422 with loc ["body", *path] in service/api/errors.py.

The range test on a worker: the special-trial mechanism of the sanity gate (issue 11). The study
holds back ordinary trials while `lr_range.state` is pending/running; one claim gets a trial of kind
"lr_range" with params = lr_range.default_configuration(space) (constants' values, categoricals'
first value, numeric midpoints in internal coordinates) and the test options; the worker runs
tuneserve_workers.training.lr_range.lr_range_test(params, context, **options) (a user objective reads
`context.lr_range` and returns the same dict) and completes with the curve in the completion body.
The server computes lr_range.suggest_lr, stores curve + suggestion on the study, applies the
narrowing when asked, and releases the ordinary trials. A failed test (curve too short, loss never
fell) leaves the space as it was and says why.

Stage transitions: checked in the same transaction as every trial ending (complete, fail, prune,
lease expiry with no retry left), under the stage study's row lock: stages.transition(stages, i,
counts) -> "wait" | "repeat" (enqueue repeats.plan_repeats) | "next" (create the stage study from
stages.next_stage_document, warm-started, its top-k rerun enqueued first; unique (parent_id,
stage_index) keeps two servers from creating it twice) | "finish". The warm start in
domain/suggest._warm_start maps the parent's values onto the child's with fidelity.map_by_rank.

Columns (migration 0007, in service/db/models.py): studies.parent_id (FK studies, no ON DELETE:
deleting a parent clears its children's parent_id first), studies.stage_index (unique index with
parent_id), studies.fidelity, studies.lr_range, studies.refine (JSON); trials.fidelity (JSON),
trials.config_key (String(32), index (study_id, config_key)).
The `stages` list itself stays in studies.config (the document as submitted).

As built (phase 2, p2-craft): refine, stages, fidelity and repeats are wired in service/domain/
refine.py, stages.py, fidelity.py and repeats.py (README "Coarse to fine, fidelity and repeats");
the stage hook is stages.settle, called where finish_if_done was; repeats are added to max_trials;
the repeat requests and a stage's failure to start are studies.repeats and studies.stage_note
(migration 0009).

Pruners and fidelity: a pruner reads steps; with `resource: data` the domain maps each trial's step
through fidelity.resource_steps(trial fidelity, step, unit = the study's smallest data fraction)
before building its Curve, so ASHA/Hyperband rungs count full-data epochs. The pruners themselves
do not change.
"""
