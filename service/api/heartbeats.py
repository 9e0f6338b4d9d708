"""Heartbeats that arrive together renew their leases together.

A heartbeat is one fenced UPDATE, yet each one also paid its own trip through the thread pool and
its own statement. Here the first heartbeat of a caller (an API token) goes to the database at
once, alone, as `protocol.heartbeat`; those of the same caller that arrive while it is in flight
wait for it and then go together, in one `protocol.renew_leases` call: one UPDATE for all of them, each answered exactly as its own
heartbeat would have been (its Decision, or the error a heartbeat raises: 404, 409). Nothing waits
on a timer, so a lone heartbeat is not delayed; a busy server renews more leases per statement.
A database error reaches every heartbeat of the batch (each answers 503).

Used by the keep-alive dispatch (api/keepalive.py) for ordinary heartbeats; the router's
heartbeat route answers one at a time, as the reference.
"""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.concurrency import run_in_threadpool

from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import protocol
from tuneserve_service.errors import DomainError
from tuneserve.schemas.trials import MAX_RENEWALS, Decision

_Waiting = tuple[int, str, "asyncio.Future[Decision]"]


class HeartbeatBatcher:
    """Per caller: the heartbeats waiting for the batch in flight to end, and whether one is."""

    def __init__(self, db: Database):
        self.db = db
        self.waiting: dict[Any, list[_Waiting]] = {}
        self.flushing: set[Any] = set()

    async def heartbeat(self, trial_id: int, token: str, holder: str | None) -> Decision:
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(holder, []).append((trial_id, token, future))
        if holder not in self.flushing:
            self.flushing.add(holder)
            asyncio.get_running_loop().create_task(self._flush(holder))
        return await future

    async def _flush(self, holder: str | None) -> None:
        batch: list[_Waiting] = []
        try:
            while self.waiting.get(holder):
                batch = self.waiting[holder][:MAX_RENEWALS]
                del self.waiting[holder][:MAX_RENEWALS]
                try:
                    answers = await run_in_threadpool(_renew, self.db, [(t, tok) for t, tok, _ in batch], holder)
                except Exception as exc:  # noqa: BLE001 - each heartbeat of the batch answers it (503, ...)
                    answers = [(t, exc) for t, _, _ in batch]
                for (_, _, future), (_, answer) in zip(batch, answers):
                    if future.done():  # its request was cancelled (the client went away)
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
                batch = []
        except BaseException:  # cancelled (the server stops): no heartbeat is left waiting forever
            for _, _, future in batch + self.waiting.pop(holder, []):
                future.cancel()
            raise
        finally:
            self.flushing.discard(holder)
            if not self.waiting.get(holder):
                self.waiting.pop(holder, None)


def _renew(db: Database, leases: list[tuple[int, str]], holder: str | None) -> list[tuple[int, Decision | Exception]]:
    """A heartbeat alone takes the heartbeat's own call; several take one renewal for all. Each
    lease's answer: its Decision, or the domain error its heartbeat would raise."""
    if len(leases) == 1:
        trial_id, token = leases[0]
        try:
            return [(trial_id, protocol.heartbeat(db, trial_id, token, holder))]
        except DomainError as err:
            return [(trial_id, err)]
    return protocol.renew_leases(db, leases, holder)
