"""The search space as data: W&B sweep `parameters` parsed into value objects (no web, no SQL)."""
from service.space.model import Dimension, SearchSpace, flatten_params, unflatten_params
from service.space.parse import parse_parameters

__all__ = ["Dimension", "SearchSpace", "parse_parameters", "flatten_params", "unflatten_params"]
