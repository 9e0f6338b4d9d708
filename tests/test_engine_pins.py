"""The engines' private dependencies: bayes_opt is pinned because gp.py uses two private attributes
(see BAYES_OPT_PRIVATE there); hyperopt is used through its public API only. When the installed
library moves underneath, these fail with the library, the version and the attribute to look at."""
from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest

from tuneserve_service.optimizers.gp import BAYES_OPT_PIN, BAYES_OPT_PRIVATE


def _why(attribute: str, installed: str) -> str:
    return (f"bayesian-optimization {installed} is installed, tuneserve is pinned to {BAYES_OPT_PIN}: "
            f"service/optimizers/gp.py uses the private {attribute}, which this version changed or removed; "
            f"check gp.py against the new version before moving the pin in pyproject.toml")


def test_bayes_opt_is_the_pinned_version():
    installed = version("bayesian-optimization")
    assert installed == BAYES_OPT_PIN, _why(" and ".join(BAYES_OPT_PRIVATE), installed)


def test_bayes_opt_private_acquisition_search_has_the_shape_gp_py_overrides():
    from bayes_opt.acquisition import AcquisitionFunction, ExpectedImprovement

    installed = version("bayesian-optimization")
    what = BAYES_OPT_PRIVATE[0]
    assert hasattr(AcquisitionFunction, "_acq_min"), _why(what, installed)
    params = list(inspect.signature(AcquisitionFunction._acq_min).parameters)
    assert params == ["self", "acq", "space", "random_state", "n_random", "n_smart"], _why(what, installed)
    # The public suggest() still reaches it (so the override is what searches).
    assert "self._acq_min(" in inspect.getsource(ExpectedImprovement.suggest) or \
        "self._acq_min(" in inspect.getsource(AcquisitionFunction.suggest), _why(what, installed)


def test_bayes_opt_private_gp_is_the_regressor_suggest_uses():
    from bayes_opt import BayesianOptimization
    from sklearn.gaussian_process import GaussianProcessRegressor

    installed = version("bayesian-optimization")
    opt = BayesianOptimization(f=None, pbounds={"x": (0.0, 1.0)}, verbose=0, random_state=1)
    assert isinstance(getattr(opt, "_gp", None), GaussianProcessRegressor), _why(BAYES_OPT_PRIVATE[1], installed)
    assert "gp=self._gp" in inspect.getsource(BayesianOptimization.suggest), _why(BAYES_OPT_PRIVATE[1], installed)


def test_hyperopt_is_used_through_public_api_only():
    from pathlib import Path

    import tuneserve_service.optimizers as optimizers

    for path in Path(optimizers.__file__).parent.glob("*.py"):
        text = path.read_text()
        if "hyperopt" in text:
            for private in ("_dynamic_trials", "._insert_trial_docs", "trials._"):
                assert private not in text, f"{path.name} uses hyperopt's private {private}"


@pytest.mark.parametrize("count", [1, 3])
def test_the_hyperopt_engine_runs_on_the_installed_hyperopt(count):
    from tuneserve_service.optimizers.base import Observation
    from tuneserve_service.optimizers.registry import get_optimizer
    from tuneserve_service.space import SearchSpace

    space = SearchSpace.from_json([{"name": "x", "distribution": "uniform", "min": 0.0, "max": 1.0}])
    history = [Observation(params={"x": i / 10}, value=(i / 10 - 0.3) ** 2, state="completed") for i in range(10)]
    out = get_optimizer("tpe_hyperopt").suggest(space, history, [], count, seed=3)
    assert len(out) == count and all(0.0 <= s.params["x"] <= 1.0 for s in out), \
        f"hyperopt {version('hyperopt')}: tpe_hyperopt failed"
