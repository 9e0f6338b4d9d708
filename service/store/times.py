"""Stored times as aware datetimes."""
from __future__ import annotations

from datetime import datetime, timezone


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt
