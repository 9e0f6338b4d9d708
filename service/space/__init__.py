"""The search space as data: W&B sweep `parameters` parsed into value objects (no web, no SQL)."""
from service.space.model import (
    Dimension,
    SearchSpace,
    flatten_params,
    params_key,
    unflatten_params,
    value_key,
)
from service.space.parse import SpaceError, parse_parameters

__all__ = [
    "Dimension", "SearchSpace", "SpaceError", "parse_parameters", "flatten_params", "unflatten_params",
    "params_key", "value_key",
]
