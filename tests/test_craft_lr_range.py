"""tuneserve_service.craft.lr_range on hand-made curves and spaces: smoothing, blow-up, the suggestion rule,
narrowing and restoring the lr parameter, the default configuration."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tuneserve_service.craft.lr_range import (
    LrRangeError,
    blowup_index,
    centred_mean,
    default_configuration,
    ema,
    find_lr_parameter,
    narrow_space,
    restore_space,
    suggest_lr,
)
from tuneserve_service.space import parse_parameters


def test_ema_is_bias_corrected():
    assert ema([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])
    # beta 0.5: (0.5 * 2) / 0.5 = 2, then (0.5 * 1 + 0.5 * 0) / 0.75 = 2/3
    assert ema([2.0, 0.0], beta=0.5) == pytest.approx([2.0, 2 / 3])


def test_blowup_index():
    flat = [1.0] * 10
    assert blowup_index(flat + [5.0], beta=0.0) == 10          # 5 > 4 x 1
    assert blowup_index(flat + [3.9], beta=0.0) is None
    assert blowup_index([1.0, 2.0, float("nan"), 1.0]) == 2     # a non-finite loss ends it at once
    assert blowup_index([1.0, 10.0] + flat, beta=0.0) is None   # not before min_steps (10) points
    assert blowup_index([1.0, 10.0] + flat, beta=0.0, min_steps=2) == 1


def test_centred_mean_has_no_lag():
    x = [0.0, 0.1, 0.2, 0.3, 1.0]
    assert centred_mean(x, [1, 2, 3, 4, 5], half_width=0.15) == pytest.approx([1.5, 2.0, 3.0, 3.5, 5.0])


def _sigmoid_curve():
    """201 lrs from 1e-7 to 10 (0.04 decades apart): the loss falls as a sigmoid centred at lr 0.1
    and explodes past lr 10^0.2."""
    x = np.linspace(-7, 1, 201)
    loss = 1.3 + 1.0 / (1.0 + np.exp(4 * (x + 1)))
    loss[x > 0.2 + 1e-9] = 1e3
    return [float(v) for v in 10 ** x], [float(v) for v in loss], x


def test_suggestion_is_the_steepest_descent_of_the_centred_curve():
    lrs, losses, x = _sigmoid_curve()
    s = suggest_lr(lrs, losses)
    assert s.rule == "steepest"
    assert s.points == 181                               # cut at the first exploded point
    assert s.blowup_lr == pytest.approx(10 ** 0.24)
    assert s.lr == pytest.approx(0.1)                    # the sigmoid's centre
    assert s.steepest_lr == s.lr
    assert s.min_loss_lr == pytest.approx(10 ** 0.2)     # the smoothed curve falls to the cut
    assert (s.low, s.high) == (pytest.approx(0.01), pytest.approx(10 ** 0.2))
    assert len(s.smoothed) == 181
    assert s.to_dict() == {"lr": s.lr, "low": s.low, "high": s.high, "rule": "steepest",
                           "steepest_lr": s.steepest_lr, "min_loss_lr": s.min_loss_lr,
                           "blowup_lr": s.blowup_lr, "points": 181}


def test_range_upper_end_is_at_least_three_times_the_lr():
    # A loss that falls until the last point: the minimum sits at the end, far above the steepest
    # point; cut the curve right after the steepest point and the minimum is close to it.
    lrs, losses, x = _sigmoid_curve()
    s = suggest_lr(lrs[:152], losses[:152])
    assert s.min_loss_lr == pytest.approx(lrs[151])
    assert s.high == pytest.approx(3 * s.lr)


def test_the_ema_rules_read_a_lagging_curve():
    lrs, losses, _ = _sigmoid_curve()
    averaged = ema(losses[:181])
    i_min = int(np.argmin(averaged))
    assert suggest_lr(lrs, losses, "min_ema_tenth").lr == pytest.approx(lrs[i_min] / 10)
    slope = np.gradient(averaged, np.log10(lrs[:181]))
    assert suggest_lr(lrs, losses, "steepest_ema").lr == pytest.approx(lrs[int(np.argmin(slope[: i_min + 1]))])
    # The EMA lags: its steepest point sits to the right of the curve's own (0.33 against 0.1 here).
    assert suggest_lr(lrs, losses, "steepest_ema").lr == pytest.approx(10 ** -0.48)


def test_curve_errors_name_the_field():
    lrs, losses, _ = _sigmoid_curve()
    with pytest.raises(LrRangeError) as e:
        suggest_lr(lrs, losses, "valley")
    assert e.value.path == "rule"
    with pytest.raises(LrRangeError) as e:
        suggest_lr(lrs[:5], losses[:4])
    assert e.value.path == "curve" and "same length" in e.value.rule
    bad = list(lrs)
    bad[3] = bad[2]
    with pytest.raises(LrRangeError) as e:
        suggest_lr(bad, losses)
    assert e.value.path == "curve.lr[3]" and "increase" in e.value.rule
    with pytest.raises(LrRangeError) as e:
        suggest_lr(lrs, [1.0] * 5 + [float("nan")] + [1.0] * 195)
    assert e.value.path == "curve" and "only 5 points" in e.value.rule
    with pytest.raises(LrRangeError) as e:
        suggest_lr(lrs[:50], [1.0 + 0.001 * i for i in range(50)])
    assert "never fell" in e.value.rule
    with pytest.raises(LrRangeError) as e:
        suggest_lr(lrs[:50], ["x"] * 50)
    assert e.value.path == "curve.loss[0]"


SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "optimizer": {"parameters": {"name": {"values": ["sgd", "adam"]},
                                 "learning_rate": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.01}}},
    "momentum": {"value": 0.9},
}


def test_narrow_log_range_is_recorded_and_reversible():
    n = narrow_space(SPACE, "lr", 0.01, 0.5)
    assert n.after == {"distribution": "log_uniform_values", "min": 0.01, "max": 0.5}
    assert n.before == SPACE["lr"] and n.original == SPACE
    assert n.parameters == {**SPACE, "lr": n.after}
    assert SPACE["lr"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}  # not mutated
    assert n.to_dict() == {"path": "lr", "before": SPACE["lr"], "after": n.after}
    parse_parameters(n.parameters)  # still a valid space
    assert restore_space(n.parameters, n.to_dict()) == SPACE


def test_narrow_clips_to_the_users_bounds_or_replaces_them():
    assert narrow_space(SPACE, "lr", 0.01, 5.0).after == {"distribution": "log_uniform_values", "min": 0.01, "max": 1.0}
    with pytest.raises(LrRangeError) as e:
        narrow_space(SPACE, "lr", 3.0, 5.0)
    assert e.value.path == "parameters.lr" and "clip=false" in e.value.rule
    assert narrow_space(SPACE, "lr", 3.0, 5.0, clip=False).after == {
        "distribution": "log_uniform_values", "min": 3.0, "max": 5.0}


def test_narrow_other_families():
    nested = narrow_space(SPACE, "optimizer.learning_rate", 0.013, 0.5)
    assert nested.after == {"distribution": "q_uniform", "min": 0.01, "max": 0.5, "q": 0.01}  # outward to q
    assert nested.parameters["optimizer"]["parameters"]["learning_rate"] == nested.after
    exponent = narrow_space({"lr": {"distribution": "log_uniform", "min": -9.2, "max": 0.0}}, "lr", 0.01, 0.5)
    assert exponent.after["min"] == pytest.approx(math.log(0.01)) and exponent.after["max"] == pytest.approx(math.log(0.5))
    inverse = narrow_space({"lr": {"distribution": "inv_log_uniform", "min": 0.0, "max": 9.2}}, "lr", 0.01, 0.5)
    assert inverse.after["min"] == pytest.approx(-math.log(0.5)) and inverse.after["max"] == pytest.approx(-math.log(0.01))
    normal = narrow_space({"lr": {"distribution": "log_normal", "mu": -3, "sigma": 1}}, "lr", 0.01, 0.5)
    assert normal.after == {"distribution": "log_uniform_values", "min": 0.01, "max": 0.5}
    cat = narrow_space({"lr": {"values": [0.001, 0.01, 0.1, 1.0], "probabilities": [0.1, 0.2, 0.3, 0.4]}},
                       "lr", 0.005, 0.5)
    assert cat.after["values"] == [0.01, 0.1]
    assert cat.after["probabilities"] == pytest.approx([0.4, 0.6])


def test_narrow_refusals_name_the_parameter():
    for space, path, why in [
        (SPACE, "momentum", "constant"),
        (SPACE, "nope", "no such parameter"),
        ({"lr": {"min": 1, "max": 10}}, "lr", "integer range"),
        ({"lr": {"values": [1.0, 2.0]}}, "lr", "none of its values"),
    ]:
        with pytest.raises(LrRangeError) as e:
            narrow_space(space, path, 0.01, 0.5)
        assert e.value.path == f"parameters.{path}" and why in e.value.rule
    with pytest.raises(LrRangeError) as e:
        narrow_space(SPACE, "lr", 0.5, 0.01)
    assert e.value.path == "low"
    with pytest.raises(LrRangeError) as e:
        narrow_space(SPACE, "lr", float("nan"), 0.5)
    assert e.value.path == "low"


def test_restore_refuses_over_a_later_change():
    n = narrow_space(SPACE, "lr", 0.01, 0.5)
    changed = {**n.parameters, "lr": {"distribution": "log_uniform_values", "min": 0.02, "max": 0.5}}
    with pytest.raises(LrRangeError) as e:
        restore_space(changed, n.to_dict())
    assert "changed after" in e.value.rule
    with pytest.raises(LrRangeError):
        restore_space(SPACE, {})


def test_find_lr_parameter():
    assert find_lr_parameter(SPACE) == "lr"
    assert find_lr_parameter({"optimizer": SPACE["optimizer"]}) == "optimizer.learning_rate"
    assert find_lr_parameter({"momentum": {"value": 0.9}}) is None


def test_default_configuration():
    space = parse_parameters({
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "depth": {"min": 1, "max": 5},
        "dropout": {"min": 0.0, "max": 0.5},
        "optimizer": {"values": ["sgd", "adam"]},
        "width": {"distribution": "q_uniform", "min": 8, "max": 64, "q": 8},
        "momentum": {"value": 0.9},
        "noise": {"distribution": "normal", "mu": 0.2, "sigma": 1.0},
    })
    got = default_configuration(space)
    assert got["lr"] == pytest.approx(0.01)      # the geometric midpoint
    assert {k: v for k, v in got.items() if k != "lr"} == {
        "depth": 3, "dropout": 0.25, "optimizer": "sgd", "width": 32, "momentum": 0.9, "noise": pytest.approx(0.2)}
    assert space.contains(got)
