"""The web dashboard: pages and assets (pages.py), chart-data endpoints (api.py), the data shaping
behind them (data.py, shaping.py, importance.py). `install_dashboard(app)` adds it to the app."""
from __future__ import annotations

import threading

from fastapi import FastAPI


def install_dashboard(app: FastAPI) -> None:
    from tuneserve_service.dashboard import api, importance, pages

    app.include_router(pages.router)
    app.include_router(api.router)
    # scikit-learn takes a second or two to import: pay it now, not in the first importance request.
    threading.Thread(target=importance.warm_up, name="sklearn-import", daemon=True).start()
