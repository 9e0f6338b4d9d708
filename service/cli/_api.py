"""What every client command shares: the --server and --token options (from TUNESERVE_SERVER and
TUNESERVE_TOKEN when not given), the API reached through the client's one transport
(tuneserve.client.JsonClient: the same prefix, auth header and error types as the SDK and the worker),
and turning whatever goes wrong (no server, a refused token, a 4xx) into one readable line instead
of a traceback. A command makes one attempt per call: a person at a prompt wants the answer, or why
not, now (the SDK and the worker retry)."""
from typing import Annotated, Any, NoReturn, Optional

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from tuneserve._defaults import DEFAULT_SERVER, ENV_SERVER, ENV_TOKEN
from tuneserve.client import JsonClient
from tuneserve.errors import ApiError, NotFound, ServerUnavailable, TuneserveError, describe_detail

__all__ = ["DEFAULT_SERVER", "ServerOption", "TokenOption", "JsonOption", "Api", "fail", "out", "err", "print_json"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ServerOption = Annotated[str, typer.Option(
    "--server", "-s", envvar=ENV_SERVER, show_envvar=True, help="The tuneserve server's URL.",
)]
TokenOption = Annotated[Optional[str], typer.Option(
    "--token", envvar=ENV_TOKEN, show_envvar=True, show_default=False,
    help="API token (Authorization: Bearer), when the server requires one.",
)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of a table.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")  # a message's [brackets] are text, not markup
    raise typer.Exit(code)


def explain(exc: TuneserveError, server: str) -> str:
    """One line (or a few) a person can act on, from whatever the transport raised."""
    if isinstance(exc, ApiError):
        detail = exc.detail
        if exc.status == 401:
            return ("the server refused the request: it needs a valid token "
                    "(--token or TUNESERVE_TOKEN)" + (f" [{describe_detail(detail)}]" if detail else ""))
        if isinstance(detail, list):  # validation errors: one line per field
            return "\n  ".join(describe_detail([item]) for item in detail)
        return str(detail)
    if isinstance(exc, ServerUnavailable):
        if exc.status == 503:
            return f"the server is temporarily unavailable (its database?); try again shortly: {exc.detail}"
        if exc.status is not None:
            return f"{exc.detail} (HTTP {exc.status})"
        cause = exc.__cause__.__cause__ if exc.__cause__ is not None else None
        if isinstance(cause, httpx.TimeoutException):
            return f"the server at {server} did not answer in time"
        if isinstance(cause, httpx.ConnectError):
            return (f"cannot reach the tuneserve server at {server}: is `tuneserve server` running there? "
                    f"(set --server or TUNESERVE_SERVER)")
        return f"talking to {server} failed: {cause or exc}"
    return str(exc)


class Api:
    """The CLI's view of the API: JSON in and out (paths under the API prefix), errors become `fail()`."""

    def __init__(self, server: str, token: str | None, timeout: float = 30.0):
        self.server = server.rstrip("/")
        try:
            # token "" (not None): a --token "" means none, never TUNESERVE_TOKEN behind the option's back.
            self.client = JsonClient(self.server, token or "", timeout=timeout, retry_seconds=0)
        except TuneserveError as exc:
            fail(str(exc))

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, *, ok404: bool = False, **kw: Any) -> Any:
        try:
            return self.client.request(method, path, **kw)
        except TuneserveError as exc:
            if ok404 and isinstance(exc, NotFound):
                return None
            fail(explain(exc, self.server))

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)

    def all_trials(self, study: str, state: str | None = None) -> list[dict]:
        try:
            return self.client.all_trials(study, state)
        except TuneserveError as exc:
            fail(explain(exc, self.server))


def print_json(data: Any) -> None:
    out.print_json(data=data)
