"""How uvicorn serves the app: one set of options for `tuneserve server` and for a bare uvicorn.

The HTTP parser is httptools (llhttp, in C) on uvloop's event loop: against uvicorn's pure-Python
h11 parser on asyncio's loop that takes 6-13% off the server's CPU per request on the worker
protocol (benchmarks/http_stack.py; benchmarks/README.md, issue 21). httptools has no limit of its own on a request's headers, in time
or in size, so GuardedHttpProtocol adds both before a request can reach the app:
- a header deadline, armed when a connection opens and again whenever it is between requests, and
  cleared when a request's headers are complete: a client that sends its headers slowly gets a 408
  and the connection is closed;
- MAX_HEADER_BYTES: a request line and headers that grow past it get a 431 and the connection is
  closed (llhttp would buffer one endless header value whole).
The body deadline and size limit are in the app (service/api/limits.py), so every way of running
it has them.

    tuneserve server                                   # uses uvicorn_options(settings)
    uvicorn --factory tuneserve_service.main:create_app --http tuneserve_service.serving:GuardedHttpProtocol \\
            --timeout-keep-alive 5                     # the same, by hand (reads TUNESERVE_* itself)
"""
from __future__ import annotations

from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tuneserve_service.config import Settings


def _closing_response(status: bytes, text: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain\r\ncontent-length: "
            + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text)


_TIMEOUT_RESPONSE = _closing_response(b"408 Request Timeout", b"request headers took too long")
MAX_HEADER_BYTES = 16 * 1024
_TOO_LARGE_RESPONSE = _closing_response(
    b"431 Request Header Fields Too Large", b"request line and headers over %d bytes" % MAX_HEADER_BYTES)


@cache
def _env_header_timeout() -> float:
    return Settings().header_timeout


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on, and a bound to, each request's headers."""

    header_timeout: float | None = None  # None: TUNESERVE_HEADER_TIMEOUT (or its default)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_deadline = None
        self._header_bytes = 0
        self._header_seconds = self.header_timeout or _env_header_timeout()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._between_requests():
            # Still before the end of a request's headers. A chunk that also ends the previous
            # request's body is counted whole: only a pipelining client can see that, at 16 KiB.
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(_TOO_LARGE_RESPONSE)
            elif self._header_deadline is None:
                self._arm()
        else:
            self._header_bytes = 0
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn's keep-alive timer covers the idle wait; ours starts with the next request's bytes.
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self._header_seconds, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._between_requests() and not self.transport.is_closing():
            self._refuse(_TIMEOUT_RESPONSE)

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        self.transport.write(response)
        self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedHttpProtocol]:
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"header_timeout": settings.header_timeout})


def uvicorn_options(settings: Settings, workers: int = 1) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run / uvicorn.Config (besides the app, host, port, workers).
    With several worker processes uvicorn pickles its config, so the protocol goes by import
    string and each process reads its header timeout from the environment (TUNESERVE_*)."""
    return {
        "http": protocol_for(settings) if workers == 1 else "tuneserve_service.serving:GuardedHttpProtocol",
        "loop": "auto",  # uvloop where it is installed (a server dependency off Windows)
        "timeout_keep_alive": settings.keep_alive_timeout,
        "log_level": settings.log_level,
    }
