"""The search space as data: W&B sweep `parameters` parsed into value objects (no web, no SQL)."""
from tuneserve_service.space.model import (
    Dimension,
    flatten_params,
    join_name,
    params_key,
    split_name,
    unflatten_params,
    value_key,
)
from tuneserve_service.space.parse import SpaceError, parse_dimension
from tuneserve_service.space.search_space import SearchSpace, parse_parameters

__all__ = [
    "Dimension", "SearchSpace", "SpaceError", "parse_parameters", "parse_dimension", "flatten_params",
    "unflatten_params", "params_key", "value_key", "join_name", "split_name",
]
