"""Parse and validate a W&B sweep `parameters` block into a SearchSpace.

Every rule broken raises SpaceError(path, rule): `path` is the dotted parameter name, `rule` a
sentence a person can act on, e.g. "parameters.optimizer.lr: min (0.1) must be < max (0.01)".
The first problem found is reported (parameters in name order).

Spec forms (W&B sweep configuration, `parameters` key):
  {value: v}                      constant (distribution "constant")
  {values: [...]}                 categorical; optional `probabilities` (same length, >= 0, sum 1)
  {min: a, max: b}                int_uniform when both are integers, else uniform (W&B inference)
  {distribution: d, ...}          explicit distribution, with the keys listed in DISTRIBUTION_KEYS
  {parameters: {...}}             a nested block; its parameters get dotted names ("optimizer.lr")

Distributions and what a draw is (U = uniform, N = normal, ln = natural log); these follow W&B's
sweeps library (src/sweeps/params.py), where `log_uniform` and `inv_log_uniform` are the "v1"
forms whose bounds are exponents, and the `*_values` forms take bounds as values:
  constant                 value
  categorical              one of values (uniform, or by `probabilities`)
  int_uniform              integer uniform on [min, max] (both ends included)
  uniform                  U(min, max)
  q_uniform                round(U(min, max) / q) * q                       (q default 1)
  log_uniform_values       exp(U(ln min, ln max))          value in [min, max], min > 0
  q_log_uniform_values     round(exp(U(ln min, ln max)) / q) * q
  inv_log_uniform_values   1 / exp(U(ln(1/max), ln(1/min))): value in [min, max]; as a
                           distribution of the value this equals log_uniform_values (W&B keeps
                           it for symmetry with inv_log_uniform)
  log_uniform              exp(U(min, max))   min/max are exponents: value in [e^min, e^max]
  inv_log_uniform          exp(-U(min, max))  min/max are exponents: value in [e^-max, e^-min]
  normal                   N(mu, sigma)                                     (mu 0, sigma 1)
  q_normal                 round(N(mu, sigma) / q) * q
  log_normal               exp(N(mu, sigma))
  q_log_normal             round(exp(N(mu, sigma)) / q) * q, at least q

Where we are stricter than W&B (it would accept these and misbehave later): min must be < max;
sigma must be > 0; values must be unique and JSON scalars or lists; bounds and q must be finite
numbers and never booleans; a q lattice must have a point inside [min, max]; bounded quantized
draws are kept inside [min, max] (W&B's rounding can step past a bound); exponent bounds that
overflow exp() are refused (a common sign of meaning log_uniform_values).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from service.space.model import (
    DISTRIBUTIONS,
    LOG_DISTRIBUTIONS,
    Dimension,
    SearchSpace,
    _is_number,
    value_key,
)


class SpaceError(ValueError):
    """An invalid search space: `path` names the parameter ("optimizer.lr"), `rule` the rule broken."""

    def __init__(self, path: str, rule: str):
        super().__init__(f"parameters.{path}: {rule}" if path else f"parameters: {rule}")
        self.path = path
        self.rule = rule


_BOUNDS = ("distribution", "min", "max")
DISTRIBUTION_KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("distribution", "value"),
    "categorical": ("distribution", "values", "probabilities"),
    "int_uniform": _BOUNDS,
    "uniform": _BOUNDS,
    "q_uniform": _BOUNDS + ("q",),
    "log_uniform_values": _BOUNDS,
    "q_log_uniform_values": _BOUNDS + ("q",),
    "inv_log_uniform_values": _BOUNDS,
    "log_uniform": _BOUNDS,
    "inv_log_uniform": _BOUNDS,
    "normal": ("distribution", "mu", "sigma"),
    "q_normal": ("distribution", "mu", "sigma", "q"),
    "log_normal": ("distribution", "mu", "sigma"),
    "q_log_normal": ("distribution", "mu", "sigma", "q"),
}
assert set(DISTRIBUTION_KEYS) == DISTRIBUTIONS
KNOWN_KEYS = frozenset(k for keys in DISTRIBUTION_KEYS.values() for k in keys) | {"parameters"}

# Largest exponent exp() takes without overflowing a float.
_MAX_EXPONENT = math.log(1.7976931348623157e308)


def parse_parameters(block: dict[str, Any]) -> SearchSpace:
    if not isinstance(block, dict):
        raise SpaceError("", f"must be a mapping of parameter names to specs, got {_type_name(block)}")
    if not block:
        raise SpaceError("", "must define at least one parameter")
    dims: list[Dimension] = []
    _collect(block, "", dims)
    # Name order, not document order: the same space must come out of a JSONB round trip, which
    # reorders keys, so that grid order and seeded draws are stable.
    dims.sort(key=lambda d: d.name)
    return SearchSpace(tuple(dims))


def _collect(block: dict[str, Any], prefix: str, out: list[Dimension]) -> None:
    for name in sorted(block, key=str):
        path = f"{prefix}{name}"
        _check_name(name, path)
        spec = block[name]
        if isinstance(spec, dict) and "parameters" in spec:
            extra = sorted(set(spec) - {"parameters"}, key=str)
            if extra:
                raise SpaceError(path, f"a nested block takes only `parameters`; unexpected key '{extra[0]}'")
            inner = spec["parameters"]
            if not isinstance(inner, dict):
                raise SpaceError(path, f"`parameters` must be a mapping, got {_type_name(inner)}")
            if not inner:
                raise SpaceError(path, "a nested `parameters` block must define at least one parameter")
            _collect(inner, f"{path}.", out)
        else:
            out.append(parse_dimension(path, spec))


def parse_dimension(path: str, spec: Any) -> Dimension:
    """Validate one parameter spec (not a nested block) named by its dotted `path`."""
    for part in str(path).split("."):
        _check_name(part, path)
    if not isinstance(spec, dict):
        raise SpaceError(path, f"a parameter spec must be a mapping (value, values, min/max, distribution "
                               f"or parameters), got {_type_name(spec)}")
    unknown = sorted((k for k in spec if k not in KNOWN_KEYS), key=str)
    if unknown:
        raise SpaceError(path, f"unknown key '{unknown[0]}' (known keys: {', '.join(sorted(KNOWN_KEYS))})")
    if "parameters" in spec:
        raise SpaceError(path, "a nested block takes only `parameters`")

    distribution = spec.get("distribution")
    inferred = distribution is None
    if inferred:
        distribution = _infer(path, spec)
    elif distribution not in DISTRIBUTIONS:
        raise SpaceError(path, f"unknown distribution {distribution!r} (valid: {', '.join(sorted(DISTRIBUTIONS))})")

    allowed = DISTRIBUTION_KEYS[distribution]
    for key in sorted(spec, key=str):
        if key not in allowed:
            if inferred:
                raise SpaceError(path, f"key '{key}' needs an explicit `distribution`: without one this spec "
                                       f"means '{distribution}', which takes {', '.join(allowed[1:])}")
            raise SpaceError(path, f"key '{key}' does not apply to distribution '{distribution}' "
                                   f"(it takes: {', '.join(allowed)})")

    if distribution == "constant":
        if "value" not in spec:
            raise SpaceError(path, "distribution 'constant' needs `value`")
        return Dimension(path, "constant", value=_check_json_value(path, "value", spec["value"]))
    if distribution == "categorical":
        values, probabilities = _categorical(path, spec)
        return Dimension(path, "categorical", values=values, probabilities=probabilities)
    if distribution in ("normal", "q_normal", "log_normal", "q_log_normal"):
        mu = _number(path, spec, "mu", distribution, default=0.0)
        sigma = _number(path, spec, "sigma", distribution, default=1.0)
        if sigma <= 0:
            raise SpaceError(path, f"sigma ({sigma}) must be > 0")
        q = _q(path, spec, distribution) if distribution.startswith("q_") else None
        return Dimension(path, distribution, mu=float(mu), sigma=float(sigma), q=q)
    return _bounded(path, spec, distribution)


def _infer(path: str, spec: dict[str, Any]) -> str:
    forms = [f for f, present in (("`value`", "value" in spec), ("`values`", "values" in spec),
                                  ("`min`/`max`", "min" in spec or "max" in spec)) if present]
    if len(forms) > 1:
        raise SpaceError(path, f"give only one of `value`, `values` or `min`/`max` (found {' and '.join(forms)})")
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical"
    if "min" in spec or "max" in spec:
        for key in ("min", "max"):
            if key not in spec:
                raise SpaceError(path, f"`{key}` is required with `{'max' if key == 'min' else 'min'}`")
            _check_number(path, key, spec[key])
        # W&B's rule: two integers mean an integer range, anything else a real one.
        both_int = all(isinstance(spec[k], int) for k in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    extra = [k for k in ("q", "mu", "sigma", "probabilities") if k in spec]
    if extra:
        raise SpaceError(path, f"`{extra[0]}` needs an explicit `distribution` "
                               f"(valid: {', '.join(sorted(DISTRIBUTIONS))})")
    raise SpaceError(path, "empty spec: give `value`, `values`, `min` and `max`, `distribution`, or `parameters`")


def _bounded(path: str, spec: dict[str, Any], distribution: str) -> Dimension:
    lo = _number(path, spec, "min", distribution)
    hi = _number(path, spec, "max", distribution)
    if distribution == "int_uniform":
        for key, v in (("min", lo), ("max", hi)):
            if not isinstance(v, int):
                raise SpaceError(path, f"int_uniform bounds must be integers, got {key}={v!r}")
    if not lo < hi:
        raise SpaceError(path, f"min ({lo}) must be < max ({hi})")
    if distribution in LOG_DISTRIBUTIONS and distribution.endswith("_values") and lo <= 0:
        raise SpaceError(path, f"min ({lo}) must be > 0 for {distribution} (the bounds are values "
                               f"whose logarithm is taken)")
    if distribution in ("log_uniform", "inv_log_uniform"):
        for key, v in (("min", lo), ("max", hi)):
            if abs(v) > _MAX_EXPONENT:
                raise SpaceError(path, f"{key} ({v}) is an exponent for {distribution} and exp({v}) is out of "
                                       f"float range; for bounds given as values use "
                                       f"{distribution}_values")
    if distribution == "int_uniform":
        return Dimension(path, distribution, min=lo, max=hi)
    q = _q(path, spec, distribution) if distribution.startswith("q_") else None
    dim = Dimension(path, distribution, min=float(lo), max=float(hi), q=q)
    if q is not None and dim.grid_size() < 1:
        raise SpaceError(path, f"no multiple of q ({q}) lies within [min, max] = [{lo}, {hi}]")
    return dim


def _categorical(path: str, spec: dict[str, Any]) -> tuple[tuple, tuple[float, ...] | None]:
    if "values" not in spec:
        raise SpaceError(path, "distribution 'categorical' needs `values`")
    values = spec["values"]
    if not isinstance(values, list):
        raise SpaceError(path, f"`values` must be a list, got {_type_name(values)}")
    if not values:
        raise SpaceError(path, "`values` must not be empty")
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        _check_json_value(path, f"values[{i}]", v)
        key = value_key(v)
        if key in seen:
            raise SpaceError(path, f"values must be unique: {v!r} appears at positions {seen[key]} and {i}")
        seen[key] = i
    probabilities = spec.get("probabilities")
    if probabilities is None:
        return tuple(values), None
    if not isinstance(probabilities, list):
        raise SpaceError(path, f"`probabilities` must be a list, got {_type_name(probabilities)}")
    if len(probabilities) != len(values):
        raise SpaceError(path, f"`probabilities` has {len(probabilities)} entries but `values` has {len(values)}")
    for i, p in enumerate(probabilities):
        _check_number(path, f"probabilities[{i}]", p)
        if p < 0:
            raise SpaceError(path, f"probabilities[{i}] ({p}) must be >= 0")
    total = math.fsum(probabilities)
    if abs(total - 1.0) > 1e-6:
        raise SpaceError(path, f"`probabilities` must sum to 1, they sum to {total:g}")
    return tuple(values), tuple(float(p) for p in probabilities)


def _q(path: str, spec: dict[str, Any], distribution: str) -> int | float:
    # Kept as int when given as int: W&B then returns integer values (e.g. batch sizes).
    q = _number(path, spec, "q", distribution, default=1)
    if q <= 0:
        raise SpaceError(path, f"q ({q}) must be > 0")
    return q


def _number(path: str, spec: dict[str, Any], key: str, distribution: str, default: Any = None) -> int | float:
    if key not in spec:
        if default is None:
            raise SpaceError(path, f"`{key}` is required for distribution '{distribution}'")
        return default
    return _check_number(path, key, spec[key])


def _check_number(path: str, key: str, v: Any) -> int | float:
    if isinstance(v, bool):
        raise SpaceError(path, f"`{key}` must be a number, not a boolean ({str(v).lower()})")
    if not _is_number(v):
        raise SpaceError(path, f"`{key}` must be a number, got {_type_name(v)} {v!r}")
    # Bounds go through floats (internal coordinates, JSON): an integer past 2**53 is not exact
    # there, and one past the float range would overflow.
    if isinstance(v, (int, np.integer)) and abs(int(v)) > 2**53:
        raise SpaceError(path, f"`{key}` must be within +-2**53, got an integer of {len(str(abs(int(v))))} digits")
    if not math.isfinite(v):
        raise SpaceError(path, f"`{key}` must be finite, got {v}")
    return int(v) if isinstance(v, (int, np.integer)) else float(v)


def _check_json_value(path: str, where: str, v: Any) -> Any:
    """Values must survive a JSON round trip unchanged and compare by value."""
    if isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            _check_json_value(path, f"{where}[{i}]", item)
        return v
    if isinstance(v, dict):
        raise SpaceError(path, f"{where} must be a JSON scalar or a list, not a mapping "
                               f"(use a nested `parameters` block for grouped parameters)")
    if isinstance(v, float) and not math.isfinite(v):
        raise SpaceError(path, f"{where} must be finite, got {v}")
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    raise SpaceError(path, f"{where} must be a JSON scalar or a list, got {_type_name(v)}")


def _check_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpaceError(str(path), f"{name!r} is not a valid parameter name (use a Python identifier: "
                                    f"letters, digits and underscores, not starting with a digit)")


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(type(v), type(v).__name__)
