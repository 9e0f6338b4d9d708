"""Proof of the trial diagnosis and the sanity gate on planted cases with known answers.

Diagnosis: synthetic curves (each drawn with seeded noise to show one fault) and real runs of the
built-in trainer on CPU (digits and shapes, a few seconds each) with the fault planted in the
configuration: lr 10 and lr 1e-6, a 1-block width-4 model on a 20-class task, no regularisation on
5% of the data for many epochs, healthy defaults, NaN in the data, inputs x1000 with normalisation
off, small noisy batches. Each case is scored on the problem the diagnosis names: its label, or
for a divergence its cause (a run that blew up at lr 10 and one that merely never learnt at lr 10
are both "lr_too_high"). Prints every case, a confusion table and the share named correctly
(target: at least 90%).

Sanity gate: planted pipelines (healthy digits and shapes; constant inputs; lr 0; frozen weights;
a loss on detached outputs; inputs x1000 unnormalised; NaN in the data), each with the state and
the check that must decide it.

    nice -n 10 python benchmarks/diagnosis.py            # everything (a few minutes on one core)
    python benchmarks/diagnosis.py --only synthetic      # curves only, instant
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuneserve_service.diagnosis import Diagnosis, diagnose_trial  # noqa: E402
from tuneserve_service.diagnosis.sanity import figures_from_reports, sanity_verdict  # noqa: E402

FAULTS = ("healthy", "lr_too_high", "lr_too_low", "plateau", "overfitting", "underfitting", "noisy",
          "bad_data", "bad_scale")
LN = math.log


def named(d: Diagnosis | None) -> str:
    """The problem a diagnosis names: a divergence by its cause, anything else by its label."""
    if d is None:
        return "none"
    if d.label == "diverged":
        return str(d.cause) if d.cause else "diverged"
    return str(d.label)


@dataclass
class Case:
    name: str
    truth: str
    kind: str                                    # synthetic | real
    reports: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    state: str = "completed"
    fail_reason: str | None = None
    final_metrics: dict[str, Any] | None = None
    params: dict[str, Any] | None = None         # real cases: trained when run

    def diagnose(self) -> Diagnosis | None:
        return diagnose_trial(self.reports, state=self.state, fail_kind="diverged" if self.state == "diverged" else None,
                              fail_reason=self.fail_reason, final_metrics=self.final_metrics)


# ---- synthetic curves --------------------------------------------------------------------------

def _rng(index: int, seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _reports(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [(i + 1, {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in row.items()})
            for i, row in enumerate(rows)]


def _decay(n: int, start: float, end: float, rate: float, rng, noise: float = 0.01) -> list[float]:
    return [end + (start - end) * math.exp(-rate * (k + 1)) * (1 + noise * rng.standard_normal()) for k in range(n)]


def synthetic_cases(seed: int = 0) -> list[Case]:
    cases: list[Case] = []

    def add(name: str, truth: str, rows=None, **kw) -> None:
        cases.append(Case(name, truth, "synthetic", _reports(rows or []), **kw))

    # healthy
    r = _rng(1, seed)
    tr, va = _decay(15, LN(10), 0.02, 0.5, r), _decay(15, LN(10), 0.05, 0.45, r)
    add("healthy, 10 classes, plateau schedule", "healthy",
        [{"train_loss": t, "val_loss": v, "train_acc": 1 - t / 3, "lr": 0.05 * 0.3 ** (k // 6),
          "update_ratio": 2e-3, **({"initial_loss": 2.31, "num_classes": 10} if k == 0 else {})}
         for k, (t, v) in enumerate(zip(tr, va))])
    r = _rng(2, seed)
    tr, va = _decay(30, LN(100), 1.0, 0.2, r), _decay(30, LN(100), 1.25, 0.2, r)
    add("healthy, 100 classes, cosine lr", "healthy",
        [{"train_loss": t, "val_loss": v, "lr": 0.1 * 0.5 * (1 + math.cos(math.pi * k / 30)),
          **({"initial_loss": 4.62, "num_classes": 100} if k == 0 else {})} for k, (t, v) in enumerate(zip(tr, va))])
    r = _rng(3, seed)
    add("healthy, val_loss only, still improving", "healthy",
        [{"val_loss": v} for v in _decay(8, 1.0, 0.05, 0.25, r)])
    add("healthy, pruned after 2 epochs", "healthy",
        [{"train_loss": 2.0, "val_loss": 1.9, "num_classes": 10, "initial_loss": 2.3},
         {"train_loss": 1.4, "val_loss": 1.45}], state="pruned")
    r = _rng(4, seed)
    tr, va = _decay(12, 5.0, 0.15, 0.6, r), _decay(12, 5.0, 0.2, 0.55, r)
    add("healthy regression, step schedule", "healthy",
        [{"train_loss": t, "val_loss": v, "lr": 1e-3 * 0.1 ** (k // 5)} for k, (t, v) in enumerate(zip(tr, va))])

    # lr too high, not diverged
    r = _rng(5, seed)
    add("lr too high: jumps then hovers at chance", "lr_too_high",
        [{"train_loss": 15.0 if k == 0 else 2.4 + 0.3 * abs(r.standard_normal()), "val_loss": 2.5 + 0.4 * abs(r.standard_normal()),
          "update_ratio": 0.08, "lr": 5.0, **({"initial_loss": 2.3, "num_classes": 10} if k == 0 else {})} for k in range(8)])
    add("lr too high: val_loss only, rose early", "lr_too_high",
        [{"val_loss": v} for v in (1.0, 3.1, 2.4, 2.8, 2.6, 2.7)])
    r = _rng(6, seed)
    down = _decay(5, 2.3, 0.4, 0.8, r)
    add("lr too high: training loss climbs back", "lr_too_high",
        [{"train_loss": t, "val_loss": t * 1.1, "lr": 0.5} for t in down + [0.6, 0.8, 1.0, 1.3, 1.5]])

    # diverged because of the lr
    r = _rng(7, seed)
    rows = [{"train_loss": 2.0 - 0.2 * k + (0.5 * k if k > 2 else 0), "grad_norm": 1.5 * 2 ** k, "lr": 0.8,
             **({"initial_loss": 2.3, "num_classes": 10} if k == 0 else {})} for k in range(5)]
    rows.append({"train_loss": "NaN", "grad_norm": "Infinity", "lr": 0.8})
    add("diverged: loss and gradient norm grow, then NaN", "lr_too_high", rows, state="diverged",
        fail_reason="non-finite train_loss (nan) at step 6")
    add("diverged: exploded past 100 ln(C)", "lr_too_high",
        [{"train_loss": v, "val_loss": v, "lr": 2.0, **({"initial_loss": 2.31, "num_classes": 10} if i == 0 else {})}
         for i, v in enumerate((2.2, 4.0, 40.0, 900.0))], state="diverged",
        fail_reason="train_loss=900 at epoch 4 (lr=2, grad_norm=310, num_classes=10)")
    add("diverged: reason only, sound first loss", "lr_too_high", state="diverged",
        fail_reason="train_loss=nan at epoch 1 step 50 (lr=3, num_classes=10, initial_loss=2.31)")

    # bad data
    add("bad data: NaN before the first update (trainer reason)", "bad_data", state="diverged",
        fail_reason="initial_loss=nan before the first update (NaN or inf in the inputs?); num_classes=10 lr=0.05")
    add("bad data: user objective reports NaN at step 1", "bad_data",
        [{"initial_loss": "NaN", "train_loss": "NaN", "num_classes": 5}], state="diverged",
        fail_reason="non-finite initial_loss (nan) at step 1")

    # bad scale
    add("bad scale: x1000 inputs (trainer reason)", "bad_scale", state="diverged",
        fail_reason="train_loss=8399 at epoch 1 (lr=0.05, grad_norm=5.11e+04, num_classes=10, initial_loss=4046)")
    add("bad scale: first loss 43x ln(4), then NaN", "bad_scale",
        [{"initial_loss": 60.0, "num_classes": 4, "train_loss": 1e4, "lr": 0.01}, {"train_loss": "NaN"}],
        state="diverged", fail_reason="non-finite train_loss (nan) at step 2")

    # lr too low
    r = _rng(8, seed)
    add("lr too low: flat, tiny update ratio", "lr_too_low",
        [{"train_loss": 2.31 - 0.004 * k + 0.002 * r.standard_normal(), "val_loss": 2.30 - 0.003 * k,
          "update_ratio": 4e-7, "lr": 1e-6, **({"initial_loss": 2.31, "num_classes": 10} if k == 0 else {})}
         for k in range(10)])
    add("lr too low: val_loss only", "lr_too_low", [{"val_loss": v} for v in (1.0, 0.995, 0.99, 0.987, 0.984, 0.98)])
    add("lr too low: 100 classes", "lr_too_low",
        [{"train_loss": 4.61 - 0.01 * k, "val_loss": 4.6 - 0.01 * k, "update_ratio": 3e-6, "lr": 1e-5,
          **({"num_classes": 100} if k == 0 else {})} for k in range(6)])

    # plateau
    r = _rng(9, seed)
    fall = _decay(5, 2.3, 0.7, 1.0, r)
    add("plateau: fell, then flat at a constant lr", "plateau",
        [{"train_loss": t, "val_loss": t + 0.05, "lr": 0.1, **({"initial_loss": 2.3, "num_classes": 10} if k == 0 else {})}
         for k, t in enumerate(fall + [0.70 + 0.003 * r.standard_normal() for _ in range(6)])])
    add("plateau: val_loss only", "plateau", [{"val_loss": v} for v in (1.0, 0.6, 0.45, 0.41, 0.405, 0.404, 0.404, 0.403)])
    r = _rng(10, seed)
    fall = _decay(6, 4.6, 1.6, 0.7, r)
    add("plateau: 100 classes", "plateau",
        [{"train_loss": t, "val_loss": t * 1.1, "lr": 0.01, **({"num_classes": 100} if k == 0 else {})}
         for k, t in enumerate(fall + [1.6] * 5)])

    # overfitting
    r = _rng(11, seed)
    tr = _decay(20, 2.3, 0.01, 0.35, r)
    va = [0.35 + 1.95 * math.exp(-0.7 * (k + 1)) + (0.04 * (k - 5) if k > 5 else 0) for k in range(20)]
    add("overfitting: validation U-turn after epoch 6", "overfitting",
        [{"train_loss": t, "val_loss": v, **({"initial_loss": 2.3, "num_classes": 10} if k == 0 else {})}
         for k, (t, v) in enumerate(zip(tr, va))])
    tr = _decay(15, 2.3, 0.01, 0.5, _rng(12, seed))
    add("overfitting: train low, val high", "overfitting",
        [{"train_loss": t, "val_loss": max(0.6, t), "num_classes": 10} for t in tr])
    add("overfitting: regression, no classes", "overfitting",
        [{"train_loss": t, "val_loss": v} for t, v in zip((1.0, 0.6, 0.4, 0.25, 0.15, 0.1, 0.07, 0.05),
                                                          (1.0, 0.7, 0.55, 0.5, 0.55, 0.65, 0.75, 0.8))])

    # underfitting
    r = _rng(13, seed)
    fall = _decay(10, 2.3, 1.6, 0.6, r)
    add("underfitting: both high, 10 classes", "underfitting",
        [{"train_loss": t, "val_loss": t - 0.05, "lr": 0.05 * 0.3 ** (k // 4), **({"num_classes": 10} if k == 0 else {})}
         for k, t in enumerate(fall)])
    add("underfitting: 20 classes with accuracy", "underfitting",
        [{"train_loss": t, "val_loss": t, "train_acc": 0.1 + 0.02 * k, "num_classes": 20}
         for k, t in enumerate((2.9, 2.6, 2.4, 2.3, 2.25, 2.24, 2.23, 2.23))])
    add("underfitting: unknown classes, low accuracy", "underfitting",
        [{"train_loss": t, "val_loss": t + 0.01, "train_acc": a}
         for t, a in zip((1.0, 0.85, 0.78, 0.76, 0.755, 0.752, 0.751), (0.3, 0.38, 0.42, 0.44, 0.45, 0.45, 0.45))])

    # noisy
    r = _rng(14, seed)
    trend = _decay(12, 2.0, 0.3, 0.4, r, noise=0)
    add("noisy: validation zig-zags", "noisy",
        [{"train_loss": t * 0.9, "val_loss": t * (1.45 if k % 3 == 1 else 1.0), "num_classes": 10}
         for k, t in enumerate(trend)])
    add("noisy: val_loss only", "noisy", [{"val_loss": v} for v in (1.0, 0.6, 0.9, 0.45, 0.8, 0.4, 0.75, 0.42)])
    r = _rng(15, seed)
    trend = _decay(14, 2.3, 0.2, 0.5, r, noise=0)
    add("noisy: late spikes, 10 classes", "noisy",
        [{"train_loss": t * 0.9, "val_loss": t * (2.2 if k in (6, 9, 12) else 1.0), "num_classes": 10, "lr": 0.2}
         for k, t in enumerate(trend)])
    return cases


# ---- real runs of the built-in trainer ---------------------------------------------------------

SHAPES = "shapes:n=800,size=12"


def real_cases(small: bool = False) -> list[Case]:
    """Planted configurations; `small` cuts epochs and data for the test suite."""
    e = (lambda full, short: short if small else full)  # noqa: E731
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("digits, defaults", "healthy", {"epochs": e(10, 6), **({"width": 16} if small else {})}),
        ("shapes, adam 3e-3", "healthy", {"dataset": SHAPES, "width": 16, "optimizer": "adam", "lr": 3e-3,
                                          "epochs": e(10, 6)}),
        ("digits, lr 10", "lr_too_high", {"lr": 10, "epochs": e(6, 3)}),
        ("shapes, lr 10", "lr_too_high", {"dataset": SHAPES, "width": 16, "lr": 10, "epochs": e(5, 3)}),
        ("digits, adam lr 10", "lr_too_high", {"optimizer": "adam", "lr": 10, "epochs": 4}),
        ("digits, lr 1e-6", "lr_too_low", {"lr": 1e-6, "epochs": e(6, 4)}),
        ("shapes, lr 1e-6", "lr_too_low", {"dataset": SHAPES, "width": 16, "lr": 1e-6, "epochs": e(5, 3)}),
        ("20 classes, 1 block of width 4", "underfitting", {"dataset": "shapes:n=1000,classes=20", "width": 4,
                                                            "depth": 1, "epochs": e(12, 10)}),
        ("20 classes, width 4, adam", "underfitting", {"dataset": "shapes:n=1000,classes=20", "width": 4, "depth": 1,
                                                       "optimizer": "adam", "lr": 0.01, "epochs": e(12, 10)}),
        ("digits 5%, no regularisation, 40 epochs", "overfitting", {"data_fraction": 0.05, "dropout": 0,
                                                                    "weight_decay": 0, "epochs": 40}),
        ("noisy shapes 10%, no regularisation", "overfitting", {"dataset": e("shapes:noise=0.6", "shapes:noise=0.6,n=1000"),
                                                                "data_fraction": e(0.1, 0.2), "dropout": 0,
                                                                "weight_decay": 0, "optimizer": "adam", "lr": 3e-3,
                                                                "lr_schedule": "constant", "epochs": 25}),
        ("digits with NaN pixels", "bad_data", {"dataset": "digits:nan=0.01"}),
        ("shapes with NaN pixels", "bad_data", {"dataset": SHAPES + ",nan=0.01"}),
        ("digits x1000, normalisation off", "bad_scale", {"dataset": "digits:scale=1000", "normalize": False}),
        ("shapes x1000, normalisation off", "bad_scale", {"dataset": SHAPES + ",scale=1000", "normalize": False,
                                                          "width": 16, "epochs": 3}),
        # Noise is itself random: this configuration zig-zags on 3 of data/trial seeds 0-3 (seed 0's
        # run stays smooth enough to be called healthy); seed 1 is one of the three.
        ("digits, lr 0.5 clipped at 1, constant", "noisy", {"batch_size": 32, "lr": 0.5, "grad_clip": 1.0,
                                                            "lr_schedule": "constant", "data_fraction": 0.3,
                                                            "epochs": 12, "width": 16, "seed": 1, "data_seed": 1}),
    ]
    return [Case(name, truth, "real", params=params) for name, truth, params in specs]


def train(case: Case) -> Case:
    """Run a real case's configuration and fill in what the server would have stored."""
    import torch

    from tuneserve_workers.training.objective import Diverged, LocalContext
    from tuneserve_workers.training.run import train_cnn

    torch.set_num_threads(1)
    ctx = LocalContext()
    try:
        train_cnn(case.params, ctx)
    except Diverged as exc:
        case.state, case.fail_reason, case.final_metrics = "diverged", exc.reason, exc.metrics
    case.reports = list(ctx.history)
    return case


