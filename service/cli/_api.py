"""What every client command shares: the --server and --token options (from TUNESERVE_SERVER and
TUNESERVE_TOKEN when not given), an HTTP client for the REST API, and turning whatever goes wrong
(no server, a refused token, a 4xx) into one readable line instead of a traceback."""
from typing import Annotated, Any, NoReturn, Optional

import httpx
import typer
from rich.console import Console

DEFAULT_SERVER = "http://127.0.0.1:8000"
API = "/api/v1"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ServerOption = Annotated[str, typer.Option(
    "--server", "-s", envvar="TUNESERVE_SERVER", show_envvar=True, help="The tuneserve server's URL.",
)]
TokenOption = Annotated[Optional[str], typer.Option(
    "--token", envvar="TUNESERVE_TOKEN", show_envvar=True, show_default=False,
    help="API token (Authorization: Bearer), when the server requires one.",
)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of a table.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _explain(resp: httpx.Response) -> str:
    """One line (or a few) a person can act on, from an error answer."""
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text.strip()[:300]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    status = resp.status_code
    if status == 401:
        return ("the server refused the request: it needs a valid token "
                "(--token or TUNESERVE_TOKEN)" + (f" [{detail}]" if detail else ""))
    if isinstance(detail, list):  # validation errors: one line per field
        lines = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                lines.append(f"{loc or 'body'}: {item.get('msg', item)}")
            else:
                lines.append(str(item))
        detail = "\n  ".join(lines)
    if status == 503:
        return f"the server is temporarily unavailable (its database?); try again shortly: {detail}"
    return f"{detail} (HTTP {status})" if status >= 500 else str(detail)


class Api:
    """A thin client for the CLI: JSON in and out, errors become `fail()`."""

    def __init__(self, server: str, token: str | None, timeout: float = 30.0):
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.server + API, headers=headers, timeout=timeout)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, ok404: bool = False, **kw: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.ConnectError:
            fail(f"cannot reach the tuneserve server at {self.server}: is `tuneserve server` running "
                 f"there? (set --server or TUNESERVE_SERVER)")
        except httpx.TimeoutException:
            fail(f"the server at {self.server} did not answer in time")
        except httpx.HTTPError as exc:
            fail(f"talking to {self.server} failed: {exc}")
        except UnicodeEncodeError:
            fail("the token must be plain ASCII text")
        if ok404 and resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            fail(_explain(resp))
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)

    def all_trials(self, study: str, state: str | None = None) -> list[dict]:
        rows: list[dict] = []
        while True:
            query = {"limit": 1000, "offset": len(rows), **({"state": state} if state else {})}
            page = self.get(f"/studies/{study}/trials", params=query)
            rows += page["items"]
            if not page["items"] or len(rows) >= page["total"]:
                return rows


def print_json(data: Any) -> None:
    out.print_json(data=data)
