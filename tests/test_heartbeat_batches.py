"""Heartbeats that arrive together renew together (service/api/heartbeats.py), each answered as its
own heartbeat would be."""
from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from tuneserve_service.api import heartbeats
from tuneserve_service.api.heartbeats import HeartbeatBatcher
from tuneserve_service.config import Settings
from tuneserve_service.db.engine import Database
from tuneserve_service.domain.core import protocol
from tuneserve_service.errors import DomainError
from tuneserve_service.main import create_app

SPACE = {"lr": {"min": 0.001, "max": 0.1, "distribution": "log_uniform_values"}}


def _claims(url: str, n: int) -> list[tuple[int, str]]:
    with TestClient(create_app(Settings(database_url=url, reaper_interval=3600))) as c:
        assert c.post("/api/v1/studies", json={"name": "hb", "parameters": SPACE, "lease_seconds": 600,
                                               "seed": 3}).status_code == 201
        leases = [c.post("/api/v1/trials/claim", json={"worker_id": f"w{i}", "study": "hb"}).json() for i in range(n)]
    return [(lease["trial_id"], lease["lease_token"]) for lease in leases]


def _outcome(answer) -> tuple:
    """What a client reads of an answer, less the clock: the decision's fields, or the error."""
    if isinstance(answer, DomainError):
        return type(answer).__name__, answer.code, answer.message
    return "decision", answer.model_dump(exclude={"lease_expires_at"}), answer.lease_expires_at is not None


@pytest.fixture
def counted(monkeypatch):
    """The batches the batcher sent to the database (lists of leases), in order."""
    calls: list[list[tuple[int, str]]] = []
    real = heartbeats._renew

    def renew(db, leases, holder=None):
        calls.append(list(leases))
        return real(db, leases, holder)

    monkeypatch.setattr(heartbeats, "_renew", renew)
    return calls


async def _together(batcher: HeartbeatBatcher, requests: list[tuple[int, str]], holder=None) -> list:
    async def one(trial_id, token):
        try:
            return await batcher.heartbeat(trial_id, token, holder)
        except DomainError as err:
            return err
    return await asyncio.gather(*(one(t, tok) for t, tok in requests))


def test_heartbeats_sent_together_renew_in_one_call_each_answered_as_alone(database_url, counted):
    leases = _claims(database_url, 6)
    (a, ta), (b, tb) = leases[0], leases[1]
    requests = [*leases, (a, ta), (b, "0" * 32), (424242, ta), (leases[2][0], tb)]
    db = Database(database_url, pool_size=4)
    try:
        together = asyncio.run(_together(HeartbeatBatcher(db), requests))
        alone = []
        for trial_id, token in requests:
            try:
                alone.append(protocol.heartbeat(db, trial_id, token, None))
            except DomainError as err:
                alone.append(err)
    finally:
        db.dispose()
    assert counted == [requests]  # the first one found nothing in flight: the batch is all ten
    assert [_outcome(x) for x in together] == [_outcome(x) for x in alone]
    kinds = [_outcome(x)[0] for x in together]
    assert kinds == ["decision"] * 7 + ["TrialNotHeld", "TrialNotFound", "TrialNotHeld"], kinds


def test_a_heartbeat_arriving_during_a_batch_goes_in_the_next(database_url, counted):
    leases = _claims(database_url, 3)
    db = Database(database_url, pool_size=4)

    async def run():
        batcher = HeartbeatBatcher(db)
        first = asyncio.ensure_future(batcher.heartbeat(*leases[0], None))
        await asyncio.sleep(0)  # the first batch (one heartbeat) is now in flight
        rest = [asyncio.ensure_future(batcher.heartbeat(t, tok, None)) for t, tok in leases[1:]]
        return await asyncio.gather(first, *rest)

    try:
        answers = asyncio.run(run())
    finally:
        db.dispose()
    assert counted == [leases[:1], leases[1:]]  # alone (protocol.heartbeat), then two in one renewal
    assert all(not d.should_stop and d.lease_expires_at is not None for d in answers)


def test_callers_are_batched_apart(database_url, counted):
    leases = _claims(database_url, 2)
    db = Database(database_url, pool_size=4)

    async def run():
        batcher = HeartbeatBatcher(db)
        return await asyncio.gather(batcher.heartbeat(*leases[0], None), batcher.heartbeat(*leases[1], "other-token"),
                                    return_exceptions=True)

    try:
        mine, theirs = asyncio.run(run())
    finally:
        db.dispose()
    assert sorted(counted) == sorted([leases[:1], leases[1:]])  # one batch per caller; the two run in parallel
    assert not mine.should_stop
    # The trials were claimed anonymously (holder None): another caller does not hold them.
    assert isinstance(theirs, DomainError) and theirs.code == "not_lease_holder", theirs


def test_a_database_error_reaches_every_heartbeat_of_the_batch(database_url, monkeypatch):
    leases = _claims(database_url, 3)

    def down(db, leases, holder=None):
        raise sa_exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection"))

    monkeypatch.setattr(heartbeats.protocol, "renew_leases", down)
    db = Database(database_url, pool_size=4)

    async def run():
        batcher = HeartbeatBatcher(db)
        answers = await asyncio.gather(*(batcher.heartbeat(t, tok, None) for t, tok in leases), return_exceptions=True)
        return answers, batcher

    try:
        answers, batcher = asyncio.run(run())
    finally:
        db.dispose()
    assert all(isinstance(a, sa_exc.OperationalError) for a in answers), answers
    assert batcher.waiting == {} and batcher.flushing == set()  # nothing left behind


def test_a_cancelled_heartbeat_does_not_stop_the_others(database_url):
    leases = _claims(database_url, 3)
    db = Database(database_url, pool_size=4)

    async def run():
        batcher = HeartbeatBatcher(db)
        tasks = [asyncio.ensure_future(batcher.heartbeat(t, tok, None)) for t, tok in leases]
        await asyncio.sleep(0)
        tasks[1].cancel()  # its client went away while the batch was in flight
        return await asyncio.gather(*tasks, return_exceptions=True), batcher

    try:
        (first, cancelled, last), batcher = asyncio.run(run())
    finally:
        db.dispose()
    assert isinstance(cancelled, asyncio.CancelledError)
    assert not first.should_stop and not last.should_stop
    assert batcher.waiting == {} and batcher.flushing == set()
