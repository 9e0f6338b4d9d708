"""The features plugged into the study core, in the order every hook point calls them.

Each module here is one feature and exports `FEATURE` (core/hooks.py's `Feature`: the hook points
it uses). A feature imports the core and never another feature; the core never imports a feature,
it calls the hooks of the features listed here. A new feature is a module here and one line below.

Why this order: the gates judge a special run before the diagnoses look at a trial, and their
advice comes first; stages parse a document before repeats check its `repeat_top`; repeats' read
(the noise-aware best) is the last word on `best_trial`, except in a study with several objectives
or constraints, where multiobjective's (the feasible best) is; it comes after diagnoses, which has
loaded the study row into the session already.
"""
from __future__ import annotations

from tuneserve_service.domain.core.hooks import Feature
from tuneserve_service.domain.features import diagnoses, gates, multiobjective, refine, repeats, reruns, stages

FEATURES: tuple[Feature, ...] = (
    gates.FEATURE,      # the sanity check and the lr range test: special runs that hold a study
    stages.FEATURE,     # staged studies: stage 0 from the document, the next stage when one ends
    refine.FEATURE,     # coarse to fine: a child around the top trials (its lineage in the read)
    repeats.FEATURE,    # repeats of the top configurations, the noise-aware best
    diagnoses.FEATURE,  # each trial's diagnosis, the study's advice from its trials
    reruns.FEATURE,     # rerun a trial exactly; a trial's provenance in its read
    multiobjective.FEATURE,  # objective vectors, feasibility, the front; its best is the last word
)
