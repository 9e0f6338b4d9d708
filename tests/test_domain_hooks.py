"""The hook list: the features in force are the declared list, in its order, and each hook point
calls them in that order."""
from __future__ import annotations

import pytest

import tuneserve_service.domain  # noqa: F401 - installs the features
from tuneserve_service.domain.core import hooks
from tuneserve_service.domain.features import FEATURES


def test_the_declared_list_is_in_force_in_its_order():
    assert hooks.installed() == FEATURES
    assert [f.name for f in FEATURES] == ["gates", "stages", "refine", "repeats", "diagnoses", "reruns",
                                          "multiobjective"]


def test_a_hook_point_calls_the_features_in_order_and_chains_their_results():
    calls = []
    first = hooks.Feature("a", on_claimed=lambda s, rows: calls.append("a") or rows + [1],
                          advice=lambda s, st: ["a"])
    second = hooks.Feature("b", on_claimed=lambda s, rows: calls.append("b") or rows + [2],
                           advice=lambda s, st: ["b"])
    try:
        hooks.install([first, second])
        assert hooks.on_claimed(None, []) == [1, 2] and calls == ["a", "b"]
        assert hooks.advice(None, None) == ["a", "b"]
        assert hooks.serve(None, "header") == "header"  # no feature serves: the study itself
        with pytest.raises(ValueError):
            hooks.install([first, first])
    finally:
        hooks.install(FEATURES)
