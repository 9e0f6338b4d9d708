"""Observability: Prometheus metrics (metrics.py), the HTTP middleware (http.py), and
`install_metrics(app, guard)`, which adds both and serves GET /metrics behind `guard` (the app
passes the API's own auth dependency: this package sits below the API and imports none of it)."""
from __future__ import annotations

from typing import Any, Callable

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from tuneserve_service.observability.http import HttpMetrics
from tuneserve_service.observability.metrics import exposition


def install_metrics(app: FastAPI, guard: Callable[..., Any]) -> None:
    app.add_middleware(HttpMetrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(guard)])
    def metrics(request: Request) -> Response:
        return Response(exposition(lambda: request.app.state.db), media_type=CONTENT_TYPE_LATEST)
