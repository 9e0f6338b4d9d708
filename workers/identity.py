"""Where this worker runs, as the server shows it on a trial: host, the scheduler's job (Slurm) or
pod (Kubernetes, from the downward API), and the GPU. Read from the environment once, at start.

Slurm sets SLURM_JOB_ID, and for an array task SLURM_ARRAY_JOB_ID and SLURM_ARRAY_TASK_ID (the
`123_4` that squeue and scancel take); SLURM_RESTART_COUNT counts requeues. Kubernetes sets
KUBERNETES_SERVICE_HOST in every pod; the pod and node names come from the downward API as
TUNESERVE_POD_NAME / TUNESERVE_NODE_NAME (deploy/kubernetes/worker-*.yaml), else HOSTNAME (which is
the pod name unless the pod sets hostname)."""
from __future__ import annotations

import os
import socket
from typing import Mapping


def slurm_job_id(env: Mapping[str, str]) -> str | None:
    """`ARRAYJOB_TASK` for an array task, else the job id; `.N` after the N-th requeue."""
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    elif env.get("SLURM_JOB_ID"):
        job = env["SLURM_JOB_ID"]
    else:
        return None
    restarts = env.get("SLURM_RESTART_COUNT", "0")
    return job if restarts in ("", "0") else f"{job}.{restarts}"


def detect(device: str, slots: int | None = None, env: Mapping[str, str] | None = None,
           gpu_name: str | None = None) -> dict:
    """The fields of tuneserve.schemas.workers.WorkerIdentity for this process (None left out)."""
    env = os.environ if env is None else env
    found: dict = {"host": socket.gethostname(), "device": device, "pid": os.getpid()}
    if slots:
        found["slots"] = slots
    job = slurm_job_id(env)
    if job is not None:
        found["scheduler"], found["job_id"] = "slurm", job
        found["host"] = env.get("SLURMD_NODENAME") or found["host"]
    elif env.get("KUBERNETES_SERVICE_HOST"):
        found["scheduler"] = "kubernetes"
        found["pod"] = env.get("TUNESERVE_POD_NAME") or env.get("HOSTNAME") or found["host"]
        if env.get("TUNESERVE_NODE_NAME"):
            found["node"] = env["TUNESERVE_NODE_NAME"]
    gpu = gpu_name if gpu_name is not None else _gpu_name(device)
    if gpu:
        found["gpu"] = gpu
    return {k: v for k, v in found.items() if v is not None}


def _gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        index = torch.device(device).index or 0
        name = torch.cuda.get_device_name(index)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return f"{name} (cuda:{index}" + (f", CUDA_VISIBLE_DEVICES={visible})" if visible else ")")
    except Exception:  # noqa: BLE001 - an identity is best effort; a broken driver shows up elsewhere
        return None
