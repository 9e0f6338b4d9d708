"""The built-in CNN objective: train one configuration, report every epoch, return the final metrics.

Read top to bottom: `train_cnn` seeds, builds the config, data, model and optimizer, then loops
`train_epoch` / `evaluate` (steps.py, shared with the special runs) and reports; a sanity check or
a range test request goes to sanity.py or lr_range.py instead. On CUDA it trains under bf16 autocast in channels_last with
cudnn.benchmark (unless `deterministic`: determinism.py) and the data resident on the GPU; host syncs happen once per epoch (and every
`SYNC_EVERY` steps to catch a diverging loss early), never per batch.

Besides the losses it reports what the model costs (costs.py): param_count and flops at the first
and last epoch, peak_memory_mb every epoch, latency_ms at the last; and it notes in
`context.provenance` what a rerun needs (seed, data, determinism flags).
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from tuneserve_workers.training import costs
from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.data import Dataset, load_dataset
from tuneserve_workers.training.determinism import run_settings
from tuneserve_workers.training.contract import Context, Diverged, supports_lr_range, supports_sanity
from tuneserve_workers.training.lr_range import lr_range_test
from tuneserve_workers.training.nets import build_cnn
from tuneserve_workers.training.sanity import run_sanity
from tuneserve_workers.training.steps import (
    LrSchedule,
    evaluate,
    exploded,
    make_optimizer,
    seed_everything,
    train_epoch,
)

@supports_lr_range
@supports_sanity
def train_cnn(params: dict[str, Any], context: Context, data: Dataset | None = None) -> dict[str, Any]:
    """The `builtin:cnn` objective. `data` overrides the config's dataset (benchmarks, tests).
    A special run instead of a trial when the context asks for one: the sanity check
    (`context.sanity`) or the learning-rate range test (`context.lr_range`, returning its curve)."""
    if context.sanity is not None:  # the study's sanity check, not a trial
        return run_sanity(params, context, data=data)
    if context.lr_range is not None:  # the study's lr range test, not a trial
        r = context.lr_range
        return lr_range_test(params, context, data, start_lr=r.start_lr, end_lr=r.end_lr, steps=r.steps)
    c = TrainConfig.from_params(params)
    with run_settings(context.device, c.deterministic) as flags:
        context.provenance["determinism"] = flags
        return _train(c, context, data)


def _train(c: TrainConfig, context: Context, data: Dataset | None) -> dict[str, Any]:
    dev = context.device
    seed_everything(c.seed)
    gen = torch.Generator(device=dev).manual_seed(c.seed)
    on_cuda = dev.type == "cuda"
    if on_cuda:  # cudnn.benchmark: determinism.run_settings
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    data = data.to(dev) if data is not None else load_dataset(c, dev)
    context.fidelity = dict(data.fidelity)
    memory = costs.PeakMemory(dev).start()
    context.provenance.update(seed=c.seed, data_seed=c.data_seed, dataset=c.dataset, fidelity=dict(data.fidelity),
                              train_samples=len(data.y_train), val_samples=len(data.y_val), peak_memory=memory.how)
    channels, size, _ = data.image_shape
    model = build_cnn(c, channels, data.num_classes, size).to(dev)
    if on_cuda and c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, c)
    sched = LrSchedule(c, steps_per_epoch=math.ceil(len(data.y_train) / c.batch_size))
    use_bf16 = on_cuda and c.bf16
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16)  # noqa: E731
    # What the model costs (costs.py): one image of the validation split, no random draw.
    example = data.x_val[:1]
    if on_cuda and c.channels_last:
        example = example.contiguous(memory_format=torch.channels_last)
    size_costs = {"param_count": costs.param_count(model), "flops": costs.forward_flops(model, example, autocast)}

    metrics: dict[str, float] = {}
    for epoch in range(c.epochs):
        t0 = time.perf_counter()
        train = train_epoch(model, opt, data, c, sched, epoch, gen, autocast)
        train_seconds = time.perf_counter() - t0
        val = evaluate(model, data, c, autocast)
        images = train.pop("images")
        metrics = {**train, **val, "epoch_seconds": time.perf_counter() - t0,
                   "images_per_second": images / train_seconds}
        metrics["peak_memory_mb"] = memory.peak_mb()
        if epoch == 0:  # the loss before any update, to compare with ln(C): see service/diagnosis
            metrics["num_classes"] = data.num_classes
        if epoch == 0 or epoch == c.epochs - 1:
            metrics.update(size_costs)
        if epoch == c.epochs - 1:  # the final report and the trial's metrics carry the latency too
            metrics["latency_ms"] = costs.latency_ms(model, example, autocast)
        for name in ("train_loss", "val_loss"):
            if exploded(metrics[name], data.num_classes) or not math.isfinite(metrics["grad_norm"]):
                first = f", initial_loss={metrics['initial_loss']:.4g}" if "initial_loss" in metrics else ""
                raise Diverged(f"{name}={metrics[name]:.4g} at epoch {epoch + 1} (lr={metrics['lr']:.3g}, "
                               f"grad_norm={metrics['grad_norm']:.3g}, num_classes={data.num_classes}{first})",
                               {**metrics, "epoch": epoch + 1, "num_classes": data.num_classes})
        if not context.report(epoch + 1, **metrics):
            break
        sched.end_epoch(metrics["val_loss"])
    return metrics
