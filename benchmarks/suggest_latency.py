"""How long one suggestion takes as a study grows: tpe, tpe_hyperopt, gp and botorch over REST and in-process, next to
Optuna's TPESampler ask() on an Optuna RDB storage (SQLite), at N = 100, 1000 and 5000 completed
trials of a CNN-like search space (8 parameters: log, int, q, categorical, nested).

REST: a real server (uvicorn, temp SQLite file) in a subprocess; the N trials are loaded with
enqueue + claim + complete (complete carries claim_next), then POST /studies/{name}/ask count=1 is
timed (each asked trial is completed afterwards, untimed, so nothing stays pending; for botorch,
and tpe from 100 trials on, the asks after the first are served from the queue it draws ahead after each answer, core/draw_ahead.py,
so REST shows what a worker waits and in-process what a fit costs; --think S waits S seconds
before each timed ask, as a worker trains between claims, so the draw-ahead has finished, and leaves
the study's first ask, which finds nothing drawn ahead yet, out of the timing). In-process:
the same optimizer's suggest() on the same history, so the REST overhead is the difference.

    python benchmarks/suggest_latency.py            # N = 100, 1000, 5000 (a few minutes)
    python benchmarks/suggest_latency.py --quick    # N = 100, 1000, fewer repeats
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

import httpx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tuneserve_service.optimizers.base import Observation  # noqa: E402
from tuneserve_service.space import flatten_params, parse_parameters, unflatten_params  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _server import start_server  # noqa: E402

PARAMETERS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "weight_decay": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-2},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.6},
    "conv_layers": {"distribution": "int_uniform", "min": 1, "max": 4},
    "width": {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 16},
    "batch_size": {"values": [32, 64, 128, 256]},
    "optimizer": {"parameters": {
        "name": {"values": ["sgd", "adam", "adamw"]},
        "momentum": {"distribution": "uniform", "min": 0.5, "max": 0.99},
    }},
}
SPACE = parse_parameters(PARAMETERS)


def objective(p: dict) -> float:
    """A synthetic validation loss with an optimum inside the space."""
    return (abs(math.log10(p["lr"]) + 3) + 0.3 * abs(p["dropout"] - 0.2) + 0.1 * abs(p["conv_layers"] - 3)
            + 0.05 * abs(math.log2(p["width"]) - 6) + 0.1 * (p["optimizer.name"] != "adamw")
            + 0.02 * abs(math.log10(p["weight_decay"]) + 4))


def history(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


def rest_times(client: httpx.Client, method: str, points: list[dict], repeats: int, think: float = 0.0) -> list[float]:
    name = f"lat-{method}-{len(points)}-{time.monotonic_ns()}"
    r = client.post("/studies", json={"name": name, "metric": {"name": "val_loss", "goal": "minimize"},
                                      "method": method, "parameters": PARAMETERS, "seed": 1})
    r.raise_for_status()
    for p in points:
        client.post(f"/studies/{name}/enqueue", json={"params": unflatten_params(p)}).raise_for_status()
    claim = {"worker_id": "loader", "study": name}
    lease = client.post("/trials/claim", json=claim).json()
    # Exactly N rounds: a claim on an empty queue asks the study's optimizer for a new trial.
    for i in range(len(points)):
        value = objective(flatten_params(lease["params"]))
        r = client.post(f"/trials/{lease['trial_id']}/complete",
                        json={"lease_token": lease["lease_token"], "value": value,
                              "claim_next": claim if i + 1 < len(points) else None})
        r.raise_for_status()
        lease = r.json()["next"]
    out = []
    for i in range(repeats + (1 if think else 0)):
        time.sleep(think)   # a worker's training time: the server draws ahead meanwhile (core/draw_ahead.py)
        t0 = time.perf_counter()
        r = client.post(f"/studies/{name}/ask", json={"count": 1, "worker_id": "bench"})
        if i or not think:   # with --think, the first ask (nothing drawn ahead yet) is not timed
            out.append(time.perf_counter() - t0)
        r.raise_for_status()
        lease = r.json()[0]
        client.post(f"/trials/{lease['trial_id']}/complete",
                    json={"lease_token": lease["lease_token"],
                          "value": objective(flatten_params(lease["params"]))}).raise_for_status()
    return out


def inprocess_times(method: str, points: list[dict], repeats: int) -> list[float]:
    from tuneserve_service.optimizers.registry import get_optimizer

    opt = get_optimizer(method)
    obs = [Observation(p, objective(p)) for p in points]
    opt.suggest(SPACE, obs, [], 1, seed=0)   # imports and caches out of the timing
    out = []
    for i in range(repeats):
        if method == "botorch":   # a suggestion after a new result: no fit of the same data to reuse
            from tuneserve_service.optimizers import _warm_fits
            _warm_fits.clear()
        t0 = time.perf_counter()
        opt.suggest(SPACE, obs, [], 1, seed=1 + i)
        out.append(time.perf_counter() - t0)
    return out


def optuna_times(points: list[dict], repeats: int, tmp: str) -> list[float]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True), "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "dropout": FloatDistribution(0.0, 0.6), "conv_layers": IntDistribution(1, 4),
        "width": IntDistribution(16, 256, log=True), "batch_size": CategoricalDistribution([32, 64, 128, 256]),
        "optimizer.name": CategoricalDistribution(["sgd", "adam", "adamw"]),
        "optimizer.momentum": FloatDistribution(0.5, 0.99),
    }
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}/optuna-{len(points)}.db")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=1))
    study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=objective(p)) for p in points])
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        t = study.ask(dists)   # fixed distributions: every parameter is sampled inside ask()
        out.append(time.perf_counter() - t0)
        study.tell(t, objective(t.params))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100,1000,5000")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="N = 100, 1000 and 5 repeats")
    ap.add_argument("--no-rest", action="store_true", help="skip the server (in-process and Optuna only)")
    ap.add_argument("--methods", default="tpe,tpe_hyperopt,gp,botorch")
    ap.add_argument("--no-optuna", action="store_true", help="skip Optuna's TPESampler (a bench extra)")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds between a completion and the next timed ask, as a worker trains between "
                         "claims (0: back to back, so a draw-ahead may not have finished)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats = "100,1000", 5
    sizes = [int(x) for x in args.n.split(",")]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        proc = client = None
        if not args.no_rest:
            proc, base = start_server(f"sqlite:///{tmp}/tuneserve.db")
            client = httpx.Client(base_url=base + "/api/v1", timeout=120)
        try:
            for n in sizes:
                points = history(n)
                for method in args.methods.split(","):
                    inproc = inprocess_times(method, points, args.repeats)
                    rest = rest_times(client, method, points, args.repeats, args.think) if client else None
                    rows.append((n, method, rest, inproc))
                if not args.no_optuna:
                    rows.append((n, "optuna TPESampler (RDB sqlite)", optuna_times(points, args.repeats, tmp), None))
        finally:
            if proc is not None:
                client.close()
                proc.terminate()
                proc.wait(10)

    def ms(xs):
        return "-" if not xs else f"{1000 * statistics.median(xs):.1f}"

    def p90(xs):
        return "-" if not xs else f"{1000 * float(np.percentile(xs, 90)):.1f}"

    print(f"# time to one suggestion, median and p90 over {args.repeats} asks (ms); "
          f"REST = POST /studies/{{name}}/ask count=1 on a local server with SQLite, "
          f"{args.think:g} s after the previous asked trial completed")
    print("| N completed | method | REST median | REST p90 | optimizer only median | REST overhead |")
    print("|---|---|---|---|---|---|")
    for n, method, rest, inproc in rows:
        over = "-" if not (rest and inproc) else f"{1000 * (statistics.median(rest) - statistics.median(inproc)):.1f}"
        print(f"| {n} | {method} | {ms(rest)} | {p90(rest)} | {ms(inproc)} | {over} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
