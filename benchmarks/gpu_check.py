"""One GPU call that checks the worker's speed: the built-in trainer's images/s beside the plain
reference loop (copied from shared/gpu/cnn_throughput.py) on the same model shape, and the aggregate
images/s of K = 1, 4, 8 trainer slots on one GPU, with and without CUDA MPS.

    python benchmarks/gpu_check.py             # on a GPU machine, about 3 minutes
    python benchmarks/gpu_check.py --cpu-smoke # tiny sizes on CPU, for tests and CI

Targets on an H100/H200: trainer >= 0.9x the reference at batch 512 bf16 (vgg_small 32x32x3, both
in channels_last); 8 slots >= 4x one slot for the small CNN (28x28x1, batch 128). Needs torch only
(no server): slots are K processes running the trainer, each as one worker slot would, started
together behind a barrier; MPS is started with the worker's own `tuneserve_workers.slots.start_mps`.
Writes gpu_check.json and gpu_check.md to $OUT (or --out) when set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tuneserve_workers.training.data import Dataset  # noqa: E402
from tuneserve_workers.training.objective import LocalContext  # noqa: E402
from tuneserve_workers.training.run import train_cnn  # noqa: E402


# --- the reference: a plain loop, as in shared/gpu/cnn_throughput.py --------------------------------

def vgg_small(width=64, classes=10):
    c = [width, width * 2, width * 4]
    layers, cin = [], 3
    for co in c:
        layers += [nn.Conv2d(cin, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(inplace=True),
                   nn.Conv2d(co, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        cin = co
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def reference_loop(model, x, y, batch, iters, amp=None, channels_last=False):
    dev = x.device
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n = x.shape[0]

    def step():
        idx = torch.randint(0, n, (batch,), device=dev)
        xb, yb = x[idx], y[idx]
        with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(10):
        step()
    sync(dev)
    t = time.perf_counter()
    for _ in range(iters):
        loss = step()
    sync(dev)
    dt = time.perf_counter() - t
    assert torch.isfinite(loss).item()
    return batch * iters / dt


# --- the trainer -------------------------------------------------------------------------------------

def synthetic(n: int, shape: tuple[int, int, int], n_val: int, device) -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset(torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g),
                   torch.randn(n_val, *shape, generator=g), torch.randint(0, 10, (n_val,), generator=g), 10).to(device)


# The trainer's config for the reference's shape: three blocks of two 3x3 convs with batch norm,
# 64-128-256 filters, no residual, no dropout; plain SGD with momentum, constant lr.
VGG_PARAMS = {"width": 64, "depth": 3, "residual": False, "dropout": 0.0, "batch_norm": True,
              "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "lr_schedule": "constant",
              "grad_clip": 0.0}
SMALL_PARAMS = {"width": 32, "depth": 2, "residual": False, "dropout": 0.0, "batch_norm": False,
                "optimizer": "sgd", "lr": 0.01, "lr_schedule": "constant", "batch_size": 128}


def trainer_rate(params: dict, data: Dataset, device, epochs: int) -> float:
    """The trainer's own images/s (training time only), best epoch after the first (warm-up)."""
    ctx = LocalContext(device)
    train_cnn({**params, "epochs": epochs}, ctx, data=data)
    return max(m["images_per_second"] for _, m in ctx.history[1:])


def _slot(rank, params, n, shape, device, epochs, barrier, queue):
    torch.set_num_threads(1)
    data = synthetic(n, shape, 256, device)

    def warm_then_wait(step, metrics):
        if step == 1:
            barrier.wait(timeout=300)  # every slot warmed up before the timed epochs start

    ctx = LocalContext(device, on_report=warm_then_wait)
    train_cnn({**params, "epochs": epochs}, ctx, data=data)
    queue.put(sum(m["images_per_second"] for _, m in ctx.history[1:]) / (len(ctx.history) - 1))


def slots_rate(k: int, params: dict, n: int, shape, device: str, epochs: int) -> float:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_slot, args=(i, params, n, shape, device, epochs, barrier, queue)) for i in range(k)]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


