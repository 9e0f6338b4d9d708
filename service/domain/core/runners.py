"""What runs a study's trials: the objective stored on a study at creation, and what its read
says about the workers able to run it (a study no worker can run says so instead of waiting quietly)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tuneserve_service.db.models import Study
from tuneserve_service.errors import InvalidInput
from tuneserve.schemas.enums import StudyState
from tuneserve.schemas.objectives import BUILTIN_CNN, PROGRAM, normalize_objective
from tuneserve_service.store import workers as worker_store

# A worker counts as able to run a study when it claimed within this window (idle workers poll
# every few seconds) or holds one of the study's trials now.
WORKER_SEEN_SECONDS = 120.0


def study_objective(body: Any) -> str:
    """`program` when the document has a program or command, else its objective, normalised."""
    objective = normalize_objective(getattr(body, "objective", ""))
    has_program = getattr(body, "program", None) is not None or bool(getattr(body, "command", None))
    if has_program:
        if objective not in ("", PROGRAM):
            raise InvalidInput(("body", "objective"),
                               f"a study with a program or command is run by that program; "
                               f"objective {objective!r} would never be used: drop one of them")
        return PROGRAM
    if objective == PROGRAM:
        raise InvalidInput(("body", "objective"), "objective 'program' needs a `program` (or `command`) to run")
    return objective


def _hint(study: Study) -> str:
    if study.objective == PROGRAM:
        return f"tuneserve worker --study {study.name}"
    return f"tuneserve worker --objective {study.objective or BUILTIN_CNN}"


def read_fields(session: Session, study: Study, served_as: tuple[str, ...] = ()) -> dict[str, Any]:
    """The StudyRead fields about running the study: program, command, runnable_by_workers, and a
    warning while it is running with no worker able to take its trials. `served_as`: other names a
    worker's --study may give to be served this study's trials (a staged study's first stage)."""
    config = study.config or {}
    count = worker_store.workers_for_study(session, study.id, (study.name, *served_as), study.objective,
                                           WORKER_SEEN_SECONDS)
    warning = None
    if study.state == StudyState.RUNNING and count == 0:
        runs = "its program" if study.objective == PROGRAM else (study.objective or "any objective")
        warning = (f"no worker that runs {runs} has asked for this study's trials in the last "
                   f"{WORKER_SEEN_SECONDS:.0f} s; start one: {_hint(study)}")
    return {"program": config.get("program"), "command": config.get("command"),
            "runnable_by_workers": count, "runner_warning": warning}
