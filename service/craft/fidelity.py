"""Fidelity: how much of the problem a trial was trained on, kept apart from its hyperparameters.

A trial's value means little without its fidelity: a validation loss after 2 epochs on 10% of the
data is not comparable with one after 10 epochs on all of it. `epochs`, `data_fraction` and `classes`
(train and validate on k of the classes) are therefore not ordinary parameters: they are a
`Fidelity`, recorded on each trial as a small dict, shown next to its value, and used to rank trials
only against trials of the same fidelity level.

Cost and resource are counted in full-data epochs: a run of e epochs on a fraction f of the data,
restricted to k of C classes, costs e * f * k / C (it trains on that many training sets' worth of
images, the images of the kept classes being about k / C of them). Multi-fidelity pruners
(ASHA, Hyperband) can use this as their resource instead of the epoch count (`resource`,
`resource_steps`), and successive halving over data size uses `fraction_ladder`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tuneserve_service.craft.errors import CraftError

FIDELITY_KEYS = ("epochs", "data_fraction", "classes")
RECORD_KEYS = FIDELITY_KEYS + ("data_seed",)
# Parameter leaf names (the last part of a dotted name) that give the epochs a run trains.
EPOCH_NAMES = frozenset({"epochs", "max_epochs", "num_epochs"})


class FidelityError(CraftError):
    """An invalid fidelity: `path` names the field ("stages[0].data_fraction"), `rule` the rule broken."""


@dataclass(frozen=True)
class Fidelity:
    """epochs: None means the objective's own default; classes: None means every class."""

    epochs: int | None = None
    data_fraction: float = 1.0
    classes: int | None = None
    data_seed: int = 0

    @classmethod
    def from_dict(cls, data: Any, path: str = "fidelity") -> Fidelity:
        """Validate a mapping with any of epochs, data_fraction, classes, data_seed."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise FidelityError(path, f"must be a mapping of {', '.join(RECORD_KEYS)}")
        unknown = sorted(set(data) - set(RECORD_KEYS), key=str)
        if unknown:
            raise FidelityError(f"{path}.{unknown[0]}", f"unknown key (allowed: {', '.join(RECORD_KEYS)})")
        epochs = data.get("epochs")
        if epochs is not None:
            epochs = check_int(epochs, f"{path}.epochs", minimum=1)
        fraction = data.get("data_fraction", 1.0)
        fraction = check_fraction(fraction, f"{path}.data_fraction")
        classes = data.get("classes")
        if classes is not None:
            classes = check_int(classes, f"{path}.classes", minimum=2)
        seed = check_int(data.get("data_seed", 0), f"{path}.data_seed", minimum=0)
        return cls(epochs, fraction, classes, seed)

    def to_dict(self) -> dict[str, Any]:
        """The record stored on a trial: unset knobs (None) are left out."""
        out: dict[str, Any] = {"data_fraction": self.data_fraction, "data_seed": self.data_seed}
        if self.epochs is not None:
            out["epochs"] = self.epochs
        if self.classes is not None:
            out["classes"] = self.classes
        return out

    def with_overrides(self, overrides: dict[str, Any] | None, path: str = "fidelity") -> Fidelity:
        """This fidelity with the knobs `overrides` names replaced, validated as a whole."""
        if not overrides:
            return self
        return Fidelity.from_dict({**self.to_dict(), **overrides}, path)

    @property
    def level(self) -> tuple[int | None, float, int | None]:
        """What must match for two values to be comparable (the data seed picks samples, not size)."""
        return (self.epochs, self.data_fraction, self.classes)

    def is_full_data(self) -> bool:
        return self.data_fraction == 1.0 and self.classes is None

    def share(self, num_classes: int | None = None) -> float:
        """The part of one full training set a single epoch at this fidelity sees."""
        share = self.data_fraction
        if self.classes is not None:
            if num_classes is None:
                raise FidelityError("classes", "the number of classes of the dataset is needed to cost a class subset")
            share *= min(1.0, self.classes / num_classes)
        return share

    def cost(self, num_classes: int | None = None, default_epochs: int | None = None) -> float:
        """Full-data epochs one run at this fidelity costs."""
        epochs = self.epochs if self.epochs is not None else default_epochs
        if epochs is None:
            raise FidelityError("epochs", "unknown: give the objective's default epochs to cost this run")
        return epochs * self.share(num_classes)

    def label(self, num_classes: int | None = None) -> str:
        """A short human label, e.g. "2 epochs, 10% data, 4 of 10 classes"."""
        parts = [] if self.epochs is None else [f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"]
        parts.append(f"{_percent(self.data_fraction)} data")
        if self.classes is not None:
            parts.append(f"{self.classes} of {num_classes} classes" if num_classes else f"{self.classes} classes")
        return ", ".join(parts)


def _percent(fraction: float) -> str:
    pct = 100 * fraction
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:.3g}%"


def check_int(value: Any, path: str, *, minimum: int) -> int:
    integral = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())
    if not integral or int(value) < minimum:
        raise FidelityError(path, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= 1:
        raise FidelityError(path, f"must be a number in (0, 1], got {value!r}")
    return float(value)


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], Fidelity]:
    """Flat params -> (the hyperparameters, the fidelity they carried). A built-in trainer's params
    may hold epochs / data_fraction / classes / data_seed at the top level; they are taken out."""
    hyper = {k: v for k, v in params.items() if k not in RECORD_KEYS}
    found = {k: params[k] for k in RECORD_KEYS if k in params}
    return hyper, Fidelity.from_dict(found, path="params")


def apply_fidelity(params: dict[str, Any], fidelity: Fidelity) -> dict[str, Any]:
    """The params a built-in trainer run gets: the hyperparameters with the fidelity's knobs set
    (the ones left at "all" or "default" are not added, so the trainer's defaults hold)."""
    out = {k: v for k, v in params.items() if k not in RECORD_KEYS}
    out.update(fidelity.to_dict())
    if fidelity.data_seed == 0:
        out.pop("data_seed")
    if fidelity.data_fraction == 1.0:
        out.pop("data_fraction")
    return out


def resource(fidelity: Fidelity, step: int, num_classes: int | None = None) -> float:
    """Full-data epochs a trial at `fidelity` has trained for when it reports step `step` (epochs done)."""
    return step * fidelity.share(num_classes)


def resource_steps(fidelity: Fidelity, step: int, unit: float, num_classes: int | None = None) -> int:
    """`resource` in whole units of `unit` full-data epochs, for pruners that count integer steps:
    with unit = the smallest data fraction of a study, its epochs are steps 1, 2, 3, ... and an epoch
    on all the data is 1 / unit steps. Never below 1 once a step is reported."""
    if unit <= 0:
        raise FidelityError("unit", f"must be > 0, got {unit!r}")
    return max(1, round(resource(fidelity, step, num_classes) / unit))


def fraction_ladder(min_fraction: float, eta: int = 3) -> list[float]:
    """Data fractions for successive halving over data size: min_fraction * eta^k up to 1, the last
    one always 1. E.g. (1/9, 3) -> [1/9, 1/3, 1]; (0.1, 3) -> [0.1, 0.3, 0.9, 1]."""
    check_fraction(min_fraction, "min_fraction")
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise FidelityError("eta", f"must be an integer >= 2, got {eta!r}")
    ladder, f = [], min_fraction
    while f < 1 - 1e-9:
        ladder.append(f)
        f *= eta
    return ladder + [1.0]


def highest_level(fidelities: Iterable[Fidelity]) -> tuple | None:
    """The level of the highest fidelity among `fidelities`, the one a study's best is chosen at:
    all classes before a class subset, then the larger data fraction, the more classes, the more
    epochs (None, the objective's default, counts as fewer than any number)."""
    best, best_key = None, None
    for f in fidelities:
        key = (f.classes is None, f.data_fraction, f.classes or 0, -1 if f.epochs is None else f.epochs)
        if best_key is None or key > best_key:
            best, best_key = f.level, key
    return best


def map_by_rank(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Put values measured at one fidelity on the scale of another by rank (quantile matching).

    A warm start hands a child stage its parent's results, but a 2-epoch loss and a 10-epoch loss
    are on different scales: fed as they are, every parent point looks worse than every child
    point, and a model-based optimizer learns to avoid exactly the region the parent found good.
    Their order is what carries over. Each value's mid-rank quantile (rank + 0.5) / n among
    `values` is mapped to the same quantile of `reference` (linear interpolation); ties share a
    rank. With no reference yet the values are returned unchanged (only their order matters then).
    """
    vals = np.asarray(values, dtype=float)
    ref = np.sort(np.asarray(reference, dtype=float))
    if len(vals) == 0 or len(ref) == 0:
        return [float(v) for v in vals]
    order = np.argsort(vals, kind="stable")
    ranks = np.empty(len(vals))
    ranks[order] = np.arange(len(vals), dtype=float)
    for v in np.unique(vals):  # ties: the mean rank of the tied values
        tied = vals == v
        ranks[tied] = ranks[tied].mean()
    quantiles = (ranks + 0.5) / len(vals)
    return [float(x) for x in np.quantile(ref, quantiles)]


def epoch_budget(params: Mapping[str, Any], record: Mapping[str, Any] | None = None) -> int | None:
    """The epochs a run was set to train: its fidelity record's `epochs` (a managed study hands them
    to the run), else its parameter named epochs, max_epochs or num_epochs (the leaf of a dotted
    name) when that is a whole number >= 1; None when neither says."""
    candidates = [record.get("epochs")] if record else []
    candidates += [v for k, v in params.items() if k.rsplit(".", 1)[-1] in EPOCH_NAMES]
    for value in candidates:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if float(value).is_integer() and value >= 1:   # False for inf and nan
            return int(value)
    return None
