"""Who is calling, and may they: bearer tokens resolved to a Caller, the role policy, and the
loopback rule for a server with no token at all.

Auth is on as soon as a token exists: TUNESERVE_API_TOKEN (one shared admin token, for one-person
use) or any named token in the database. With none, every caller is an anonymous admin, but only
on loopback: a request that arrives on another local address is refused unless the server runs
with `insecure` (so a `uvicorn --factory ... --host 0.0.0.0` started without a token exposes
nothing, however it was started).

The policy is by route, in one place, so routes added later are admin-only for writes unless
listed here: reads (GET) and the worker protocol (/trials/..., /leases/renew, /studies/{name}/ask) need any valid
token; everything else (creating, changing and deleting studies, enqueueing, /tokens) needs admin.
With no token at all, POST /tokens is refused (`refuse_first_token`): the first token is made on the
server's host, never by an anonymous request that would lock every other caller out.

A server process keeps what it learnt about a token for `token_cache_seconds`: a token revoked
through this process is refused at once, one revoked through another process or the CLI within
that time.
"""
from __future__ import annotations

from functools import lru_cache

import ipaddress
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tuneserve_service.config import Settings
from tuneserve_service.db.engine import Database
from tuneserve_service.errors import Forbidden, Unauthenticated
from tuneserve._defaults import API_PREFIX
from tuneserve.schemas.tokens import Role
from tuneserve_service.store import tokens as token_store
from tuneserve_service.auth.tokens import hash_token

API_TOKEN_KEY = "api-token"
_MAX_TOKEN_CHARS = 256
_CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. `key` binds leases (trials.holder): None when auth is off."""

    name: str
    role: Role
    key: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


ANONYMOUS = Caller(name="anonymous", role=Role.ADMIN, key=None)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenCache:
    """What this process knows about named tokens, each fact kept `ttl` seconds."""

    def __init__(self, db: Database, ttl: float):
        self.db, self.ttl = db, ttl
        self._lock = threading.Lock()
        self._any: tuple[bool, float] | None = None
        self._callers: OrderedDict[str, tuple[Caller | None, float]] = OrderedDict()

    def forget(self) -> None:
        with self._lock:
            self._any = None
            self._callers.clear()

    def cached_any(self) -> bool | None:
        with self._lock:
            if self._any is not None and time.monotonic() - self._any[1] < self.ttl:
                return self._any[0]
        return None

    def any_tokens(self) -> bool:
        cached = self.cached_any()
        if cached is not None:
            return cached
        with self.db.transaction() as s:
            found = token_store.any_tokens(s)
        with self._lock:
            self._any = (found, time.monotonic())
        return found

    def cached_caller(self, digest: str) -> tuple[bool, Caller | None]:
        with self._lock:
            hit = self._callers.get(digest)
            if hit is not None and time.monotonic() - hit[1] < self.ttl:
                return True, hit[0]
        return False, None

    def caller(self, digest: str) -> Caller | None:
        known, caller = self.cached_caller(digest)
        if known:
            return caller
        with self.db.transaction() as s:
            row = token_store.find_token_by_hash(s, digest)
            caller = None if row is None else Caller(name=row.name, role=Role(row.role), key=f"token:{row.id}")
        with self._lock:
            self._callers[digest] = (caller, time.monotonic())
            while len(self._callers) > _CACHE_ENTRIES:
                self._callers.popitem(last=False)
        return caller


def bearer_secret(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthenticated for anything else
    (no header, another scheme, non-ASCII or control characters, an absurd length)."""
    if not header:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return checked_secret(secret.strip())


def checked_secret(secret: str) -> str:
    """`secret` if it has a token's shape (printable ASCII, no spaces, bounded); else Unauthenticated.
    Shared by the bearer header and the dashboard's cookie."""
    if not secret or len(secret) > _MAX_TOKEN_CHARS or not secret.isascii() or not secret.isprintable() or " " in secret:
        raise Unauthenticated("malformed bearer token")
    return secret


def identify(settings: Settings, cache: TokenCache, secret: str, *, lookup: bool = True) -> Caller | None:
    """The caller a bearer secret stands for; Unauthenticated if none. A cache miss reads the
    database, or returns None when `lookup` is false (the caller then retries off the event loop)."""
    if settings.api_token and secrets.compare_digest(secret.encode(), settings.api_token.encode("utf-8")):
        return Caller(name=API_TOKEN_KEY, role=Role.ADMIN, key=API_TOKEN_KEY)
    digest = hash_token(secret)
    known, caller = cache.cached_caller(digest)
    if not known:
        if not lookup:
            return None
        caller = cache.caller(digest)
    if caller is None:
        raise Unauthenticated("unknown or revoked token")
    return caller



def needs_admin(method: str, route_path: str) -> bool:
    """The role policy (see the module docstring). `route_path` is the route's template, with or
    without the /api/v1 prefix (FastAPI gives an included router's route without it)."""
    path = route_path[len(API_PREFIX):] if route_path.startswith(API_PREFIX + "/") else route_path
    if path == "/tokens" or path.startswith("/tokens/"):
        return True
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if path in ("/trials/{trial_id}/try-advice", "/trials/{trial_id}/rerun"):  # enqueue a trial: an admin's
        return True                                                               # decision, not a worker's
    # /workers/{worker_id}: a worker says where it runs (service/api/workers.py); /leases/renew renews
    # a worker's leases in one call (service/api/leases.py).
    return not (path.startswith("/trials/") or path.startswith("/workers/") or path == "/leases/renew"
                or path == "/studies/{name}/ask")


def authorize(caller: Caller, method: str, route_path: str) -> None:
    if not caller.is_admin and needs_admin(method, route_path):
        raise Forbidden(f"a {caller.role} token may not {method} {route_path}: that needs an admin token")


@lru_cache(maxsize=64)
def arrived_from_network(local_host: str | None) -> bool:
    """Whether a request came in on a network address: the connection's local address is an IP
    that is not loopback. A Unix socket (a path) or an in-process client is local."""
    try:
        return not ipaddress.ip_address((local_host or "").strip("[]")).is_loopback
    except ValueError:
        return False


FIRST_TOKEN_HOW = ("create the first admin token with `tuneserve token create <name> --role admin` on the "
                   "server's host (or start the server with TUNESERVE_API_TOKEN set)")


def refuse_first_token(settings: Settings, session: Session) -> None:
    """No token configured yet: creating one over REST would turn auth on for everyone but the
    anonymous caller who made it (a lock-out anyone on loopback could do). The first token comes
    from the server's host, through the CLI or TUNESERVE_API_TOKEN. Read in the creating
    transaction (`session`), not from the cache."""
    if not settings.api_token and not token_store.any_tokens(session):
        raise Forbidden(f"this server has no API token yet and does not create the first one over REST: {FIRST_TOKEN_HOW}")


def refuse_exposed(settings: Settings, local_host: str | None) -> None:
    """No token configured: serve only requests that did not arrive on a network address."""
    if not settings.insecure and arrived_from_network(local_host):
        raise Forbidden(
            "this server has no API token and answers only on loopback: set TUNESERVE_API_TOKEN or create a "
            "token (tuneserve token create), or start it with --insecure (TUNESERVE_INSECURE=true)"
        )