# --- the check ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU: checks the script runs")
    ap.add_argument("--slots", default=None, help="comma-separated K values (default 1,4,8; smoke 1,2)")
    ap.add_argument("--no-mps", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    a = ap.parse_args(argv)

    smoke = a.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --cpu-smoke for the CPU check")
    device = torch.device("cpu" if smoke else "cuda")
    name = (platform.processor() or "cpu") if smoke else torch.cuda.get_device_name(0)
    ks = [int(k) for k in (a.slots or ("1,2" if smoke else "1,4,8")).split(",")]
    print(f"device {name}, torch {torch.__version__}", flush=True)
    t_start = time.perf_counter()
    results: dict = {"device": name, "torch": torch.__version__, "smoke": smoke}

    # 1. trainer vs reference, same model shape, batch 512 bf16 + channels_last (CPU: fp32, tiny)
    if smoke:
        width, n, size, batch, iters, epochs = 4, 128, 8, 32, 3, 2
    else:
        width, n, size, batch, iters, epochs = 64, 50000, 32, 512, 100, 3
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    data = synthetic(n, (3, size, size), 1000 if not smoke else 64, device)
    amp = None if smoke else torch.bfloat16
    ref = reference_loop(vgg_small(width), data.x_train, data.y_train, batch, iters, amp=amp, channels_last=not smoke)
    trainer = trainer_rate({**VGG_PARAMS, "width": width, "batch_size": batch}, data, device, epochs)
    del data
    ratio = trainer / ref
    results["single"] = {"model": f"vgg_small {size}x{size}x3 width {width}", "batch": batch,
                         "precision": "fp32" if smoke else "bf16+channels_last",
                         "reference_img_s": round(ref), "trainer_img_s": round(trainer), "ratio": round(ratio, 3)}
    print(f"reference {ref:,.0f} img/s  trainer {trainer:,.0f} img/s  ratio {ratio:.2f}", flush=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # 2. K slots of the small CNN, each its own process, without and with MPS
    n_small, shape = (128, (1, 8, 8)) if smoke else (30000, (1, 28, 28))
    slot_epochs = 2 if smoke else 4
    rows = []
    modes = ["plain"] + ([] if smoke or a.no_mps else ["mps"])
    for mode in modes:
        mps = None
        if mode == "mps":
            from tuneserve_workers.slots import start_mps

            mps = start_mps()
            if mps is None:
                print("MPS: nvidia-cuda-mps-control unavailable or refused; skipped", flush=True)
                break
            os.environ.update(mps.env)  # spawned slots inherit the pipe directory
        try:
            for k in ks:
                r = slots_rate(k, SMALL_PARAMS, n_small, shape, device.type, slot_epochs)
                rows.append({"mode": mode, "slots": k, "img_s": round(r)})
                print(f"slots {mode:5} k={k}: {r:,.0f} img/s", flush=True)
        finally:
            if mps is not None:
                mps.stop()
                for key in mps.env:
                    os.environ.pop(key, None)
    for row in rows:
        one = next(r["img_s"] for r in rows if r["mode"] == row["mode"] and r["slots"] == 1)
        row["vs_one_slot"] = round(row["img_s"] / one, 2)
    results["slots"] = rows
    results["seconds"] = round(time.perf_counter() - t_start, 1)

    best_k = max(ks)
    best = max((r["vs_one_slot"] for r in rows if r["slots"] == best_k), default=0)
    # The targets are for an H100/H200; on CPU they would be noise, so the smoke run states none.
    results["targets"] = {} if smoke else {"trainer_vs_reference>=0.9": ratio >= 0.9, f"{best_k}_slots>=4x": best >= 4}
    md = render(results)
    print("\n" + md, flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        Path(a.out, "gpu_check.json").write_text(json.dumps(results, indent=2))
        Path(a.out, "gpu_check.md").write_text(md)
    return 0


def render(r: dict) -> str:
    s = r["single"]
    lines = [f"device: {r['device']}, torch {r['torch']}{' (CPU smoke: sizes too small to mean anything)' if r['smoke'] else ''}",
             "", "| loop | model | batch | precision | images/s |", "|---|---|---|---|---|",
             f"| reference (plain loop) | {s['model']} | {s['batch']} | {s['precision']} | {s['reference_img_s']:,} |",
             f"| tuneserve trainer | {s['model']} | {s['batch']} | {s['precision']} | {s['trainer_img_s']:,} |",
             "", f"trainer / reference: {s['ratio']:.2f}x", "",
             "| slots | MPS | images/s (total) | vs one slot |", "|---|---|---|---|"]
    lines += [f"| {x['slots']} | {'yes' if x['mode'] == 'mps' else 'no'} | {x['img_s']:,} | {x['vs_one_slot']:.2f}x |"
              for x in r["slots"]]
    if r["targets"]:
        lines += ["", "targets: " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in r["targets"].items())]
    lines += ["", f"total {r['seconds']} s"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
