"""Pruners: the none/median/ASHA/Hyperband decisions on realistic loss curves, and the config layer
(native and W&B `early_terminate` blocks, validation messages, JSON storage)."""
from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from tuneserve_service.pruners import (
    PRUNER_TYPES,
    ASHAPruner,
    Curve,
    HyperbandPruner,
    MedianPruner,
    WandbHyperbandPruner,
    NoPruner,
    PrunerConfig,
    build_pruner,
    parse_pruner,
    pruner_from_wandb,
)


def loss_curve(trial_id: int, start: float, floor: float, tau: float, epochs: int,
               state: str = "running", noise: float = 0.02, seed: int | None = None) -> Curve:
    """A CNN-like validation loss: exponential decay from `start` to `floor`, with noise."""
    rng = random.Random(trial_id if seed is None else seed)
    values = {t: floor + (start - floor) * math.exp(-t / tau) + rng.gauss(0.0, noise)
              for t in range(1, epochs + 1)}
    return Curve(trial_id, values, state)


def accuracy_curve(trial_id: int, ceiling: float, epochs: int, state: str = "running") -> Curve:
    rng = random.Random(trial_id)
    values = {t: ceiling * (1 - math.exp(-t / 2.0)) + rng.gauss(0.0, 0.01) for t in range(1, epochs + 1)}
    return Curve(trial_id, values, state)


def good_peers(n: int = 6, epochs: int = 10, first_id: int = 100) -> list[Curve]:
    """Completed trials whose loss falls from ln(10) ~ 2.3 to about 0.3."""
    return [loss_curve(first_id + i, 2.3, 0.25 + 0.02 * i, 2.0, epochs, state="completed")
            for i in range(n)]


def at_rung(trial_id: int, value: float, state: str = "running") -> Curve:
    """A trial that has just reported step 1 (the first rung in the ASHA tests below)."""
    return Curve(trial_id, {1: value}, state)


# --- none ---------------------------------------------------------------------------------------

def test_none_pruner_never_stops_even_a_diverging_curve():
    pruner = build_pruner(pruner_from_wandb(None))
    assert isinstance(pruner, NoPruner)
    awful = Curve(1, {t: 2.3 + t for t in range(1, 30)})
    for step in range(1, 30):
        assert pruner.decide(awful.until(step), good_peers(), "minimize").stop is False


# --- median -------------------------------------------------------------------------------------

def test_median_stops_a_stalled_curve_and_keeps_a_good_one():
    pruner = MedianPruner(grace_period=2, n_startup_trials=5, min_trials=3)
    peers = good_peers()
    stalled = loss_curve(1, 2.3, 1.8, 8.0, 4)          # lr too small: the loss barely moves
    good = loss_curve(2, 2.3, 0.2, 1.5, 4)
    decision = pruner.decide(stalled, peers, "minimize")
    assert decision.stop is True
    assert "median" in decision.reason and "running averages" in decision.reason
    assert pruner.decide(good, peers, "minimize").stop is False


def test_median_respects_the_grace_period():
    pruner = MedianPruner(grace_period=3, n_startup_trials=5, min_trials=3)
    stalled = loss_curve(1, 2.3, 1.8, 8.0, 5)
    peers = good_peers()
    for step in (1, 2):
        decision = pruner.decide(stalled.until(step), peers, "minimize")
        assert decision.stop is False and "grace period" in decision.reason
    assert pruner.decide(stalled.until(3), peers, "minimize").stop is True


def test_median_uses_the_goal_maximize():
    pruner = MedianPruner(grace_period=2, n_startup_trials=5, min_trials=3)
    peers = [accuracy_curve(100 + i, 0.9 + 0.01 * i, 10, "completed") for i in range(6)]
    assert pruner.decide(accuracy_curve(1, 0.3, 4), peers, "maximize").stop is True
    assert pruner.decide(accuracy_curve(2, 0.97, 4), peers, "maximize").stop is False
    # The same low-accuracy curve read as a loss to minimise is the best of the study.
    assert pruner.decide(accuracy_curve(1, 0.3, 4), peers, "minimize").stop is False