# ---- the sanity gate on planted pipelines ------------------------------------------------------

PIPELINES = "benchmarks/diagnosis_pipelines.py"


@dataclass
class SanityCase:
    name: str
    expected: str            # passed | failed
    decided_by: str          # the check that must fail (or "fit" for a pass)
    objective: str           # builtin:cnn or a file:function
    params: dict[str, Any] = field(default_factory=dict)


def sanity_cases() -> list[SanityCase]:
    big = {"width": 32, "depth": 3}  # the largest model of a typical space: the gate trains the biggest
    return [
        SanityCase("digits, built-in", "passed", "fit", "builtin:cnn", big),
        SanityCase("shapes, built-in", "passed", "fit", "builtin:cnn", {**big, "dataset": "shapes"}),
        SanityCase("digits, user script", "passed", "fit", f"{PIPELINES}:healthy"),
        SanityCase("all-constant inputs", "failed", "inputs_vary", "builtin:cnn", {**big, "dataset": "digits:scale=0"}),
        SanityCase("lr 0 (user script)", "failed", "weights_move", f"{PIPELINES}:lr_zero"),
        SanityCase("frozen weights (user script)", "failed", "weights_move", f"{PIPELINES}:frozen_weights"),
        SanityCase("loss on detached outputs (user script)", "failed", "loss_follows", f"{PIPELINES}:detached_loss"),
        SanityCase("inputs x1000, normalisation off", "failed", "initial_loss", "builtin:cnn",
                   {**big, "dataset": "digits:scale=1000", "normalize": False}),
        SanityCase("NaN in the data", "failed", "inputs_finite", "builtin:cnn", {**big, "dataset": "digits:nan=0.01"}),
    ]


