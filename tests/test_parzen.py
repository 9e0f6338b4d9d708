"""The multivariate Parzen estimator behind "tpe", and the TPE pieces around it: densities checked
against scipy, samples inside the bounds and distributed as the density says, joint kernels that
keep correlations, the good/bad split, the start-up rule with pending trials."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from tuneserve_service.optimizers._history import model_ready
from tuneserve_service.optimizers.base import Observation
from tuneserve_service.optimizers.parzen import ParzenEstimator, search_bounds, tpe_split
from tuneserve_service.optimizers.tpe import TPEOptimizer, snap
from tuneserve_service.optimizers.tpe_hyperopt import HyperoptTPEOptimizer
from tuneserve_service.space import Dimension, SearchSpace

U01 = Dimension(name="x", distribution="uniform", min=0.0, max=1.0)


def test_one_dimensional_density_is_the_truncated_normal_mixture():
    obs = np.array([[0.2], [0.25], [0.9]])
    est = ParzenEstimator([U01], obs, prior_weight=1.0)
    xs = np.linspace(0.0, 1.0, 7)[:, None]
    # independent reference: scipy's truncnorm per component, mixed with the estimator's weights
    w = np.exp(est.log_weights)
    ref = sum(wk * stats.truncnorm.pdf(xs[:, 0], (0 - m) / s, (1 - m) / s, loc=m, scale=s)
              for wk, m, s in zip(w, est.mu[:, 0], est.sigma[:, 0]))
    np.testing.assert_allclose(np.exp(est.log_pdf(xs)), ref, rtol=1e-9)
    total, _ = integrate.quad(lambda x: float(np.exp(est.log_pdf(np.array([[x]])))[0]), 0, 1)
    assert total == pytest.approx(1.0, abs=1e-6)
    # the prior is the last component: centre of the bounds, the whole range as sigma
    assert est.mu[-1, 0] == 0.5 and est.sigma[-1, 0] == 1.0


def test_a_normal_family_value_beyond_the_bounds_keeps_a_proper_kernel():
    # normal families are searched over mu +- 3 sigma, but a draw (or an enqueued value) can lie
    # far outside: its kernel is truncated to a sliver in its far tail, on either side
    dim = Dimension(name="n", distribution="normal", mu=0.0, sigma=1.0)
    for far in (9.0, -9.0):
        # two values close together out there, many inside: the far kernels are narrow (and
        # latest, so linear forgetting gives them full weight)
        inside = np.linspace(-2.0, 2.0, 60)
        est = ParzenEstimator([dim], np.concatenate([inside, [far, far * 0.999]])[:, None])
        xs = np.linspace(-3.0, 3.0, 2001)[:, None]
        dens = np.exp(est.log_pdf(xs))
        assert np.all(np.isfinite(dens))
        # the far kernels live within ~0.002 of the bound: integrate adaptively
        pdf = lambda x: float(np.exp(est.log_pdf(np.array([[x]])))[0])  # noqa: E731
        total = sum(integrate.quad(pdf, lo, hi, limit=200)[0] for lo, hi in ((-3, -2.9), (-2.9, 2.9), (2.9, 3)))
        assert total == pytest.approx(1.0, abs=0.01)
        draws = est.sample(np.random.default_rng(0), 5000)
        assert draws.min() >= -3.0 and draws.max() <= 3.0
        # and they follow the density
        mean = sum(integrate.quad(lambda x: x * pdf(x), lo, hi, limit=200)[0]
                   for lo, hi in ((-3, -2.9), (-2.9, 2.9), (2.9, 3)))
        assert float(draws.mean()) == pytest.approx(mean, abs=0.05)


def test_bandwidths_follow_the_neighbour_rule_with_the_magic_clip():
    obs = np.array([[0.1], [0.2], [0.6]])
    est = ParzenEstimator([U01], obs)
    # sorted with the bounds as neighbours: 0.1 -> its inner gap 0.1, 0.2 -> max(0.1, 0.4),
    # 0.6 (outermost) -> its inner gap 0.4; floor 1 / min(100, n + 2) = 0.2
    np.testing.assert_allclose(est.sigma[:3, 0], [0.2, 0.4, 0.4])


def test_categorical_kernel_weights_and_probabilities_prior():
    dim = Dimension(name="c", distribution="categorical", values=("a", "b", "c"), probabilities=(0.6, 0.3, 0.1))
    est = ParzenEstimator([dim], np.array([[1.0], [1.0]]), prior_weight=1.0)
    probs = est.cat_probs[0]
    # observed value gets 1 + 1/3, the others 1/3 (prior_weight / 3 components), normalised
    np.testing.assert_allclose(probs[0], np.array([1, 4, 1]) / 6)
    np.testing.assert_allclose(probs[2], [0.6, 0.3, 0.1])   # the prior row is the given probabilities
    total = np.exp(est.log_pdf(np.array([[0.0], [1.0], [2.0]]))).sum()
    assert total == pytest.approx(1.0)


def test_samples_stay_inside_and_follow_the_density():
    dims = [U01, Dimension(name="lr", distribution="log_uniform_values", min=1e-5, max=1e-1),
            Dimension(name="c", distribution="categorical", values=(1, 2, 3, 4))]
    rng = np.random.default_rng(0)
    obs = np.column_stack([rng.uniform(0, 1, 30), rng.uniform(np.log(1e-5), np.log(1e-1), 30),
                           rng.integers(0, 4, 30)]).astype(float)
    est = ParzenEstimator(dims, obs)
    draws = est.sample(np.random.default_rng(1), 20_000)
    lo, hi = np.array([search_bounds(d) for d in dims[:2]]).T
    assert np.all(draws[:, :2] >= lo) and np.all(draws[:, :2] <= hi)
    assert set(np.unique(draws[:, 2])) <= {0.0, 1.0, 2.0, 3.0}
    # the categorical frequencies match the mixture's marginal probabilities
    marginal = np.exp(est.log_weights) @ est.cat_probs[0]
    freq = np.bincount(draws[:, 2].astype(int), minlength=4) / len(draws)
    np.testing.assert_allclose(freq, marginal, atol=0.01)
    # the first coordinate's histogram matches its marginal density (bin averages of a 1-D
    # estimator on the same column: coordinates do not share bandwidths)
    hist, _ = np.histogram(draws[:, 0], bins=10, range=(0, 1), density=True)
    one_d = ParzenEstimator([U01], obs[:, :1])
    fine = np.exp(one_d.log_pdf(((np.arange(1000) + 0.5) / 1000)[:, None]))
    np.testing.assert_allclose(hist, fine.reshape(10, 100).mean(axis=1), rtol=0.08)


def test_joint_kernels_keep_a_correlation_that_per_coordinate_densities_lose():
    # good points lie on the diagonal x = y: a joint density prefers (0.1, 0.1) to (0.1, 0.9);
    # the product of the two marginals cannot tell them apart
    dims = [U01, Dimension(name="y", distribution="uniform", min=0.0, max=1.0)]
    t = np.linspace(0.05, 0.95, 12)
    est = ParzenEstimator(dims, np.column_stack([t, t]))
    on, off = est.log_pdf(np.array([[0.1, 0.1], [0.1, 0.9]]))
    assert on - off > 2.0
    mx = ParzenEstimator([U01], t[:, None])
    my = ParzenEstimator([dims[1]], t[:, None])
    assert mx.log_pdf(np.array([[0.1]]))[0] + my.log_pdf(np.array([[0.1]]))[0] == pytest.approx(
        mx.log_pdf(np.array([[0.1]]))[0] + my.log_pdf(np.array([[0.9]]))[0], abs=1e-9)


def test_integers_and_quantized_values_own_full_bins_and_are_snapped():
    i = Dimension(name="i", distribution="int_uniform", min=1, max=5)
    q = Dimension(name="q", distribution="q_uniform", min=0.0, max=1.0, q=0.25)
    assert search_bounds(i) == (0.5, 5.5) and search_bounds(q) == (-0.125, 1.125)
    snapped = snap([i, q], np.array([[0.6, 1.1], [3.49, 0.3]]))
    np.testing.assert_allclose(snapped, [[1.0, 1.0], [3.0, 0.25]])


def test_split_counts_observations_not_liars():
    losses = np.array([5.0, 1.0, 3.0, 2.0, 9.0, 9.0, 9.0])   # the last three are liars
    assert list(tpe_split(losses, gamma=0.5, cap=25, n_real=4)) == [1, 3]
    assert list(tpe_split(losses, gamma=0.5, cap=1, n_real=4)) == [1]
    assert list(tpe_split(losses[:1], gamma=0.01, cap=25)) == [0]   # never empty


def test_pending_trials_fill_the_start_up_design_once_three_results_are_in():
    assert not model_ready(n_completed=2, n_pending=8, n_startup=10)
    assert model_ready(n_completed=3, n_pending=7, n_startup=10)
    assert not model_ready(n_completed=3, n_pending=6, n_startup=10)
    assert model_ready(n_completed=10, n_pending=0, n_startup=10)


def _valley_history(n: int, seed: int = 0) -> tuple[SearchSpace, list[Observation]]:
    space = SearchSpace(tuple(Dimension(name=f"x{k}", distribution="uniform", min=-2.0, max=2.0) for k in range(2)))
    rng = np.random.default_rng(seed)
    hist = []
    for _ in range(n):
        p = space.sample(rng)
        hist.append(Observation(p, 100 * (p["x1"] - p["x0"] ** 2) ** 2 + (1 - p["x0"]) ** 2))
    return space, hist


def test_tpe_searches_along_a_curved_valley_better_than_hyperopt():
    # Rosenbrock's valley: good points satisfy x1 ~ x0^2, a relation between the coordinates
    space, hist = _valley_history(60)
    def off_valley(opt):
        out = opt.suggest(space, hist, [], 16, seed=3)
        return float(np.median([abs(s.params["x1"] - s.params["x0"] ** 2) for s in out]))
    assert off_valley(TPEOptimizer()) < off_valley(HyperoptTPEOptimizer())


def test_start_up_counts_pending_trials_for_tpe():
    space, hist = _valley_history(3)
    pending = [space.sample(np.random.default_rng(10 + k)) for k in range(7)]
    [s] = TPEOptimizer().suggest(space, hist, pending, 1, seed=1)
    assert s.method == "tpe" and s.info["n_pending"] == 7
    [s] = TPEOptimizer().suggest(space, hist, pending[:6], 1, seed=1)
    assert s.method == "random" and s.info["phase"] == "startup"