def test_median_waits_for_completed_trials_and_for_peers_at_the_step():
    pruner = MedianPruner(grace_period=1, n_startup_trials=5, min_trials=3)
    stalled = loss_curve(1, 2.3, 1.8, 8.0, 8)
    decision = pruner.decide(stalled, good_peers(n=3), "minimize")
    assert decision.stop is False and "3 of 5 trials completed" in decision.reason
    # Peers that stopped at step 5 cannot say anything about step 8.
    short_peers = good_peers(n=6, epochs=5)
    decision = pruner.decide(stalled, short_peers, "minimize")
    assert decision.stop is False and "peers reached step 8" in decision.reason


def test_median_compare_best_is_stricter_than_running_average():
    # Peers fall fast from 2.3 to 0.3: by step 4 their running average is ~0.59, their best ~0.34.
    peers = [loss_curve(100 + i, 2.3, 0.3, 1.0, 10, "completed", noise=0.0) for i in range(5)]
    middling = Curve(1, {1: 2.0, 2: 1.2, 3: 0.7, 4: 0.45})
    assert MedianPruner(grace_period=1, n_startup_trials=5).decide(middling, peers, "minimize").stop is False
    decision = MedianPruner(grace_period=1, n_startup_trials=5, compare="best").decide(
        middling, peers, "minimize")
    assert decision.stop is True and "best values" in decision.reason


# --- ASHA ---------------------------------------------------------------------------------------

def test_asha_keeps_the_top_third_at_a_rung_and_stops_the_rest():
    pruner = ASHAPruner(grace_period=1, reduction_factor=3)
    peers = [at_rung(100 + i, v) for i, v in enumerate([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])]
    # With the trial, 9 trials are at rung 1: the best 9 // 3 = 3 continue.
    assert pruner.decide(at_rung(1, 0.65), peers, "minimize").stop is False    # 3rd of 9
    decision = pruner.decide(at_rung(1, 0.75), peers, "minimize")              # 4th of 9
    assert decision.stop is True and "ranks 4 of 9" in decision.reason
    assert pruner.decide(at_rung(1, 0.3), peers, "minimize").stop is False     # 1st of 9


def test_asha_ranks_realistic_curves_at_the_rung_crossing():
    pruner = ASHAPruner(grace_period=2, reduction_factor=3, max_resource=20)
    peers = good_peers(n=5, epochs=6)
    fast = loss_curve(1, 2.3, 0.1, 0.8, 2)
    stalled = loss_curve(2, 2.3, 2.0, 10.0, 2)
    assert pruner.decide(fast, peers, "minimize").stop is False
    assert pruner.decide(stalled, peers, "minimize").stop is True
    assert pruner.decide(stalled.until(1), peers, "minimize").stop is False   # before the first rung


def test_asha_continues_with_fewer_than_eta_trials_at_the_rung():
    pruner = ASHAPruner(grace_period=1, reduction_factor=3)
    decision = pruner.decide(at_rung(1, 9.0), [at_rung(2, 0.5)], "minimize")
    assert decision.stop is False and "fewer than 3" in decision.reason


def test_asha_judges_a_trial_once_per_rung():
    pruner = ASHAPruner(grace_period=1, reduction_factor=3)
    # Passed rung 1 when it was early; many better trials arrived at rung 1 since.
    trial = Curve(1, {1: 1.0, 2: 0.9})
    better_at_rung_1 = [at_rung(100 + i, 0.5 + 0.01 * i) for i in range(8)]
    assert pruner.decide(trial, better_at_rung_1, "minimize").stop is False
    # At rung 3 it meets trials that did better there, and stops.
    better_at_rung_3 = [Curve(200 + i, {1: 0.6, 2: 0.5, 3: 0.4 + 0.01 * i}) for i in range(5)]
    trial = Curve(1, {1: 1.0, 2: 0.9, 3: 0.8})
    assert pruner.decide(trial, better_at_rung_1 + better_at_rung_3, "minimize").stop is True


