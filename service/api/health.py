"""Readiness: `/readyz` answers 200 only when this replica can run a query on its database, so a
load balancer or `docker compose` sends traffic to replicas that can serve it (`/healthz` says only
that the process is up)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from tuneserve_service.api.deps import get_db
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core.health import check_database

router = APIRouter(tags=["health"])
log = logging.getLogger("tuneserve")


@router.get("/readyz", responses={503: {"description": "The database does not answer"}})
def readyz(db: Database = Depends(get_db)) -> JSONResponse:
    try:
        check_database(db)
    except Exception as exc:  # noqa: BLE001 - any driver error means "not ready", never a 500
        log.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse({"ok": False, "detail": "the database does not answer"}, status_code=503,
                            headers={"Retry-After": "5"})
    return JSONResponse({"ok": True, "database": db.dialect})
