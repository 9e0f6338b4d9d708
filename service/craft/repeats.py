"""Repeats over seeds: one configuration's runs grouped, a noise-aware ranking of configurations, and
which configuration is best and how sure that is.

A configuration is a trial's params without its seed parameters. Its repeats are the trials that
share it; their completed values give a mean, a standard deviation and a count.

Noise-aware ranking, precisely. The run-to-run noise sigma is estimated once per study, pooled over
every configuration with at least two completed repeats: sigma^2 = sum (n_i - 1) s_i^2 / sum (n_i - 1),
with df = sum (n_i - 1) degrees of freedom (configurations share one trainer and one data set, so
they share a noise level, and pooling gives a usable estimate from 2-3 repeats each). Each
configuration is scored pessimistically, one standard error on its bad side:

    score = mean + z * sigma / sqrt(n)      (minimize; mean - z * sigma / sqrt(n) to maximize)

with z = 1 by default, and configurations are ranked by score (ties: more repeats first, then the
earliest trial). So a configuration run once beats one run n times only if its single value is
better than the other's mean by more than z * sigma * (1 - 1 / sqrt(n)): that is what "a single lucky
run no longer wins" means here. Until some configuration has two completed repeats sigma is unknown
and the ranking is by mean (the plain best trial), and the answer says the noise is unknown.

A configuration with a failed or diverged repeat ranks after every configuration without one (a
setting that blows up on one seed in three is not a candidate); one with no completed value is not
ranked. Pruned repeats carry a partial value and count neither way.

How sure: the probability that the best configuration's true mean beats the runner-up's, under a
normal model with the pooled sigma and Student's t with the pooled df:
P = T_df((mean_2 - mean_1) / (sigma * sqrt(1/n_1 + 1/n_2))) (signs flipped to maximize).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from tuneserve_service.craft.errors import CraftError
from tuneserve_service.craft.trials import TrialResult
from tuneserve_service.space import params_key

SEED_NAMES = ("seed",)
Z = 1.0


class RepeatError(CraftError):
    """A repeat request that cannot be planned: `path` names the field, `rule` the rule broken."""


def configuration(params: dict[str, Any], seed_names: Sequence[str] = SEED_NAMES) -> dict[str, Any]:
    """The params without the seed parameters: what the repeats of one configuration share."""
    return {k: v for k, v in params.items() if k not in seed_names}


def config_key(params: dict[str, Any], seed_names: Sequence[str] = SEED_NAMES) -> str:
    """A 32-hex-digit key of the configuration (values compared as JSON values: 1 == 1.0, true != 1),
    short enough for an indexed column."""
    key = repr(_numbers_as_floats(params_key(configuration(params, seed_names))))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _numbers_as_floats(key: Any) -> Any:
    # value_key keeps 1 and 1.0 apart in repr though they compare equal; the hash must not.
    if isinstance(key, tuple):
        if len(key) == 2 and key[0] == "n" and isinstance(key[1], (int, float)):
            return ("n", float(key[1]))
        return tuple(_numbers_as_floats(k) for k in key)
    return key


@dataclass(frozen=True)
class RepeatGroup:
    key: str
    params: dict[str, Any]               # the configuration (no seed)
    numbers: tuple[int, ...]             # every trial of it, in number order
    values: tuple[float, ...]            # completed values, in trial-number order
    failures: int                        # failed or diverged repeats

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof 1); None below two values."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "params": self.params, "trials": list(self.numbers), "count": self.count,
                "mean": self.mean, "std": self.std, "failures": self.failures}


def group_repeats(runs: Iterable[TrialResult], seed_names: Sequence[str] = SEED_NAMES) -> list[RepeatGroup]:
    """Runs grouped by configuration, in order of each group's first trial number."""
    groups: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r.number):
        key = config_key(run.params, seed_names)
        g = groups.setdefault(key, {"params": configuration(run.params, seed_names), "numbers": [],
                                    "values": [], "failures": 0})
        g["numbers"].append(run.number)
        if run.state == "completed" and run.value is not None and math.isfinite(run.value):
            g["values"].append(float(run.value))
        elif run.state in ("failed", "diverged") or (run.state == "completed" and run.value is not None):
            g["failures"] += 1  # a non-finite completed value is a divergence too
    return [RepeatGroup(k, g["params"], tuple(g["numbers"]), tuple(g["values"]), g["failures"])
            for k, g in groups.items()]


def pooled_sigma(groups: Iterable[RepeatGroup]) -> tuple[float | None, int]:
    """(pooled within-configuration standard deviation, its degrees of freedom); (None, 0) when no
    configuration has two completed repeats."""
    ss, df = 0.0, 0
    for g in groups:
        if g.count > 1:
            ss += (g.count - 1) * g.std ** 2
            df += g.count - 1
    return (math.sqrt(ss / df), df) if df else (None, 0)