def test_asha_judges_a_rung_crossed_by_a_report_that_skips_steps():
    pruner = ASHAPruner(grace_period=3, reduction_factor=2)
    peers = [Curve(100 + i, {3: 0.4 + 0.01 * i}) for i in range(3)]
    trial = Curve(1, {1: 2.0, 5: 0.9})       # reported every few epochs; step 5 is past rung 3
    decision = pruner.decide(trial, peers, "minimize")
    assert decision.stop is True and "rung 3" in decision.reason


def test_asha_maximize_and_no_rung_at_max_resource():
    pruner = ASHAPruner(grace_period=1, reduction_factor=2, max_resource=4)
    assert pruner.rungs(100) == [1, 2]
    peers = [accuracy_curve(100 + i, 0.9, 4, "completed") for i in range(3)]
    assert pruner.decide(accuracy_curve(1, 0.3, 2), peers, "maximize").stop is True
    assert pruner.decide(accuracy_curve(2, 0.99, 2), peers, "maximize").stop is False


# --- Hyperband ----------------------------------------------------------------------------------

def test_hyperband_bracket_assignment_is_deterministic_and_weighted():
    a = HyperbandPruner.from_options({"min_resource": 1, "reduction_factor": 3, "max_resource": 27})
    b = build_pruner(parse_pruner({"type": "hyperband", "max_resource": 27}))
    assert a.brackets == 4 and a.bracket_weights() == [27, 12, 6, 4]
    ids = range(1, 2001)
    assert [a.bracket_of(i) for i in ids] == [b.bracket_of(i) for i in ids]
    counts = Counter(a.bracket_of(i) for i in ids)
    # Cheap brackets get more trials, in the paper's proportions (27:12:6:4 of 49).
    assert counts[0] > counts[1] > counts[2] and counts[3] > 0
    assert abs(counts[0] / 2000 - 27 / 49) < 0.05
    # Ids that interleave with other studies' (every third) still use every bracket.
    assert set(a.bracket_of(i) for i in range(3, 600, 3)) == {0, 1, 2, 3}


def _ids_in(pruner: HyperbandPruner, bracket: int, count: int, start: int = 1) -> list[int]:
    ids = [i for i in range(start, start + 5000) if pruner.bracket_of(i) == bracket]
    return ids[:count]


def test_hyperband_compares_only_within_the_bracket():
    pruner = HyperbandPruner.from_options({"min_resource": 1, "reduction_factor": 3, "max_resource": 27})
    trial_id, *own = _ids_in(pruner, 0, 4)
    others = _ids_in(pruner, 1, 8)
    much_better_elsewhere = [loss_curve(i, 1.0, 0.1, 1.0, 9, "completed") for i in others]
    trial = Curve(trial_id, {1: 2.2})
    decision = pruner.decide(trial, much_better_elsewhere, "minimize")
    assert decision.stop is False and "bracket 0" in decision.reason
    better_in_bracket = [Curve(i, {1: 1.0}) for i in own]
    decision = pruner.decide(trial, much_better_elsewhere + better_in_bracket, "minimize")
    assert decision.stop is True and "bracket 0" in decision.reason


def test_hyperband_brackets_start_later_and_the_last_never_stops():
    pruner = HyperbandPruner.from_options({"min_resource": 1, "reduction_factor": 3, "max_resource": 27})
    assert pruner.bracket_rungs(0, 27) == [1, 3, 9]
    assert pruner.bracket_rungs(1, 27) == [3, 9]
    assert pruner.bracket_rungs(3, 27) == []
    for bracket, step in ((1, 1), (3, 1), (3, 9)):
        trial_id, *peer_ids = _ids_in(pruner, bracket, 10)
        peers = [loss_curve(i, 2.3, 0.1, 1.0, step, "completed") for i in peer_ids]
        awful = Curve(trial_id, {t: 5.0 for t in range(1, step + 1)})
        assert pruner.decide(awful, peers, "minimize").stop is False


