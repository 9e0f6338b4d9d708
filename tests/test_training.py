"""The built-in CNN trainer on CPU, real training: it learns digits, diverges loudly, loads every
dataset kind, and user objectives plug in through the same loader and context."""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch

from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.data import augment, load_dataset
from tuneserve_workers.training.objective import Diverged, LocalContext, load_objective, metric_value
from tuneserve_workers.training.run import train_cnn

EPOCH_METRICS = {"train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "update_ratio",
                 "epoch_seconds", "images_per_second", "peak_memory_mb"}
SIZE = {"param_count", "flops"}  # at the first and the last epoch; latency_ms at the last (costs.py)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_digits_reaches_95_percent_in_a_few_epochs():
    ctx = LocalContext()
    final = train_cnn({"epochs": 5, "optimizer": {"name": "adam", "lr": 3e-3}, "seed": 1}, ctx)
    assert final["val_acc"] >= 0.95
    assert [step for step, _ in ctx.history] == [1, 2, 3, 4, 5]
    for step, metrics in ctx.history:
        # Step 1 also carries the loss before any update and C, to compare with ln(C).
        assert set(metrics) == (EPOCH_METRICS | ({"initial_loss", "num_classes"} | SIZE if step == 1 else set())
                                | (SIZE | {"latency_ms"} if step == 5 else set()))
        assert all(math.isfinite(v) for v in metrics.values())
    assert ctx.history[0][1]["num_classes"] == 10
    assert ctx.history[0][1]["initial_loss"] == pytest.approx(math.log(10), rel=0.1)
    first, last = ctx.history[0][1], ctx.history[-1][1]
    assert last["val_loss"] < first["val_loss"]
    assert 0 < last["update_ratio"] < 1 and last["images_per_second"] > 0


def test_same_seed_same_result():
    params = {"epochs": 2, "seed": 7, "data_fraction": 0.3}
    a, b = train_cnn(params, LocalContext()), train_cnn(params, LocalContext())
    assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]


def test_lr_1000_ends_as_diverged():
    with pytest.raises(Diverged) as info:
        train_cnn({"lr": 1000, "epochs": 3}, LocalContext())
    assert "lr=1e+03" in info.value.reason


def test_stops_when_the_context_says_stop():
    ctx = LocalContext(stop_after=2)
    train_cnn({"epochs": 6, "data_fraction": 0.2}, ctx)
    assert len(ctx.history) == 2


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "plateau"])
def test_every_knob_trains(schedule):
    params = {"dataset": "shapes:n=600,size=12,classes=3", "epochs": 3, "lr_schedule": schedule,
              "lr_step_epochs": 1, "lr_factor": 0.5, "warmup_epochs": 1, "optimizer": "nesterov",
              "batch_norm": False, "residual": False, "init": "xavier", "depth": 3, "width": 8,
              "dropout": 0.5, "label_smoothing": 0.1, "crop_padding": 2, "hflip": True,
              "rotate_degrees": 10, "shift_fraction": 0.1, "class_balanced": True, "grad_clip": 1.0}
    ctx = LocalContext()
    final = train_cnn(params, ctx)
    lrs = [m["lr"] for _, m in ctx.history]
    if schedule == "step":
        assert lrs == pytest.approx([0.05, 0.025, 0.0125])
    if schedule == "cosine":
        assert lrs[0] > lrs[1] > lrs[2]
    assert math.isfinite(final["val_loss"])


def test_shapes_has_a_signal_to_learn():
    ctx = LocalContext()
    final = train_cnn({"dataset": "shapes:n=1200,size=12,classes=3", "epochs": 6, "width": 16,
                       "optimizer": "adam", "lr": 3e-3}, ctx)
    assert final["val_acc"] > 0.6  # chance is 1/3
    assert final["val_loss"] < math.log(3)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NHW"])
def test_npz_dataset_loads_and_trains(tmp_path, layout):
    rng = np.random.default_rng(0)
    # Two classes told apart by which half of the image is bright.
    y = rng.integers(0, 2, 400)
    x = rng.normal(0, 0.3, (400, 3, 10, 10)).astype(np.float32)
    x[y == 0, :, :5] += 1
    x[y == 1, :, 5:] += 1
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    elif layout == "NHW":
        x = x[:, 0]
    path = tmp_path / "two.npz"
    np.savez(path, x_train=x[:300], y_train=y[:300], x_val=x[300:], y_val=y[300:])
    data = load_dataset(TrainConfig(dataset=str(path)))
    assert data.x_train.shape == (300, 1 if layout == "NHW" else 3, 10, 10)
    assert abs(float(data.x_train.mean())) < 1e-4  # normalised with train statistics
    final = train_cnn({"dataset": str(path), "epochs": 4, "width": 8}, LocalContext())
    assert final["val_acc"] > 0.9


def test_data_fraction_is_stratified():
    full = load_dataset(TrainConfig())
    tenth = load_dataset(TrainConfig(data_fraction=0.1))
    assert len(tenth.y_train) < 0.15 * len(full.y_train)
    assert torch.bincount(tenth.y_train).min() >= 1
    assert torch.equal(tenth.y_val, full.y_val)  # the validation set never shrinks


def test_augment_keeps_shape_and_changes_pixels():
    x = torch.randn(16, 1, 8, 8)
    c = TrainConfig(crop_padding=2, hflip=True, rotate_degrees=15, shift_fraction=0.1)
    out = augment(x, c, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)


def test_unknown_parameter_is_rejected():
    with pytest.raises(ValueError, match="unknown parameter 'lrr'"):
        TrainConfig.from_params({"lrr": 0.1})


def test_user_objective_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_objective.py").write_text(textwrap.dedent("""
        def objective(params, context):
            x = params["x"]
            for step in range(1, 6):
                loss = (x - 3) ** 2 + 1.0 / step
                if not context.report(step, loss=loss):
                    break
            return {"loss": loss, "device": str(context.device)}
    """))
    monkeypatch.chdir(tmp_path)
    fn = load_objective("my_objective:objective")
    ctx = LocalContext(stop_after=3)
    result = fn({"x": 1.0}, ctx)
    assert len(ctx.history) == 3
    assert metric_value(result, "loss") == (pytest.approx(4 + 1 / 3), {"loss": pytest.approx(4 + 1 / 3)})
    file_fn = load_objective(f"{tmp_path / 'my_objective.py'}:objective")
    assert file_fn({"x": 3.0}, LocalContext())["loss"] == pytest.approx(0.2)


def test_user_objective_reporting_nan_is_diverged():
    with pytest.raises(Diverged, match="loss=nan"):
        LocalContext().report(1, loss=float("nan"))


def test_bad_objective_spec():
    with pytest.raises(ValueError):
        load_objective("no_colon_here")


def test_digits_is_sklearns_digits_split_by_class():
    from sklearn.datasets import load_digits

    data = load_dataset(TrainConfig(), "cpu")
    assert data.num_classes == 10 and len(data.y_train) + len(data.y_val) == len(load_digits().target)
    counts = torch.bincount(data.y_val)
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of every class: a stratified split
