"""The botorch engine beyond the contract suite (tests/test_optimizer_contract.py): mixed spaces with
pending trials, repeats, warm starts and draw-ahead through REST, one study run by a worker daemon
against a live server, and the 422 a server without the [botorch] extra answers.

Its search is made small here (2 restarts of 32 raw samples): these tests check what comes out and
where it goes, benchmarks/optimizer_quality.py checks how good it is."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.helpers import claim, make_study, study_body, wait_for
from tuneserve_service.optimizers import botorch_engine
from tuneserve_service.optimizers.base import Observation
from tuneserve_service.space import parse_parameters

needs_botorch = pytest.mark.skipif(not botorch_engine.available(), reason="botorch is not installed (extra [botorch])")

MIXED = parse_parameters({
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "layers": {"min": 1, "max": 4},
    "batch": {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 16},
    "act": {"values": ["relu", "gelu", "tanh"]},
    "opt": {"parameters": {"name": {"values": ["sgd", "adam"]}, "momentum": {"value": 0.9}}},
})


def small(**kw) -> botorch_engine.BoTorchOptimizer:
    return botorch_engine.BoTorchOptimizer(num_restarts=2, raw_samples=32, maxiter=20, fit_maxiter=30,
                                           mc_samples=32, **kw)


def loss(p: dict) -> float:
    # Best at lr 1e-3, 2 layers, batch 64, gelu, adam: every kind of coordinate matters.
    return ((np.log10(p["lr"]) + 3) ** 2 + (p["layers"] - 2) ** 2 + np.log2(p["batch"] / 64) ** 2
            + (p["act"] != "gelu") + (p["opt.name"] != "adam"))


def observations(n: int, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    return [Observation(p, loss(p)) for p in (MIXED.sample(rng) for _ in range(n))]


@needs_botorch
def test_mixed_space_with_pending_trials_gives_legal_points_apart_from_them():
    hist = observations(12)
    pending = [MIXED.sample(np.random.default_rng(100 + i)) for i in range(3)]
    out = small().suggest(MIXED, hist, pending, count=2, seed=5)
    assert [s.method for s in out] == ["botorch", "botorch"]
    assert all(s.info["phase"] == "model" and s.info["n_pending"] == 3 for s in out)
    taken = [MIXED.to_unit(p) for p in pending]
    for s in out:
        assert MIXED.contains(s.params) and s.params["opt.momentum"] == 0.9
        assert isinstance(s.params["layers"], int) and s.params["batch"] % 16 == 0
        u = MIXED.to_unit(s.params)
        assert min(np.linalg.norm(u - t) for t in taken) > 0
        taken.append(u)


@needs_botorch
def test_repeated_noisy_configurations_are_modelled_not_refused():
    # The service repeats configurations (craft repeats): the same params with different values.
    hist = observations(8)
    hist += [Observation(hist[0].params, hist[0].value + d) for d in (0.3, -0.2, 0.1)]
    out = small().suggest(MIXED, hist, [], count=1, seed=2)
    assert out[0].method == "botorch" and MIXED.contains(out[0].params)


@needs_botorch
def test_pending_trials_count_towards_the_start_up_design():
    # 3 results and 2 running make the 5 start-up points: the model runs, as tpe's does.
    hist = observations(3)
    pending = [MIXED.sample(np.random.default_rng(7 + i)) for i in range(2)]
    assert small().suggest(MIXED, hist, pending, 1, seed=1)[0].method == "botorch"
    assert small().suggest(MIXED, hist, [], 1, seed=1)[0].info["phase"] == "startup"


@needs_botorch
def test_the_model_may_refine_next_to_a_pending_trial_but_not_repeat_it(monkeypatch):
    # qLogNEI already weighs a candidate against the pending points (X_pending), so the model's
    # guard refuses only the same point again: a best restart 1% from a pending trial (inside the
    # other engines' 2% guard) is taken; one on the pending trial itself falls to the next restart.
    import botorch.optim
    import torch

    space = parse_parameters({"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}})
    rng = np.random.default_rng(0)
    hist = [Observation(p, (p["x"] - 0.4) ** 2 + (p["y"] - 0.6) ** 2) for p in (space.sample(rng) for _ in range(8))]
    pending = [{"x": 0.4, "y": 0.6}]
    restarts = {}

    def fake_optimize_acqf(acq, **kw):
        # the pending trial is in the acquisition (incremental qLogNEI: it joins the baseline)
        assert torch.isclose(acq.X_baseline, torch.tensor([0.4, 0.6], dtype=torch.double)).all(-1).any()
        cands = torch.tensor(restarts["points"], dtype=torch.double).unsqueeze(1)
        return cands, torch.tensor([3.0, 2.0, 1.0], dtype=torch.double)[: len(cands)]

    monkeypatch.setattr(botorch.optim, "optimize_acqf", fake_optimize_acqf)
    restarts["points"] = [[0.41, 0.6], [0.9, 0.1]]
    out = small().suggest(space, hist, pending, count=1, seed=3)[0]
    assert out.info["phase"] == "model" and out.info["redraws"] == 0
    assert out.params == pytest.approx({"x": 0.41, "y": 0.6})
    restarts["points"] = [[0.4, 0.6], [0.9, 0.1]]
    out = small().suggest(space, hist, pending, count=1, seed=3)[0]
    assert out.info["redraws"] == 1 and out.params == pytest.approx({"x": 0.9, "y": 0.1})


@needs_botorch
def test_the_believer_model_has_seen_the_pending_trials_at_its_own_mean(monkeypatch):
    # pending_model="believer" (kriging believer): the acquisition's model is conditioned on every
    # pending trial and every point already chosen in the call at the posterior mean there, so the
    # acquisition samples no pending outcome (no X_pending) and its bar is not raised by them.
    import botorch.optim
    import torch

    space = parse_parameters({"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0}})
    rng = np.random.default_rng(0)
    hist = [Observation(p, (p["x"] - 0.4) ** 2 + (p["y"] - 0.6) ** 2) for p in (space.sample(rng) for _ in range(8))]
    pending = [{"x": 0.4, "y": 0.6}, {"x": 0.8, "y": 0.2}]
    seen = []
    real = botorch.optim.optimize_acqf
    monkeypatch.setattr(botorch.optim, "optimize_acqf", lambda acq, **kw: seen.append(acq) or real(acq, **kw))
    out = small(pending_model="believer").suggest(space, hist, pending, count=2, seed=3)
    assert [s.info["phase"] for s in out] == ["model", "model"]
    first, second = seen
    assert first.X_pending is None and second.X_pending is None
    assert [a.model.train_inputs[0].shape[-2] for a in (first, second)] == [10, 11]
    chosen = torch.tensor([[out[0].params["x"], out[0].params["y"]]], dtype=torch.double)
    assert torch.allclose(second.model.train_inputs[0][-1:], chosen)
    # Seen at its own mean: conditioning leaves the mean where it was and shrinks the variance to noise.
    believed = torch.tensor([[0.4, 0.6], [0.8, 0.2]], dtype=torch.double)
    with torch.no_grad():
        before = first.model.posterior(believed)   # the model with the two pending trials
        after = second.model.posterior(believed)   # the same, plus the first chosen point
    assert torch.allclose(before.mean, after.mean, atol=1e-3)
    assert (before.variance < 0.05 * first.model.posterior(torch.tensor([[0.0, 1.0]], dtype=torch.double)).variance).all()
    # Without pending trials the believer is the same acquisition as the fantasies.
    assert (small(pending_model="believer").suggest(space, hist, [], 1, seed=4)[0].params
            == small().suggest(space, hist, [], 1, seed=4)[0].params)
    with pytest.raises(ValueError, match="pending_model"):
        botorch_engine.BoTorchOptimizer(pending_model="liar")


@needs_botorch
def test_the_kernel_is_matern_five_halves_with_the_dimension_scaled_prior_or_rbf_when_asked(monkeypatch):
    # Both kernels carry BoTorch's dimension-scaled log-normal length-scale prior (Ax's MBM model
    # uses it with RBF); a fit of one kernel is never taken for the other's from the warm-fit cache.
    import math

    import torch
    from gpytorch.kernels import MaternKernel, RBFKernel
    from gpytorch.priors import LogNormalPrior

    from tuneserve_service.optimizers import _warm_fits

    X, Y = torch.rand(8, 5, dtype=torch.double), torch.randn(8, 1, dtype=torch.double)
    kernels = {name: small(kernel=name)._model(X, Y).covar_module for name in ("matern", "rbf")}
    assert isinstance(kernels["matern"], MaternKernel) and kernels["matern"].nu == 2.5
    assert isinstance(kernels["rbf"], RBFKernel)
    for covar in kernels.values():
        assert isinstance(covar.lengthscale_prior, LogNormalPrior)
        assert math.isclose(float(covar.lengthscale_prior.loc), math.sqrt(2) + math.log(5) / 2, rel_tol=1e-6)
    assert botorch_engine.BoTorchOptimizer().kernel == "matern"
    fits = _recording_fits(monkeypatch)
    _warm_fits.clear()
    hist = observations(10)
    small(kernel="matern").suggest(MIXED, hist, [], 1, seed=1)
    small(kernel="rbf").suggest(MIXED, hist, [], 1, seed=1)
    assert len(fits) == 2                                             # one fit each, none shared
    with pytest.raises(ValueError, match="kernel"):
        botorch_engine.BoTorchOptimizer(kernel="periodic")


@needs_botorch
def test_the_acquisition_starts_10_restarts_from_512_raw_samples_by_default(monkeypatch):
    # Half of Ax's 20 from 1024: over 50 paired runs no worse, at ~0.8x the CPU (seventh pass)
    import botorch.optim

    real, calls = botorch.optim.optimize_acqf, []

    def recording(acq, **kw):
        calls.append((kw["num_restarts"], kw["raw_samples"]))
        return real(acq, **kw)

    monkeypatch.setattr(botorch.optim, "optimize_acqf", recording)
    botorch_engine.BoTorchOptimizer().suggest(MIXED, observations(8), [], 1, seed=3)
    assert calls == [(10, 512)]


def _recording_fits(monkeypatch) -> list:
    """Every fit's (maxiter, number of points, length-scales it starts from)."""
    import botorch.fit

    real = botorch.fit.fit_gpytorch_mll
    fits = []

    def recording_fit(mll, **kw):
        fits.append((kw["optimizer_kwargs"]["options"]["maxiter"], mll.model.train_inputs[0].shape[-2],
                     mll.model.covar_module.raw_lengthscale.detach().clone()))
        return real(mll, **kw)

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", recording_fit)
    return fits


