"""Hyperband: several ASHA brackets with different first rungs, each trial fixed to one bracket.

Bracket b (0-based) has its first rung at min_resource * reduction_factor^b and its rungs every
factor of reduction_factor after that, below max_resource. Bracket 0 halves earliest and most
often; the last bracket, whose first rung reaches max_resource, never stops anything: the hedge
Hyperband keeps for configurations that start slowly. By default there are
1 + floor(log_eta(max_resource / min_resource)) brackets, as in the paper (Li et al., 2017).

A trial's bracket is a function of its trial_id alone (a stable hash, then the cumulative bracket
weights), so every server process computes the same bracket without storing it, and trial ids that
are interleaved across studies still spread over the brackets. The weights are the paper's bracket
sizes n_s = ceil(B * eta^s / (s + 1)), s being the number of halvings a bracket can do, so cheap
brackets get more trials. A trial is only ever ranked against trials of its own bracket.

`rungs` replaces the geometric ladder with an explicit one, for a single bracket: that is how a
W&B `early_terminate: {max_iter, s}` block (rungs at max_iter // eta^k) is reproduced exactly.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from tuneserve_service.pruners.asha import geometric_rungs, halving_decision
from tuneserve_service.pruners.base import (
    Curve,
    PruneVerdict,
    aliased,
    bool_option,
    int_option,
    reject_unknown,
)


def default_brackets(min_resource: int, eta: int, max_resource: int) -> int:
    """1 + the number of times min_resource can be multiplied by eta and stay <= max_resource."""
    count, rung = 1, min_resource * eta
    while rung <= max_resource:
        count += 1
        rung *= eta
    return count


@dataclass(frozen=True)
class HyperbandPruner:
    min_resource: int = 1
    reduction_factor: int = 3
    max_resource: int | None = None
    brackets: int = 1
    rungs: tuple[int, ...] | None = None   # explicit ladder (single bracket only)
    strict: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any], where: str = "pruner") -> HyperbandPruner:
        options = aliased(options, "reduction_factor", "eta", where)
        reject_unknown(options, {"min_resource", "reduction_factor", "max_resource", "brackets",
                                 "rungs", "strict"}, where)
        eta = int_option(options, "reduction_factor", where, minimum=2, default=3)
        max_resource = int_option(options, "max_resource", where, minimum=1)
        strict = bool_option(options, "strict", where, default=True)
        brackets = int_option(options, "brackets", where, minimum=1)

        rungs = options.get("rungs")
        if rungs is not None:
            rungs = _check_rungs(rungs, where)
            if brackets not in (None, 1):
                raise ValueError(f"{where}.brackets: must be 1 when rungs are given explicitly")
            min_resource = int_option(options, "min_resource", where, minimum=1, default=rungs[0])
            if min_resource != rungs[0]:
                raise ValueError(f"{where}.min_resource: must equal the first rung ({rungs[0]}) "
                                 f"when rungs are given")
            if max_resource is not None and max_resource <= rungs[-1]:
                raise ValueError(f"{where}.max_resource: must be greater than the last rung "
                                 f"({rungs[-1]})")
            return cls(min_resource, eta, max_resource, 1, rungs, strict)

        min_resource = int_option(options, "min_resource", where, minimum=1, default=1)
        if max_resource is None:
            if brackets is None:
                raise ValueError(f"{where}.max_resource: required for hyperband unless brackets is "
                                 f"given (brackets default to 1 + floor(log_eta(max_resource / "
                                 f"min_resource)))")
        else:
            if max_resource <= min_resource:
                raise ValueError(f"{where}.max_resource: must be greater than min_resource "
                                 f"({min_resource})")
            most = default_brackets(min_resource, eta, max_resource)
            if brackets is None:
                brackets = most
            elif brackets > most:
                raise ValueError(f"{where}.brackets: must be between 1 and {most} for min_resource "
                                 f"{min_resource}, max_resource {max_resource}, reduction_factor "
                                 f"{eta}; more brackets would never stop anything")
        return cls(min_resource, eta, max_resource, brackets, None, strict)

    def to_options(self) -> dict[str, Any]:
        return {"min_resource": self.min_resource, "reduction_factor": self.reduction_factor,
                "max_resource": self.max_resource, "brackets": self.brackets,
                "rungs": list(self.rungs) if self.rungs is not None else None,
                "strict": self.strict}

    def bracket_weights(self) -> list[int]:
        b = self.brackets
        return [math.ceil(b * self.reduction_factor ** (b - 1 - i) / (b - i)) for i in range(b)]

    def bracket_of(self, trial_id: int) -> int:
        if self.brackets == 1:
            return 0
        weights = self.bracket_weights()
        # blake2b, not hash(): Python salts str hashes per process, and every server must agree.
        digest = hashlib.blake2b(f"tuneserve-bracket:{trial_id}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") % sum(weights)
        for bracket, weight in enumerate(weights):
            if point < weight:
                return bracket
            point -= weight
        raise AssertionError("unreachable: point < sum(weights)")

    def bracket_rungs(self, bracket: int, up_to: int) -> list[int]:
        if self.rungs is not None:
            return [r for r in self.rungs if r <= up_to]
        first = self.min_resource * self.reduction_factor ** bracket
        return geometric_rungs(first, self.reduction_factor, self.max_resource, up_to)

    def decide(self, trial: Curve, others: list[Curve], goal: str) -> PruneVerdict:
        bracket = self.bracket_of(trial.trial_id)
        peers = [o for o in others if self.bracket_of(o.trial_id) == bracket]
        latest = max((s for s, _ in trial.losses(goal)), default=0)
        rungs = self.bracket_rungs(bracket, latest * self.reduction_factor)
        return halving_decision(trial, peers, goal, rungs, self.reduction_factor, self.strict,
                                label=f"hyperband bracket {bracket}")


def _check_rungs(rungs: Any, where: str) -> tuple[int, ...]:
    rule = f"{where}.rungs: must be a list of increasing integers >= 1"
    if not isinstance(rungs, (list, tuple)) or not rungs:
        raise ValueError(f"{rule}, got {rungs!r}")
    out = []
    for r in rungs:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or (out and r <= out[-1]):
            raise ValueError(f"{rule}, got {list(rungs)!r}")
        out.append(r)
    return tuple(out)
