"""`tuneserve demo`: the whole system on one machine in one command. A server on embedded SQLite
(uvicorn on 127.0.0.1, a free port), two CPU worker processes, a ~20-trial study on digits that
starts with the sanity gate (can the widest model overfit 64 digits?), live progress in the
terminal, each trial's diagnosis, the study's advice and the best parameters at the end.

It imports nothing of the worker: the workers are processes (`python -m tuneserve_workers.cli`), so
it needs the worker's dependencies (torch) installed, and says so up front when they are not."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from tuneserve._defaults import DEFAULT_SERVER
from tuneserve.client import JsonClient
from tuneserve.errors import ApiError
from tuneserve.schemas.enums import ENDED_STATES
from tuneserve_service.cli._api import fail
from tuneserve_service.launch import ServerDidNotStart, free_port, wait_healthy

# Short trials that still separate good from bad settings: 4 epochs on digits, small nets.
PARAMETERS = {
    "dataset": {"value": "digits"},
    "epochs": {"value": 4},
    "optimizer": {"values": ["sgd", "nesterov", "adam"]},
    "lr": {"distribution": "log_uniform_values", "min": 3e-4, "max": 0.3},
    "weight_decay": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
    "width": {"values": [8, 16, 32]},
    "batch_size": {"values": [32, 64, 128]},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
}
ENDED = tuple(ENDED_STATES)
# The sanity gate before any trial: the widest model, no regularisation, on 64 digits.
SANITY = {"samples": 64, "max_epochs": 50}


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "TUNESERVE_API_TOKEN"}
    env.update(TUNESERVE_DATABASE_URL=f"sqlite:///{(data_dir / 'tuneserve.db').resolve()}",
               TUNESERVE_REAPER_INTERVAL="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tuneserve_service.main:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, stdout=open(data_dir / "server.log", "ab"), stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the demo alone, which then stops everything in order
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout=60, poll=0.2)
    except ServerDidNotStart as err:
        if proc.poll() is None:
            proc.terminate()
        raise SystemExit(f"{err}; see {data_dir / 'server.log'}") from err
    return proc, url


def create_study(client: JsonClient, name: str, trials: int, method: str) -> dict:
    spec = {"name": name, "metric": {"name": "val_loss", "goal": "minimize"}, "parameters": PARAMETERS,
            "max_trials": trials, "seed": 0, "lease_seconds": 30, "objective": "builtin:cnn", "sanity": SANITY,
            "description": "tuneserve demo: a small CNN on sklearn digits"}
    methods = [method] if method != "auto" else ["tpe", "random"]
    for m in methods:
        try:
            return client.create_study(spec, method=m)
        except ApiError as exc:
            # Only an unknown method falls through to the next; anything else is a real error.
            if exc.status != 422 or m == methods[-1] or "method" not in str(exc.detail):
                raise
    raise AssertionError("unreachable")


def progress(study: dict, started: float, recent: list[dict]) -> Group:
    c = study["counts"]
    head = Table.grid(padding=(0, 2))
    done = sum(c[s] for s in ENDED)
    head.add_row(f"[bold]{study['name']}[/]", f"method {study['method']}",
                 f"done {done}/{study['max_trials']}", f"running {c['running']}",
                 f"pruned {c['pruned']}", f"failed {c['failed'] + c['diverged']}",
                 f"{time.monotonic() - started:.0f}s")
    sanity = study.get("sanity")
    if sanity:
        colour = {"passed": "green", "failed": "red", "skipped": "yellow"}.get(sanity["state"], "cyan")
        head.add_row(f"[{colour}]sanity check {sanity['state']}[/]", sanity["verdict"], "", "", "", "", "")
    best = study.get("best_trial")
    if best:
        m = best["metrics"]
        head.add_row("[green]best so far[/]", f"trial {best['id']} (#{best['number']})", f"val_loss {best['value']:.4f}",
                     f"val_acc {m.get('val_acc', float('nan')):.3f}", "", "", "")
    table = Table(title="latest trials", title_justify="left")
    # Fits an 80-column terminal: the batch size is in the best trial's params at the end.
    for col in ("#", "state", "val_loss", "val_acc", "optim", "lr", "width", "diagnosis"):
        table.add_column(col, justify="right" if col != "diagnosis" else "left", no_wrap=True)
    for t in recent:
        p, m = t["params"], t.get("metrics") or {}
        d = t.get("diagnosis") or {}
        label = (d.get("label", "-") + ("?" if d.get("provisional") else "")) if d else "-"
        table.add_row(str(t["number"]), t["state"], f"{t['value']:.4f}" if t["value"] is not None else "-",
                      f"{m['val_acc']:.3f}" if "val_acc" in m else "-", str(p.get("optimizer")),
                      f"{p.get('lr', 0):.2g}", str(p.get("width")), label)
    return Group(head, table)


NEEDS = ("uvicorn", "fastapi", "sqlalchemy", "torch", "sklearn")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the SQLite file and the logs go.")] = Path("tuneserve-data"),
    trials: Annotated[int, typer.Option(min=1, help="Trials in the study.")] = 20,
    workers: Annotated[int, typer.Option(min=1, help="CPU worker processes.")] = 2,
    method: Annotated[str, typer.Option(help="auto: tpe when the server has it, else random.")] = "auto",
    port: Annotated[int, typer.Option(min=0, help="The server's port (0: a free one).")] = 0,
) -> None:
    """A server, CPU workers and a study on digits (the sanity gate first), live here and on the dashboard."""
    # The server and the workers are processes: say what they would miss before starting them.
    missing = [m for m in NEEDS if not _installed(m)]
    if missing:
        fail(f"the demo runs a server and workers, which need {', '.join(missing)}; this installation lacks "
             f"them: pip install 'tuneserve[server,worker]'")
    raise typer.Exit(run(data_dir, trials, workers, method, port))


def run(data_dir: Path, n_trials: int, n_workers: int, method: str, port: int) -> int:
    console = Console()
    data_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    started = time.monotonic()
    try:
        server, url = start_server(data_dir, port or free_port())
        procs.append(server)
        console.print(f"server: {url} (SQLite at {(data_dir / 'tuneserve.db').resolve()})")
        console.print(f"dashboard: [link={url}/dashboard]{url}/dashboard[/link] (open it to watch the study live)")
        client = JsonClient(url, "", retry_seconds=10)
        name = time.strftime("digits-demo-%Y%m%d-%H%M%S")
        study = create_study(client, name, n_trials, method)
        console.print(f"study {name}: {n_trials} trials, method {study['method']}, {n_workers} CPU workers; "
                      f"live at {url}/dashboard/studies/{name}")
        worker_env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers on two cores, no oversubscription
        workers = [subprocess.Popen(
            [sys.executable, "-m", "tuneserve_workers.cli", "--server", url, "--study", name, "--device", "cpu",
             "--worker-id", f"demo-w{i}", "--idle-max", "1"],
            env=worker_env, stdout=open(data_dir / f"worker-{i}.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
            for i in range(n_workers)]
        procs += workers
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                study = client.get_study(name)
                # The list is in number order, the sanity run (number -1) first.
                newest = max(0, study["counts"]["total"] + (1 if study.get("sanity") else 0) - 8)
                recent = client.trials(name, limit=8, offset=newest)["items"][::-1]
                live.update(progress(study, started, recent))
                if sum(study["counts"][s] for s in ENDED) >= n_trials:
                    break
                if all(w.poll() is not None for w in workers):
                    raise SystemExit(f"the workers exited; see {data_dir}/worker-*.log")
                time.sleep(0.5)
        best = study["best_trial"]
        console.print()
        if study.get("sanity"):
            console.print(f"sanity check {study['sanity']['state']}: {study['sanity']['verdict']}")
        for item in study.get("advice") or []:
            console.print(f"[yellow]advice:[/] {item['message']}")
        if best is None:
            console.print("[red]no trial completed[/]; see the worker logs")
            return 1
        console.print(f"[bold green]best: trial {best['id']} (#{best['number']})[/]: val_loss {best['value']:.4f}, "
                      f"val_acc {best['metrics'].get('val_acc', float('nan')):.3f}")
        for key, value in sorted(best["params"].items()):
            console.print(f"  {key} = {value}")
        console.print(f"\nresults: SQLite {(data_dir / 'tuneserve.db').resolve()}, study {name!r}; logs in {data_dir}/")
        console.print(f"see it again: tuneserve dashboard --data-dir {data_dir}   "
                      f"(then {DEFAULT_SERVER}/dashboard/studies/{name})")
        console.print(f"with that running: tuneserve study status {name}; "
                      f"tuneserve study export {name} --format csv -o trials.csv")
        console.print(f"took {time.monotonic() - started:.0f}s")
        return 0
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        # Workers first, so they can still release their trials to the server; then the server.
        for group in (procs[1:], procs[:1]):
            for p in group:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in group:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()

