"""A trial's worker in words, for `tuneserve trial show`: host, Slurm job or pod, GPU (what the
worker registered at start: PUT /api/v1/workers/{id}, service/api/workers.py)."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote


def describe(identity: dict[str, Any] | None) -> str:
    if not identity:
        return ""
    parts = [f"host {identity['host']}"] if identity.get("host") else []
    if identity.get("scheduler") == "slurm" and identity.get("job_id"):
        parts.append(f"slurm job {identity['job_id']}")
    if identity.get("pod"):
        parts.append(f"pod {identity['pod']}" + (f" on node {identity['node']}" if identity.get("node") else ""))
    parts.append(f"gpu {identity['gpu']}" if identity.get("gpu") else f"device {identity.get('device') or 'cpu'}")
    return ", ".join(parts)


def worker_line(api: Any, worker_id: str | None) -> str:
    """`ran on: host ..., slurm job ..., gpu ...`, or "" when the worker is unknown (an older
    worker, a server without the route, or forgotten after a day idle)."""
    if not worker_id:
        return ""
    try:
        found = api.get(f"/workers/{quote(worker_id, safe='')}", ok404=True)
    except Exception:  # noqa: BLE001 - an older server answers 404/405; the line is optional
        return ""
    text = describe((found or {}).get("identity")) if isinstance(found, dict) else ""
    return f"ran on: {text}" if text else ""
