"""The OpenAPI document and the /docs page, both complete and offline.

FastAPI's generated document is finished here, in one place, rather than on every route: the
bearer security scheme on every protected operation, the error answers each operation can give
(401/403 for a token, 404 for a named study or trial, 409 for a state conflict, 413 for an
oversized body, 503 while the database is unavailable, 422 as FastAPI documents it, 400 for a JSON
body that is not text at all), and the study document (`POST /studies`, read from the raw body so
YAML works too) as a component whose `$ref`s resolve. Every enum of tuneserve.schemas.enums is a
named schema, whether or not a route uses it yet: clients and the dashboard read the value lists
from one place.

Bodies: JSON that does not parse is a 422 (`type` json_invalid, `loc` the character offset, `ctx`
the parser's message), like any other invalid field. A body FastAPI cannot even decode as text (not
UTF-8) is a 400 from FastAPI itself, documented here on every operation it parses a JSON body for;
`POST /studies` decodes its own body and answers 422 for that too. /docs serves Swagger UI from the `swagger-ui-bundle` package installed with the server,
never from a CDN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from enum import StrEnum

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, TypeAdapter

from tuneserve._defaults import API_PREFIX
from tuneserve.schemas import enums
from tuneserve.schemas.studies import StudyCreate

DOCS_ASSETS = "/docs/assets"
SECURITY = "bearerAuth"
PUBLIC_PATHS = ("/healthz", "/readyz")
# Operations that read and decode their JSON body themselves (undecodable bodies are 422 there).
STUDIES = f"{API_PREFIX}/studies"
RAW_BODY_OPERATIONS = {(STUDIES, "post")}


class ErrorBody(BaseModel):
    """Every error but a 422 or a 400: what went wrong, a stable code, and the fields it is about."""

    detail: str
    code: str


class BodyNotDecoded(BaseModel):
    """A 400: the request body could not be decoded as JSON text (FastAPI's own answer)."""

    detail: str


BODY_NOT_DECODED = {
    "description": "The body could not be read as JSON text at all (e.g. bytes that are not UTF-8); "
                   "JSON that does not parse is a 422 (`type` json_invalid)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BodyNotDecoded"}}},
}


def _enum_schemas(schemas: dict[str, Any]) -> None:
    """Every StrEnum of tuneserve.schemas.enums as a named schema (routes' own uses keep theirs)."""
    for name, obj in vars(enums).items():
        if isinstance(obj, type) and issubclass(obj, StrEnum) and obj is not StrEnum:
            schema = TypeAdapter(obj).json_schema()
            schema.setdefault("title", name)
            if obj.__doc__ and obj.__doc__ != StrEnum.__doc__:
                schema.setdefault("description", " ".join(obj.__doc__.split()))
            schemas.setdefault(name, schema)


def json_body_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, method) of every operation whose request body FastAPI parses as JSON."""
    return [(path, method) for path, operations in spec["paths"].items() for method, op in operations.items()
            if "application/json" in op.get("requestBody", {}).get("content", {})
            and (path, method) not in RAW_BODY_OPERATIONS]


# Which errors an operation can give, by what its path and method say about it.
def _error_codes(path: str, method: str) -> list[str]:
    codes = ["401", "403"]
    if "{name}" in path or "{trial_id}" in path:
        codes.append("404")
    writes = method in ("post", "put", "delete", "patch")
    if writes and (path.startswith(f"{API_PREFIX}/trials/{{trial_id}}")
                   or path.startswith(f"{STUDIES}/{{name}}") or path in (STUDIES, f"{API_PREFIX}/tokens")):
        codes.append("409")
    if writes:
        codes.append("413")
    codes.append("503")
    return codes


_DESCRIPTIONS = {
    "401": "No token, a malformed one, or one the server does not know (Authorization: Bearer <token>)",
    "403": "The token's role may not do this, or the trial is held under another API token",
    "404": "No such study or trial",
    "409": "The study or trial is not in a state that allows this (the answer names the state)",
    "413": "The request body is larger than the server accepts (TUNESERVE_MAX_BODY_BYTES)",
    "503": "The database is unavailable; retry after the Retry-After header's seconds",
}


def _study_document(schemas: dict[str, Any]) -> dict[str, Any]:
    """StudyCreate as a component, its nested models beside it (so every $ref resolves)."""
    schema = StudyCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["StudyCreate"] = schema
    return {"$ref": "#/components/schemas/StudyCreate"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    schemas["BodyNotDecoded"] = BodyNotDecoded.model_json_schema()
    _enum_schemas(schemas)
    parsed_bodies = set(json_body_operations(spec))
    components["securitySchemes"] = {SECURITY: {
        "type": "http", "scheme": "bearer",
        "description": "TUNESERVE_API_TOKEN, or a named token from `tuneserve token create` (admin or worker). "
                       "Not needed when the server has no token configured (loopback only).",
    }}
    study_ref = None
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if path in PUBLIC_PATHS:
                continue
            op["security"] = [{SECURITY: []}]
            responses = op.setdefault("responses", {})
            for code in _error_codes(path, method):
                responses.setdefault(code, {
                    "description": _DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                })
            if (path, method) in parsed_bodies:
                responses.setdefault("400", BODY_NOT_DECODED)
            if path == STUDIES and method == "post":
                study_ref = study_ref or _study_document(schemas)
                content = op["requestBody"]["content"]
                content["application/json"] = {"schema": study_ref}
                responses.setdefault("422", {
                    "description": "The document breaks a rule: `detail[].loc` names the field, `msg` the rule",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
                })
    return spec


def install_openapi(app: FastAPI) -> None:
    """The finished document at /openapi.json and Swagger UI at /docs, with local assets."""
    import swagger_ui_bundle

    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
