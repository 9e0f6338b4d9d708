"""Parse and validate a W&B sweep `parameters` block into Dimensions (search_space.parse_parameters
makes the SearchSpace of them).

Every rule broken raises SpaceError(path, rule): `path` is the flat parameter name (split_name
gives its parts), `rule` a sentence a person can act on, e.g. "parameters.optimizer.lr: min (0.1)
must be < max (0.01)". The first problem found is reported (parameters in name order).

Two entry points:
  - parse_dimensions(block): a user's document, read exactly as W&B's sweep schema reads it
    (src/sweeps/config/schema.json of W&B's `sweeps` package, where a spec is the first of its
    `parameter` forms that matches, and the checks its validator adds in cfg.py);
  - parse_dimension(name, spec): one dimension as SearchSpace.to_json() stores it (distribution
    always explicit, defaults filled in), re-validated when a stored space is read.

Spec forms (W&B's, `parameters` key):
  {value: v}                            constant; v is any JSON value
  {values: [...]}                       categorical; values of any JSON type (null, lists and
                                        mappings too); a value listed k times has k times the
                                        weight (W&B samples list positions uniformly)
  {values, probabilities}               categorical_w_probabilities: per-position weights (>= 0,
                                        sum 1 within numpy's isclose); repeats add up
  {min: a, max: b}                      int_uniform when both are JSON integers, else uniform
  {distribution: d, ...}                explicit, with the keys listed in WANDB_KEYS
  {parameters: {...}}                   a nested block; its parameters get dotted names
Parameter names follow W&B's pattern [A-Za-z_][A-Za-z0-9_.-]*; a dot inside a name is kept
(escaped in the flat name, see model.join_name), so "model.dropout" and a nested
model -> dropout are different parameters, as in W&B.

Distributions and what a draw is (U = uniform, N = normal, ln = natural log; W&B's params.py):
  constant                 value
  categorical              one of values (uniform over positions, or by `probabilities`)
  int_uniform              integer uniform on [min, max] (both ends included)
  uniform                  U(min, max)
  q_uniform                round(U(min, max) / q) * q                       (q default 1.0)
  log_uniform_values       exp(U(ln min, ln max))          value in [min, max], min > 0
  q_log_uniform_values     round(exp(U(ln min, ln max)) / q) * q
  inv_log_uniform_values   1 / exp(U(ln(1/max), ln(1/min))): value in [min, max]; as a
                           distribution of the value this equals log_uniform_values
  log_uniform              exp(U(min, max))   min/max are exponents: value in [e^min, e^max]
  q_log_uniform            round(exp(U(min, max)) / q) * q
  inv_log_uniform          exp(-U(min, max))  min/max are exponents: value in [e^-max, e^-min]
  normal                   N(mu, sigma)                                     (mu 0, sigma 1)
  q_normal                 round(N(mu, sigma) / q) * q
  log_normal               exp(N(mu, sigma))
  q_log_normal             round(exp(N(mu, sigma)) / q) * q, at least q
  beta                     Beta(a, b) on [0, 1]                             (a 1, b 1)
  q_beta                   round(Beta(a, b) / q) * q
W&B's validator refuses the three exponent ("v1") forms log_uniform, q_log_uniform and
inv_log_uniform among a sweep's top-level parameters, with the advice to use the *_values forms;
it does not look inside nested blocks, where they still run with exponent bounds. So here.

W&B's integer/float typing is kept: an integer `q` gives integers, a float `q` (the default 1.0
included) floats, as W&B's `isinstance(q, int)` decides.

Where we are stricter than W&B, on purpose (W&B's schema admits these and its sampler then
returns NaN, or W&B's engine fails when it runs): sigma must be > 0 and Beta's a and b > 0 (the
schema allows 0); bounds, q and weights must be finite numbers, never booleans; a bounded q
lattice must have a point inside [min, max], and bounded quantized draws are kept inside [min, max]
(W&B's rounding can step past a bound, e.g. q_uniform min 0.5 gives 0); min < max is checked in
nested blocks too (W&B checks it there only when the run starts); mapping keys must be strings;
exponent bounds that overflow exp() are refused.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from tuneserve_service.space.model import (
    BETA_DISTRIBUTIONS,
    DISTRIBUTIONS,
    EXPONENT_DISTRIBUTIONS,
    LOG_DISTRIBUTIONS,
    NORMAL_DISTRIBUTIONS,
    Dimension,
    _is_number,
    join_name,
    value_key,
)


class SpaceError(ValueError):
    """An invalid search space: `path` names the parameter ("optimizer.lr"), `rule` the rule broken."""

    def __init__(self, path: str, rule: str):
        super().__init__(f"parameters.{path}: {rule}" if path else f"parameters: {rule}")
        self.path = path
        self.rule = rule


_BOUNDS = ("min", "max")
# W&B's distributions and the keys each takes besides `distribution` (schema.json, definitions).
WANDB_KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values",),
    "categorical_w_probabilities": ("values", "probabilities"),
    "int_uniform": _BOUNDS,
    "uniform": _BOUNDS,
    "q_uniform": _BOUNDS + ("q",),
    "log_uniform_values": _BOUNDS,
    "q_log_uniform_values": _BOUNDS + ("q",),
    "inv_log_uniform_values": _BOUNDS,
    "log_uniform": _BOUNDS,
    "q_log_uniform": _BOUNDS + ("q",),
    "inv_log_uniform": _BOUNDS,
    "normal": ("mu", "sigma"),
    "q_normal": ("mu", "sigma", "q"),
    "log_normal": ("mu", "sigma"),
    "q_log_normal": ("mu", "sigma", "q"),
    "beta": ("a", "b"),
    "q_beta": ("a", "b", "q"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "constant": ("value",), "categorical": ("values",), "categorical_w_probabilities": ("values", "probabilities"),
    **{d: _BOUNDS for d, keys in WANDB_KEYS.items() if keys[:2] == _BOUNDS},
}
# The stored form: W&B's keys, categorical with optional probabilities (repeats already merged).
STORED_KEYS: dict[str, tuple[str, ...]] = {
    **{d: keys for d, keys in WANDB_KEYS.items() if d != "categorical_w_probabilities"},
    "categorical": ("values", "probabilities"),
}
assert set(STORED_KEYS) == DISTRIBUTIONS
# W&B's own replacement advice for the v1 forms it refuses at the top level (params.py).
DEPRECATED = {"log_uniform": "log_uniform_values", "q_log_uniform": "q_log_uniform_values",
              "inv_log_uniform": "inv_log_uniform_values"}
SPEC_KEYS = frozenset(k for keys in WANDB_KEYS.values() for k in keys) | {"distribution", "parameters"}
NAME_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")

# Largest exponent exp() takes without overflowing a float.
_MAX_EXPONENT = math.log(1.7976931348623157e308)
# numpy.isclose(sum, 1.0) with its default tolerances, as W&B's validator checks probabilities.
_PROBABILITY_TOL = 1e-8 + 1e-5


def parse_dimensions(block: Any) -> tuple[Dimension, ...]:
    """A W&B `parameters` block -> its dimensions in name order; raises SpaceError naming the path
    and the rule."""
    if not isinstance(block, dict):
        raise SpaceError("", f"must be a mapping of parameter names to specs, got {_type_name(block)}")
    if not block:
        raise SpaceError("", "must define at least one parameter")
    dims: list[Dimension] = []
    _collect(block, (), dims)
    # Name order, not document order: the same space must come out of a JSONB round trip, which
    # reorders keys, so that grid order and seeded draws are stable.
    dims.sort(key=lambda d: d.name)
    return tuple(dims)


def _collect(block: dict[str, Any], parents: tuple[str, ...], out: list[Dimension]) -> None:
    for key in sorted(block, key=str):
        parts = (*parents, key)
        path = join_name([str(p) for p in parts])
        _check_name(key, path)
        spec = block[key]
        if isinstance(spec, dict) and "parameters" in spec:
            extra = sorted(set(spec) - {"parameters"}, key=str)
            if extra:
                raise SpaceError(path, f"a nested block takes only `parameters`; unexpected key '{extra[0]}'")
            inner = spec["parameters"]
            if not isinstance(inner, dict):
                raise SpaceError(path, f"`parameters` must be a mapping, got {_type_name(inner)}")
            if not inner:
                raise SpaceError(path, "a nested `parameters` block must define at least one parameter")
            _collect(inner, parts, out)
        else:
            out.append(parse_spec(path, spec, top_level=not parents))


def parse_spec(path: str, spec: Any, top_level: bool = False) -> Dimension:
    """One spec of a user's document (its W&B form), read with W&B's rules."""
    if not isinstance(spec, dict):
        raise SpaceError(path, f"a parameter spec must be a mapping (value, values, min/max, distribution "
                               f"or parameters), got {_type_name(spec)}")
    unknown = sorted((k for k in spec if k not in SPEC_KEYS), key=str)
    if unknown:
        raise SpaceError(path, f"unknown key '{unknown[0]}' (known keys: {', '.join(sorted(SPEC_KEYS))})")
    distribution = spec.get("distribution")
    inferred = distribution is None
    if inferred:
        distribution = _infer(path, spec)
    elif not isinstance(distribution, str) or distribution not in WANDB_KEYS:
        raise SpaceError(path, f"unknown distribution {distribution!r} (valid: {', '.join(sorted(WANDB_KEYS))})")

    allowed = WANDB_KEYS[distribution]
    for key in sorted(spec, key=str):
        if key == "distribution" or key in allowed:
            continue
        if key == "probabilities" and distribution == "categorical":
            raise SpaceError(path, "`probabilities` need `distribution: categorical_w_probabilities` or no "
                                   "`distribution` at all (W&B's schema: `categorical` takes only `values`)")
        if inferred:
            raise SpaceError(path, f"key '{key}' needs an explicit `distribution`: without one this spec "
                                   f"means '{distribution}', which takes {', '.join(allowed)}")
        raise SpaceError(path, f"key '{key}' does not apply to distribution '{distribution}' "
                               f"(it takes: {', '.join(allowed)})")
    for key in _REQUIRED.get(distribution, ()):
        if key not in spec:
            raise SpaceError(path, f"distribution '{distribution}' needs `{key}`")
    if top_level and distribution in DEPRECATED:
        raise SpaceError(path, f"uses {distribution}, where min/max specify base-e exponents; use "
                               f"{DEPRECATED[distribution]} to specify limit values (W&B refuses "
                               f"{distribution} among a sweep's top-level parameters)")
    if distribution == "categorical_w_probabilities":
        distribution = "categorical"
    return _dimension(path, distribution, spec, merge_repeats=True)


def parse_dimension(path: str, spec: Any) -> Dimension:
    """One stored dimension (SearchSpace.to_json() without its name), validated again."""
    if not isinstance(path, str) or not path:
        raise SpaceError(str(path), "a stored dimension needs a non-empty string name")
    if not isinstance(spec, dict):
        raise SpaceError(path, f"a stored dimension must be a mapping, got {_type_name(spec)}")
    distribution = spec.get("distribution")
    if distribution not in STORED_KEYS:
        raise SpaceError(path, f"unknown distribution {distribution!r} (valid: {', '.join(sorted(DISTRIBUTIONS))})")
    allowed = STORED_KEYS[distribution]
    extra = sorted((k for k in spec if k != "distribution" and k not in allowed), key=str)
    if extra:
        raise SpaceError(path, f"key '{extra[0]}' does not apply to distribution '{distribution}' "
                               f"(it takes: {', '.join(allowed)})")
    for key in _REQUIRED.get(distribution, ()):
        if key not in spec:
            raise SpaceError(path, f"distribution '{distribution}' needs `{key}`")
    return _dimension(path, distribution, spec, merge_repeats=False)


def _infer(path: str, spec: dict[str, Any]) -> str:
    """W&B's forms without `distribution`: constant, categorical(_w_probabilities), int_uniform
    (two JSON integers) or uniform (a float among min/max)."""
    forms = [f for f, present in (("`value`", "value" in spec), ("`values`", "values" in spec),
                                  ("`min`/`max`", "min" in spec or "max" in spec)) if present]
    if len(forms) > 1:
        raise SpaceError(path, f"give only one of `value`, `values` or `min`/`max` (found {' and '.join(forms)})")
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec or "max" in spec:
        for key in _BOUNDS:
            if key not in spec:
                raise SpaceError(path, f"`{key}` is required with `{'max' if key == 'min' else 'min'}`")
            _check_number(path, key, spec[key])
        # W&B's rule: two JSON integers mean an integer range, anything else a real one.
        both_int = all(isinstance(spec[k], int) for k in _BOUNDS)
        return "int_uniform" if both_int else "uniform"
    extra = [k for k in ("q", "mu", "sigma", "a", "b", "probabilities") if k in spec]
    if extra:
        raise SpaceError(path, f"`{extra[0]}` needs an explicit `distribution` "
                               f"(valid: {', '.join(sorted(WANDB_KEYS))})")
    raise SpaceError(path, "empty spec: give `value`, `values`, `min` and `max`, `distribution`, or `parameters`")


def _dimension(path: str, distribution: str, spec: dict[str, Any], merge_repeats: bool) -> Dimension:
    """Build a Dimension from a spec whose keys are already checked; validates the values."""
    if distribution == "constant":
        return Dimension(path, "constant", value=_check_json_value(path, "value", spec["value"]))
    if distribution == "categorical":
        values, probabilities = _categorical(path, spec, merge_repeats)
        return Dimension(path, "categorical", values=values, probabilities=probabilities)
    if distribution in NORMAL_DISTRIBUTIONS:
        mu = _number(path, spec, "mu", default=0.0)
        sigma = _number(path, spec, "sigma", default=1.0)
        if sigma <= 0:
            raise SpaceError(path, f"sigma ({sigma}) must be > 0 (W&B's schema allows 0, but its sampler "
                                   f"then returns NaN)")
        q = _q(path, spec) if distribution.startswith("q_") else None
        return Dimension(path, distribution, mu=float(mu), sigma=float(sigma), q=q)
    if distribution in BETA_DISTRIBUTIONS:
        shape = {}
        for key in ("a", "b"):
            shape[key] = _number(path, spec, key, default=1.0)
            if shape[key] <= 0:
                raise SpaceError(path, f"{key} ({shape[key]}) must be > 0 (Beta(a, b) needs both > 0; W&B's "
                                       f"schema allows 0, but its sampler then returns NaN)")
        q = _q(path, spec) if distribution == "q_beta" else None
        return Dimension(path, distribution, a=float(shape["a"]), b=float(shape["b"]), q=q)
    return _bounded(path, spec, distribution)


def _bounded(path: str, spec: dict[str, Any], distribution: str) -> Dimension:
    lo = _number(path, spec, "min")
    hi = _number(path, spec, "max")
    if distribution == "int_uniform":
        for key, v in (("min", spec["min"]), ("max", spec["max"])):
            if not isinstance(v, int):
                raise SpaceError(path, f"int_uniform bounds must be integers, got {key}={v!r}")
    if not lo < hi:
        raise SpaceError(path, f"min ({lo}) must be < max ({hi})")
    if distribution in LOG_DISTRIBUTIONS and distribution not in EXPONENT_DISTRIBUTIONS and lo <= 0:
        raise SpaceError(path, f"min ({lo}) must be > 0 for {distribution} (the bounds are values "
                               f"whose logarithm is taken)")
    if distribution in EXPONENT_DISTRIBUTIONS:
        for key, v in (("min", lo), ("max", hi)):
            if abs(v) > _MAX_EXPONENT:
                raise SpaceError(path, f"{key} ({v}) is an exponent for {distribution} and exp({v}) is out of "
                                       f"float range; for bounds given as values use "
                                       f"{DEPRECATED[distribution]}")
    if distribution == "int_uniform":
        return Dimension(path, distribution, min=lo, max=hi)
    q = _q(path, spec) if distribution.startswith("q_") else None
    dim = Dimension(path, distribution, min=float(lo), max=float(hi), q=q)
    if q is not None and dim.grid_size() < 1:
        lo_v, hi_v = dim.value_bounds()
        raise SpaceError(path, f"no multiple of q ({q}) lies within [{lo_v:g}, {hi_v:g}]")
    return dim


def _categorical(path: str, spec: dict[str, Any], merge_repeats: bool) -> tuple[tuple, tuple[float, ...] | None]:
    values = spec["values"]
    if not isinstance(values, list):
        raise SpaceError(path, f"`values` must be a list, got {_type_name(values)}")
    if not values:
        raise SpaceError(path, "`values` must not be empty")
    for i, v in enumerate(values):
        _check_json_value(path, f"values[{i}]", v)
    weights = _probabilities(path, spec.get("probabilities"), len(values))

    # Repeated values are weights: one distinct value, its positions' weights summed.
    distinct: list[Any] = []
    mass: list[float] = []
    index: dict[Any, int] = {}
    for i, v in enumerate(values):
        key = value_key(v)
        w = 1.0 / len(values) if weights is None else weights[i]
        if key in index:
            if not merge_repeats:
                raise SpaceError(path, f"values must be unique: {v!r} appears at positions {index[key]} and {i}")
            mass[index[key]] += w
            continue
        index[key] = len(distinct)
        distinct.append(v)
        mass.append(w)
    if weights is None and len(distinct) == len(values):
        return tuple(values), None
    return tuple(distinct), tuple(mass)


def _probabilities(path: str, probabilities: Any, n: int) -> list[float] | None:
    if probabilities is None:
        return None
    if not isinstance(probabilities, list):
        raise SpaceError(path, f"`probabilities` must be a list, got {_type_name(probabilities)}")
    if len(probabilities) != n:
        raise SpaceError(path, f"`probabilities` has {len(probabilities)} entries but `values` has {n}")
    for i, p in enumerate(probabilities):
        _check_number(path, f"probabilities[{i}]", p)
        if p < 0:
            raise SpaceError(path, f"probabilities[{i}] ({p}) must be >= 0")
    total = math.fsum(probabilities)
    if abs(total - 1.0) > _PROBABILITY_TOL:
        raise SpaceError(path, f"`probabilities` must sum to 1, they sum to {total:g}")
    return [float(p) for p in probabilities]


def _q(path: str, spec: dict[str, Any]) -> int | float:
    # Kept as int when given as int: W&B then returns integer values (e.g. batch sizes); its
    # default is the float 1.0, so an omitted q gives floats, as in W&B.
    q = _number(path, spec, "q", default=1.0)
    if q <= 0:
        raise SpaceError(path, f"q ({q}) must be > 0")
    return q


def _number(path: str, spec: dict[str, Any], key: str, default: Any = None) -> int | float:
    if key not in spec:
        if default is None:
            raise SpaceError(path, f"`{key}` is required")
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
    """Values must survive a JSON round trip (PostgreSQL JSONB, SQLite JSON) and compare by value:
    JSON scalars, null, lists and mappings with string keys, all finite."""
    if isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            _check_json_value(path, f"{where}[{i}]", item)
        return v
    if isinstance(v, dict):
        for k, item in v.items():
            if not isinstance(k, str):
                raise SpaceError(path, f"{where} has the key {k!r}: mapping keys must be strings (JSON)")
            _check_json_value(path, f"{where}.{k}", item)
        return v
    if isinstance(v, float) and not math.isfinite(v):
        raise SpaceError(path, f"{where} must be finite, got {v}")
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    raise SpaceError(path, f"{where} must be a JSON value (number, string, boolean, null, list or mapping), "
                           f"got {_type_name(v)}")


def _check_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise SpaceError(str(path), f"{name!r} is not a valid parameter name (W&B's rule: a letter or '_', "
                                    f"then letters, digits, '_', '.' or '-')")


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(type(v), type(v).__name__)
