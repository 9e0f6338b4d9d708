"""GP-only behaviour: every pending-point liar keeps concurrent suggestions apart and deterministic.
The tests both model-based engines share are in test_model_optimizers.py."""
from __future__ import annotations

import numpy as np
import pytest

from tuneserve_service.optimizers.gp import GPOptimizer
from tuneserve_service.space import Dimension, SearchSpace
from tests.test_model_optimizers import _history


@pytest.mark.parametrize("liar", ["believer", "mean", "min"])
def test_every_liar_keeps_pending_suggestions_apart_and_deterministic(liar):
    space = SearchSpace(tuple(Dimension(name=f"x{i}", distribution="uniform", min=0.0, max=1.0) for i in range(3)))
    hist = _history(space, 20, lambda p: sum((v - 0.3) ** 2 for v in p.values()))
    a = [s.params for s in GPOptimizer(liar=liar).suggest(space, hist, [], 4, seed=7)]
    b = [s.params for s in GPOptimizer(liar=liar).suggest(space, hist, [], 4, seed=7)]
    assert a == b
    U = np.vstack([space.to_unit(p) for p in a])
    d = np.linalg.norm(U[:, None] - U[None], axis=2) + np.eye(4) * 9
    assert d.min() > 0.02 * np.sqrt(3)
    assert all(space.contains(p) for p in a)


def test_unknown_liar_is_rejected():
    with pytest.raises(ValueError):
        GPOptimizer(liar="max")
