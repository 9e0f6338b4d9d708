"""Domain exceptions. No HTTP here: service/api/errors.py alone maps them to status codes."""
from __future__ import annotations


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class StudyNotFound(DomainError):
    code = "study_not_found"

    def __init__(self, name: str):
        super().__init__(f"study {name!r} not found", study=name)


class TrialNotFound(DomainError):
    code = "trial_not_found"

    def __init__(self, trial_id: int):
        super().__init__(f"trial {trial_id} not found", trial_id=trial_id)


class StudyExists(DomainError):
    code = "study_exists"

    def __init__(self, name: str):
        super().__init__(f"a study named {name!r} already exists", study=name)


class TrialNotHeld(DomainError):
    """The caller does not hold the trial's current lease, or the trial has ended."""

    code = "trial_not_running"

    def __init__(self, trial_id: int, state: str, why: str):
        super().__init__(f"trial {trial_id} is {state}: {why}", trial_id=trial_id, state=state)


class ConflictingCompletion(DomainError):
    code = "conflicting_completion"

    def __init__(self, trial_id: int, stored: float | None, sent: float | None):
        super().__init__(
            f"trial {trial_id} already completed with value {stored!r}; refusing a different value {sent!r}",
            trial_id=trial_id, state="completed",
        )


class InvalidStudyState(DomainError):
    code = "invalid_study_state"

    def __init__(self, name: str, state: str, action: str):
        super().__init__(f"study {name!r} is {state}: cannot {action}", study=name, state=state)


class GateConflict(DomainError):
    """A special run (the sanity check, the lr range test) that cannot start now, or that the
    study's objective does not support."""

    code = "gate_conflict"

    def __init__(self, name: str, why: str):
        super().__init__(f"study {name!r}: {why}", study=name)


class InvalidInput(DomainError):
    """Input that passed the wire schema but breaks a rule only the domain can check.

    `loc` is the field path (e.g. ("body", "parameters", "lr")), reported like a 422 validation error.
    """

    code = "invalid_input"

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


class BudgetExhausted(DomainError):
    code = "budget_exhausted"

    def __init__(self, name: str, why: str):
        super().__init__(f"study {name!r}: {why}", study=name)


class NotEnoughTrials(DomainError):
    """A refine or repeat asked of a study that has no completed trial to work from."""

    code = "not_enough_trials"

    def __init__(self, name: str, why: str):
        super().__init__(f"study {name!r}: {why}", study=name)


class NoVariant(DomainError):
    """try-advice on a trial whose diagnosis proposes nothing to run (healthy, insufficient, a data
    problem, no diagnosis yet, or no knob of the space to change)."""

    code = "no_variant"

    def __init__(self, trial_id: int, why: str):
        super().__init__(f"trial {trial_id} has no variant to try: {why}", trial_id=trial_id)


class NotRerunnable(DomainError):
    """A rerun asked of a trial there is nothing to rerun of: it never ran, or it is a special run."""

    code = "not_rerunnable"

    def __init__(self, trial_id: int, why: str):
        super().__init__(f"trial {trial_id} cannot be rerun: {why}", trial_id=trial_id)


class LogNotFound(DomainError):
    code = "log_not_found"

    def __init__(self, trial_id: int, attempt: int | None):
        which = f"attempt {attempt} of trial {trial_id}" if attempt is not None else f"trial {trial_id}"
        super().__init__(f"no log for {which}: only trials run by a program have one", trial_id=trial_id)


class ConflictingReport(DomainError):
    """A step already stored, sent again with other metrics: the first report stands, and the
    caller is told rather than silently ignored."""

    code = "conflicting_report"

    def __init__(self, trial_id: int, step: int):
        super().__init__(
            f"trial {trial_id} already has a report for step {step} with other metrics; a step is stored once "
            "and a repeat must carry the same metrics",
            trial_id=trial_id, state="running", step=step,
        )


class NotLeaseHolder(DomainError):
    """The lease token is right but the caller's API token is not the one that claimed the trial."""

    code = "not_lease_holder"

    def __init__(self, trial_id: int):
        super().__init__(
            f"trial {trial_id} is held under another API token: a lease is bound to the token that claimed it",
            trial_id=trial_id, state="running",
        )


class DatabaseUnavailable(DomainError):
    """The database did not answer in time (down, locked, out of connections): retry later."""

    code = "database_unavailable"

    def __init__(self, why: str):
        super().__init__(f"the database is unavailable ({why}); retry shortly")


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class TokenNotFound(DomainError):
    code = "token_not_found"

    def __init__(self, name: str):
        super().__init__(f"no API token named {name!r}", token=name)


class TokenExists(DomainError):
    code = "token_exists"

    def __init__(self, name: str):
        super().__init__(f"an API token named {name!r} already exists; revoke it first to replace it", token=name)
