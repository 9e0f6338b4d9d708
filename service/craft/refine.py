"""Coarse to fine: a parent study's space and its best trials -> the child study's space.

The rule, per parameter of the parent's W&B `parameters` block (nested blocks walked, names dotted):
  - numeric ranges (uniform, log_uniform_values, int_uniform, the q_ and exponent forms) shrink to
    the span [a, b] of the top k trials' values, in internal coordinates (ln for log families, so a
    log parameter shrinks in log space), widened by `margin` * (b - a) on each side, made at least
    `min_fraction` of the parent's width (centred on the span, shifted to stay inside), and clipped to
    the parent's bounds; int and q families round outwards to legal values and never collapse;
  - normal families (unbounded) move mu to the top k's mean and shrink sigma to their standard
    deviation times (1 + margin), never above the parent's sigma nor below min_fraction of it;
  - categoricals keep the values seen among the top k, in the parent's order (probabilities
    renormalised over them);
  - constants are kept, and so is any spec this module does not know (a distribution added to
    tuneserve_service.space later): it passes through unchanged, as in the parent;
  - fidelity knobs (epochs, data_fraction, classes) are never searched by a refine: the child has
    its own fidelity, and a knob that sits in the block becomes a constant of the child's value.

The top k are the parent's completed trials with a finite value, best first (ties by trial number),
all at the parent's highest fidelity level when trials carry a fidelity (never a 10% run against a
full one). The plan also lists which parent trials fall inside the child's space, and `warm_start`
hands them to the child's optimizer with their values put on the child's scale.
"""
from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Sequence

from tuneserve_service.craft.errors import CraftError
from tuneserve_service.craft.fidelity import FIDELITY_KEYS, Fidelity, highest_level, map_by_rank
from tuneserve_service.craft.trials import TrialResult
from tuneserve_service.space import Dimension, SearchSpace, unflatten_params
from tuneserve_service.space.model import BETA_DISTRIBUTIONS
from tuneserve_service.space.parse import SpaceError, parse_spec

MARGIN = 0.25
MIN_FRACTION = 0.1
_TOL = 1e-9


class RefineError(CraftError):
    """A refine that cannot be planned: `path` names the field, `rule` the rule broken."""


