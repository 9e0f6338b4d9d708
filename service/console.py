"""The `tuneserve` console script. `pip install tuneserve` is the client alone (httpx, pydantic,
tenacity); the command line comes with an extra. When a command needs a package this installation
lacks, this says which extra brings it, in one line, instead of a traceback. Standard library only
until it hands over to the command line (service/cli)."""
from __future__ import annotations

import sys

# Top-level modules the extras bring (pyproject.toml), by the extra that brings them.
SERVER_ONLY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "pydantic_settings",
               "hyperopt", "bayes_opt", "scipy", "swagger_ui_bundle", "jinja2", "plotly", "prometheus_client",
               "slugify"}
WORKER_ONLY = {"torch"}
COMMAND_LINE = {"typer", "click", "rich", "yaml", "numpy", "sklearn", "shellingham"}  # both extras

ADVICE = {"server": "pip install 'tuneserve[server]'", "worker": "pip install 'tuneserve[worker]'",
          "demo": "pip install 'tuneserve[server,worker]'",
          "cli": "pip install 'tuneserve[server]' (or 'tuneserve[worker]' on a worker machine)"}


def advice(argv: list[str], missing: str) -> str | None:
    """How to get `missing` (a top-level module) for this command line; None when it is not ours."""
    command = next((a for a in argv if not a.startswith("-")), "")
    if command == "demo" and missing in SERVER_ONLY | WORKER_ONLY | COMMAND_LINE:
        return ADVICE["demo"]
    if missing in SERVER_ONLY:
        return ADVICE["server"]
    if missing in WORKER_ONLY:
        return ADVICE["worker"]
    if missing in COMMAND_LINE:
        return ADVICE.get(command if command in ("server", "worker") else "cli")
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from tuneserve_service.cli import main as cli_main

        return cli_main(argv)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        how = advice(argv, missing)
        if how is None:
            raise
        what = f"`tuneserve {argv[0]}`" if argv and not argv[0].startswith("-") else "the tuneserve command line"
        print(f"tuneserve: {what} needs the Python package {missing!r}, which this installation lacks "
              f"(`pip install tuneserve` is the client alone). Install it with: {how}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
