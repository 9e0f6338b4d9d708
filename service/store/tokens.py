"""Store functions for API tokens: insert, find by hash, list, delete. Only hashes are stored."""
from __future__ import annotations

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from tuneserve_service.db.models import ApiToken


def insert_token(session: Session, name: str, role: str, token_hash: str) -> ApiToken:
    token = ApiToken(name=name, role=role, token_hash=token_hash)
    session.add(token)
    session.flush()
    return token


def find_token_by_name(session: Session, name: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.name == name)).one_or_none()


def find_token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).one_or_none()


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def delete_token(session: Session, name: str) -> bool:
    return bool(session.execute(delete(ApiToken).where(ApiToken.name == name)).rowcount)


def any_tokens(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(ApiToken.id.is_not(None)))))
