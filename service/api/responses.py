"""A model as JSON bytes, for the worker protocol's routes.

FastAPI validates a route's return value against its `response_model` before serialising it, and
for a sync route it does that in a second hop through the thread pool (fastapi/routing.py,
serialize_response). The protocol's answers are built from typed models already, so the hot routes
return `json_model(answer)`: the same JSON (pydantic's serializer, non-finite floats as null, as
FastAPI's own), no second validation, no second hop. The routes keep `response_model` for the
OpenAPI document.
"""
from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_model(model: BaseModel, status_code: int = 200) -> Response:
    return Response(content=model.__pydantic_serializer__.to_json(model), media_type="application/json",
                    status_code=status_code)
