"""Diagnosis of real runs of the built-in trainer on CPU with the fault planted in the configuration
(benchmarks/diagnosis.py's real cases, at the small size): each must be named as planted."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diagnosis as bench  # noqa: E402

CASES = bench.real_cases(small=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Issue 17's rule: no overfitting while the raw validation loss sets a new minimum at the last
# report. This planted run's validation loss still falls at epoch 40 (0.466 -> 0.460) while training
# sits at 0.002: the gap is real, but the rule wins, and benchmarks/diagnosis.py counts it as a miss.
STILL_IMPROVING = {"digits 5%, no regularisation, 40 epochs"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xfail(
    reason="validation still at a new minimum at the last report: not overfitting by issue 17", strict=True))
    if c.name in STILL_IMPROVING else c for c in CASES], ids=[c.name for c in CASES])
def test_real_run_is_named_as_planted(case):
    d = bench.train(case).diagnose()
    assert bench.named(d) == case.truth, (d, case.reports[-3:], case.fail_reason)
    if case.state == "diverged":
        assert d.label == "diverged"


def test_every_problem_but_plateau_has_a_real_run():
    # plateaus are planted as curves only: no configuration of the built-in trainer gives a clean one
    # (its plateau schedule cuts the lr exactly when the loss stalls)
    assert {c.truth for c in CASES} == set(bench.FAULTS) - {"plateau"}
    assert {"digits", "shapes"} <= {("shapes" if "shapes" in c.params.get("dataset", "") else "digits") for c in CASES}
