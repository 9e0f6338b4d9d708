"""The tuning craft as pure planners: learning rate first, coarse to fine, subsampled, repeated.

No database, no web, no torch: value objects in, value objects out, like optimizers/ and pruners/.

  lr_range.py   a range test's curve -> suggested lr and range (the rule is in its docstring);
                narrowing a study's lr parameter, recorded and reversible; the default configuration
  refine.py     parent space + top k trials -> child space (coarse to fine) and its warm start
  stages.py     a study document's `stages` list, the stage transition rule, the next stage's document
  repeats.py    repeats over seeds grouped by configuration; the noise-aware best and how sure it is
  fidelity.py   epochs / data_fraction / classes as a trial's fidelity, its cost and pruner resource
  trials.py     TrialResult, the trial value object the planners read

How the server uses them (service/domain/; README "Learning rate first" and "Coarse to fine,
fidelity and repeats"):
  - the range test is a gate (domain/gates.py): a special trial of kind "lr_range" with params =
    lr_range.default_configuration(space), run by the worker's lr_range_test (or a user objective
    that reads `context.lr_range`); the server reads the curve with lr_range.suggest_lr, stores it in
    studies.lr_range and narrows the lr when asked (POST/DELETE /studies/{name}/narrowing);
  - refine (domain/refine.py, POST /studies/{name}/refine) makes a child study from refine.refine_space
    and enqueues its warm start; repeats (domain/repeats.py, POST /studies/{name}/repeat) enqueue
    repeats.plan_repeats, added to max_trials;
  - stages (domain/stages.py): stages.transition is checked in the transaction that ends a trial,
    under the stage study's row lock; "next" creates the stage study from stages.next_stage_document
    (unique (parent_id, stage_index) keeps two servers from creating it twice);
  - columns: studies.parent_id, stage_index, fidelity, lr_range, refine (migration 0007), repeats
    and stage_note (0008); trials.fidelity and config_key (0007). The `stages` list stays in
    studies.config, the document as submitted.
Validation errors (StageError, FidelityError, LrRangeError, RefineError, RepeatError: ValueErrors
with a `path` and a `rule`) are 422s with loc ["body", *path].

Pruners and fidelity: a pruner reads steps; with `resource: data` the domain maps each trial's step
through fidelity.resource_steps(trial fidelity, step, unit = the study's smallest data fraction)
before building its Curve, so ASHA/Hyperband rungs count full-data epochs. The pruners themselves
do not change.
"""
