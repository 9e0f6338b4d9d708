"""What `tuneserve dashboard` runs: the server on a given database (by default the demo's SQLite
file), printing the dashboard's URL as soon as it answers, so a finished study can be looked at
again."""
from __future__ import annotations

import threading
import time
import webbrowser
from pathlib import Path
from typing import Any, Callable

from tuneserve_service.config import DEFAULT_DATA_DIR, Settings, redacted_url


def demo_database_url(data_dir: str | Path = DEFAULT_DATA_DIR) -> str:
    """The SQLite URL `tuneserve demo --data-dir DIR` writes to."""
    return f"sqlite:///{(Path(data_dir) / 'tuneserve.db').resolve()}"


def dashboard_url(host: str, port: int, study: str | None = None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}/dashboard" + (f"/studies/{study}" if study else "")


def serve_dashboard(database_url: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                    study: str | None = None, open_browser: bool = False, print_fn=print, *,
                    app_factory: Callable[[Settings], Any]) -> None:
    """Serve the API and the dashboard on `database_url` (default: the demo's database) until
    Ctrl-C; print the URL (of `study`'s page when given) once the server is up. `app_factory` is
    tuneserve_service.main.create_app, passed by the caller (the CLI): the dashboard sits below the
    app and does not import it."""
    import uvicorn

    from tuneserve_service.serving import uvicorn_options

    settings = Settings(database_url=database_url or demo_database_url(), host=host, port=port, log_level="warning")
    server = uvicorn.Server(uvicorn.Config(app_factory(settings), host=host, port=port, **uvicorn_options(settings)))
    url = dashboard_url(host, port, study)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print_fn(f"dashboard: {url}  (database {redacted_url(settings.database_url)}; Ctrl-C stops)")
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, name="announce", daemon=True).start()
    server.run()
