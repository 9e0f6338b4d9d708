"""`tuneserve server`, `tuneserve db upgrade` and `tuneserve token ...`: the commands that run on the
server's side and talk to the database directly rather than over REST."""
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from tuneserve_service.cli._api import err, fail, out

DatabaseOption = Annotated[Optional[str], typer.Option(
    "--database-url", envvar="TUNESERVE_DATABASE_URL", show_envvar=True, show_default=False,
    help="SQLAlchemy URL of the database (default: the server's setting).",
)]


def server(
    host: Annotated[Optional[str], typer.Option(help="Address to bind (TUNESERVE_HOST, default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind (TUNESERVE_PORT, default 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes; they share the database (use 1 for SQLite).")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (tokens masked).")] = False,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Allow binding beyond loopback with no token configured (TUNESERVE_INSECURE).")] = False,
) -> None:
    """Run the API server and the dashboard (uvicorn) over the configured database; migrations run at start."""
    import uvicorn

    from tuneserve_service.auth.exposure import InsecureBind, check_exposure
    from tuneserve_service.config import Settings, redacted_url
    from tuneserve_service.main import create_app
    from tuneserve_service.serving import uvicorn_options

    if insecure:
        os.environ["TUNESERVE_INSECURE"] = "true"  # read by every server process's Settings
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = Settings(**overrides)
    try:
        check_exposure(settings)
    except InsecureBind as exc:
        fail(str(exc))
    out.print(f"tuneserve: serving on http://{settings.host}:{settings.port} with {redacted_url(settings.database_url)}"
              f" ({workers} process{'es' if workers > 1 else ''}); dashboard at "
              f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}/dashboard")
    options = uvicorn_options(settings, workers=workers)
    if workers > 1:
        # Several processes need the app as an import string; each builds it from the environment.
        # Migrate once here so the processes do not all try at the same moment.
        from tuneserve_service.db.migrate import upgrade
        from tuneserve_service.observability.metrics import prepare_multiprocess_dir

        if settings.auto_migrate:
            upgrade(settings.database_url)
        prepare_multiprocess_dir()  # /metrics sums every process's counters
        os.environ.update({"TUNESERVE_HOST": settings.host, "TUNESERVE_PORT": str(settings.port)})
        uvicorn.run("tuneserve_service.main:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=workers, access_log=access_log, **options)
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=access_log, **options)


def dashboard(
    data_dir: Annotated[Path, typer.Option(help="The demo's folder: its SQLite file is shown.")] = Path("tuneserve-data"),
    database_url: Annotated[Optional[str], typer.Option(
        "--database-url", show_default=False, help="Show this database instead of the demo's.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    study: Annotated[Optional[str], typer.Option(help="Print this study's page.")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
) -> None:
    """Serve the dashboard (and the API) on the demo's database, or another, to look at studies again."""
    from tuneserve_service.dashboard.serve import demo_database_url, serve_dashboard
    from tuneserve_service.main import create_app

    url = database_url or demo_database_url(data_dir)
    if database_url is None and not (data_dir / "tuneserve.db").exists():
        fail(f"no demo database at {data_dir / 'tuneserve.db'}: run `tuneserve demo` first, or give --database-url")
    serve_dashboard(url, host=host, port=port, study=study, open_browser=open_browser,
                    print_fn=lambda line: out.print(line, markup=False), app_factory=create_app)


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Run the Alembic migrations up to the latest schema."""
    from tuneserve_service.config import Settings, redacted_url
    from tuneserve_service.db.migrate import upgrade

    url = database_url or Settings().database_url
    upgrade(url)
    out.print(f"database at {redacted_url(url)} is at the latest schema")


token_app = typer.Typer(help="Named API tokens (stored hashed): admin or worker.", no_args_is_help=True)


class RoleChoice(StrEnum):
    admin = "admin"
    worker = "worker"


def _database(database_url: str | None):
    from tuneserve_service.config import Settings
    from tuneserve_service.db.engine import Database
    from tuneserve_service.db.migrate import upgrade

    url = database_url or Settings().database_url
    upgrade(url)
    return Database(url, pool_size=1)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).", show_default=False)],
    role: Annotated[RoleChoice, typer.Option(help="worker: run trials and read; admin: everything.")] = RoleChoice.worker,
    database_url: DatabaseOption = None,
) -> None:
    """Create a token and print it once: it is stored hashed and cannot be shown again."""
    from tuneserve_service.auth.tokens import Role, create_token
    from tuneserve_service.errors import DomainError

    db = _database(database_url)
    try:
        with db.transaction() as s:
            secret = create_token(s, name, Role(role.value))
    except DomainError as exc:
        fail(exc.message)
    finally:
        db.dispose()
    out.print(secret, markup=False)  # alone on stdout, so `$(tuneserve token create ...)` captures it
    err.print(f"token {name!r} ({role.value}) created; send it as `Authorization: Bearer <token>` or set "
              f"TUNESERVE_TOKEN. It is stored hashed and cannot be shown again.")


@token_app.command("list")
def token_list(database_url: DatabaseOption = None) -> None:
    """Every token's name, role and dates (never the secret)."""
    from tuneserve_service.auth.tokens import list_tokens

    db = _database(database_url)
    try:
        with db.transaction() as s:
            tokens = list_tokens(s)
    finally:
        db.dispose()
    if not tokens:
        out.print("no tokens")
    for t in tokens:
        data = t.model_dump() if hasattr(t, "model_dump") else dict(t)
        out.print("  ".join(f"{k}={v}" for k, v in data.items() if v is not None))


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.", show_default=False)],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a token: every request with it is refused from now on."""
    from tuneserve_service.auth.tokens import revoke_token
    from tuneserve_service.errors import DomainError

    db = _database(database_url)
    try:
        with db.transaction() as s:
            revoke_token(s, name)
    except DomainError as exc:
        fail(exc.message)
    finally:
        db.dispose()
    out.print(f"token {name!r} revoked")