def run_sanity_case(case: SanityCase, samples: int = 64, max_epochs: int = 100):
    import torch

    from tuneserve_workers.training.objective import LocalContext, SanityRequest, load_objective
    from tuneserve_workers.training.sanity import run_sanity_objective

    torch.set_num_threads(1)
    ctx = LocalContext(sanity=SanityRequest(samples, max_epochs))
    outcome = run_sanity_objective(load_objective(case.objective), case.params, ctx)
    if not outcome.supported:
        raise RuntimeError(outcome.message)
    return sanity_verdict(figures_from_reports(ctx.history, outcome.figures), samples, max_epochs)


# ---- report ------------------------------------------------------------------------------------

def confusion(results: list[tuple[Case, str]]) -> str:
    names = list(FAULTS) + sorted({got for _, got in results} - set(FAULTS))
    short = {n: n.replace("lr_too_", "lr_").replace("fitting", "fit")[:9] for n in names}
    width = max(len(n) for n in names)
    lines = [" " * (width + 2) + " ".join(f"{short[n]:>9}" for n in names)]
    for truth in FAULTS:
        row = [sum(1 for c, got in results if c.truth == truth and got == n) for n in names]
        lines.append(f"{truth:<{width}}  " + " ".join(f"{v or '.':>9}" for v in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("synthetic", "real", "sanity"), action="append")
    ap.add_argument("--json", type=Path, help="write every case's result here")
    args = ap.parse_args(argv)
    parts = set(args.only or ("synthetic", "real", "sanity"))
    results: list[tuple[Case, str]] = []
    dump: dict[str, Any] = {"diagnosis": [], "sanity": []}
    t0 = time.perf_counter()
    cases = (synthetic_cases() if "synthetic" in parts else []) + (real_cases() if "real" in parts else [])
    if cases:
        print(f"{'case':<48} {'kind':<9} {'truth':<12} {'named':<12} {'s':>5}  advice")
    for case in cases:
        start = time.perf_counter()
        if case.kind == "real":
            train(case)
        d = case.diagnose()
        got = named(d)
        results.append((case, got))
        mark = "ok" if got == case.truth else "MISS"
        print(f"{case.name:<48} {case.kind:<9} {case.truth:<12} {got:<12} {time.perf_counter() - start:5.1f}  "
              f"{mark:<4} {(d.advice if d else '')[:110]}")
        dump["diagnosis"].append({"case": case.name, "kind": case.kind, "truth": case.truth, "named": got,
                                  "diagnosis": d.to_json() if d else None})
    if results:
        right = sum(got == c.truth for c, got in results)
        print(f"\nconfusion (rows: planted, columns: named)\n{confusion(results)}")
        for kind in ("synthetic", "real"):
            part = [(c, g) for c, g in results if c.kind == kind]
            if part:
                print(f"{kind}: {sum(g == c.truth for c, g in part)}/{len(part)} named correctly")
        print(f"all: {right}/{len(results)} = {right / len(results):.1%} named correctly (target >= 90%)")
    if "sanity" in parts:
        print(f"\n{'sanity pipeline':<42} {'expected':<8} {'state':<8} {'decided by':<13} {'s':>5}  verdict")
        for case in sanity_cases():
            start = time.perf_counter()
            result = run_sanity_case(case)
            failed = [c["name"] for c in result.checks if not c["ok"]]
            # "fit" fails with every broken pipeline; the check that says why is the one to show
            decided = "fit" if result.passed else next((n for n in failed if n != "fit"), "fit")
            ok = result.state == case.expected and (result.passed or case.decided_by in failed)
            print(f"{case.name:<42} {case.expected:<8} {str(result.state):<8} {decided:<13} "
                  f"{time.perf_counter() - start:5.1f}  {'ok' if ok else 'MISS':<4} {result.verdict[:150]}")
            dump["sanity"].append({"case": case.name, "expected": case.expected, "result": result.to_json(), "ok": ok})
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
