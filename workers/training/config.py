"""The built-in trainer's configuration: every knob with a default, built from a trial's params.

Defaults follow the practitioners' craft (shared CRAFT.md): 3x3 convs, ReLU, batch norm, dropout 0.2
for small models, Kaiming init, SGD with momentum 0.9, batch 128, filters in powers of two, shortcut
connections, weight decay 5e-4, the lr cut by ~3x when validation stalls, gradient norm clipped at 10.

Params arrive nested from W&B-style spaces, so a categorical with children such as
`{"optimizer": {"name": "adam", "lr": 3e-4}}` reads as `optimizer="adam", lr=3e-4`: the `name` leaf of
a block is the block's value and every other leaf is read by its own name.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "plateau")
INITS = ("kaiming", "xavier")


@dataclass(frozen=True)
class TrainConfig:
    # data
    dataset: str = "digits"            # digits | shapes[:n=..,size=..,classes=..] | path/to/file.npz
    data_fraction: float = 1.0         # fidelity knob: stratified share of the training set used
    classes: int = 0                   # fidelity knob: train and validate on this many classes (0 = all)
    data_seed: int = 0                 # picks the subset, apart from `seed`, so every trial sees the same one
    class_balanced: bool = False       # oversample rare classes so each batch is about balanced
    normalize: bool = True             # standardise inputs with train-split statistics; false feeds raw
                                       # values (checks what an unnormalised pipeline does)
    # model
    width: int = 32                    # filters of the first block; doubles each block
    depth: int = 2                     # conv blocks (two 3x3 convs each, then 2x2 pooling while >= 4px)
    batch_norm: bool = True
    dropout: float = 0.2
    residual: bool = True
    init: str = "kaiming"
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 10
    lr_schedule: str = "plateau"
    lr_factor: float = 0.3             # step: multiply every lr_step_epochs; plateau: multiply on a stall
    lr_step_epochs: int = 5
    lr_patience: int = 1               # plateau: epochs without val_loss improvement before a cut
    warmup_epochs: float = 0.0         # linear warmup from ~0 to lr, per step
    grad_clip: float = 10.0            # max gradient norm; 0 disables clipping
    label_smoothing: float = 0.0
    # augmentation (applied on the training device, per batch)
    crop_padding: int = 0              # random crop after zero padding by this many pixels
    hflip: bool = False
    rotate_degrees: float = 0.0        # random rotation in +-degrees
    shift_fraction: float = 0.0        # random translation in +-fraction of the image side
    # reproducibility and device tuning
    seed: int = 0
    eval_batch_size: int = 1024
    channels_last: bool = True         # CUDA only
    bf16: bool = True                  # CUDA only: autocast to bfloat16
    deterministic: bool = False        # CUDA: no cuDNN benchmark, deterministic kernels (determinism.py)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainConfig":
        """Build a config from a trial's (possibly nested) params; unknown keys are an error so a
        typo in a search space does not silently train with the default."""
        flat = _leaves(params)
        aliases = {"lr_scheduler": "lr_schedule", "schedule": "lr_schedule", "learning_rate": "lr",
                   "bn": "batch_norm", "filters": "width", "blocks": "depth", "augment_crop": "crop_padding",
                   "flip": "hflip", "rotate": "rotate_degrees", "shift": "shift_fraction",
                   "fraction": "data_fraction", "warmup": "warmup_epochs", "clip": "grad_clip"}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in flat.items():
            name = aliases.get(key, key)
            if name not in fields:
                raise ValueError(f"unknown parameter {key!r} for the built-in CNN trainer "
                                 f"(known: {', '.join(sorted(fields))})")
            values[name] = _coerce(name, fields[name].default, value)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        rules = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}"),
            (self.init in INITS, f"init must be one of {INITS}"),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive number"),
            (0 < self.data_fraction <= 1, "data_fraction must be in (0, 1]"),
            (self.classes == 0 or self.classes >= 2, "classes must be 0 (all) or at least 2"),
            (self.width >= 1 and self.depth >= 1, "width and depth must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.batch_size >= 1 and self.epochs >= 1, "batch_size and epochs must be >= 1"),
            (0 < self.lr_factor <= 1, "lr_factor must be in (0, 1]"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
        ]
        for ok, rule in rules:
            if not ok:
                raise ValueError(rule)


def _leaves(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            inner = _leaves(value)
            if "name" in inner:
                out[key] = inner.pop("name")
            out.update(inner)
        else:
            out[key] = value
    return out


def _coerce(name: str, default: Any, value: Any) -> Any:
    # Spaces often hand over floats for ints (q_uniform) or strings for booleans (categorical from YAML).
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("true", "yes", "on", "1"):
                return True
            if value.lower() in ("false", "no", "off", "0"):
                return False
            raise ValueError(f"{name} must be a boolean, got {value!r}")
        return bool(value)
    if isinstance(default, int):
        if float(value) != round(float(value)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(round(float(value)))
    if isinstance(default, float):
        return float(value)
    return str(value).lower() if name in ("optimizer", "lr_schedule", "init") else str(value)
