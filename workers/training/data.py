"""Datasets for the built-in trainer, none needing a download: sklearn's `digits`, generated `shapes`,
and a user's `.npz`; plus the on-device batching (shuffle, class balance) and augmentation.

Everything here is small enough to live on the training device, so batches are index gathers on
that device and no DataLoader worker processes are needed.
"""
from __future__ import annotations

import functools
import math
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tuneserve_workers.training.config import TrainConfig

SPLIT_SEED = 0  # the train/val split never depends on the trial's seed, so trials are comparable
# Streams of SeedSequence([data_seed, stream, ...]) for the fidelity subsets.
_CLASS_STREAM, _FRACTION_STREAM = 1, 2


@dataclass(frozen=True)
class Dataset:
    """Float images NCHW and int64 labels, already on one device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    # How this data was cut from the full set (see `subset_fidelity`); {} for the full set.
    fidelity: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "Dataset":
        return Dataset(self.x_train.to(device), self.y_train.to(device), self.x_val.to(device),
                       self.y_val.to(device), self.num_classes, self.fidelity)


def load_dataset(config: TrainConfig, device: torch.device | str = "cpu") -> Dataset:
    """The dataset the config names, cut to its fidelity (`classes`, then `data_fraction`, both
    chosen by `data_seed`), normalised with the training split's per-channel mean and std (unless
    `normalize` is off), on `device`."""
    return subsample(_load_raw(config.dataset), config.data_fraction, config.classes,
                     config.data_seed, normalize=config.normalize).to(device)


def subsample(raw: Dataset, fraction: float = 1.0, classes: int = 0, data_seed: int = 0,
              normalize: bool = True) -> Dataset:
    """`raw` cut to a fidelity and normalised with the kept training images' statistics (raw
    values when `normalize` is off).

    `classes` keeps that many classes (0: all) in training and validation, relabelled 0..k-1;
    `fraction` keeps that share of each kept class's training images. Both are deterministic in
    `data_seed` and nested: 2 classes are among the 4 the same seed picks, and a 10% subset lies
    inside the 20% one, so promoting a configuration to a higher fidelity only adds data.
    """
    x_train, y_train, x_val, y_val = raw.x_train, raw.y_train, raw.x_val, raw.y_val
    num_classes, chosen = raw.num_classes, None
    if classes and classes < raw.num_classes:
        chosen = choose_classes(raw.num_classes, classes, data_seed)
        relabel = torch.full((raw.num_classes,), -1, dtype=torch.long)
        relabel[torch.as_tensor(chosen)] = torch.arange(len(chosen))
        train_in, val_in = relabel[y_train] >= 0, relabel[y_val] >= 0
        x_train, y_train = x_train[train_in], relabel[y_train[train_in]]
        x_val, y_val = x_val[val_in], relabel[y_val[val_in]]
        num_classes = len(chosen)
    keep = None
    if fraction < 1:
        keep = nested_stratified_subset(y_train.numpy(), fraction, data_seed)
        x_train, y_train = x_train[keep], y_train[keep]
    fidelity = subset_fidelity(fraction, chosen, data_seed, keep, len(y_train), len(y_val))
    if not normalize:
        return Dataset(x_train, y_train, x_val, y_val, num_classes, fidelity)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return Dataset((x_train - mean) / std, y_train, (x_val - mean) / std, y_val, num_classes, fidelity)


DATASET_HELP = ("use 'digits[:scale=..,nan=..]', 'shapes[:n=..,size=..,classes=..,channels=..,noise=..,"
                "scale=..,nan=..]' or a path to an .npz file")


@functools.lru_cache(maxsize=4)
def _load_raw(spec: str) -> Dataset:
    # Cached: a worker runs many trials on the same data, and generating shapes is not free.
    if spec.endswith(".npz") or spec.startswith("npz:"):
        return from_npz(spec.removeprefix("npz:"))
    name, _, option_text = spec.partition(":")
    try:
        options = {k: float(v) for k, v in (kv.split("=", 1) for kv in option_text.split(",") if kv)}
    except ValueError:
        raise ValueError(f"dataset {spec!r}: options are name=number pairs; {DATASET_HELP}") from None
    scale, nan = options.pop("scale", 1.0), options.pop("nan", 0.0)
    if name == "digits" and not options:
        data = digits()
    elif name == "shapes":
        if not set(options) <= {"n", "size", "classes", "channels", "noise", "seed"}:
            raise ValueError(f"dataset {spec!r}: unknown option(s) {sorted(options)}; {DATASET_HELP}")
        data = shapes(**{k: v if k == "noise" else int(v) for k, v in options.items()})
    else:
        raise ValueError(f"unknown dataset {spec!r}: {DATASET_HELP}")
    return corrupt(data, scale=scale, nan=nan)


def corrupt(data: Dataset, scale: float = 1.0, nan: float = 0.0) -> Dataset:
    """The data as a broken pipeline would deliver it, for checking that diagnosis and the sanity
    gate notice: every input multiplied by `scale` (raw units, e.g. 0-255 pixels, when normalisation
    is off), and one NaN pixel in a `nan` share of the training images (at least one when > 0)."""
    if not math.isfinite(scale) or not 0 <= nan <= 1:
        raise ValueError("dataset options: scale must be a finite number and nan a share in [0, 1]")
    if scale == 1.0 and nan == 0.0:
        return data
    x_train = data.x_train * scale
    if nan > 0:
        rng = np.random.default_rng(np.random.SeedSequence([SPLIT_SEED, 1]))
        n = len(x_train)
        rows = rng.choice(n, max(1, round(n * nan)), replace=False)
        pixels = rng.integers(0, x_train[0].numel(), len(rows))
        x_train.view(n, -1)[torch.from_numpy(rows), torch.from_numpy(pixels)] = float("nan")
    return Dataset(x_train, data.y_train, data.x_val * scale, data.y_val, data.num_classes)


def digits() -> Dataset:
    """sklearn's 8x8 digits (1797 images, values 0..16), split 80/20 stratified by class."""
    x, y = _digits_arrays()
    val = np.zeros(len(y), dtype=bool)
    val[stratified_subset(y, 0.2, seed=SPLIT_SEED)] = True
    return _tensors(x[~val], y[~val], x[val], y[val])


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    # The CSV that sklearn.datasets.load_digits reads, read directly: importing sklearn.datasets takes
    # 1.5-2 s, paid by every worker process before its first trial. load_digits is the fallback.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.exists():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        return table[:, :-1].reshape(-1, 1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32)[:, None], bunch.target


