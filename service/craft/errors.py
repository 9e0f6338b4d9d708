"""The craft's one error type: a plan that cannot be made, with the field (`path`, e.g.
"stages[1].refine.top_k") and the rule it broke, so the API answers a 422 naming both."""
from __future__ import annotations


class CraftError(ValueError):
    def __init__(self, path: str, rule: str):
        super().__init__(f"{path}: {rule}")
        self.path = path
        self.rule = rule