@needs_botorch
def test_a_warm_fit_starts_from_the_cold_fit_of_the_historys_checkpoint(monkeypatch):
    import torch

    from tuneserve_service.optimizers import _warm_fits

    fits = _recording_fits(monkeypatch)
    _warm_fits.clear()
    hist = observations(14)
    opt = small(warm_fit_maxiter=4, warm_fit_every=5)
    opt.suggest(MIXED, hist[:10], [], 1, seed=1)        # 10 results: its own checkpoint, a cold fit
    [cold] = _warm_fits._fits.values()
    opt.suggest(MIXED, hist[:12], [], 1, seed=2)        # warm: from the 10-result fit, found, 4 steps
    opt.suggest(MIXED, hist[:13], [], 1, seed=3)        # warm: from the same checkpoint
    assert [f[:2] for f in fits] == [(30, 10), (4, 12), (4, 13)]
    assert torch.equal(fits[1][2], cold["covar_module.raw_lengthscale"])
    assert torch.equal(fits[2][2], cold["covar_module.raw_lengthscale"])
    assert not torch.allclose(fits[0][2], fits[1][2])
    # A fresh process (nothing kept): the checkpoint is fitted first, then the same warm fit.
    _warm_fits.clear()
    opt.suggest(MIXED, hist[:13], [], 1, seed=3)
    assert [f[:2] for f in fits[3:]] == [(30, 10), (4, 13)]
    # Off: every fit is cold.
    _warm_fits.clear()
    small(warm_fit_maxiter=0).suggest(MIXED, hist[:12], [], 1, seed=2)
    assert [f[:2] for f in fits[5:]] == [(30, 12)]


