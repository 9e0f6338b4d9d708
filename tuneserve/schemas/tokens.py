"""Wire types for API tokens (admin routes /api/v1/tokens) and the Role names they carry."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.schemas.enums import Role

__all__ = ["TOKEN_NAME_PATTERN", "Role", "TokenCreate", "TokenCreated", "TokenRead"]

TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TOKEN_NAME_PATTERN, description="Unique; letters, digits, '_', '-', '.'")
    role: Role = Role.WORKER


class TokenRead(BaseModel):
    name: str
    role: Role
    created_at: datetime


class TokenCreated(TokenRead):
    token: str = Field(description="The secret, shown this once: only its SHA-256 is stored")