SHAPE_NAMES = ("plus", "hbar", "vbar", "disk", "frame", "triangle", "cross", "ring", "square", "diamond")


def shapes(n: int = 2000, size: int = 16, classes: int = 4, channels: int = 1, noise: float = 0.3,
           seed: int = 0) -> Dataset:
    """A generated classification task: which of the first `classes` shapes (most distinct first) is drawn, at a random position,
    scale and brightness, on a noisy background. 80% train, 20% val.

    Up to 20 classes: beyond 10, a class is a shape and a size band, the first ten drawn small
    (half-side 0.15-0.25 of the image) and the next ones large (0.32-0.45), so a model must tell
    both what and how big."""
    if not 2 <= classes <= 2 * len(SHAPE_NAMES):
        raise ValueError(f"shapes: classes must be in 2..{2 * len(SHAPE_NAMES)}")
    if size < 8:
        raise ValueError("shapes: size must be >= 8")
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    y = labels % len(SHAPE_NAMES)                          # the shape drawn
    if classes <= len(SHAPE_NAMES):
        half = rng.uniform(0.2, 0.35, n) * size           # half the shape's side, in pixels
    else:
        large = labels >= len(SHAPE_NAMES)
        half = np.where(large, rng.uniform(0.32, 0.45, n), rng.uniform(0.15, 0.25, n)) * size
    cy, cx = (rng.uniform(half, size - half) for _ in range(2))
    grid = np.arange(size, dtype=np.float32) + 0.5
    dy = (grid[None, :, None] - cy[:, None, None]) / half[:, None, None]  # shape-local coordinates
    dx = (grid[None, None, :] - cx[:, None, None]) / half[:, None, None]
    r = np.sqrt(dx**2 + dy**2)
    masks = {
        "disk": r <= 1,
        "ring": (r <= 1) & (r >= 0.6),
        "square": (abs(dx) <= 0.9) & (abs(dy) <= 0.9),
        "frame": (abs(dx) <= 0.9) & (abs(dy) <= 0.9) & ((abs(dx) >= 0.55) | (abs(dy) >= 0.55)),
        "triangle": (dy <= 0.9) & (dy >= -0.9) & (abs(dx) <= (dy + 0.9) / 1.8),
        "plus": ((abs(dx) <= 0.25) & (abs(dy) <= 1)) | ((abs(dy) <= 0.25) & (abs(dx) <= 1)),
        "cross": (abs(abs(dx) - abs(dy)) <= 0.3) & (r <= 1.2),
        "hbar": (abs(dy) <= 0.3) & (abs(dx) <= 1),
        "vbar": (abs(dx) <= 0.3) & (abs(dy) <= 1),
        "diamond": abs(dx) + abs(dy) <= 1,
    }
    stack = np.stack([masks[name] for name in SHAPE_NAMES[:min(classes, len(SHAPE_NAMES))]], axis=1)
    img = stack[np.arange(n), y].astype(np.float32) * rng.uniform(0.5, 1.0, (n, 1, 1))
    tint = rng.uniform(0.5, 1.0, (n, channels, 1, 1)).astype(np.float32)
    x = img[:, None] * tint + noise * rng.standard_normal((n, channels, size, size)).astype(np.float32)
    cut = int(n * 0.8)
    return _tensors(x[:cut], labels[:cut], x[cut:], labels[cut:])


