"""Named API tokens: created (the secret is returned once), listed, revoked. Stored as SHA-256.

A token is 32 random bytes, so a plain SHA-256 is enough to make the stored form useless to a
reader of the database (no salt or slow hash is needed against guessing: there is nothing to
guess). These functions take a plain Session, so the CLI can bootstrap the first admin token
against the database directly, with no server running.
"""
from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy.orm import Session

from tuneserve_service.errors import InvalidInput, TokenExists, TokenNotFound
from tuneserve.schemas.tokens import TOKEN_NAME_PATTERN, Role, TokenRead
from tuneserve_service.store import tokens as token_store
from tuneserve_service.store.times import utc

__all__ = ["Role", "TokenRead", "create_token", "revoke_token", "list_tokens", "read_token", "hash_token",
           "TOKEN_PREFIX"]

# Recognisable in a leaked config or log (secret scanners can match it).
TOKEN_PREFIX = "tsv_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(session: Session, name: str, role: Role | str) -> str:
    """Create a token named `name` with `role`; returns the secret (shown once, stored hashed)."""
    if not isinstance(name, str) or not re.match(TOKEN_NAME_PATTERN, name):
        raise InvalidInput(("body", "name"), "a token name is 1-100 letters, digits, '_', '-', '.', starting "
                                             "with a letter or digit")
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(("body", "role"), f"role must be one of {', '.join(Role)}") from None
    if token_store.find_token_by_name(session, name) is not None:
        raise TokenExists(name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_store.insert_token(session, name, role.value, hash_token(secret))
    return secret


def revoke_token(session: Session, name: str) -> None:
    """Delete the token named `name` (TokenNotFound when there is none). Its leases stay bound to
    its id, which is never reused, so no later token can act on them."""
    if not token_store.delete_token(session, name):
        raise TokenNotFound(name)


def list_tokens(session: Session) -> list[TokenRead]:
    """Every token's name, role and creation time; never the secret (it is not stored)."""
    return [TokenRead(name=t.name, role=Role(t.role), created_at=utc(t.created_at))
            for t in token_store.list_tokens(session)]


def read_token(session: Session, name: str) -> TokenRead:
    row = token_store.find_token_by_name(session, name)
    if row is None:
        raise TokenNotFound(name)
    return TokenRead(name=row.name, role=Role(row.role), created_at=utc(row.created_at))

