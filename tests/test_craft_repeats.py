"""tuneserve_service.craft.repeats: grouping by configuration, the pooled noise, the noise-aware ranking (a
single lucky run no longer wins), how sure the best is, and the repeat plan's seeds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from tuneserve_service.craft.repeats import (
    RepeatError,
    beat_probability,
    best_configuration,
    config_key,
    group_repeats,
    plan_repeats,
    pooled_sigma,
    rank_configurations,
)
from tuneserve_service.craft.trials import TrialResult

A = {"lr": 0.1, "width": 16}
B = {"lr": 0.01, "width": 16}
C = {"lr": 0.03, "width": 32}


def runs(*spec):
    return [TrialResult(i, {**params, "seed": i}, value, state) for i, (params, value, state) in enumerate(spec)]


def test_config_key_ignores_the_seed_and_compares_json_values():
    assert config_key({"lr": 0.1, "seed": 1}) == config_key({"seed": 2, "lr": 0.1})
    assert config_key({"n": 1}) == config_key({"n": 1.0})
    assert config_key({"n": 1}) != config_key({"n": True})
    assert config_key({"lr": 0.1, "s": 1}, seed_names=("s",)) == config_key({"lr": 0.1, "s": 9}, seed_names=("s",))
    assert len(config_key(A)) == 32


def test_group_repeats():
    groups = group_repeats(runs((A, 1.0, "completed"), (B, 2.0, "completed"), (A, 1.2, "completed"),
                                (A, None, "diverged"), (B, 1.5, "pruned"), (C, float("nan"), "completed")))
    assert [g.params for g in groups] == [A, B, C]
    a, b, c = groups
    assert a.numbers == (0, 2, 3) and a.values == (1.0, 1.2) and a.failures == 1
    assert a.count == 2 and a.mean == pytest.approx(1.1) and a.std == pytest.approx(math.sqrt(0.02))
    assert b.numbers == (1, 4) and b.values == (2.0,) and b.failures == 0 and b.std is None
    assert c.values == () and c.failures == 1 and c.mean is None
    assert a.to_dict() == {"key": config_key(A), "params": A, "trials": [0, 2, 3], "count": 2,
                           "mean": a.mean, "std": a.std, "failures": 1}


def test_pooled_sigma():
    groups = group_repeats(runs((A, 1.0, "completed"), (A, 1.2, "completed"),
                                (B, 2.0, "completed"), (B, 2.4, "completed"), (B, 2.2, "completed"),
                                (C, 0.5, "completed")))
    sigma, df = pooled_sigma(groups)
    assert df == 3
    assert sigma == pytest.approx(math.sqrt((1 * 0.02 + 2 * 0.04) / 3))
    assert pooled_sigma(group_repeats(runs((A, 1.0, "completed")))) == (None, 0)


def test_a_single_lucky_run_no_longer_wins():
    # A: 1.0 and 1.2 (mean 1.1, n 2); B: 1.3 and 1.5 (s^2 0.02 too), so sigma = sqrt(0.02) = 0.1414.
    # C ran once at 1.05: better than A's mean, but by less than sigma * (1 - 1/sqrt 2) = 0.0414? No:
    # by 0.05 > 0.0414, so C still wins; at 1.07 (0.03 better) it no longer does.
    base = [(A, 1.0, "completed"), (A, 1.2, "completed"), (B, 1.3, "completed"), (B, 1.5, "completed")]
    sigma = math.sqrt(0.02)
    wins = rank_configurations(group_repeats(runs(*base, (C, 1.05, "completed"))))
    assert [r.group.params for r in wins] == [C, A, B]
    assert wins[0].score == pytest.approx(1.05 + sigma) and wins[1].score == pytest.approx(1.1 + sigma / math.sqrt(2))
    loses = rank_configurations(group_repeats(runs(*base, (C, 1.07, "completed"))))
    assert [r.group.params for r in loses] == [A, C, B]
    assert [r.rank for r in loses] == [1, 2, 3]
    # Without the penalty (z = 0) the lucky run wins again: the plain best.
    assert rank_configurations(group_repeats(runs(*base, (C, 1.07, "completed"))), z=0)[0].group.params == C


def test_maximize_failures_and_unknown_noise():
    groups = group_repeats(runs((A, 0.9, "completed"), (A, 0.8, "completed"), (B, 0.95, "completed"),
                                (B, None, "failed"), (C, 0.7, "completed")))
    ranked = rank_configurations(groups, goal="maximize")
    # sigma = std(0.9, 0.8) = 0.0707: A scores 0.85 - 0.0707 / sqrt 2 = 0.80, C 0.7 - 0.0707 = 0.63;
    # B failed once: last whatever its mean.
    assert [r.group.params for r in ranked] == [A, C, B]
    assert ranked[0].score == pytest.approx(0.85 - math.sqrt(0.005) / math.sqrt(2))
    # No configuration has two values: no noise estimate, ranking by mean.
    plain = rank_configurations(group_repeats(runs((A, 0.5, "completed"), (B, 0.4, "completed"))))
    assert [r.group.params for r in plain] == [B, A] and plain[0].score == 0.4


def test_best_configuration_and_how_sure():
    spec = [(A, 1.0, "completed"), (A, 1.2, "completed"), (B, 1.3, "completed"), (B, 1.5, "completed")]
    best = best_configuration(group_repeats(runs(*spec)))
    sigma = math.sqrt(0.02)
    expected = student_t.cdf((1.4 - 1.1) / (sigma * math.sqrt(1 / 2 + 1 / 2)), 2)
    assert best.best.params == A and best.runner_up.params == B
    assert best.probability == pytest.approx(expected) and best.df == 2 and best.sigma == pytest.approx(sigma)
    assert "beats the runner-up" in best.statement and f"{expected:.2f}" in best.statement
    assert best.to_dict()["probability_beats_runner_up"] == best.probability
    unknown = best_configuration(group_repeats(runs((A, 1.0, "completed"), (B, 1.3, "completed"))))
    assert unknown.best.params == A and unknown.probability is None and "unknown" in unknown.statement
    assert best_configuration([]).best is None
    alone = best_configuration(group_repeats(runs((A, 1.0, "completed"))))
    assert alone.runner_up is None and "only one configuration" in alone.statement


def test_beat_probability_edges():
    groups = group_repeats(runs((A, 1.0, "completed"), (A, 1.0, "completed"), (B, 2.0, "completed"),
                                (B, 2.0, "completed")))
    a, b = groups
    assert beat_probability(a, b, 0.0, 2) == 1.0
    assert beat_probability(b, a, 0.0, 2) == 0.0
    assert beat_probability(a, a, 0.0, 2) == 0.5
    assert beat_probability(a, b, 1.0, 2, goal="maximize") == pytest.approx(student_t.cdf(-1.0, 2))


def test_plan_repeats_seeds():
    groups = group_repeats(runs((A, 1.0, "completed"), (B, 2.0, "completed"), (C, 3.0, "completed")))
    first = int(np.random.SeedSequence([7, 0, 0]).generate_state(1)[0] % 2**31)
    second = int(np.random.SeedSequence([7, 0, 1]).generate_state(1)[0] % 2**31)
    third = int(np.random.SeedSequence([7, 0, 2]).generate_state(1)[0] % 2**31)
    b_first = int(np.random.SeedSequence([7, 1, 0]).generate_state(1)[0] % 2**31)
    plan = plan_repeats(groups, top_k=2, seeds=2, study_seed=7)
    assert plan == [{**A, "seed": first}, {**A, "seed": second}, {**B, "seed": b_first},
                    {**B, "seed": int(np.random.SeedSequence([7, 1, 1]).generate_state(1)[0] % 2**31)}]
    again = plan_repeats(groups, top_k=1, seeds=2, study_seed=7, used_seeds=[first])
    assert again == [{**A, "seed": second}, {**A, "seed": third}]
    for kwargs, path in [({"top_k": 0, "seeds": 1}, "top_k"), ({"top_k": 1, "seeds": 0}, "seeds")]:
        with pytest.raises(RepeatError) as e:
            plan_repeats(groups, study_seed=7, **kwargs)
        assert e.value.path == path
    with pytest.raises(RepeatError) as e:
        rank_configurations(groups, goal="best")
    assert e.value.path == "goal"
