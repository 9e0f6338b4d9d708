"""Median stopping rule: stop a trial whose best loss so far is worse than its peers' median.

The rule is the one from Google Vizier (Golovin et al., 2017), as Ray's MedianStoppingRule applies
it: at step s, once past the grace period, a trial stops if its best value up to s is strictly
worse than the median of the other trials' *running averages* up to s. Comparing against running
averages (the default, `compare: "mean"`) is lenient on purpose: a peer's average includes its
early, high losses, so only clearly lagging trials stop. `compare: "best"` uses the peers' best
values up to s instead, which stops more (closer to Optuna's MedianPruner).

Peers are the other trials of any state whose curve reached step s (a pruned or failed trial's
losses before it ended are real observations at those steps). The rule waits until
`n_startup_trials` trials have completed and at least `min_trials` peers reached step s, because
a median of one or two noisy curves is not evidence.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from tuneserve_service.pruners.base import (
    Curve,
    PruneVerdict,
    choice_option,
    int_option,
    loss_sign,
    reject_unknown,
)

COMPARE_CHOICES = ("mean", "best")


@dataclass(frozen=True)
class MedianPruner:
    grace_period: int = 2        # steps a trial always gets: early CNN losses are too noisy to judge
    n_startup_trials: int = 5    # completed trials needed before anything is stopped
    min_trials: int = 3          # peers that must have reached the step to form a median
    compare: str = "mean"        # peers' running average ("mean") or best so far ("best")

    @classmethod
    def from_options(cls, options: dict[str, Any], where: str = "pruner") -> MedianPruner:
        reject_unknown(options, {"grace_period", "n_startup_trials", "min_trials", "compare"}, where)
        return cls(
            grace_period=int_option(options, "grace_period", where, minimum=0, default=cls.grace_period),
            n_startup_trials=int_option(options, "n_startup_trials", where, minimum=0,
                                        default=cls.n_startup_trials),
            min_trials=int_option(options, "min_trials", where, minimum=1, default=cls.min_trials),
            compare=choice_option(options, "compare", where, choices=COMPARE_CHOICES,
                                  default=cls.compare),
        )

    def to_options(self) -> dict[str, Any]:
        return {"grace_period": self.grace_period, "n_startup_trials": self.n_startup_trials,
                "min_trials": self.min_trials, "compare": self.compare}

    def decide(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        sign = loss_sign(goal)
        points = trial.losses(goal)
        if not points:
            return PruneVerdict(False, "no reports yet")
        step = points[-1][0]
        if step < self.grace_period:
            return PruneVerdict(False, f"grace period: step {step} < {self.grace_period}")
        completed = sum(1 for o in others if o.state == "completed" and o.trial_id != trial.trial_id)
        if completed < self.n_startup_trials:
            return PruneVerdict(False, f"startup: {completed} of {self.n_startup_trials} trials completed")

        peer_losses = []
        for other in others:
            if other.trial_id == trial.trial_id:
                continue
            other_points = other.losses(goal)
            # A peer that has not reached this step yet says nothing about it.
            if not other_points or other_points[-1][0] < step:
                continue
            upto = [loss for s, loss in other_points if s <= step]
            peer_losses.append(statistics.fmean(upto) if self.compare == "mean" else min(upto))
        if len(peer_losses) < self.min_trials:
            return PruneVerdict(False, f"only {len(peer_losses)} peers reached step {step} "
                                   f"(need {self.min_trials})")

        median = statistics.median(peer_losses)
        best = min(loss for _, loss in points)
        what = "running averages" if self.compare == "mean" else "best values"
        if best > median:
            return PruneVerdict(True, f"median rule: best {sign * best:.6g} by step {step} is worse than "
                                  f"the median {sign * median:.6g} of {len(peer_losses)} trials' {what}")
        return PruneVerdict(False, f"best {sign * best:.6g} by step {step} is within the median "
                               f"{sign * median:.6g} of {len(peer_losses)} trials' {what}")
