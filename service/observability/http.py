"""ASGI middleware that counts HTTP requests and times them by route template (e.g.
/api/v1/trials/{trial_id}/report), so a million trial ids make one label value, not a million."""
from __future__ import annotations

import time

from tuneserve_service.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "<unmatched>"


def route_template(scope) -> str:
    """The matched route's full template. A route of an included router knows only its own part
    (`/trials/{trial_id}`), so the router's prefix is recovered from the request path: what is left
    once the route's part, filled with this request's path parameters, is cut off its end."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not template:
        return UNMATCHED
    try:
        filled = getattr(route, "path_format", template).format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return template
    path = scope.get("path", "")
    if filled and path.endswith(filled):
        return path[: len(path) - len(filled)] + template
    return template


# The labelled children by (route, method, status): labels() takes a lock and builds its key per call.
_children: dict[tuple[str, str, str], tuple] = {}


def _series(route: str, method: str, status: str):
    key = (route, method, status)
    found = _children.get(key)
    if found is None:
        if len(_children) > 4096:   # bounded: templates, not paths, so this is only a guard
            _children.clear()
        found = _children[key] = (HTTP_REQUESTS.labels(route=route, method=method, status=status),
                                  HTTP_LATENCY.labels(route=route, method=method))
    return found


class HttpMetrics:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            route = route_template(scope)
            method = scope.get("method", "")
            count, latency = _series(route, method, str(status))
            count.inc()
            latency.observe(time.perf_counter() - start)

        async def send_and_record(message):
            # Counted before the answer goes out, so a client that has its answer always finds it
            # counted; the latency is the time to the first byte (JSON answers go out in one piece).
            if message["type"] == "http.response.start" and not recorded:
                record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if not recorded:  # the app raised before answering: the server answers 500
                record(500)