# --- contract over every pruner type ------------------------------------------------------------

@pytest.mark.parametrize("block", [
    {"type": "none"},
    {"type": "median", "grace_period": 1},
    {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    {"type": "hyperband", "max_resource": 8, "reduction_factor": 2},
    {"type": "hyperband", "min_iter": 1, "eta": 2},
    {"type": "hyperband", "max_iter": 9, "s": 2, "eta": 1.5, "strict": False},
])
def test_every_pruner_keeps_the_leader_and_an_empty_curve(block):
    pruner = build_pruner(parse_pruner(block))
    peers = [loss_curve(100 + i, 2.3, 0.4 + 0.05 * i, 2.0, 10, "completed") for i in range(12)]
    assert pruner.decide(Curve(1, {}), peers, "minimize").stop is False
    leader = loss_curve(1, 2.3, 0.05, 0.7, 10, noise=0.0)
    for step in range(1, 11):
        assert pruner.decide(leader.until(step), peers, "minimize").stop is False
    with pytest.raises(ValueError, match="goal"):
        pruner.decide(leader, peers, "lowest")


# --- config: W&B and native blocks --------------------------------------------------------------

def test_wandb_blocks_run_on_wandbs_engine():
    config = pruner_from_wandb({"type": "hyperband", "min_iter": 3, "eta": 3})
    assert config.type == "hyperband" and config.options == {"min_iter": 3, "eta": 3, "strict": True}
    pruner = build_pruner(config)
    assert isinstance(pruner, WandbHyperbandPruner) and pruner.bands[:4] == (3, 9, 27, 81)
    # The same keys in a native `pruner` block mean the same engine.
    assert parse_pruner({"type": "hyperband", "max_iter": 27, "s": 2}) == PrunerConfig(
        "hyperband", {"max_iter": 27, "s": 2, "eta": 3, "strict": True})


def test_wandb_strict_false_ranks_the_best_value_so_far():
    peers = [Curve(100 + i, {1: 1.0, 2: 0.6 + 0.01 * i}, "completed") for i in range(3)]
    noisy = Curve(1, {1: 0.5, 2: 0.8})          # a noisy epoch at the band, after a good one
    strict = build_pruner(pruner_from_wandb({"type": "hyperband", "min_iter": 2, "eta": 2}))
    lenient = build_pruner(pruner_from_wandb({"type": "hyperband", "min_iter": 2, "eta": 2,
                                              "strict": False}))
    assert strict.decide(noisy, peers, "minimize").stop is True
    assert lenient.decide(noisy, peers, "minimize").stop is False


def test_native_blocks_are_accepted_and_normalised():
    asha = parse_pruner({"type": "asha", "grace_period": 2, "reduction_factor": 3, "max_resource": 20})
    assert asha.options == {"grace_period": 2, "reduction_factor": 3, "max_resource": 20, "strict": True}
    assert parse_pruner({"type": "asha", "min_resource": 2, "eta": 3}).options["grace_period"] == 2
    median = parse_pruner({"type": "median"})
    assert median.options == {"grace_period": 2, "n_startup_trials": 5, "min_trials": 3, "compare": "mean"}
    assert isinstance(build_pruner(median), MedianPruner)
    assert isinstance(build_pruner(asha), ASHAPruner)


@pytest.mark.parametrize("block", [
    {"type": "none"},
    {"type": "median", "compare": "best"},
    {"type": "asha", "grace_period": 2, "max_resource": 20},
    {"type": "hyperband", "max_resource": 81},
    {"type": "hyperband", "max_iter": 20, "s": 3, "eta": 2},
    {"type": "hyperband", "min_iter": 2, "strict": False},
    {"type": "hyperband", "min_iter": 1, "eta": 1.5},
    {"type": "hyperband", "min_iter": 2, "max_iter": 30},
])
def test_config_round_trips_through_json_and_parses_to_itself(block):
    config = parse_pruner(block)
    stored = config.to_json()
    again = PrunerConfig.from_json(stored)
    assert again == config
    assert PrunerConfig.from_json(config.to_dict()) == config
    assert parse_pruner(again.to_dict()) == config        # normalising is idempotent
    assert type(build_pruner(again)) is type(build_pruner(config))


@pytest.mark.parametrize("block, message", [
    ({"type": "hyperband", "min_iter": 3, "eta": 1}, "early_terminate.eta: must be a number > 1"),
    ({"type": "hyperband", "min_iter": 3, "eta": True}, "early_terminate.eta: must be a number"),
    ({"type": "hyperband", "min_iter": 0}, "early_terminate.min_iter: must be an integer >= 1"),
    ({"type": "hyperband", "min_iter": 2.5}, "early_terminate.min_iter: must be an integer"),
    ({"type": "hyperband", "max_iter": 27}, "early_terminate.s: required with max_iter"),
    ({"type": "hyperband", "max_iter": 2, "s": 2, "eta": 3}, "early_terminate: no band >= 1"),
    ({"type": "hyperband", "max_iter": 27, "s": 0}, "early_terminate: no band >= 1"),
    ({"type": "hyperband", "max_iter": 27, "s": 2.5}, "early_terminate.s: must be a whole number"),
    ({"type": "hyperband", "min_iters": 3}, "early_terminate.min_iters: not a W&B hyperband key"),
    ({"type": "hyperband", "min_iter": 3, "strict": "yes"}, "early_terminate.strict: must be true or false"),
    ({"type": "hyperband"}, "early_terminate: hyperband needs min_iter, or max_iter with s"),
    ({"type": "hyperband", "max_resource": 27}, "early_terminate.max_resource: not a W&B hyperband key"),
    ({"type": "bohb"}, "early_terminate.type: must be 'hyperband'"),
    ({"type": "asha", "grace_period": 2}, "tuneserve's own pruners (median, asha, hyperband) go in `pruner`"),
    ({"min_iter": 3}, "early_terminate.type: must be 'hyperband'"),
    ("hyperband", "early_terminate: must be a mapping"),
])
def test_invalid_wandb_blocks_name_the_option_and_the_rule(block, message):
    with pytest.raises(ValueError) as err:
        pruner_from_wandb(block)
    assert message in str(err.value)


@pytest.mark.parametrize("block, message", [
    ({"type": "bohb"}, "pruner.type: unknown pruner 'bohb'; valid types are none, median, asha, hyperband"),
    ({"min_iter": 3}, "pruner.type: required"),
    ({"type": "none", "eta": 3}, "pruner.eta: unknown option"),
    ({"type": "asha", "grace_period": 5, "max_resource": 5}, "pruner.max_resource: must be greater than grace_period"),
    ({"type": "asha", "eta": 3, "reduction_factor": 3}, "pruner.eta: same as reduction_factor"),
    ({"type": "median", "compare": "mode"}, "pruner.compare: must be one of mean, best"),
    ({"type": "hyperband", "max_resource": 27, "brackets": 5}, "pruner.brackets: must be between 1 and 4"),
    ({"type": "hyperband"}, "pruner.max_resource: required for hyperband"),
    ({"type": "hyperband", "min_iter": 3, "eta": 0.5}, "pruner.eta: must be a number > 1"),
])
def test_invalid_native_blocks_name_the_option_and_the_rule(block, message):
    with pytest.raises(ValueError) as err:
        parse_pruner(block)
    assert message in str(err.value)


def test_build_pruner_revalidates_stored_configs():
    assert PRUNER_TYPES == ("none", "median", "asha", "hyperband")
    with pytest.raises(ValueError, match=r"pruner\.reduction_factor: must be an integer >= 2"):
        build_pruner(PrunerConfig("asha", {"reduction_factor": 1}))
    with pytest.raises(ValueError, match=r"pruner\.type: unknown pruner 'pbt'"):
        build_pruner(PrunerConfig.from_json('{"type": "pbt"}'))
