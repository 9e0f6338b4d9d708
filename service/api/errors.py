"""The one place where domain exceptions become HTTP status codes and bodies."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service import errors as e

STATUS = {
    e.StudyNotFound: 404,
    e.TrialNotFound: 404,
    e.LogNotFound: 404,
    e.StudyExists: 409,
    e.TrialNotHeld: 409,
    e.ConflictingCompletion: 409,
    e.InvalidStudyState: 409,
    e.BudgetExhausted: 409,
}


async def _domain_error(_request: Request, exc: e.DomainError) -> JSONResponse:
    if isinstance(exc, e.InvalidInput):
        # Same shape as FastAPI's own validation errors, so clients parse one format.
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]},
        )
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    return JSONResponse(status_code=status, content={"detail": exc.message, "code": exc.code, **exc.extra})


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.DomainError, _domain_error)