@needs_botorch
@pytest.mark.parametrize("bounded", [False, True], ids=["whole-history", "bounded-history"])
def test_a_fresh_process_gives_the_suggestion_a_running_study_gives(bounded):
    # The warm start's start point is a function of the history (its checkpoint's cold fit), not of
    # what the process fitted before: a study's suggestions after a restart (caches cleared) are the
    # ones it would have made, also when the modelled history is a bounded subset that changes with
    # every result (40 best + 60 latest by default; 4 + 6 here).
    from tuneserve_service.optimizers import _warm_fits

    kw = {"warm_fit_maxiter": 4, "warm_fit_every": 5, **({"n_best": 4, "n_recent": 6} if bounded else {})}
    hist = observations(19, seed=3)
    pending = [MIXED.sample(np.random.default_rng(200 + i)) for i in range(2)]
    _warm_fits.clear()
    running = {}
    for n in range(5, 20):   # a study: one suggestion after each result, a draw-ahead one with a pending trial
        running[n] = [s.params for s in small(**kw).suggest(MIXED, hist[:n], [], 1, seed=n)]
        running[n] += [s.params for s in small(**kw).suggest(MIXED, hist[:n], pending, 2, seed=100 + n)]
    for n in (8, 13, 17, 19):
        _warm_fits.clear()
        fresh = [s.params for s in small(**kw).suggest(MIXED, hist[:n], [], 1, seed=n)]
        fresh += [s.params for s in small(**kw).suggest(MIXED, hist[:n], pending, 2, seed=100 + n)]
        assert fresh == running[n], n


