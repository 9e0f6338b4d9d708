"""Search-space dimensions, the value objects every optimizer reads, and the name and value helpers.

The space itself (SearchSpace, a tuple of these) is in search_space.py, which reads stored spaces
with the parser: this module imports neither, so model <- parse <- search_space runs one way.

A space is a flat tuple of Dimensions; nested W&B `parameters` blocks become dotted names
("optimizer.lr"). Params travel flat inside the service and are unflattened only at the API edge.
W&B allows dots inside a parameter's own name ("model.dropout" as one top-level key, which a
Hydra-style script reads as `--model.dropout=0.3`); such a dot is escaped in the flat name
("model\\.dropout"), so it never reads as nesting (join_name / split_name). W&B names cannot
contain a backslash, so the escape is unambiguous, and names without dots are unchanged.
The parser sorts dimensions by name, so a space (and therefore its grid order and the sequence a
seeded sampler draws) does not depend on the key order of the JSON it came from (PostgreSQL's
JSONB reorders keys).

Internal coordinates ("warped" space) are what model-based optimizers and distance checks use:
  - uniform, q_uniform, int_uniform, normal, q_normal: the value itself
  - log_uniform_values, q_log_uniform_values, log_uniform, log_normal, q_log_normal: ln(value)
  - inv_log_uniform_values, inv_log_uniform, q_log_uniform: ln(value) as well (see parse.py)
  - beta, q_beta: the value itself, on [0, 1]
  - categorical: the index into `values`; constant: not a coordinate at all (bounds (0, 0), and
    to_internal/from_internal accept it so that generic loops need no special case)

Legal values of the quantized families are the multiples of `q` (k * q for an integer k) that lie
in the bounds; for q_log_normal the positive multiples (k >= 1, so ln(value) always exists). An
integer `q` gives Python ints, as W&B does; a float `q` gives floats rounded to q's decimals, so
q=0.1 yields 0.3 and not 0.30000000000000004.

Values may be any JSON value, mappings included (W&B accepts them: `values: [{"depth": 2},
{"depth": 4}]`). Container values are stored frozen (lists as tuples, mappings as FrozenMap) so a
Dimension is hashable, and handed back to callers as lists and dicts, the JSON shape they came in.
Categoricals are always handled by index, never by value, so a value's type never matters to an
optimizer. Repeated values in a W&B `values` list are weights: the parser merges them into one
value with the summed probability (see parse.py).

beta and q_beta (W&B's params.py): a draw from Beta(a, b) on [0, 1], q_beta rounded to a multiple
of q; internal coordinate = the value. q_log_uniform is W&B's "v1" quantized log-uniform (bounds
are exponents, like log_uniform).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

import numpy as np

LOG_DISTRIBUTIONS = frozenset({
    "log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values",
    "log_uniform", "q_log_uniform", "inv_log_uniform", "log_normal", "q_log_normal",
})
# Log families whose min/max are exponents (W&B's "v1" forms), not values.
EXPONENT_DISTRIBUTIONS = frozenset({"log_uniform", "q_log_uniform", "inv_log_uniform"})
NORMAL_DISTRIBUTIONS = frozenset({"normal", "q_normal", "log_normal", "q_log_normal"})
BETA_DISTRIBUTIONS = frozenset({"beta", "q_beta"})
QUANTIZED_DISTRIBUTIONS = frozenset({
    "q_uniform", "q_log_uniform_values", "q_log_uniform", "q_normal", "q_log_normal", "q_beta",
})
DISTRIBUTIONS = frozenset({
    "constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values",
    "q_log_uniform_values", "inv_log_uniform_values", "log_uniform", "q_log_uniform", "inv_log_uniform",
    "normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta",
})
# Families whose legal set is finite, hence usable by grid search.
FINITE_DISTRIBUTIONS = frozenset({
    "constant", "categorical", "int_uniform", "q_uniform", "q_log_uniform_values", "q_log_uniform", "q_beta",
})

# Relative slack when checking a value against float bounds or a q-lattice: values that went
# through exp/log or through another language's arithmetic may be an ulp or so off.
_REL_TOL = 1e-9


class FrozenMap(tuple):
    """A JSON mapping frozen for hashing: its (key, frozen value) pairs sorted by key, so two
    mappings equal as JSON are equal here whatever their key order (PostgreSQL's JSONB reorders)."""

    __slots__ = ()

    def __new__(cls, mapping: dict[str, Any]):
        return super().__new__(cls, sorted((k, _freeze(v)) for k, v in mapping.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({dict(self)!r})"


def _freeze(value: Any) -> Any:
    if isinstance(value, FrozenMap):
        return value
    if isinstance(value, dict):
        return FrozenMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, FrozenMap):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def join_name(parts: Sequence[str]) -> str:
    """The flat name of a parameter reached through `parts` (outer block first); a dot inside a
    part is escaped so that it does not read as nesting."""
    return ".".join(p.replace(".", "\\.") for p in parts)


def split_name(name: str) -> list[str]:
    """Inverse of join_name: the parts of a flat name, unescaped."""
    return [p.replace("\\.", ".") for p in _UNESCAPED_DOT.split(name)]


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but `true` is not a learning rate.
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def value_key(value: Any) -> Any:
    """A hashable key that compares JSON values by value: 1 == 1.0, [1, 2] == (1, 2), but
    True != 1 (JSON keeps booleans and numbers apart)."""
    if isinstance(value, (bool, np.bool_)):
        return ("b", bool(value))
    if _is_number(value):
        return ("n", float(value) if isinstance(value, (float, np.floating)) else int(value))
    if isinstance(value, FrozenMap):
        return ("d", tuple((str(k), value_key(v)) for k, v in value))
    if isinstance(value, (list, tuple)):
        return ("l", tuple(value_key(v) for v in value))
    if isinstance(value, dict):
        return ("d", tuple(sorted((str(k), value_key(v)) for k, v in value.items())))
    if value is None:
        return ("z",)
    return ("s", value)


def params_key(params: dict[str, Any]) -> tuple:
    """A hashable key for a flat params dict, for "is this point already tried?" checks."""
    return tuple(sorted((name, value_key(v)) for name, v in params.items()))


def _within(value: float, lo: float, hi: float) -> bool:
    return lo - _REL_TOL * max(1.0, abs(lo)) <= value <= hi + _REL_TOL * max(1.0, abs(hi))


def _q_decimals(q: float) -> int:
    exponent = Decimal(repr(float(q))).as_tuple().exponent
    return max(0, -int(exponent))


@dataclass(frozen=True)
class Dimension:
    name: str                                  # dotted path, e.g. "optimizer.lr"
    distribution: str                          # one of DISTRIBUTIONS
    value: Any = None                          # constant
    values: tuple = ()                         # categorical
    probabilities: tuple[float, ...] | None = None
    min: float | None = None                   # value bounds; for log_uniform / inv_log_uniform the W&B exponents
    max: float | None = None
    q: float | None = None                     # quantization step for q_* families
    mu: float | None = None                    # normal families
    sigma: float | None = None
    a: float | None = None                     # beta families
    b: float | None = None

    def __post_init__(self) -> None:
        # Normalise containers so that a Dimension built from JSON (lists) equals one built in
        # code (tuples), and stays hashable.
        object.__setattr__(self, "value", _freeze(self.value))
        object.__setattr__(self, "values", _freeze(tuple(self.values)))
        if self.probabilities is not None:
            object.__setattr__(self, "probabilities", tuple(float(p) for p in self.probabilities))

    @property
    def kind(self) -> str:
        """"constant", "categorical", "int" (int_uniform) or "float"."""
        if self.distribution == "constant":
            return "constant"
        if self.distribution == "categorical":
            return "categorical"
        if self.distribution == "int_uniform":
            return "int"
        return "float"

    @property
    def is_log(self) -> bool:
        return self.distribution in LOG_DISTRIBUTIONS

    @property
    def is_quantized(self) -> bool:
        return self.distribution in QUANTIZED_DISTRIBUTIONS

    @property
    def is_finite(self) -> bool:
        """Whether the dimension has finitely many legal values (grid search can enumerate it)."""
        return self.distribution in FINITE_DISTRIBUTIONS

    def internal_bounds(self) -> tuple[float, float]:
        """Bounds of the internal coordinate; for normal families mu +- 3 sigma (in log space for
        log_normal). Categorical: (0, len(values) - 1)."""
        d = self.distribution
        if d == "constant":
            return (0.0, 0.0)
        if d == "categorical":
            return (0.0, float(len(self.values) - 1))
        if d in NORMAL_DISTRIBUTIONS:
            return (float(self.mu - 3 * self.sigma), float(self.mu + 3 * self.sigma))
        if d in BETA_DISTRIBUTIONS:
            return (0.0, 1.0)
        if d in ("log_uniform", "q_log_uniform"):
            return (float(self.min), float(self.max))
        if d == "inv_log_uniform":
            # value = exp(-u), u ~ U(min, max), so ln(value) runs over [-max, -min].
            return (-float(self.max), -float(self.min))
        if self.is_log:  # the *_values families: bounds are values
            return (math.log(self.min), math.log(self.max))
        return (float(self.min), float(self.max))

    def value_bounds(self) -> tuple[float, float] | None:
        """The smallest and largest legal value for bounded numeric families, else None."""
        d = self.distribution
        if d in ("constant", "categorical") or d in NORMAL_DISTRIBUTIONS:
            return None
        if d in BETA_DISTRIBUTIONS:
            return (0.0, 1.0)
        if d in EXPONENT_DISTRIBUTIONS:
            lo, hi = self.internal_bounds()
            return (math.exp(lo), math.exp(hi))
        return (self.min, self.max)

    # --- the quantization lattice -------------------------------------------------------------

    def _q_value(self, k: int) -> int | float:
        if isinstance(self.q, int):
            return int(k * self.q)
        return round(k * self.q, _q_decimals(self.q))

    def _k_range(self) -> tuple[int | None, int | None]:
        """Admissible multipliers k of q (None = unbounded on that side)."""
        if self.distribution == "q_normal":
            return (None, None)
        if self.distribution == "q_log_normal":
            return (1, None)
        lo, hi = self.value_bounds()
        return (math.ceil(lo / self.q - _REL_TOL), math.floor(hi / self.q + _REL_TOL))

    def _quantize(self, x: float) -> int | float:
        k = round(x / self.q)
        k_lo, k_hi = self._k_range()
        if k_lo is not None:
            k = max(k, k_lo)
        if k_hi is not None:
            k = min(k, k_hi)
        return self._q_value(k)

    # --- conversions --------------------------------------------------------------------------

    def to_internal(self, value: Any) -> float:
        d = self.distribution
        if d == "constant":
            return 0.0
        if d == "categorical":
            key = value_key(value)
            for i, v in enumerate(self.values):
                if value_key(v) == key:
                    return float(i)
            raise ValueError(f"{self.name}: {value!r} is not one of the categorical values")
        if not _is_number(value):
            raise ValueError(f"{self.name}: {value!r} is not a number")
        if self.is_log:
            if value <= 0:
                raise ValueError(f"{self.name}: {value!r} has no logarithm ({d} values are > 0)")
            return math.log(value)
        return float(value)

    def from_internal(self, x: float) -> Any:
        """Map an internal coordinate back to a legal value: clipped to bounds, quantized (q),
        rounded for int_uniform, nearest index for categorical; ints stay Python ints."""
        d = self.distribution
        if d == "constant":
            return _thaw(self.value)
        lo, hi = self.internal_bounds()
        x = min(max(float(x), lo), hi)
        if d == "categorical":
            return _thaw(self.values[int(round(x))])
        if d == "int_uniform":
            return int(min(max(round(x), self.min), self.max))
        v = math.exp(x) if self.is_log else x
        bounds = self.value_bounds()
        if bounds is not None:
            # exp(ln(min)) is not always min: hand back the bound itself at the edges (optimizers
            # often land there), and never a value an ulp outside it.
            if x <= lo:
                v = bounds[0]
            elif x >= hi:
                v = bounds[1]
            v = min(max(v, bounds[0]), bounds[1])
        if self.is_quantized:
            return self._quantize(v)
        return float(v)

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw from the prior the W&B distribution defines (probabilities for categorical)."""
        d = self.distribution
        if d == "constant":
            return _thaw(self.value)
        if d == "categorical":
            n = len(self.values)
            if self.probabilities is None:
                index = int(rng.integers(n))
            else:
                # Validation allows a sum within 1e-6 of 1; numpy's tolerance is tighter.
                p = np.asarray(self.probabilities, dtype=float)
                index = int(rng.choice(n, p=p / p.sum()))
            return _thaw(self.values[index])
        if d == "int_uniform":
            return int(rng.integers(self.min, self.max, endpoint=True))
        if d in NORMAL_DISTRIBUTIONS:
            v = float(rng.normal(self.mu, self.sigma))
            if self.is_log:
                v = math.exp(v)
        elif d in BETA_DISTRIBUTIONS:
            v = float(rng.beta(self.a, self.b))
        else:
            lo, hi = self.internal_bounds()
            v = float(rng.uniform(lo, hi))
            if self.is_log:
                v = math.exp(v)
            b_lo, b_hi = self.value_bounds()
            v = min(max(v, b_lo), b_hi)
        if self.is_quantized:
            return self._quantize(v)
        return float(v)

    def contains(self, value: Any) -> bool:
        d = self.distribution
        if d == "constant":
            return value_key(value) == value_key(self.value)
        if d == "categorical":
            key = value_key(value)
            return any(value_key(v) == key for v in self.values)
        if not _is_number(value) or not math.isfinite(value):
            return False
        if d == "int_uniform":
            return isinstance(value, (int, np.integer)) and self.min <= value <= self.max
        if self.is_log and value <= 0:
            return False
        bounds = self.value_bounds()
        if bounds is not None and not _within(value, *bounds):
            return False
        if self.is_quantized:
            k = round(value / self.q)
            k_lo, k_hi = self._k_range()
            if (k_lo is not None and k < k_lo) or (k_hi is not None and k > k_hi):
                return False
            return abs(value - k * self.q) <= _REL_TOL * max(1.0, abs(value))
        return True

    def grid_values(self) -> list[Any] | None:
        """Every legal value in ascending (or declared) order, or None when there are infinitely
        many (continuous or unbounded families)."""
        d = self.distribution
        if d == "constant":
            return [_thaw(self.value)]
        if d == "categorical":
            return [_thaw(v) for v in self.values]
        if d == "int_uniform":
            return list(range(self.min, self.max + 1))
        if d in FINITE_DISTRIBUTIONS:   # the bounded q lattices
            k_lo, k_hi = self._k_range()
            return [self._q_value(k) for k in range(k_lo, k_hi + 1)]
        return None

    def grid_size(self) -> int | None:
        """len(grid_values()) without building the list (a q lattice can be long)."""
        d = self.distribution
        if d == "constant":
            return 1
        if d == "categorical":
            return len(self.values)
        if d == "int_uniform":
            return self.max - self.min + 1
        if d in FINITE_DISTRIBUTIONS:
            k_lo, k_hi = self._k_range()
            return k_hi - k_lo + 1
        return None

    def to_json(self) -> dict[str, Any]:
        """The dimension as a W&B parameter spec plus its `name`, with defaults made explicit."""
        out: dict[str, Any] = {"name": self.name, "distribution": self.distribution}
        for field_name in ("value", "values", "probabilities", "min", "max", "q", "mu", "sigma", "a", "b"):
            v = getattr(self, field_name)
            if field_name == "value" and self.distribution != "constant":
                continue
            if field_name == "values" and self.distribution != "categorical":
                continue
            if v is None and field_name != "value":
                continue
            out[field_name] = _thaw(v)
        return out


def flatten_params(nested: dict[str, Any], leaves: Sequence[str] | None = None, prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}, dots inside a key escaped (join_name).

    Without `leaves` every dict is a nesting level. With `leaves` (the flat names of a space's
    dimensions) a dict stops being descended into where its name is a leaf: a parameter whose
    value is a mapping (W&B allows `values: [{"depth": 2}]`) stays one value."""
    flat: dict[str, Any] = {}
    leaf_set = None if leaves is None else set(leaves)
    for key, value in nested.items():
        name = f"{prefix}{join_name([str(key)])}"
        if isinstance(value, dict) and (leaf_set is None or name not in leaf_set):
            flat.update(flatten_params(value, leaves, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def unflatten_params(flat: dict[str, Any]) -> dict[str, Any]:
    """{"optimizer.lr": 0.1} -> {"optimizer": {"lr": 0.1}}, keeping the caller's key order; only the
    names are split (an escaped dot stays in its key), never the values, so a mapping value stays
    a value. Raises ValueError when a name is both a value and a group ("a" and "a.b")."""
    nested: dict[str, Any] = {}
    groups: set[tuple[str, ...]] = set()
    leaves: set[tuple[str, ...]] = set()
    for name, value in flat.items():
        parts = split_name(name)
        for i in range(1, len(parts)):
            prefix = tuple(parts[:i])
            if prefix in leaves:
                raise ValueError(f"'{join_name(prefix)}' is both a value and a group of parameters")
            groups.add(prefix)
        if tuple(parts) in groups:
            raise ValueError(f"'{name}' is both a value and a group of parameters")
        leaves.add(tuple(parts))
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested
