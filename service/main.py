"""create_app(settings): routers, exception handlers, body limits, and the lifespan (migrations,
the exposure check, the lease reaper).

The app holds no state that matters between requests: everything is in SQL, so several replicas
can share one PostgreSQL and a restart loses nothing. Run with `tuneserve server`, or
`uvicorn --factory tuneserve_service.main:create_app --http tuneserve_service.serving:GuardedHttpProtocol` (the
protocol adds the slow-header deadline; see service/serving.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import threading
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from tuneserve._defaults import API_PREFIX
from tuneserve_service.api import errors as api_errors
from tuneserve_service.api import gates, health, leases, logs, studies, tokens, trials
from tuneserve_service.api import workers as workers_api
from tuneserve_service.api.deps import require_caller
from tuneserve_service.api.heartbeats import HeartbeatBatcher
from tuneserve_service.api.keepalive import KeepAliveDispatch
from tuneserve_service.api.limits import BodyLimits
from tuneserve_service.api.openapi import install_openapi
from tuneserve_service.auth.exposure import check_exposure
from tuneserve_service.auth.guard import TokenCache
from tuneserve_service.config import Settings
from tuneserve_service.dashboard import install_dashboard
from tuneserve_service.observability import install_metrics
from tuneserve_service.db.engine import Database
from tuneserve_service.db.migrate import upgrade
from tuneserve_service.domain.core.leases import forget_idle_workers, reap_expired
from tuneserve_service.optimizers.registry import METHODS, get_optimizer

log = logging.getLogger("tuneserve")

__all__ = ["check_exposure", "create_app"]

_SECRET_QUERY = re.compile(r"((?:^|[?&;])[A-Za-z_]*(?:token|password|secret)=)[^&;\s\"]*", re.IGNORECASE)


class RedactQuerySecrets(logging.Filter):
    """Access-log lines carry the path with its query: mask any token= / password= value."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def _install_log_redaction() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
        logger.addFilter(RedactQuerySecrets())


async def _reaper(db: Database, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(reap_expired, db)
            await run_in_threadpool(forget_idle_workers, db)
        except Exception:  # noqa: BLE001 - a failed sweep (database restarting) is retried next tick
            log.warning("lease sweep failed; retrying in %.1fs", interval, exc_info=True)


def _warm_up_optimizers() -> None:
    # hyperopt and bayes_opt take 1-2 s to import (scipy.stats, networkx); pay it in the background
    # at start-up rather than in the first suggestion a worker waits for.
    for method in METHODS:
        try:
            get_optimizer(method)
        except Exception:  # noqa: BLE001 - an engine that cannot load falls back to random when used
            log.warning("optimizer %s could not be loaded", method, exc_info=True)


# FastAPI 0.16x asks OpenTelemetry on every request whether a tracer or meter provider is set (an
# environment read each time: 2.5% of the server's CPU under the worker protocol). tuneserve's
# metrics are its own (GET /metrics), so that telemetry is off where FastAPI has the setting.
_NO_NATIVE_TELEMETRY = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
                        if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    _install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.auto_migrate:
            await run_in_threadpool(upgrade, settings.database_url)
        db = Database.from_settings(settings)
        app.state.db = db
        app.state.tokens = TokenCache(db, settings.token_cache_seconds)
        app.state.heartbeats = HeartbeatBatcher(db)  # the keep-alive dispatch's (api/heartbeats.py)
        try:
            await run_in_threadpool(lambda: check_exposure(settings, None, app.state.tokens.any_tokens()))
        except Exception:
            db.dispose()
            raise
        task = asyncio.create_task(_reaper(db, settings.reaper_interval))
        threading.Thread(target=_warm_up_optimizers, name="warm-up", daemon=True).start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            db.dispose()

    app = FastAPI(
        title="tuneserve",
        version="0.1.0",
        description="Hyperparameter tuning for CNNs: studies, trials and a lease-based worker protocol.",
        lifespan=lifespan, docs_url=None, redoc_url=None,  # /docs with local assets: install_openapi
        **_NO_NATIVE_TELEMETRY,
    )
    app.state.settings = settings
    api_errors.install(app)
    # Innermost first: the keep-alive dispatch sees the body BodyLimits has read, and HttpMetrics
    # (install_metrics) sees the route it sets.
    app.add_middleware(KeepAliveDispatch, enabled=settings.keepalive_dispatch)
    app.add_middleware(BodyLimits, settings=settings)
    auth = [Depends(require_caller)]
    # The worker protocol's routers first: routes are matched in order, and these take most requests.
    app.include_router(trials.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(leases.router, prefix=API_PREFIX, dependencies=auth)  # batched lease renewal (issue 21)
    app.include_router(studies.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(gates.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(workers_api.router, prefix=API_PREFIX, dependencies=auth)  # worker identities (issue 18)
    app.include_router(logs.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(tokens.router, prefix=API_PREFIX, dependencies=auth)
    app.include_router(health.router)
    install_dashboard(app)
    install_metrics(app, require_caller)
    install_openapi(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        return {"ok": True}

    return app


def __getattr__(name: str):
    # `uvicorn tuneserve_service.main:app` works too; the app is built only when asked for, not on import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
