"""ASHA: asynchronous successive halving, deciding each trial at the rungs it reaches.

Rungs sit at grace_period * reduction_factor^k steps, below max_resource (the length of a full
run; a trial that gets there has finished, which is a completion, not a prune, so there is no rung
at max_resource itself). When a trial's report reaches a rung, it is ranked against every other
trial that has reached that rung so far, in any state; it continues only if fewer than
n // reduction_factor of those n trials (itself included) did better. With fewer than
reduction_factor trials at the rung there is nothing to halve yet, and it continues.

This is ASHA's promotion rule (Li et al., 2018): a trial is judged once per rung, at the report
that reaches it, against whoever has reported there so far, and is never revisited at that rung
later. Stateless consequence: the decision is taken at the report whose step first reaches the
rung, so a batch of reports must be decided one report at a time (see `Curve.until`).

A trial's value at a rung is its value at that crossing report (`strict: true`, the standard).
`strict: false` ranks the trial's best value up to the rung instead, against the peers' values
at the rung: W&B's lenient "conservative" mode, kept for imported sweeps.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneserve_service.pruners.base import (
    Curve,
    PruneVerdict,
    aliased,
    bool_option,
    int_option,
    loss_sign,
    reject_unknown,
)


def geometric_rungs(first: int, eta: int, max_resource: int | None, up_to: int) -> list[int]:
    """Rungs first * eta^k that are <= up_to and < max_resource (None: no upper bound)."""
    rungs = []
    rung = first
    while rung <= up_to and (max_resource is None or rung < max_resource):
        rungs.append(rung)
        rung *= eta
    return rungs


def rung_loss(points: list[tuple[int, float]], rung: int) -> float | None:
    """The loss at the first report at or past `rung` (reports may skip steps), or None."""
    for step, loss in points:
        if step >= rung:
            return loss
    return None


def halving_decision(trial: Curve, peers: Sequence[Curve], goal: str, rungs: Sequence[int],
                     eta: int, strict: bool = True, label: str = "asha") -> PruneVerdict:
    """Successive halving at the rungs this trial's latest report reaches (shared with Hyperband).

    `rungs` are ascending and cover at least the trial's latest step; `peers` exclude the trial.
    """
    sign = loss_sign(goal)
    points = trial.losses(goal)
    if not points:
        return PruneVerdict(False, "no reports yet")
    latest, latest_loss = points[-1]
    previous = points[-2][0] if len(points) > 1 else None
    # Only rungs first reached by this very report are decided now; earlier rungs were decided
    # at their own crossing reports. Several at once when reports skip steps: it must pass each.
    crossed = [r for r in rungs if r <= latest and (previous is None or previous < r)]
    if not crossed:
        upcoming = [r for r in rungs if r > latest]
        where = f"next rung at step {upcoming[0]}" if upcoming else "no rung ahead"
        return PruneVerdict(False, f"{label}: step {latest}, between rungs ({where})")

    peer_points = [p.losses(goal) for p in peers if p.trial_id != trial.trial_id]
    mine = latest_loss if strict else min(loss for _, loss in points)
    notes = []
    for rung in crossed:
        at_rung = [v for v in (rung_loss(pp, rung) for pp in peer_points) if v is not None]
        n = len(at_rung) + 1
        if n < eta:
            notes.append(f"rung {rung}: {n} trial(s) so far, fewer than {eta}")
            continue
        keep = n // eta
        better = sum(1 for v in at_rung if v < mine)   # ties go to the trial under judgement
        if better >= keep:
            return PruneVerdict(True, f"{label}: at rung {rung} the value {sign * mine:.6g} ranks "
                                  f"{better + 1} of {n}; only the top {keep} (1/{eta}) continue")
        notes.append(f"rung {rung}: rank {better + 1} of {n}, top {keep} continue")
    return PruneVerdict(False, f"{label}: " + "; ".join(notes))


@dataclass(frozen=True)
class ASHAPruner:
    grace_period: int = 2           # first rung: every trial trains this long before any judgement
    reduction_factor: int = 3       # keep the top 1/eta at each rung
    max_resource: int | None = None  # a full run's steps; rungs stay below it (None: no bound)
    strict: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any], where: str = "pruner") -> ASHAPruner:
        options = aliased(options, "grace_period", "min_resource", where)
        options = aliased(options, "reduction_factor", "eta", where)
        reject_unknown(options, {"grace_period", "reduction_factor", "max_resource", "strict"}, where)
        grace = int_option(options, "grace_period", where, minimum=1, default=cls.grace_period)
        eta = int_option(options, "reduction_factor", where, minimum=2, default=cls.reduction_factor)
        max_resource = int_option(options, "max_resource", where, minimum=1)
        if max_resource is not None and max_resource <= grace:
            raise ValueError(f"{where}.max_resource: must be greater than grace_period ({grace}); "
                             f"rungs are grace_period * reduction_factor^k below max_resource")
        return cls(grace, eta, max_resource, bool_option(options, "strict", where, default=True))

    def to_options(self) -> dict[str, Any]:
        return {"grace_period": self.grace_period, "reduction_factor": self.reduction_factor,
                "max_resource": self.max_resource, "strict": self.strict}

    def rungs(self, up_to: int) -> list[int]:
        return geometric_rungs(self.grace_period, self.reduction_factor, self.max_resource, up_to)

    def decide(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        latest = max((s for s, _ in trial.losses(goal)), default=0)
        return halving_decision(trial, others, goal, self.rungs(latest * self.reduction_factor),
                                self.reduction_factor, self.strict)
