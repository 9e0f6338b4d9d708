"""Wire types of a trial's provenance (what is needed to rerun it exactly) and of a rerun request.

The worker sends `Provenance` once per attempt, as one more field of the first report (or of the
completion when nothing was reported); the server keeps the latest attempt's and returns it in the
trial's read. Fields beyond the ones named here are kept as sent (a worker may say more).
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_PROVENANCE_BYTES = 32_768
RERUN = "rerun"  # trials.advice_notch of a trial enqueued by POST /trials/{id}/rerun


class CodeRef(BaseModel):
    """Which code ran: a git commit (and whether the work tree had uncommitted changes) when the
    code lives in a git work tree, and a sha256 of the file (or of the package's files) always."""

    model_config = ConfigDict(extra="allow")
    path: str | None = Field(default=None, description="The program file, or the objective's module/package")
    sha256: str | None = Field(default=None, description="sha256 of that file (of a package: of its .py files, by name)")
    git_commit: str | None = Field(default=None, description="HEAD of the git work tree holding it, if any")
    git_dirty: bool | None = Field(default=None, description="Tracked files changed since that commit, or the file "
                                                             "itself untracked")


class Provenance(BaseModel):
    """What a run was: enough to rerun it and to tell why a rerun might differ."""

    model_config = ConfigDict(extra="allow")
    attempt: int | None = Field(default=None, description="The attempt these facts are about")
    worker_id: str | None = None
    objective: str | None = Field(default=None, description="builtin:cnn, module:function, or program")
    params: dict[str, Any] | None = Field(default=None, description="The params the run was handed (a managed "
                                                                    "study's fidelity knobs included)")
    seed: int | None = Field(default=None, description="The seed the run used (the built-in trainer: `seed`, 0 "
                                                       "when unset; else the params' seed, if any)")
    fidelity: dict[str, Any] | None = Field(default=None, description="The data subset the run trained on "
                                                                      "(fraction, classes, data seed, a digest)")
    versions: dict[str, str | None] = Field(default_factory=dict, description="python, torch, cuda, cudnn, "
                                                                              "numpy, tuneserve, platform")
    device: str | None = Field(default=None, description="cpu, or the GPU's name")
    command: list[str] | None = Field(default=None, description="A program's command line, as run")
    code: CodeRef | None = None
    determinism: dict[str, Any] | None = Field(default=None, description="The built-in trainer's flags: "
                                               "deterministic, cudnn_benchmark, num_threads, ...")

    @model_validator(mode="after")
    def _small(self) -> "Provenance":
        if len(json.dumps(self.model_dump(mode="json"), default=str)) > MAX_PROVENANCE_BYTES:
            raise ValueError(f"provenance must be at most {MAX_PROVENANCE_BYTES} bytes as JSON")
        return self


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    study: str | None = Field(default=None, min_length=1, max_length=200,
                              description="The study to enqueue the rerun into; omitted: the trial's own")
