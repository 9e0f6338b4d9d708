"""Wire types for a trial's output log: the tail of what its program wrote, uploaded by the worker."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# What a worker may send in one upload; the server keeps the last LOG_KEEP_CHARS of it.
LOG_UPLOAD_MAX_CHARS = 262_144  # well inside the request body limit (TUNESERVE_MAX_BODY_BYTES)
LOG_KEEP_CHARS = 65_536


class TrialLogWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = Field(min_length=1, max_length=64, description="The lease token from the claim")
    text: str = Field(max_length=LOG_UPLOAD_MAX_CHARS,
                      description=f"The log's tail; the server keeps the last {LOG_KEEP_CHARS} characters")
    size: int | None = Field(default=None, ge=0, le=2**62,
                             description="Bytes the whole log holds on the worker (default: the text's length)")


class TrialLogRead(BaseModel):
    trial_id: int
    attempt: int = Field(description="The attempt that wrote this log (0 for the first)")
    text: str = Field(description="The tail of the log, at most 65,536 characters")
    size: int = Field(description="Bytes the whole log held on the worker")
    truncated: bool = Field(description="True when `text` is only the end of the log")
    updated_at: datetime | None
