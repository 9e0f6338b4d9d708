"""`tuneserve worker`: parse the daemon's options (flags, else TUNESERVE_* environment variables)
and run one worker loop, or a supervisor of `--slots K` worker processes."""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="tuneserve worker",
        description="Pull trials from a tuneserve server, train them, report every epoch. "
                    "Every option also reads the TUNESERVE_* variable named in its help.",
    )
    p.add_argument("--server", default=env("TUNESERVE_SERVER", "http://127.0.0.1:8000"),
                   help="server URL (TUNESERVE_SERVER)")
    p.add_argument("--token", default=env("TUNESERVE_TOKEN"), help="API token (TUNESERVE_TOKEN)")
    p.add_argument("--study", default=env("TUNESERVE_STUDY"),
                   help="serve only this study; default: any running study (TUNESERVE_STUDY)")
    p.add_argument("--device", default=env("TUNESERVE_DEVICE", "auto"),
                   help="auto | cpu | cuda | cuda:N (TUNESERVE_DEVICE)")
    p.add_argument("--slots", type=int, default=int(env("TUNESERVE_SLOTS", "1")),
                   help="trials run at once on the device, one process each (TUNESERVE_SLOTS)")
    p.add_argument("--objective", default=env("TUNESERVE_OBJECTIVE", "builtin:cnn"),
                   help="builtin:cnn, module:function or file.py:function (TUNESERVE_OBJECTIVE)")
    p.add_argument("--worker-id", default=env("TUNESERVE_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}",
                   help="name in logs and on the server (TUNESERVE_WORKER_ID)")
    p.add_argument("--mps", choices=("auto", "off"), default=env("TUNESERVE_MPS", "auto"),
                   help="with --slots > 1 on CUDA, start an MPS daemon when nvidia-cuda-mps-control "
                        "is available (TUNESERVE_MPS)")
    p.add_argument("--idle-max", type=float, default=float(env("TUNESERVE_IDLE_MAX", "3")),
                   help="longest sleep between claims when there is no work, seconds")
    p.add_argument("--log-level", default=env("TUNESERVE_LOG_LEVEL", "INFO"))
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    return p


def resolve_devices(spec: str) -> list[str]:
    """The devices a worker (or its slots, round-robin) trains on."""
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return ["cpu"]
    if spec == "cuda":
        spec = "cuda:0"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {spec}: CUDA is not available on this machine")
        index = torch.device(spec).index or 0
        if index >= torch.cuda.device_count():
            raise SystemExit(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
    elif spec != "cpu":
        raise SystemExit(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    return [spec]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown events
    if args.slots < 1:
        raise SystemExit("--slots must be >= 1")
    devices = resolve_devices(args.device)
    if args.token:
        os.environ["TUNESERVE_TOKEN"] = args.token  # slots inherit it without it showing in `ps`
    if args.slots > 1:
        from workers.slots import run_slots

        child = ["--server", args.server, "--objective", args.objective, "--idle-max", str(args.idle_max),
                 "--log-level", args.log_level] + (["--study", args.study] if args.study else [])
        return run_slots(child, args.slots, args.worker_id, devices, use_mps=args.mps == "auto")

    from workers.loop import Worker
    from workers.training.objective import load_objective

    objective = load_objective(args.objective)  # a bad spec fails now, not on the first trial
    worker = Worker(args.server, objective, worker_id=args.worker_id, device=devices[0], study=args.study,
                    token=args.token, idle_cap=args.idle_max, parent_pid=args.parent_pid)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