@dataclass(frozen=True)
class Ranked:
    group: RepeatGroup
    score: float            # the value ranked on, in the study's direction (see the module doc)
    rank: int               # 1 = best


def rank_configurations(groups: Sequence[RepeatGroup], goal: str = "minimize", z: float = Z) -> list[Ranked]:
    """Configurations with a completed value, best first, by the noise-aware score."""
    sign = _sign(goal)
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not math.isfinite(z) or z < 0:
        raise RepeatError("z", f"must be a number >= 0, got {z!r}")
    sigma, _ = pooled_sigma(groups)
    scored = []
    for g in groups:
        if not g.count:
            continue
        penalty = 0.0 if sigma is None else z * sigma / math.sqrt(g.count)
        score = g.mean + sign * penalty
        scored.append((g.failures > 0, sign * score, -g.count, g.numbers[0], g, score))
    scored.sort(key=lambda s: s[:4])
    return [Ranked(s[4], s[5], i + 1) for i, s in enumerate(scored)]


@dataclass(frozen=True)
class BestStatement:
    best: RepeatGroup | None
    runner_up: RepeatGroup | None
    probability: float | None     # P(best's true mean beats the runner-up's); None when unknown
    sigma: float | None
    df: int
    statement: str

    def to_dict(self) -> dict[str, Any]:
        return {"best": self.best.to_dict() if self.best else None,
                "runner_up": self.runner_up.to_dict() if self.runner_up else None,
                "probability_beats_runner_up": self.probability, "noise_sigma": self.sigma,
                "noise_df": self.df, "statement": self.statement}


def best_configuration(groups: Sequence[RepeatGroup], goal: str = "minimize", z: float = Z) -> BestStatement:
    """Which configuration is best (noise-aware) and how sure that is (see the module doc)."""
    ranked = rank_configurations(groups, goal, z)
    sigma, df = pooled_sigma(groups)
    if not ranked:
        return BestStatement(None, None, None, sigma, df, "no configuration has a completed run yet")
    best = ranked[0].group
    described = _describe(best)
    if len(ranked) == 1:
        return BestStatement(best, None, None, sigma, df, f"only one configuration so far: {described}")
    runner = ranked[1].group
    if sigma is None:
        return BestStatement(best, runner, None, None, 0,
                             f"best {described}; the run-to-run noise is unknown until a configuration has "
                             f"two completed repeats: repeat the top configurations to know how sure this is")
    p = beat_probability(best, runner, sigma, df, goal)
    return BestStatement(best, runner, p, sigma, df,
                         f"best {described}; it beats the runner-up ({_describe(runner)}) with probability "
                         f"{p:.2f} (noise sigma {sigma:.4g} pooled over {df} degrees of freedom)")


def beat_probability(best: RepeatGroup, other: RepeatGroup, sigma: float, df: int, goal: str = "minimize") -> float:
    """P(best's true mean is better than other's) under t_df with the pooled sigma."""
    from scipy.stats import t

    lead = _sign(goal) * (other.mean - best.mean)
    se = sigma * math.sqrt(1 / best.count + 1 / other.count)
    if se == 0:
        return 1.0 if lead > 0 else (0.5 if lead == 0 else 0.0)
    return float(t.cdf(lead / se, df))


def plan_repeats(groups: Sequence[RepeatGroup], top_k: int, seeds: int, study_seed: int,
                 goal: str = "minimize", seed_name: str = "seed", used_seeds: Iterable[int] = (),
                 z: float = Z) -> list[dict[str, Any]]:
    """Flat params to enqueue: the top_k configurations (noise-aware ranking) each with `seeds` new
    values of `seed_name`. Seeds come from SeedSequence([study_seed, group's first trial number, i]),
    skipping any already used, so a second repeat request adds fresh seeds."""
    for name, value, minimum in (("top_k", top_k, 1), ("seeds", seeds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise RepeatError(name, f"must be an integer >= {minimum}, got {value!r}")
    used = set(int(s) for s in used_seeds)
    out = []
    for ranked in rank_configurations(groups, goal, z)[:top_k]:
        g = ranked.group
        i = 0
        new = 0
        while new < seeds:
            seed = int(np.random.SeedSequence([study_seed, g.numbers[0], i]).generate_state(1)[0] % 2**31)
            i += 1
            if seed in used:
                continue
            used.add(seed)
            out.append({**g.params, seed_name: seed})
            new += 1
    return out


def _sign(goal: str) -> float:
    if goal not in ("minimize", "maximize"):
        raise RepeatError("goal", f"must be minimize or maximize, got {goal!r}")
    return 1.0 if goal == "minimize" else -1.0


def _describe(g: RepeatGroup) -> str:
    if g.count == 1:
        return f"{g.mean:.4g} from a single run (trial {g.numbers[0]})"
    return f"{g.mean:.4g} +- {g.std:.2g} over {g.count} runs (trials {', '.join(map(str, g.numbers))})"
