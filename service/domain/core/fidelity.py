"""Fidelity as the service manages it: a study's fidelity decided when it is created, the record each
trial keeps, the params a run is handed, and which trials a best is chosen among.

A study *manages* its fidelity when its document has `fidelity` or `stages`, or when it is a refine
child or a later stage. Then:
  - its fidelity is `epochs`, `data_fraction`, `classes` and `data_seed`: the ones written as
    constants in `parameters` first, the document's `fidelity` over them, a stage's knobs over that;
    `data_seed` defaults to one drawn from the study's seed (SeedSequence), so every trial of the
    study sees the same stratified subset and the stages of one study nest (10% inside 100%);
  - those knobs leave the search space (a knob cannot be both the study's fidelity and searched:
    that is a 422), so a trial's params are its hyperparameters only; `epochs` alone may stay a
    searched parameter while the study's fidelity does not set it;
  - every trial records the study's fidelity (trials.fidelity), and the lease hands the knobs to
    the run inside `params` (epochs and classes when set, data_fraction and data_seed always), so
    the built-in trainer cuts its data accordingly and a user objective or program reads them.
A study that manages none keeps every parameter as it is; `data_fraction` and `classes` are still
fidelity where they appear among a trial's params (its record holds them), `epochs` is then an
ordinary parameter.

The best of a study is chosen among its completed trials at the highest fidelity level present
(craft.fidelity.highest_level: all classes, then more data, then more epochs): a 10% run never
outranks a full one. Trials of one managed study share one level, so this matters where the data
fraction is searched.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import numpy as np

from tuneserve_service.craft.fidelity import RECORD_KEYS, Fidelity, FidelityError, highest_level
from tuneserve_service.errors import InvalidInput
from tuneserve.schemas.enums import TrialState
from tuneserve_service.space import SearchSpace, split_name

# Keys that make a trial's params carry a fidelity in a study that manages none.
DATA_KNOBS = ("data_fraction", "classes")
_DATA_SEED_STREAM = 0x64617461  # "data": the data seed's own stream of the study's seed


def default_data_seed(study_seed: int) -> int:
    return int(np.random.SeedSequence([int(study_seed) & 0xFFFFFFFF, _DATA_SEED_STREAM]).generate_state(1)[0] % 2**31)


def error_loc(path: str, prefix: tuple = ("body",)) -> tuple:
    """"stages[1].refine.top_k" -> ("body", "stages", 1, "refine", "top_k")."""
    loc: list[Any] = list(prefix)
    for part in split_name(path.replace("[", ".[")):
        if part.startswith("[") and part.endswith("]") and part[1:-1].isdigit():
            loc.append(int(part[1:-1]))
        elif part:
            loc.append(part)
    return tuple(loc)


def resolve(space: SearchSpace, document: dict[str, Any] | None, *, seed: int,
            stage: dict[str, Any] | None = None, stage_path: str = "stages[0]") -> tuple[Fidelity, SearchSpace]:
    """A managed study's fidelity (see the module doc) and its search space without the knobs.

    `document` is the document's `fidelity` block, `stage` the knobs of the stage the study runs."""
    if document is not None and not isinstance(document, dict):
        raise InvalidInput(("body", "fidelity"), f"must be a mapping of {', '.join(RECORD_KEYS)}")
    sets = set(document or {}) | set(stage or {})
    base: dict[str, Any] = {}
    searched_epochs = False
    for dim in space.dimensions:
        if dim.name not in RECORD_KEYS:
            continue
        if dim.kind != "constant":
            if dim.name == "epochs" and "epochs" not in sets:
                searched_epochs = True   # an ordinary parameter while the fidelity leaves epochs alone
                continue
            raise InvalidInput(("body", "parameters", dim.name),
                               f"{dim.name!r} is this study's fidelity (given by `fidelity`, `stages` or a refine), "
                               f"so it cannot be searched: make it a constant or drop it from parameters")
        base[dim.name] = dim.value
    merged = {**base, **(document or {})}
    merged.setdefault("data_seed", default_data_seed(seed))
    try:
        fidelity = Fidelity.from_dict(merged, "fidelity").with_overrides(stage, stage_path)
    except FidelityError as err:
        raise InvalidInput(error_loc(err.path), err.rule) from None
    kept = tuple(d for d in space.dimensions if d.name not in RECORD_KEYS or (d.name == "epochs" and searched_epochs))
    if not kept:
        raise InvalidInput(("body", "parameters"), "nothing to search: every parameter is a fidelity knob "
                                                   f"({', '.join(RECORD_KEYS)})")
    return fidelity, SearchSpace(kept)


def trial_record(study_fidelity: dict[str, Any] | None, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a trial with these (flat) params trains on: the study's fidelity when it manages one,
    else the data knobs among the params (None when there are none, or they are not valid knobs)."""
    if study_fidelity is not None:
        return dict(study_fidelity)
    found = {k: params[k] for k in RECORD_KEYS if k in params and k != "epochs"}
    if found.get("classes") == 0:   # the trainer's "every class"
        del found["classes"]
    if not any(k in found for k in DATA_KNOBS):
        return None
    try:
        return Fidelity.from_dict(found, "params").to_dict()
    except FidelityError:
        return None


def lease_params(params: Mapping[str, Any], study_fidelity: dict[str, Any] | None) -> dict[str, Any]:
    """The (flat) params a run is handed: a managed study's knobs added to the hyperparameters."""
    out = dict(params)
    if study_fidelity is None:
        return out
    f = Fidelity.from_dict(study_fidelity)
    out.update(data_fraction=f.data_fraction, data_seed=f.data_seed)
    if f.epochs is not None:
        out["epochs"] = f.epochs
    if f.classes is not None:
        out["classes"] = f.classes
    return out


def label(record: dict[str, Any] | None) -> str | None:
    """"2 epochs, 10% data" (None for no record)."""
    if record is None:
        return None
    try:
        return Fidelity.from_dict(record).label()
    except FidelityError:
        return None


def top_level_records(texts: Iterable[str | None]) -> list[str | None] | None:
    """Of the distinct fidelity records (stored JSON text; None: no record, i.e. all the data) of
    a study's completed trials, those at the highest level; None when they are all one level (no
    filter needed)."""
    texts = list(texts)
    levels = {}
    for text in texts:
        record = json.loads(text) if text is not None else None
        try:
            levels[text] = Fidelity.from_dict(record) if record is not None else Fidelity()
        except FidelityError:
            levels[text] = Fidelity()
    if len({f.level for f in levels.values()}) <= 1:
        return None
    top = highest_level(levels.values())
    return [t for t, f in levels.items() if f.level == top]


def at_top_level(results: list) -> list:
    """craft TrialResults cut to those at the highest fidelity level among the completed ones (no
    record counts as all the data); all of them when the completed ones share one level."""
    completed = [r.fidelity or Fidelity() for r in results if r.state == TrialState.COMPLETED]
    if len({f.level for f in completed}) <= 1:
        return results
    top = highest_level(completed)
    return [r for r in results if (r.fidelity or Fidelity()).level == top]


def searches_data(space_json: list[dict[str, Any]]) -> bool:
    """Whether the study's space searches a data knob, so its trials can sit at several levels."""
    return any(d.get("name") in DATA_KNOBS and d.get("distribution") != "constant" for d in space_json)
