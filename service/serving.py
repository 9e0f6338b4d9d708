"""How uvicorn serves the app: one set of options for `tuneserve server` and for a bare uvicorn.

A client that sends its headers slowly never reaches the app (uvicorn calls the app only once the
headers are complete), so that deadline lives in the HTTP protocol: GuardedH11Protocol is
uvicorn's h11 protocol plus a header deadline, armed when a connection opens and again whenever
it is between requests, and cleared when a request's headers are complete; when it fires the
client gets a 408 and the connection is closed. The body deadline and size limit are in the app
(service/api/limits.py), so every way of running it has them.

    tuneserve server                                   # uses uvicorn_options(settings)
    uvicorn --factory tuneserve_service.main:create_app --http tuneserve_service.serving:GuardedH11Protocol \\
            --timeout-keep-alive 5                     # the same, by hand (reads TUNESERVE_* itself)
"""
from __future__ import annotations

from functools import cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from tuneserve_service.config import Settings

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 29\r\n"
                     b"connection: close\r\n\r\nrequest headers took too long")
MAX_HEADER_BYTES = 16 * 1024


@cache
def _env_header_timeout() -> float:
    return Settings().header_timeout


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on receiving each request's headers."""

    header_timeout: float | None = None  # None: TUNESERVE_HEADER_TIMEOUT (or its default)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_deadline = None
        self._header_seconds = self.header_timeout or _env_header_timeout()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._between_requests():
            if self._header_deadline is None:
                self._arm()
        else:
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
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": settings.header_timeout})


def uvicorn_options(settings: Settings, workers: int = 1) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run / uvicorn.Config (besides the app, host, port, workers).
    With several worker processes uvicorn pickles its config, so the protocol goes by import
    string and each process reads its header timeout from the environment (TUNESERVE_*)."""
    return {
        "http": protocol_for(settings) if workers == 1 else "tuneserve_service.serving:GuardedH11Protocol",
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "log_level": settings.log_level,
    }
