"""The trainer's side of issue 12 on CPU at small sizes: the lr range test, and data subsets as a
fidelity (classes and data_fraction, stratified, deterministic, nested, recorded)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tuneserve_service.craft.lr_range import ema, suggest_lr
from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.data import choose_classes, digits, load_dataset, nested_stratified_subset, subsample
from tuneserve_workers.training.lr_range import Smoother, lr_at, lr_range_test
from tuneserve_workers.training.objective import LocalContext
from tuneserve_workers.training.run import train_cnn

SMALL = {"width": 8, "data_fraction": 0.3, "batch_size": 32}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lr_ramp_is_geometric():
    assert lr_at(0) == 1e-7
    assert lr_at(199) == pytest.approx(10.0)
    assert lr_at(1, 1.0, 100.0, 3) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        lr_at(0, steps=1)


def test_trainer_and_server_smooth_alike():
    losses = [2.3, 2.2, 2.4, 1.9, 1.5, 1.7, 1.2]
    smoother = Smoother()
    assert [smoother.add(v) for v in losses] == pytest.approx(ema(losses))


def test_smoother_blow_up_rule():
    s = Smoother(beta=0.0, blowup=4.0, min_steps=3)
    assert [s.blew_up(s.add(v)) for v in (1.0, 5.0, 1.0, 4.0, 4.5)] == [False, False, False, False, True]


def test_range_test_on_digits_learns_then_blows_up():
    ctx = LocalContext()
    curve = lr_range_test(SMALL, ctx, start_lr=1e-4, end_lr=1e3, steps=80, report_every=20)
    n = curve["steps"]
    assert 10 <= n < 80 and curve["stopped"].startswith(f"blew up at lr={curve['lr'][-1]:.3g}: smoothed loss")
    assert len(curve["lr"]) == len(curve["loss"]) == len(curve["smoothed"]) == n
    assert curve["lr"] == pytest.approx([lr_at(i, 1e-4, 1e3, 80) for i in range(n)])
    assert curve["smoothed"] == pytest.approx(ema(curve["loss"]))
    assert min(curve["smoothed"]) < curve["smoothed"][0]          # it learned before it blew up
    assert [step for step, _ in ctx.history] == list(range(20, n + 1, 20))
    assert set(ctx.history[0][1]) == {"lr", "smoothed_loss"}
    assert curve["fidelity"]["data_fraction"] == 0.3 and ctx.fidelity == curve["fidelity"]
    s = suggest_lr(curve["lr"], curve["loss"])
    assert 1e-4 < s.lr < s.min_loss_lr <= curve["lr"][-1]


def test_range_test_is_deterministic_and_stops_when_told():
    a = lr_range_test(SMALL, LocalContext(), steps=30, report_every=0)
    b = lr_range_test(SMALL, LocalContext(), steps=30, report_every=0)
    assert a["loss"] == b["loss"] and a["steps"] == 30 and a["stopped"] == "reached end_lr=10"
    stopped = lr_range_test(SMALL, LocalContext(stop_after=1), steps=30, report_every=5)
    assert stopped["steps"] == 5 and stopped["stopped"] == "stopped by the server after 5 batches"
    with pytest.raises(ValueError):
        lr_range_test(SMALL, LocalContext(), start_lr=1.0, end_lr=0.1)


def test_classes_fidelity_is_deterministic_nested_and_relabelled():
    chosen = choose_classes(10, 3, data_seed=0)
    order = np.random.default_rng(np.random.SeedSequence([0, 1])).permutation(10)
    assert chosen == sorted(int(c) for c in order[:3])
    assert set(choose_classes(10, 2, 0)) <= set(chosen) <= set(choose_classes(10, 5, 0))
    other = np.random.default_rng(np.random.SeedSequence([1, 1])).permutation(10)
    assert choose_classes(10, 3, 1) == sorted(int(c) for c in other[:3])
    with pytest.raises(ValueError):
        choose_classes(10, 11, 0)
    raw = digits()
    data = subsample(raw, classes=3, data_seed=0)
    assert data.num_classes == 3
    assert set(data.y_train.tolist()) == {0, 1, 2} and set(data.y_val.tolist()) == {0, 1, 2}
    kept_train = sum(int((raw.y_train == c).sum()) for c in chosen)
    kept_val = sum(int((raw.y_val == c).sum()) for c in chosen)
    assert len(data.y_train) == kept_train and len(data.y_val) == kept_val
    assert data.fidelity["classes"] == chosen and data.fidelity["train_samples"] == kept_train
    # new label i is old class chosen[i]: the counts per label match the chosen classes' counts
    assert torch.bincount(data.y_train).tolist() == [int((raw.y_train == c).sum()) for c in chosen]
    assert torch.bincount(data.y_val).tolist() == [int((raw.y_val == c).sum()) for c in chosen]


def test_fraction_is_stratified_nested_and_recorded():
    y = np.repeat(np.arange(4), [10, 20, 30, 41])
    tenth = nested_stratified_subset(y, 0.1, data_seed=5)
    fifth = nested_stratified_subset(y, 0.2, data_seed=5)
    assert np.bincount(y[tenth]).tolist() == [1, 2, 3, 5]                 # ceil(0.1 * n_c)
    assert set(tenth) <= set(fifth)
    assert np.array_equal(tenth, nested_stratified_subset(y, 0.1, data_seed=5))
    assert not np.array_equal(fifth, nested_stratified_subset(y, 0.2, data_seed=6))
    raw = digits()
    a = subsample(raw, 0.1, data_seed=5)
    b = subsample(raw, 0.1, data_seed=5)
    c = subsample(raw, 0.1, data_seed=6)
    assert a.fidelity == b.fidelity and a.fidelity["subset_digest"] != c.fidelity["subset_digest"]
    assert a.fidelity["data_fraction"] == 0.1 and a.fidelity["classes"] is None
    assert a.fidelity["train_samples"] == len(a.y_train) and a.fidelity["val_samples"] == len(raw.y_val)
    assert subsample(raw).fidelity == {}


def test_trial_seed_does_not_move_the_subset():
    one = load_dataset(TrainConfig(data_fraction=0.2, seed=1))
    two = load_dataset(TrainConfig(data_fraction=0.2, seed=2))
    assert one.fidelity == two.fidelity
    other = load_dataset(TrainConfig(data_fraction=0.2, data_seed=1))
    assert other.fidelity["subset_digest"] != one.fidelity["subset_digest"]


def test_training_on_a_class_subset_records_its_fidelity():
    ctx = LocalContext()
    final = train_cnn({"epochs": 2, "classes": 3, "data_fraction": 0.5, "width": 8,
                       "optimizer": {"name": "adam", "lr": 3e-3}}, ctx)
    assert ctx.fidelity["classes"] == choose_classes(10, 3, 0) and ctx.fidelity["data_fraction"] == 0.5
    assert final["val_loss"] < math.log(3)         # it learned the 3-class task
    assert ctx.fidelity == load_dataset(TrainConfig(classes=3, data_fraction=0.5)).fidelity
    with pytest.raises(ValueError, match="classes must be 0"):
        TrainConfig.from_params({"classes": 1})


def test_train_cnn_runs_the_range_test_when_the_context_asks_for_it():
    """The built-in objective dispatches on context.lr_range (as on context.sanity): the same curve as
    calling lr_range_test directly, and no trial epochs."""
    from tuneserve_workers.training.objective import LrRangeRequest

    ctx = LocalContext(lr_range=LrRangeRequest(1e-4, 1e3, 60))
    curve = train_cnn(SMALL, ctx)
    direct = lr_range_test(SMALL, LocalContext(), start_lr=1e-4, end_lr=1e3, steps=60)
    assert train_cnn.supports_lr_range is True and train_cnn.supports_sanity is True
    assert curve["lr"] == direct["lr"] and curve["loss"] == pytest.approx(direct["loss"])
    assert curve["start_lr"] == 1e-4 and curve["end_lr"] == 1e3 and 10 <= curve["steps"] < 60
    assert [step for step, _ in ctx.history] == [25, 50][:curve["steps"] // 25]
    assert all(set(m) == {"lr", "smoothed_loss"} for _, m in ctx.history)  # no epoch reports
