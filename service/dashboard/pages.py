"""The dashboard's HTML pages, its login, and its static assets (plotly.js from the installed
`plotly` package: nothing is fetched from the internet, so the dashboard works offline).

Auth, when the server has a token: a page request without a valid token redirects to a login form;
the form (or a `?token=` parameter on any page, for a link printed by a script) sets an HttpOnly,
SameSite=Strict cookie holding the token, which the API and the data endpoints accept like a bearer
header (service/api/deps.py). SameSite=Strict keeps other sites from riding on the cookie.

The value lists the scripts need (trial states, goals, diagnosis labels...) are rendered into every
page from tuneserve.schemas.enums (`enum_values`, read by dashboard.js from #ts-enums): the scripts
name members (`T.COMPLETED`), never spell a list of values themselves. The same enums are the named
schemas of /openapi.json.
"""
from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from tuneserve_service.api.deps import TOKEN_COOKIE, auth_required, caller_for, get_settings, page_caller
from tuneserve_service.config import Settings
from tuneserve.schemas import enums

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def plotly_js() -> Path:
    """plotly.min.js as shipped inside the installed `plotly` wheel."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"plotly.min.js not found at {path}; reinstall the `plotly` package")
    return path


@lru_cache(maxsize=1)
def asset_version() -> str:
    """Changes when any asset changes, so browsers may cache assets for a long time."""
    h = hashlib.sha1()
    for p in sorted(STATIC.iterdir()):
        h.update(p.read_bytes())
    h.update(str(plotly_js().stat().st_mtime_ns).encode())
    return h.hexdigest()[:10]


@lru_cache(maxsize=1)
def enums_json() -> Markup:
    """enum_values() as JSON safe inside a <script> element, in definition order (Jinja's tojson
    would sort the keys, and the order of states is the order the dashboard shows them in)."""
    return htmlsafe_json_dumps(enum_values(), dumps=json.dumps)


def enum_values() -> dict[str, dict[str, str]]:
    """Every enum of tuneserve.schemas.enums as {member name: value}, in definition order, and the
    groups of trial states (ACTIVE_STATES, ENDED_STATES, VALUED_STATES) the same way."""
    out: dict[str, dict[str, str]] = {}
    for name, obj in vars(enums).items():
        if isinstance(obj, type) and issubclass(obj, StrEnum) and obj is not StrEnum:
            out[name] = {m.name: m.value for m in obj}
        elif name.endswith("_STATES") and isinstance(obj, tuple):
            out[name] = {m.name: m.value for m in obj}
    return out


def _safe_next(target: str | None) -> str:
    # Only our own pages: an absolute URL here would make the login an open redirect.
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return "/dashboard"


def _with_cookie(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


def _render(request: Request, name: str, settings: Settings, **context) -> Response:
    token = request.query_params.get("token")
    if token is not None:
        # A link with ?token=...: keep it as the cookie, then drop it from the address bar.
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        target = request.url.path + (f"?{rest}" if rest else "")
        if caller_for(request, token) is None:
            return RedirectResponse(f"/dashboard/login?{urlencode({'next': target, 'error': '1'})}", 303)
        return _with_cookie(RedirectResponse(target, 303), request, token)
    if page_caller(request) is None:
        return RedirectResponse(f"/dashboard/login?{urlencode({'next': request.url.path})}", 303)
    response = templates.TemplateResponse(request, name, {
        "v": asset_version(), "auth": auth_required(request), "enums": enums_json(), **context,
    })
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", 307)


@router.get("/dashboard")
def studies_page(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    return _render(request, "studies.html", settings, page="studies")


@router.get("/dashboard/studies/{name}")
def study_page(name: str, request: Request, settings: Settings = Depends(get_settings)) -> Response:
    return _render(request, "study.html", settings, page="study", study_name=name)


@router.get("/dashboard/trials/{trial_id}")
def trial_page(trial_id: int, request: Request, settings: Settings = Depends(get_settings)) -> Response:
    return _render(request, "trial.html", settings, page="trial", trial_id=trial_id)


@router.get("/dashboard/login")
def login_form(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    return templates.TemplateResponse(request, "login.html", {
        "v": asset_version(), "auth": auth_required(request), "page": "login",
        "next": _safe_next(request.query_params.get("next")), "error": request.query_params.get("error"),
    })


@router.post("/dashboard/login")
async def login(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or [None])[0])
    if caller_for(request, token) is None:
        return templates.TemplateResponse(request, "login.html", {
            "v": asset_version(), "auth": True, "page": "login", "next": target, "error": "1",
        }, status_code=401)
    return _with_cookie(RedirectResponse(target, 303), request, token)


@router.post("/dashboard/logout")
def logout() -> Response:
    response = RedirectResponse("/dashboard/login", 303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


@router.get("/dashboard/static/plotly.min.js")
def plotly_asset() -> FileResponse:
    return FileResponse(plotly_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get("/dashboard/static/{name}")
def static_asset(name: str) -> Response:
    path = STATIC / name
    if "/" in name or not path.is_file():
        return Response(status_code=404)
    media = "text/javascript" if name.endswith(".js") else "text/css" if name.endswith(".css") else "image/svg+xml"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=31536000, immutable"})
