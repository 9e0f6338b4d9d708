"""Request-body limits, enforced while the body is read (an ASGI middleware, so every way of
running the app has them): a size limit (413 as soon as Content-Length or the bytes received pass
it, chunked bodies included; the rest is never read), a deadline for the whole body (408: a client
that trickles its body is cut off, others are served meanwhile), and a nesting limit for JSON
bodies (422 naming the limit), checked without recursion before any parser sees the body: Python's
json and pydantic recurse, and raise at one or two thousand levels.

YAML bodies are checked where they are decoded (`yaml_document` below, used by POST /studies).
"""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import yaml

from tuneserve_service.config import Settings

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

# A JSON string (with escapes) or a bracket. Strings are matched whole so brackets inside them
# are skipped; the regex engine does the scanning, Python sees only brackets and strings.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class NestingTooDeep(ValueError):
    def __init__(self, limit: int, kind: str):
        super().__init__(f"{kind} nesting deeper than {limit} levels (the limit for request bodies)")
        self.limit = limit


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` nests objects/arrays deeper than `limit`, without parsing it."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than the brackets it has
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


class _WideFloatLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-5` and `1E5` as floats (YAML 1.2, as people write them in W&B
    sweeps), where YAML 1.1 would give a string that a number field then has to refuse."""


_WideFloatLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

# Aliases let a short YAML text stand for an exponentially large document ("billion laughs"):
# the decoded document's size is bounded too, counting shared nodes each time they are reached.
MAX_YAML_NODES = 200_000


def yaml_document(raw: bytes, max_depth: int) -> Any:
    """Decode a YAML body with its nesting (as written and as expanded by aliases) and size bounded.
    Raises NestingTooDeep, ValueError (too large) or yaml.YAMLError."""
    depth = 0
    for event in yaml.parse(raw, Loader=_WideFloatLoader):  # the parser itself does not recurse
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > max_depth:
                raise NestingTooDeep(max_depth, "YAML")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    doc = yaml.load(raw, Loader=_WideFloatLoader)  # noqa: S506 - a SafeLoader subclass
    _check_expanded(doc, max_depth)
    return doc


def _check_expanded(doc: Any, max_depth: int) -> None:
    stack, nodes = [(doc, 0)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_YAML_NODES:
            raise ValueError(f"the YAML document expands to more than {MAX_YAML_NODES} values (aliases?)")
        if isinstance(node, (dict, list)):
            if depth >= max_depth:
                raise NestingTooDeep(max_depth, "YAML")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def _json_error(status: int, detail: Any, close: bool = True) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return status, headers, body


class BodyLimits:
    """Pure ASGI middleware: reads the body under the limits, then hands the app a replay of it."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.max_bytes = settings.max_body_bytes
        self.max_depth = settings.max_json_depth
        self.timeout = settings.body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length, ctype = None, b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                ctype = value
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(send, *self._too_large())
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_bytes:
                        return await self._refuse(send, *self._too_large())
        except TimeoutError:
            return await self._refuse(send, *_json_error(
                408, f"the request body did not arrive within {self.timeout:g} s"))
        media = ctype.split(b";")[0].strip().lower().decode("latin-1")
        if body and media not in YAML_TYPES and json_depth_exceeds(bytes(body), self.max_depth):
            return await self._refuse(send, *_json_error(422, [{
                "loc": ["body"], "msg": str(NestingTooDeep(self.max_depth, "JSON")), "type": "nesting_too_deep",
                "ctx": {"max_depth": self.max_depth}}], close=False))
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large(self):
        return _json_error(413, f"the request body is larger than {self.max_bytes} bytes (the limit)")

    @staticmethod
    async def _refuse(send, status: int, headers: list, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