@dataclass(frozen=True)
class Change:
    """What happened to one parameter: narrowed, restricted, moved (normal families), kept,
    passed_through (an unknown kind), or fidelity (set by the override)."""

    path: str
    action: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "action": self.action, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class RefinePlan:
    parameters: dict[str, Any]             # the child's W&B parameters block
    changes: tuple[Change, ...]
    top: tuple[int, ...]                   # parent trial numbers the ranges were taken from, best first
    inside: tuple[int, ...]                # parent trial numbers inside the child space (the warm start)
    fidelity: Fidelity                     # the child's fidelity
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record a child study keeps of how it was made (its parameters are stored anyway)."""
        return {"top": list(self.top), "inside": list(self.inside), "fidelity": self.fidelity.to_dict(),
                "changes": [c.to_dict() for c in self.changes], "options": dict(self.options)}


def space_to_parameters(space: SearchSpace) -> dict[str, Any]:
    """A SearchSpace back to a nested W&B `parameters` block (explicit distributions)."""
    flat = {}
    for dim in space.dimensions:
        spec = dim.to_json()
        spec.pop("name")
        flat[dim.name] = spec
    nested = unflatten_params(flat)

    def wrap(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        out = {}
        for key, value in node.items():
            name = f"{prefix}{key}"
            out[key] = value if name in flat else {"parameters": wrap(value, f"{name}.")}
        return out

    return wrap(nested, "")


def top_trials(trials: Iterable[TrialResult], k: int, goal: str = "minimize") -> list[TrialResult]:
    """The k best completed trials with a finite value, best first, ties by trial number; only those at
    the highest fidelity level present, so a short cheap run is never ranked against a full one."""
    if goal not in ("minimize", "maximize"):
        raise RefineError("goal", f"must be minimize or maximize, got {goal!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RefineError("top_k", f"must be an integer >= 1, got {k!r}")
    done = [t for t in trials if t.state == "completed" and t.value is not None and math.isfinite(t.value)]
    fidelities = [t.fidelity for t in done if t.fidelity is not None]
    if fidelities:
        level = highest_level(fidelities)
        done = [t for t in done if t.fidelity is None or t.fidelity.level == level]
    sign = 1.0 if goal == "minimize" else -1.0
    return sorted(done, key=lambda t: (sign * t.value, t.number))[:k]


def refine(parent: dict[str, Any] | SearchSpace, trials: Sequence[TrialResult], top_k: int = 5,
           goal: str = "minimize", *, margin: float = MARGIN, min_fraction: float = MIN_FRACTION,
           fidelity: Fidelity | None = None) -> RefinePlan:
    """Plan the child of `parent` (a W&B parameters block or a SearchSpace) from its trials.

    `fidelity` is the child's fidelity (default: all the data, the objective's own epochs); a
    fidelity knob that sits in the parent's block becomes a constant of the child's value
    (epochs and classes only when the child's fidelity sets them).
    """
    block = space_to_parameters(parent) if isinstance(parent, SearchSpace) else parent
    if not isinstance(block, dict) or not block:
        raise RefineError("parameters", "the parent's parameters block must be a non-empty mapping")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise RefineError("margin", f"must be a number >= 0, got {margin!r}")
    if isinstance(min_fraction, bool) or not isinstance(min_fraction, (int, float)) or not 0 < min_fraction <= 1:
        # > 0: a single top trial would otherwise give a range of zero width, which is no range
        raise RefineError("min_fraction", f"must be a number in (0, 1], got {min_fraction!r}")
    child_fidelity = fidelity or Fidelity()
    knobs = {k: v for k, v in child_fidelity.to_dict().items() if k in FIDELITY_KEYS}
    top = top_trials(trials, top_k, goal)
    if not top:
        raise RefineError("trials", "the parent has no completed trial with a finite value to refine around")
    changes: list[Change] = []
    dims: dict[str, Dimension] = {}
    child = _refine_block(block, "", top, margin, min_fraction, knobs, changes, dims)
    inside = tuple(t.number for t in trials if _inside(t.params, dims))
    return RefinePlan(parameters=child, changes=tuple(changes), top=tuple(t.number for t in top),
                      inside=inside, fidelity=child_fidelity,
                      options={"top_k": top_k, "goal": goal, "margin": margin, "min_fraction": min_fraction})


def warm_start(parent_trials: Iterable[TrialResult], child_space: SearchSpace,
               child_values: Sequence[float] = (), exclude: Iterable[int] = ()) -> list[tuple[dict[str, Any], float]]:
    """The parent's completed trials that lie inside the child's space, as (params, value) for the
    child's optimizer: params cut to the child's parameters (its constants, fidelity knobs included,
    set to the child's values), values mapped by rank onto the child's own completed values
    (fidelity.map_by_rank: a short run's loss is not on a long run's scale, its rank is). `exclude`
    are parent trial numbers to leave out (the top k when they are re-run in the child)."""
    names = set(child_space.names)
    skip = set(exclude)
    picked: list[tuple[dict[str, Any], float]] = []
    for t in parent_trials:
        if t.number in skip or t.state != "completed" or t.value is None or not math.isfinite(t.value):
            continue
        params = {k: v for k, v in t.params.items() if k in names}
        for dim in child_space.dimensions:
            if dim.kind == "constant":
                params[dim.name] = dim.from_internal(0.0)
        if set(params) == names and child_space.contains(params):
            picked.append((params, float(t.value)))
    mapped = map_by_rank([v for _, v in picked], child_values)
    return [(params, value) for (params, _), value in zip(picked, mapped)]


def _refine_block(block: dict[str, Any], prefix: str, top: list[TrialResult], margin: float,
                  min_fraction: float, overrides: dict[str, Any], changes: list[Change],
                  dims: dict[str, Dimension]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in block.items():
        path = f"{prefix}{name}"
        if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
            out[name] = {**spec, "parameters": _refine_block(spec["parameters"], f"{path}.", top, margin,
                                                              min_fraction, overrides, changes, dims)}
            continue
        if not prefix and name in FIDELITY_KEYS and name in overrides:
            out[name] = {"value": overrides[name]}
            changes.append(Change(path, "fidelity", copy.deepcopy(spec), out[name]))
            continue
        try:
            dim = parse_spec(path, spec)
        except SpaceError:
            dim = None  # a kind this module does not know: kept as the parent has it
        values = [t.params[path] for t in top if path in t.params]
        if dim is None:
            out[name] = copy.deepcopy(spec)
            changes.append(Change(path, "passed_through", spec, spec))
            continue
        new_spec, action = refine_spec(dim, spec, values, margin, min_fraction)
        out[name] = new_spec
        dims[path] = parse_spec(path, new_spec)
        changes.append(Change(path, action, copy.deepcopy(spec), copy.deepcopy(new_spec)))
    return out


def _inside(params: dict[str, Any], dims: dict[str, Dimension]) -> bool:
    for path, dim in dims.items():
        if path not in params:
            return False
        try:
            if not dim.contains(params[path]):
                return False
        except (TypeError, ValueError):
            return False
    return True


def refine_spec(dim: Dimension, spec: dict[str, Any], values: list[Any], margin: float,
                min_fraction: float) -> tuple[dict[str, Any], str]:
    """One parameter's child spec and the action taken, from the top trials' values of it."""
    d = dim.distribution
    legal = [v for v in values if _legal(dim, v)]
    # A beta prior on [0, 1] has no bounds of its own to shrink: it is kept as the parent wrote it.
    if d == "constant" or d in BETA_DISTRIBUTIONS or not legal:
        return copy.deepcopy(spec), "kept"
    if d == "categorical":
        return _restrict(dim, spec, legal)
    internal = [dim.to_internal(v) for v in legal]
    if dim.value_bounds() is None:
        return _move_normal(dim, internal, margin, min_fraction)
    lo_b, hi_b = dim.internal_bounds()
    lo, hi = shrink_interval(min(internal), max(internal), lo_b, hi_b, margin, min_fraction)
    return bounded_spec(dim, lo, hi), "narrowed"


def shrink_interval(a: float, b: float, lo_b: float, hi_b: float, margin: float,
                    min_fraction: float) -> tuple[float, float]:
    """[a, b] widened by margin * (b - a) per side, at least min_fraction * (hi_b - lo_b) wide
    (centred on [a, b], shifted back inside), clipped to [lo_b, hi_b]."""
    pad = margin * (b - a)
    lo, hi = a - pad, b + pad
    min_width = min_fraction * (hi_b - lo_b)
    if hi - lo < min_width:
        centre = (a + b) / 2
        lo, hi = centre - min_width / 2, centre + min_width / 2
        if lo < lo_b:
            lo, hi = lo_b, lo_b + min_width
        if hi > hi_b:
            lo, hi = hi_b - min_width, hi_b
    return max(lo, lo_b), min(hi, hi_b)


def _legal(dim: Dimension, value: Any) -> bool:
    try:
        return dim.contains(value)
    except (TypeError, ValueError):
        return False


def _restrict(dim: Dimension, spec: dict[str, Any], values: list[Any]) -> tuple[dict[str, Any], str]:
    seen = {dim.to_internal(v) for v in values}
    keep = [i for i in range(len(dim.values)) if float(i) in seen]
    new = {k: copy.deepcopy(v) for k, v in spec.items() if k not in ("values", "probabilities")}
    new["values"] = [copy.deepcopy(spec["values"][i]) for i in keep]
    if dim.probabilities is not None:
        kept = [dim.probabilities[i] for i in keep]
        total = math.fsum(kept)
        new["probabilities"] = [p / total for p in kept] if total > 0 else [1 / len(kept)] * len(kept)
    return new, "restricted" if len(keep) < len(dim.values) else "kept"


def _move_normal(dim: Dimension, internal: list[float], margin: float,
                 min_fraction: float) -> tuple[dict[str, Any], str]:
    mu = statistics.fmean(internal)
    spread = statistics.pstdev(internal) * (1 + margin) if len(internal) > 1 else 0.0
    sigma = min(dim.sigma, max(spread, min_fraction * dim.sigma))
    new: dict[str, Any] = {"distribution": dim.distribution, "mu": mu, "sigma": sigma}
    if dim.q is not None:
        new["q"] = dim.q
    return new, "moved"


def bounded_spec(dim: Dimension, lo: float, hi: float) -> dict[str, Any]:
    """The spec of `dim`'s family over internal coordinates [lo, hi] (inside its bounds): value or
    exponent bounds as the family writes them, int and q families rounded outwards to legal values."""
    d = dim.distribution
    lo_b, hi_b = dim.internal_bounds()
    if d == "int_uniform":
        k_lo = max(dim.min, math.floor(lo + _TOL))
        k_hi = min(dim.max, math.ceil(hi - _TOL))
        if k_lo == k_hi:  # never collapse: a refined integer range keeps two values
            k_lo, k_hi = (k_lo, k_lo + 1) if k_lo < dim.max else (k_lo - 1, k_lo)
        return {"distribution": d, "min": int(k_lo), "max": int(k_hi)}
    if d == "log_uniform":
        return {"distribution": d, "min": lo, "max": hi}
    if d == "inv_log_uniform":
        return {"distribution": d, "min": -hi, "max": -lo}
    # Value bounds; at the parent's edges its own bound, never exp(log(bound)) an ulp off.
    raw_lo, raw_hi = (math.exp(lo), math.exp(hi)) if dim.is_log else (lo, hi)
    if _tidy(raw_lo) < _tidy(raw_hi):
        raw_lo, raw_hi = _tidy(raw_lo), _tidy(raw_hi)
    v_lo = dim.min if lo <= lo_b + _TOL else max(dim.min, raw_lo)
    v_hi = dim.max if hi >= hi_b - _TOL else min(dim.max, raw_hi)
    if dim.is_quantized:
        q = dim.q
        k_lo, k_hi = math.floor(v_lo / q + _TOL), math.ceil(v_hi / q - _TOL)
        v_lo, v_hi = max(_lattice(k_lo, q), dim.min), min(_lattice(k_hi, q), dim.max)
        if v_lo == v_hi:
            v_lo, v_hi = dim.min, dim.max
        return {"distribution": d, "min": v_lo, "max": v_hi, "q": q}
    return {"distribution": d, "min": float(v_lo), "max": float(v_hi)}


def _tidy(x: float) -> float:
    """12 significant digits: exp(log(0.01)) is 0.010000000000000004, and a user reads these bounds."""
    return float(f"{x:.12g}")


def _lattice(k: int, q: int | float) -> int | float:
    if isinstance(q, int):
        return k * q
    return round(k * q, max(0, -int(Decimal(repr(float(q))).as_tuple().exponent)))