def from_npz(path: str) -> Dataset:
    """x_train, y_train, x_val, y_val; images NCHW or NHWC (or NHW for one channel)."""
    with np.load(path) as f:
        missing = {"x_train", "y_train", "x_val", "y_val"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        arrays = [f[k] for k in ("x_train", "y_train", "x_val", "y_val")]
    xtr, ytr, xva, yva = arrays
    return _tensors(_nchw(xtr), ytr, _nchw(xva), yva)


def _nchw(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must have 3 or 4 dimensions, got shape {x.shape}")
    # Channels are the small axis: NHWC when the last axis looks like channels and the second does not.
    if x.shape[-1] in (1, 2, 3, 4) and x.shape[1] not in (1, 2, 3, 4):
        return x.transpose(0, 3, 1, 2)
    return x


def _tensors(xtr, ytr, xva, yva) -> Dataset:
    ytr, yva = np.asarray(ytr).astype(np.int64), np.asarray(yva).astype(np.int64)
    num_classes = int(max(ytr.max(), yva.max())) + 1
    as_float = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return Dataset(as_float(xtr), torch.from_numpy(ytr), as_float(xva), torch.from_numpy(yva), num_classes)


def choose_classes(num_classes: int, k: int, data_seed: int) -> list[int]:
    """k class ids out of num_classes, sorted; a prefix of one seeded permutation, so smaller k
    give subsets of larger k."""
    if not 2 <= k <= num_classes:
        raise ValueError(f"classes must be in 2..{num_classes} for this dataset, got {k}")
    order = np.random.default_rng(np.random.SeedSequence([data_seed, _CLASS_STREAM])).permutation(num_classes)
    return sorted(int(c) for c in order[:k])


def nested_stratified_subset(y: np.ndarray, fraction: float, data_seed: int) -> np.ndarray:
    """Sorted indices keeping ceil(fraction * n_c) (at least 1) of each class c. Each class has its
    own seeded permutation and a subset is a prefix of it: the same (fraction, seed) gives the same
    samples, and a smaller fraction's samples are inside a larger one's."""
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng = np.random.default_rng(np.random.SeedSequence([data_seed, _FRACTION_STREAM, int(c)]))
        keep.append(rng.permutation(idx)[: max(1, math.ceil(len(idx) * fraction))])
    return np.sort(np.concatenate(keep))


def subset_fidelity(fraction: float, chosen: list[int] | None, data_seed: int, keep: np.ndarray | None,
                    train_samples: int, val_samples: int) -> dict:
    """What a trial trained on, small enough to store on the trial: the knobs, the sizes, and a
    digest of the kept training indices so two runs can be checked to have seen the same samples."""
    if chosen is None and keep is None:
        return {}
    digest = hashlib.sha256(np.asarray(keep if keep is not None else [], dtype=np.int64).tobytes())
    if chosen is not None:
        digest.update(np.asarray(chosen, dtype=np.int64).tobytes())
    return {"data_fraction": float(fraction), "classes": chosen, "data_seed": int(data_seed),
            "train_samples": int(train_samples), "val_samples": int(val_samples),
            "subset_digest": digest.hexdigest()[:16]}


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices keeping `fraction` of each class (at least one per class), in random order."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.choice(idx, max(1, math.ceil(len(idx) * fraction)), replace=False))
    return rng.permutation(np.concatenate(keep))


def epoch_batches(y: torch.Tensor, batch_size: int, balanced: bool, gen: torch.Generator):
    """Index batches for one epoch: a fresh shuffle each epoch, or, when balanced, as many draws
    (with replacement) weighted by 1/class-count so every class is about equally present."""
    n = y.shape[0]
    if balanced:
        weights = 1.0 / torch.bincount(y).float()[y]
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        order = torch.randperm(n, device=y.device, generator=gen)
    return order.split(batch_size)


def augment(x: torch.Tensor, config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random crop after padding, horizontal flip, small rotations and shifts, per sample, batched."""
    b, _, h, w = x.shape
    dev = x.device
    if config.crop_padding > 0:
        p = config.crop_padding
        padded = F.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (b, 1), device=dev, generator=gen)
        ox = torch.randint(0, 2 * p + 1, (b, 1), device=dev, generator=gen)
        rows = (oy + torch.arange(h, device=dev))[:, None, :, None]   # (b, 1, h, 1)
        cols = (ox + torch.arange(w, device=dev))[:, None, None, :]   # (b, 1, 1, w)
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(x.shape[1], device=dev)[None, :, None, None]
        x = padded[bi, ci, rows, cols]
    if config.hflip:
        flip = torch.rand(b, device=dev, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if config.rotate_degrees > 0 or config.shift_fraction > 0:
        angle = (torch.rand(b, device=dev, generator=gen) * 2 - 1) * math.radians(config.rotate_degrees)
        shift = (torch.rand(b, 2, device=dev, generator=gen) * 2 - 1) * 2 * config.shift_fraction
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid.to(x.dtype), padding_mode="zeros", align_corners=False)
    return x
