"""Token routes (admin only, by the policy in tuneserve_service.auth.guard): create, list, revoke."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from tuneserve_service.api.deps import get_db
from tuneserve_service.auth import tokens as token_domain
from tuneserve_service.auth.guard import refuse_first_token
from tuneserve_service.db.engine import Database
from tuneserve.schemas.tokens import TokenCreate, TokenCreated, TokenRead

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, request: Request, db: Database = Depends(get_db)) -> TokenCreated:
    with db.transaction() as s:
        refuse_first_token(request.app.state.settings, s)
        secret = token_domain.create_token(s, body.name, body.role)
        read = token_domain.read_token(s, body.name)
    request.app.state.tokens.forget()  # a token revoked or renamed elsewhere: read afresh
    return TokenCreated(**read.model_dump(), token=secret)


@router.get("", response_model=list[TokenRead])
def list_tokens(db: Database = Depends(get_db)) -> list[TokenRead]:
    with db.transaction() as s:
        return token_domain.list_tokens(s)


@router.delete("/{name}", status_code=204)
def revoke_token(name: str, request: Request, db: Database = Depends(get_db)) -> Response:
    with db.transaction() as s:
        token_domain.revoke_token(s, name)
    request.app.state.tokens.forget()  # refused by this process from now on
    return Response(status_code=204)
