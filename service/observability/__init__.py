"""Observability: Prometheus metrics (metrics.py), the HTTP middleware (http.py), and
`install_metrics(app)`, which adds both and serves GET /metrics (same auth as the API)."""
from __future__ import annotations

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from tuneserve_service.api.deps import require_caller


def install_metrics(app: FastAPI) -> None:
    from tuneserve_service.observability.http import HttpMetrics
    from tuneserve_service.observability.metrics import exposition

    app.add_middleware(HttpMetrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_caller)])
    def metrics(request: Request) -> Response:
        return Response(exposition(lambda: request.app.state.db), media_type=CONTENT_TYPE_LATEST)