@needs_botorch
def test_the_same_results_are_fitted_once_and_give_the_answer_a_fresh_fit_gives(monkeypatch):
    # The draw-ahead's suggestions: the same results, another trial pending, another seed.
    import botorch.fit

    from tuneserve_service.optimizers import _warm_fits

    real = botorch.fit.fit_gpytorch_mll
    fits = []
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", lambda mll, **kw: fits.append(1) or real(mll, **kw))
    _warm_fits.clear()
    hist = observations(12)
    pending = [MIXED.sample(np.random.default_rng(100 + i)) for i in range(2)]
    first = small().suggest(MIXED, hist, pending[:1], 1, seed=1)
    assert len(fits) == 2        # the checkpoint's (10 results) cold fit, then the warm one
    again = small().suggest(MIXED, hist, pending, 1, seed=2)
    assert len(fits) == 2
    _warm_fits.clear()
    fresh = small().suggest(MIXED, hist, pending, 1, seed=2)
    assert len(fits) == 4 and again[0].params == fresh[0].params
    assert first[0].params != again[0].params
    small().suggest(MIXED, hist[:11], pending, 1, seed=2)   # other data: fitted, from the same checkpoint
    assert len(fits) == 5
    _warm_fits.clear()
    small(warm_fit_maxiter=0).suggest(MIXED, hist, pending, 1, seed=2)   # cold fits only: one
    small(warm_fit_maxiter=0).suggest(MIXED, hist, pending[:1], 1, seed=3)
    assert len(fits) == 6


def test_a_server_without_the_extra_refuses_a_botorch_study_with_a_422(client, monkeypatch):
    monkeypatch.setattr(botorch_engine, "available", lambda: False)
    r = client.post("/api/v1/studies", json=study_body("bo", method="botorch"))
    assert r.status_code == 422, r.text
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "method"]
    assert "extra [botorch]" in err["msg"] and 'pip install "tuneserve[server,botorch]"' in err["msg"]
    assert client.get("/api/v1/studies/bo").status_code == 404


def _complete(client, lease, value: float) -> None:
    r = client.post(f"/api/v1/trials/{lease['trial_id']}/complete",
                    json={"lease_token": lease["lease_token"], "value": value})
    assert r.status_code == 200, r.text


def _small_engine_in_the_app(monkeypatch) -> None:
    """The in-process server's registry builds the small search too (it looks the class up by name)."""
    class Small(botorch_engine.BoTorchOptimizer):
        def __init__(self):
            super().__init__(num_restarts=2, raw_samples=32, maxiter=20, fit_maxiter=30, mc_samples=32)

    monkeypatch.setattr(botorch_engine, "BoTorchOptimizer", Small)


