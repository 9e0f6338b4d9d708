"""Parse and validate a W&B sweep `parameters` block into a SearchSpace."""
from __future__ import annotations

from typing import Any

from service.space.model import SearchSpace


class SpaceError(ValueError):
    """An invalid search space: `path` names the parameter ("optimizer.lr"), `rule` the rule broken."""

    def __init__(self, path: str, rule: str):
        super().__init__(f"parameters.{path}: {rule}" if path else f"parameters: {rule}")
        self.path = path
        self.rule = rule


def parse_parameters(block: dict[str, Any]) -> SearchSpace:
    raise NotImplementedError
