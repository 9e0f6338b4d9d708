"""Regenerate the curves corpus: real runs of the built-in trainer on CPU, each with counterfactuals.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/curves_corpus.py run --count 400 --until 08:00
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/curves_corpus.py run --start 1000 --count 400 --until 11:20
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/curves_corpus.py run --start 1100 --count 400 --until 14:05
    python benchmarks/curves_corpus.py backfill-far  # lr / 10 for the committed parents that diverged
    python benchmarks/curves_corpus.py pack             # shards + the committed corpus -> corpus.jsonl.gz

`run` appends one line per finished parent to benchmarks/data/curves/shard-N.jsonl and skips the
indices already in any shard file, so it resumes after a stop (also as `--shard K --shards 2`
processes taking over from one), and `advice.py --shards` reads partial shards while they grow.
Every parent run `index` draws its configuration and seeds from numpy
`SeedSequence((BASE_SEED, index))`, so any record can be regenerated alone (`run --only INDEX`).
Runs are in-process calls of `train_cnn` with a LocalContext (no server), one torch thread.

The space, with its edges: digits (8x8, 10 classes) or a generated 12x12 shapes set (4 or 6 classes);
data fraction 0.1..1 (sometimes 3 classes); width 2..32 drawn, depth 1..3, batch norm and residual
on/off; dropout 0..0.9; weight decay 0 or 1e-5..1e-2; optimizer sgd / nesterov / adam / adamw; lr
log-uniform over 1e-6..10 (40%) or the optimizer's usual decade range (60%); schedule constant /
plateau / step / cosine; epochs 3..6 (30%), 7..19 (35%), 20..40 (25%), 41..60 (10%). The batch size
follows from a drawn number of optimizer steps for the whole parent run (200..600 log-uniform for
85% of runs, 30..100 for the big-batch edge), 8..1024. Then the whole record (parent, repeat and
every counterfactual, `record_cost`) is bounded to MAX_SECONDS (MAX_SECONDS_LONG for 20+ epochs) of
estimated cost: a net no wider than 8 first, then a smaller data fraction (the batch shrinks with
it, the steps stay), then width 4, then a bigger batch (fewer steps). The estimate was measured on
the busy shared 2-core CPU under load (one niced thread: ~5 ms per optimizer step at small batches,
~25 ms per epoch for the evaluation alone); with less load a record takes 0.3-0.7x of it. What the
bound leaves (the first 250 indices): widths 4..8 for most (the `wider` counterfactual doubles
them), data fractions 0.1..0.25 for most, parents of ~60..300 optimizer steps (median ~180 under 20
epochs, ~200 for longer runs, which see their small training set 20..60 times).

The ordinary parents (indices from ORDINARY_START = 1000 on, `sample_ordinary`; run them with
`run --start 1000`): the region an ML engineer runs, where the edges corpus above has few parents
(its widths 4..8 and data fractions 0.1..0.25 learn little, and on 144..360 training images the
seed moves a run that learnt by 20-40%). lr log-uniform within a decade of the optimizer's usual
value (0.05 for sgd and nesterov, the trainer's default; 1e-3 for adam and adamw), widths 8, 16, 32
(a record's estimated cost is bounded to ORDINARY_MAX_SECONDS: width 32 -> 16 first, then full
data -> half), depth 1..3, full or half data, 5..30 epochs, batch 32, 64 or 128, dropout 0..0.5,
weight decay 0, 5e-4 or 1e-5..1e-3, every optimizer and schedule, all classes. Each has two
repeats on other seeds (`repeat`, `repeat2`), so the truth can use the seed spread of that very
configuration.

Counterfactuals per parent (the ground truth of benchmarks/advice.py), all with the parent's seed
(common random numbers) except the repeats:
  repeat      the same config with another seed: the seed-to-seed spread (and `repeat2` for the
              ordinary parents)
  lr_down, lr_up, regularise, wider, longer, decay, batch_up
              the notches of service/diagnosis/variant.py that the labels propose, computed by
              `notches()` itself so the corpus and the advice cannot drift apart
  random      one notch drawn uniformly from all available notches, both directions (the baseline
              of "a random perturbation of the same size"); reuses a run above when it is one
  lr_down_far lr / 10 (variant.py's two-notch cut for a divergence far above the optimizer's usual
              rate), only for a parent that diverged or ended non-finite (records from FRESH_START
              on; `backfill-far` adds it to the committed records that diverged)
`longer` and `shorter` cost nothing extra for non-cosine schedules: on one CPU thread a run is
deterministic, so the parent is the first E epochs of the 2E-epoch run (checked by a test).

Record (one JSON line per parent): index, dataset, params (as the trainer reads them), seed, parent
(a run), runs {notch: run}, random (the notch name), seconds. A run: params_change (the repeat's holds its seed), per-epoch
lists train_loss, val_loss, train_acc, val_acc, lr, grad_norm, update_ratio; initial_loss,
num_classes; diverged (the Diverged reason or null) and final (its metrics); error.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BASE_SEED = 17  # issue 17
HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "data" / "curves"
CORPUS = OUT_DIR / "corpus.jsonl.gz"
# The CPU this corpus was built on was shared and busy, so a whole record (a parent and its
# counterfactuals) is bounded to about MAX_SECONDS of estimated cost (see `record_cost`).
MAX_SECONDS = 20.0
MAX_SECONDS_LONG = 30.0  # runs of 20+ epochs: evaluation alone costs ~25 ms an epoch
DATASETS = {  # name -> training-set size (for the step bound)
    "digits": 1437,
    "shapes:n=1000,size=12,classes=4": 800,
    "shapes:n=1500,size=12,classes=6": 1200,
}
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "update_ratio")
LABEL_NOTCHES = ("lr_down", "lr_up", "regularise", "wider", "longer", "decay", "batch_up")


def _choice(rng, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def sample(index: int) -> dict[str, Any]:
    """The parent's config and seeds, from SeedSequence((BASE_SEED, index)) alone."""
    rng = np.random.default_rng(np.random.SeedSequence((BASE_SEED, index)))
    dataset = _choice(rng, list(DATASETS), [0.5, 0.25, 0.25])
    optimizer = _choice(rng, ["sgd", "nesterov", "adam", "adamw"])
    if rng.random() < 0.4:
        lr = 10 ** rng.uniform(-6, 1)
    elif optimizer in ("sgd", "nesterov"):
        lr = 10 ** rng.uniform(-2.5, 0)
    else:
        lr = 10 ** rng.uniform(-4, -1.5)
    u = rng.random()
    dropout = 0.0 if u < 0.25 else 0.2 if u < 0.5 else float(rng.uniform(0, 0.9))
    u = rng.random()
    weight_decay = 0.0 if u < 0.3 else 5e-4 if u < 0.6 else float(10 ** rng.uniform(-5, -2))
    u = rng.random()
    epochs = (int(rng.integers(3, 7)) if u < 0.3 else int(rng.integers(7, 20)) if u < 0.65
              else int(rng.integers(20, 41)) if u < 0.9 else int(rng.integers(41, 61)))
    fraction = _choice(rng, [1.0, 0.5, 0.25, 0.1], [0.15, 0.3, 0.3, 0.25])
    # Optimizer steps cost the most here: draw the parent's total steps (120..500 for most runs, so
    # they learn; 20..80 for a fifth, the big-batch edge) and get the batch size from it.
    steps = 10 ** rng.uniform(math.log10(200), math.log10(600)) if rng.random() < 0.85 else rng.uniform(30, 100)
    steps_per_epoch = max(1, round(steps / epochs))
    images = DATASETS[dataset] * fraction
    batch = int(min(1024, max(8, 2 ** round(math.log2(max(1.0, images / steps_per_epoch))))))
    params: dict[str, Any] = {
        "dataset": dataset,
        "data_fraction": fraction,
        "classes": _choice(rng, [0, 3], [0.9, 0.1]),
        "width": _choice(rng, [2, 4, 8, 16, 32], [0.1, 0.25, 0.3, 0.25, 0.1]),
        "depth": _choice(rng, [1, 2, 3], [0.3, 0.45, 0.25]),
        "batch_norm": bool(rng.random() < 0.85),
        "residual": bool(rng.random() < 0.7),
        "dropout": round(dropout, 2),
        "weight_decay": float(f"{weight_decay:.3g}"),
        "optimizer": optimizer,
        "lr": float(f"{lr:.4g}"),
        "batch_size": batch,
        "epochs": epochs,
        "lr_schedule": _choice(rng, ["constant", "plateau", "step", "cosine"], [0.4, 0.3, 0.15, 0.15]),
        "lr_step_epochs": max(2, epochs // 3),
        "seed": int(rng.integers(2**31)),
        "bf16": False, "channels_last": False,
    }
    repeat_seed = int(rng.integers(2**31))
    random_draw = float(rng.random())
    # Bound the compute of the whole record (parent, repeat and every counterfactual, see
    # `record_cost`): smaller data first (the batch shrinks with it, the steps stay), then a net
    # no wider than 8, then fewer steps (a bigger batch), then a narrower net.
    for _ in range(40):
        if record_cost(params, random_draw) <= (MAX_SECONDS if epochs < 20 else MAX_SECONDS_LONG):
            break
        if params["width"] > 8:
            params["width"] //= 2
        elif params["data_fraction"] > 0.1 and params["batch_size"] > 8:
            params["data_fraction"] = {1.0: 0.5, 0.5: 0.25, 0.25: 0.1}[params["data_fraction"]]
            params["batch_size"] = max(8, params["batch_size"] // 2)
        elif params["width"] > 4:
            params["width"] //= 2
        elif params["batch_size"] < 1024 and params["batch_size"] < DATASETS[dataset] * params["data_fraction"]:
            params["batch_size"] *= 2
        else:
            break
    return {"params": params, "repeat_seed": repeat_seed, "random_draw": random_draw}


# Indices from ORDINARY_START on are parents in the region an ML engineer runs (the second corpus,
# added 2026-12-06): the first 300 indices keep the space's edges, these the ordinary middle.
ORDINARY_START = 1000
ORDINARY_REPEATS = 2  # extra seeds of the parent itself: `repeat`, `repeat2` (the seed spread)
ORDINARY_MAX_SECONDS = 100.0  # `record_cost` scale (about 2x what a record takes at load ~2.5)
# Indices from FRESH_START on: more ordinary parents (same generator), generated 2026-12-06
# 12:39-13:57 UTC as a holdout no rule was tuned on (`advice.py --fresh`).
FRESH_START = 1100
USUAL_LR = {"sgd": 0.05, "nesterov": 0.05, "adam": 1e-3, "adamw": 1e-3}  # the trainer's / common defaults


def sample_ordinary(index: int) -> dict[str, Any]:
    """An ordinary parent: lr within a decade of the optimizer's usual value (log-uniform), widths
    8..32, full or half data, 5..30 epochs, batch 32..128, dropout 0..0.5, ordinary weight decay,
    no class subset; from SeedSequence((BASE_SEED, index)) alone, like `sample`."""
    rng = np.random.default_rng(np.random.SeedSequence((BASE_SEED, index)))
    dataset = _choice(rng, list(DATASETS), [0.5, 0.25, 0.25])
    optimizer = _choice(rng, ["sgd", "nesterov", "adam", "adamw"])
    lr = USUAL_LR[optimizer] * 10 ** rng.uniform(-1, 1)
    u = rng.random()
    dropout = 0.0 if u < 0.3 else 0.2 if u < 0.6 else float(rng.uniform(0, 0.5))
    u = rng.random()
    weight_decay = 0.0 if u < 0.3 else 5e-4 if u < 0.7 else float(10 ** rng.uniform(-5, -3))
    epochs = int(rng.integers(5, 31))
    params: dict[str, Any] = {
        "dataset": dataset,
        "data_fraction": _choice(rng, [1.0, 0.5], [0.5, 0.5]),
        "classes": 0,
        "width": _choice(rng, [8, 16, 32], [0.35, 0.4, 0.25]),
        "depth": _choice(rng, [1, 2, 3], [0.3, 0.5, 0.2]),
        "batch_norm": bool(rng.random() < 0.85),
        "residual": bool(rng.random() < 0.7),
        "dropout": round(dropout, 2),
        "weight_decay": float(f"{weight_decay:.3g}"),
        "optimizer": optimizer,
        "lr": float(f"{lr:.4g}"),
        "batch_size": _choice(rng, [32, 64, 128], [0.3, 0.4, 0.3]),
        "epochs": epochs,
        "lr_schedule": _choice(rng, ["constant", "plateau", "step", "cosine"], [0.4, 0.3, 0.15, 0.15]),
        "lr_step_epochs": max(2, epochs // 3),
        "seed": int(rng.integers(2**31)),
        "bf16": False, "channels_last": False,
    }
    repeat_seeds = [int(s) for s in rng.integers(2**31, size=ORDINARY_REPEATS)]
    random_draw = float(rng.random())
    # Bound the record's estimated cost (its extra repeat included): a net no wider than 16, then
    # half the data. What it leaves: widths 8..32 (32 for the cheaper records), full or half data.
    for _ in range(4):
        if record_cost(params, random_draw) + (ORDINARY_REPEATS - 1) * cost(params) <= ORDINARY_MAX_SECONDS:
            break
        if params["width"] > 16:
            params["width"] //= 2
        elif params["data_fraction"] > 0.5:
            params["data_fraction"] = 0.5
        else:
            break
    return {"params": params, "repeat_seeds": repeat_seeds, "repeat_seed": repeat_seeds[0],
            "random_draw": random_draw}


def draw(index: int) -> dict[str, Any]:
    """The parent of record `index`: the edges corpus below ORDINARY_START, the ordinary one above."""
    return sample_ordinary(index) if index >= ORDINARY_START else sample(index)


def random_notch(menu: dict[str, Any], draw: float) -> str:
    names = sorted(menu)
    return names[min(len(names) - 1, int(draw * len(names)))]


def cost(params: dict[str, Any]) -> float:
    """Estimated seconds of one run (niced, one thread, on the busy shared 2-core machine this
    corpus was built on, measured 2026-12-06 06:45 UTC: ~6 ms per optimizer step at small batches,
    ~0.1 ms per image at width 16 on 8x8 digits, ~30 ms per epoch for evaluation)."""
    images = max(1, round(DATASETS[params["dataset"]] * params["data_fraction"]))
    steps = math.ceil(images / params["batch_size"]) * params["epochs"]
    size = 8 if params["dataset"] == "digits" else 12
    heavy = (params["width"] / 16) ** 2 * (size / 8) ** 2 * params["depth"] / 2
    per_image = 1e-4 * (1 + heavy)
    return steps * 0.005 + images * params["epochs"] * per_image + params["epochs"] * 0.025 * (1 + heavy)


def record_cost(params: dict[str, Any], random_draw: float) -> float:
    """Estimated seconds of a whole record: what `build_record` trains for these params."""
    from tuneserve_service.diagnosis.variant import notches

    menu = notches(params)
    total = cost({**params, "epochs": 2 * params["epochs"]}) + cost(params)  # longer (+ parent), repeat
    if params["lr_schedule"] == "cosine":
        total += cost(params)
    seen = [menu.get("longer")]
    for name in [n for n in LABEL_NOTCHES if n in menu] + [random_notch(menu, random_draw)]:
        if menu[name] in seen or name == "shorter":
            continue
        seen.append(menu[name])
        total += cost({**params, **menu[name]})
    return total


def _num(x: float) -> float | str:
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    return float(f"{x:.5g}")


def train(params: dict[str, Any], stop_at: int | None = None) -> dict[str, Any]:
    """One in-process run of the built-in trainer: its per-epoch curves, compact."""
    import torch
    from tuneserve_workers.training.objective import Diverged, LocalContext
    from tuneserve_workers.training.run import train_cnn

    torch.set_num_threads(1)
    context = LocalContext("cpu", params)
    out: dict[str, Any] = {"diverged": None, "final": None, "error": None}
    t0 = time.perf_counter()
    try:
        train_cnn(dict(params), context)
    except Diverged as exc:
        out["diverged"] = str(exc)
        out["final"] = {k: _num(float(v)) for k, v in (exc.metrics or {}).items()
                        if isinstance(v, (int, float)) and k in METRICS + ("epoch", "initial_loss")}
    except Exception as exc:  # noqa: BLE001 - a config the trainer refuses is a data point too
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.perf_counter() - t0, 3)
    history = context.history
    for name in METRICS:
        out[name] = [_num(m[name]) for _, m in history if name in m]
    first = history[0][1] if history else {}
    out["initial_loss"] = _num(first["initial_loss"]) if "initial_loss" in first else None
    out["num_classes"] = int(first["num_classes"]) if "num_classes" in first else None
    return out


def prefix(run: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The first `epochs` epochs of a run (a shorter run with the same seed, on one CPU thread)."""
    cut = copy.deepcopy(run)
    n = len(run["val_loss"])
    for name in METRICS:
        cut[name] = run[name][:epochs]
    if run["diverged"] is not None and _diverged_epoch(run) > epochs:
        cut["diverged"], cut["final"] = None, None  # it diverged only after `epochs`
    cut["seconds"] = round(run["seconds"] * min(1.0, epochs / max(1, n)), 3)
    return cut


def _diverged_epoch(run: dict[str, Any]) -> int:
    final = run.get("final") or {}
    epoch = final.get("epoch")
    return int(epoch) if isinstance(epoch, (int, float)) else len(run["val_loss"]) + 1


def _apply(params: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    return {**params, **change}  # flat params here


def build_record(index: int) -> dict[str, Any]:
    from tuneserve_service.diagnosis.variant import notches

    drawn = draw(index)
    params, epochs = drawn["params"], drawn["params"]["epochs"]
    t0 = time.perf_counter()
    menu = notches(params)
    random_name = random_notch(menu, drawn["random_draw"])
    cosine = params["lr_schedule"] == "cosine"
    runs: dict[str, Any] = {}
    if cosine:
        parent = train(params)
    else:  # the parent is the prefix of the run twice as long
        long_run = train({**params, "epochs": 2 * epochs})
        parent = prefix(long_run, epochs)
        runs["longer"] = {**long_run, "params_change": menu["longer"]}
    for i, seed in enumerate(drawn.get("repeat_seeds") or [drawn["repeat_seed"]]):
        runs["repeat" if i == 0 else f"repeat{i + 1}"] = {**train({**params, "seed": seed}), "params_change": {"seed": seed}}
    wanted = [n for n in LABEL_NOTCHES if n in menu] + ([random_name] if random_name not in LABEL_NOTCHES else [])
    for name in wanted:
        if name in runs:
            continue
        if name == "shorter" and not cosine:
            runs[name] = {**prefix(parent, menu[name]["epochs"]), "params_change": menu[name]}
            continue
        same = [n for n in runs if runs[n].get("params_change") == menu[name]]
        if same:  # e.g. `decay` falls back to lr / 3
            runs[name] = {**runs[same[0]], "params_change": menu[name]}
            continue
        runs[name] = {**train(_apply(params, menu[name])), "params_change": menu[name]}
    if _blew_up(parent):
        add_far(params, runs)
    return {"index": index, "dataset": params["dataset"], "params": params, "seed": params["seed"],
            "parent": parent, "runs": runs, "random": random_name,
            "seconds": round(time.perf_counter() - t0, 2)}


def _blew_up(run: dict[str, Any]) -> bool:
    """The run diverged or never reported a finite validation loss."""
    return run.get("diverged") is not None or not any(
        isinstance(v, (int, float)) and math.isfinite(v) for v in run["val_loss"])


def add_far(params: dict[str, Any], runs: dict[str, Any]) -> None:
    """The lr / 10 counterfactual (`lr_down_far`), on the parent's seed."""
    from tuneserve_service.diagnosis.variant import notches

    change = notches(params, far=True).get("lr_down_far")
    if change and "lr_down_far" not in runs:
        runs["lr_down_far"] = {**train(_apply(params, change)), "params_change": change}


def cmd_backfill_far(args) -> None:
    """Add `lr_down_far` to every committed parent that blew up and lacks it; each augmented record
    goes to shard-far.jsonl (the shards win over the corpus in `pack` and `advice.py --shards`)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = OUT_DIR / "shard-far.jsonl"
    done = _done(path)
    for record in load_corpus():
        if record["index"] in done or not _blew_up(record["parent"]) or "lr_down_far" in record["runs"]:
            continue
        add_far(record["params"], record["runs"])
        with path.open("a") as fh:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        print(f"far {record['index']} lr={record['params']['lr']}", flush=True)


def _done(path: Path) -> set[int]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        try:
            out.add(json.loads(line)["index"])
        except (ValueError, KeyError):
            pass
    return out


def cmd_run(args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"shard-{args.shard}.jsonl"
    done = set().union(*(_done(p) for p in OUT_DIR.glob("shard-*.jsonl")))  # whichever shard wrote it
    until = None
    if args.until:
        hh, mm = map(int, args.until.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        until = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    indices = ([args.only] if args.only is not None
               else range(args.start + args.shard, args.start + args.count, args.shards))
    for index in indices:
        if index in done:
            continue
        if until is not None and dt.datetime.now(dt.timezone.utc) >= until:
            print(f"stopping at index {index}: past {args.until} UTC", flush=True)
            break
        record = build_record(index)
        with path.open("a") as fh:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        print(f"{index} {record['dataset'][:6]} ep={record['params']['epochs']} "
              f"{record['seconds']:.1f}s", flush=True)


def cmd_pack(args) -> None:
    records: dict[int, dict] = {}
    for path in sorted(OUT_DIR.glob("shard-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[rec["index"]] = rec
    if CORPUS.exists() and not args.replace:
        for rec in load_corpus():
            records.setdefault(rec["index"], rec)
    # Sorted by index, and gzip's header without a time or name: the same records give the same bytes.
    with open(CORPUS, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for index in sorted(records):
            gz.write((json.dumps(records[index], separators=(",", ":")) + "\n").encode())
    print(f"{len(records)} records -> {CORPUS}")


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--shard", type=int, default=0)
    run.add_argument("--shards", type=int, default=1)
    run.add_argument("--count", type=int, default=400)
    run.add_argument("--start", type=int, default=0,
                     help=f"first index ({ORDINARY_START}: the ordinary parents)")
    run.add_argument("--until", help="HH:MM UTC: start no parent after it")
    run.add_argument("--only", type=int)
    sub.add_parser("backfill-far")
    pack = sub.add_parser("pack")
    pack.add_argument("--replace", action="store_true")
    args = parser.parse_args(argv)
    {"run": cmd_run, "pack": cmd_pack, "backfill-far": cmd_backfill_far}[args.cmd](args)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