@needs_botorch
def test_warm_start_from_a_parent_runs_the_model_from_the_first_trial(client, monkeypatch):
    _small_engine_in_the_app(monkeypatch)
    make_study(client, "parent", method="random", max_trials=6)
    for i in range(6):
        lease = claim(client, "parent")
        _complete(client, lease, (lease["params"]["dropout"] - 0.2) ** 2 + i * 1e-3)
    make_study(client, "child", method="botorch", warm_start_from="parent", max_trials=3)
    lease = claim(client, "child")
    assert lease["method"] == "botorch" and lease["number"] == 0


@needs_botorch
def test_claims_after_a_model_draw_are_served_from_the_drawn_ahead_queue(client, monkeypatch):
    from tuneserve_service.domain.core import draw_ahead

    _small_engine_in_the_app(monkeypatch)
    make_study(client, "bo", method="botorch", max_trials=12)
    for i in range(5):   # the start-up design: prior draws, no queue
        lease = claim(client, "bo")
        assert lease["method"] == "random"
        _complete(client, lease, lease["params"]["dropout"] + i * 1e-3)
    assert client.get("/api/v1/studies/bo").json()["counts"]["waiting"] == 0
    first = claim(client, "bo")   # fitted now; the route then draws DRAW_AHEAD more after answering
    assert first["method"] == "botorch" and first["number"] == 5
    waiting = client.get("/api/v1/studies/bo/trials", params={"state": "waiting"}).json()["items"]
    assert [t["number"] for t in waiting] == [6, 7][:draw_ahead.DRAW_AHEAD]
    assert all(t["method"] == "botorch" and t["params"] for t in waiting)
    # The next claim takes the queued trial as drawn (no fit), and the queue is topped up again.
    second = claim(client, "bo", worker="w2")
    assert second["number"] == 6 and second["params"] == waiting[0]["params"]
    numbers = [t["number"] for t in client.get("/api/v1/studies/bo/trials", params={"limit": 50}).json()["items"]]
    assert sorted(numbers) == list(range(9)) and len(set(numbers)) == len(numbers)


OBJECTIVE = textwrap.dedent("""
    def objective(params, context):
        loss = (params["x"] - 0.3) ** 2 + (0.0 if params["kind"] == "b" else 0.5)
        context.report(1, loss=loss)
        return {"loss": loss}
""")


@needs_botorch
@pytest.mark.slow   # 45 s on the loaded 2-core box (a server and a worker process, two fits); ~10 s idle
def test_a_worker_runs_a_botorch_study_through_a_live_server(tmp_path):
    # SQLite only: both backends are covered by the REST tests above; this one is about the worker
    # daemon and a real server process drawing with BoTorch (and ahead, after answering).
    from tests.support.live_server import LiveServer

    objective = tmp_path / "quad.py"
    objective.write_text(OBJECTIVE)
    live_server = LiveServer(f"sqlite:///{tmp_path / 'tuneserve.db'}", log_path=tmp_path / "server.log")
    live_server.start()
    try:
        _run_through_a_worker(live_server, tmp_path, objective)
    finally:
        live_server.stop()


def _run_through_a_worker(live_server, tmp_path, objective) -> None:
    from tests.test_worker_daemon import WorkerProcess
    from tuneserve.client import JsonClient

    with JsonClient(live_server.url, retry_seconds=5) as api:
        api.create_study(name="bo-e2e", method="botorch", max_trials=7, seed=3,
                         metric={"name": "loss", "goal": "minimize"},
                         parameters={"x": {"min": 0.0, "max": 1.0}, "kind": {"values": ["a", "b", "c"]}})
        w = WorkerProcess(live_server.url, tmp_path, "w-bo", "--objective", f"{objective}:objective")
        try:
            wait_for(lambda: api.get_study("bo-e2e")["counts"]["completed"] >= 7, 120, "7 completed trials")
        finally:
            w.stop()
        items = api.trials("bo-e2e")["items"]
        assert sorted(t["number"] for t in items) == list(range(7))
        assert {t["method"] for t in items} == {"random", "botorch"}
        assert sum(t["method"] == "botorch" for t in items) == 2
        assert all(t["state"] == "completed" for t in items)
