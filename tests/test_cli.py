"""The `tuneserve` command line against a real server: the study lifecycle, trials, export, and the
human messages it gives instead of tracebacks."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from tuneserve._defaults import API_PREFIX
from tuneserve_service.cli import app, main
from tuneserve_service.launch import free_port

SWEEP = """\
name: cli-sweep
method: random
metric: {name: val_loss, goal: minimize}
run_cap: 3
seed: 3
parameters:
  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  width: {values: [8, 16]}
"""


@pytest.fixture
def cli():
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    return run


def _run_trials(url: str, study: str, n: int, delay: float = 0.0) -> list[int]:
    ids = []
    with httpx.Client(base_url=url + API_PREFIX, timeout=30) as c:
        for i in range(n):
            time.sleep(delay)
            lease = c.post("/trials/claim", json={"worker_id": "cli-test", "study": study}).json()
            tid, tok = lease["trial_id"], lease["lease_token"]
            for step in (1, 2):
                c.post(f"/trials/{tid}/report", json={"lease_token": tok, "step": step,
                                                      "metrics": {"train_loss": 1.0 / step, "val_loss": 1.5 / step + i}})
            c.post(f"/trials/{tid}/complete", json={"lease_token": tok, "value": 0.75 + i,
                                                    "metrics": {"val_acc": 0.9 - i / 10}})
            ids.append(tid)
    return ids


def test_study_lifecycle_from_a_sweep_file(cli, live_server, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    url = live_server.url
    r = cli("study", "create", str(sweep), "--server", url)
    assert r.exit_code == 0, r.output
    assert "created study cli-sweep" in r.output and "method random" in r.output

    env = {"TUNESERVE_SERVER": url}  # the same server from the environment, for every command
    r = cli("study", "list", env=env)
    assert r.exit_code == 0 and "cli-sweep" in r.output and "0/3" in r.output

    ids = _run_trials(url, "cli-sweep", 2)
    r = cli("study", "status", "cli-sweep", env=env)
    assert r.exit_code == 0, r.output
    assert "2/3 done" in r.output and f"best: trial {ids[0]} (#0), val_loss = 0.75" in r.output

    r = cli("study", "trials", "cli-sweep", "--state", "completed", env=env)
    assert r.exit_code == 0 and r.output.count("completed") == 2

    r = cli("study", "pause", "cli-sweep", env=env)
    assert r.exit_code == 0 and "is paused" in r.output
    r = cli("study", "resume", "cli-sweep", env=env)
    assert r.exit_code == 0 and "is running" in r.output

    r = cli("trial", "show", str(ids[1]), env=env)
    assert r.exit_code == 0, r.output
    assert "completed, value 1.75" in r.output and "train_loss" in r.output and "val_loss" in r.output

    out = tmp_path / "trials.csv"
    r = cli("study", "export", "cli-sweep", "--format", "csv", "-o", str(out), env=env)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    # random search draws ahead: the third trial already waits in the queue
    assert [(row["state"], row["value"]) for row in rows] == [("completed", "0.75"), ("completed", "1.75"), ("waiting", "")]
    assert rows[0]["method"] == "random" and rows[0]["metrics.val_acc"] == "0.9"
    assert {"params.lr", "params.width", "fail_kind", "fail_reason"} <= set(rows[0])

    r = cli("study", "export", "cli-sweep", "--format", "json", env=env)
    assert r.exit_code == 0
    assert [t["number"] for t in json.loads(r.output)] == [0, 1, 2]

    r = cli("study", "stop", "cli-sweep", env=env)
    assert r.exit_code == 0 and "is stopped" in r.output
    r = cli("study", "delete", "cli-sweep", "--yes", env=env)
    assert r.exit_code == 0
    r = cli("study", "status", "cli-sweep", env=env)
    assert r.exit_code == 1 and "not found" in r.output


@pytest.mark.one_backend("postgres")
def test_watch_follows_the_study_until_it_finishes(cli, live_server, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    url = live_server.url
    assert cli("study", "create", str(sweep), "-s", url).exit_code == 0
    runner = threading.Thread(target=_run_trials, args=(url, "cli-sweep", 3, 0.3))
    runner.start()
    try:
        r = cli("study", "status", "cli-sweep", "--watch", "--interval", "0.2", "-s", url)
    finally:
        runner.join(60)
    assert r.exit_code == 0, r.output
    assert "cli-sweep: finished" in r.output and "3/3 done" in r.output


def test_errors_are_one_readable_line(cli, live_server, tmp_path):
    r = cli("study", "status", "x", "--server", f"http://127.0.0.1:{free_port()}")
    assert r.exit_code == 1
    assert "cannot reach the tuneserve server" in r.output and "Traceback" not in r.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmethod: random\nparameters:\n  lr: {min: 1.0, max: 0.1}\n")
    r = cli("study", "create", str(bad), "--server", live_server.url)
    assert r.exit_code == 1
    assert "parameters.lr" in r.output and "must be < max" in r.output

    r = cli("study", "create", str(tmp_path / "missing.yaml"), "--server", live_server.url)
    assert r.exit_code == 1 and "cannot read" in r.output


def test_worker_and_demo_are_commands_of_the_same_cli(capsys):
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert "worker" in listed and "demo" in listed
    assert main(["worker", "--help"]) == 0
    shown = capsys.readouterr().out
    for option in ("--slots", "--server", "--token", "TUNESERVE_SERVER", "--device", "--objective", "--runs-dir"):
        assert option in shown, option
    assert main(["demo", "--help"]) == 0
    shown = capsys.readouterr().out
    for option in ("--data-dir", "--trials", "--workers", "--method", "--port"):
        assert option in shown, option


# Runs `tuneserve ARGS` (service/console.py) in a fresh interpreter in which BLOCKED cannot be imported,
# as in an installation without the extra that brings them.
WITHOUT = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
from tuneserve_service.console import main
code = main(sys.argv[2:])
print("server imported:", any(m in sys.modules for m in ("fastapi", "sqlalchemy")), "worker imported:",
      "tuneserve_workers.loop" in sys.modules)
sys.exit(code)
"""


def without(blocked: set[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT, json.dumps(sorted(blocked)), *args],
                          capture_output=True, text=True, timeout=120)


def test_each_extra_gets_its_commands_and_a_line_naming_the_extra_for_the_rest():
    from tuneserve_service.console import SERVER_ONLY, WORKER_ONLY

    # A worker machine (tuneserve[worker]): the worker and the client commands, no server.
    r = without(SERVER_ONLY, "worker", "--help")
    assert r.returncode == 0 and "--slots" in r.stdout and "server imported: False" in r.stdout, r.stderr
    r = without(SERVER_ONLY, "study", "list", "--server", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "cannot reach the tuneserve server" in r.stderr, r.stderr
    for args, extra in ((["server"], "server"), (["db", "upgrade"], "server"), (["demo"], "server,worker")):
        r = without(SERVER_ONLY, *args)
        assert r.returncode == 1 and f"pip install 'tuneserve[{extra}]'" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    # A server (tuneserve[server]): no torch; the worker is not even imported until it runs.
    r = without(WORKER_ONLY, "--help")
    assert r.returncode == 0 and "worker" in r.stdout and "worker imported: False" in r.stdout, r.stderr
    r = without(WORKER_ONLY, "worker", "--device", "cpu", "--study", "s")
    assert r.returncode == 1 and "pip install 'tuneserve[worker]'" in r.stderr and "Traceback" not in r.stderr


MAPPING_SWEEP = """\
name: my mapping sweep
method: bayes
metric: {name: val_loss, goal: minimize, target: 0.1}
run_cap: 2
parameters:
  lr: {min: 0.001, max: 0.1}
  arch: {values: [{depth: 2, width: 8}, {depth: 3, width: 16}]}
"""


def test_display_names_engines_and_mapping_values(cli, live_server, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(MAPPING_SWEEP)
    url = live_server.url
    r = cli("study", "create", str(sweep), "-s", url, "--json")
    assert r.exit_code == 0, r.output
    study = json.loads(r.output)
    name = study["name"]
    assert name == "my-mapping-sweep" and study["display_name"] == "my mapping sweep"
    r = cli("study", "status", name, "-s", url)
    assert f"(engine {study['engine']})" in r.output and "minimize val_loss to 0.1" in r.output
    _run_trials(url, name, 1)
    out = tmp_path / "t.csv"
    assert cli("study", "export", name, "-o", str(out), "-s", url).exit_code == 0
    row = next(csv.DictReader(io.StringIO(out.read_text())))
    # A mapping value stays one column, as JSON; it is not split into params.arch.depth and .width.
    assert json.loads(row["params.arch"]) in ({"depth": 2, "width": 8}, {"depth": 3, "width": 16})
    assert "params.arch.depth" not in row


def test_tokens_from_the_command_line(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    r = cli("token", "create", "ops", "--role", "admin", "--database-url", url)
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[0]
    assert secret.startswith("tsv_")
    assert cli("token", "create", "gpu-box-1", "--database-url", url).exit_code == 0
    listed = cli("token", "list", "--database-url", url).output
    assert "name=ops  role=admin" in listed and "name=gpu-box-1  role=worker" in listed
    assert secret not in listed  # never shown again
    r = cli("token", "create", "ops", "--database-url", url)
    assert r.exit_code == 1 and "already exists" in r.output
    assert cli("token", "revoke", "gpu-box-1", "--database-url", url).exit_code == 0
    r = cli("token", "revoke", "gpu-box-1", "--database-url", url)
    assert r.exit_code == 1 and "no API token named 'gpu-box-1'" in r.output


def test_server_refuses_to_bind_beyond_loopback_without_a_token(cli, tmp_path):
    env = {"TUNESERVE_DATABASE_URL": f"sqlite:///{tmp_path / 'open.db'}", "TUNESERVE_API_TOKEN": ""}
    r = cli("server", "--host", "0.0.0.0", "--port", str(free_port()), env=env)
    assert r.exit_code == 1
    assert "refusing to serve on 0.0.0.0" in r.output and "--insecure" in r.output


def test_a_short_run_with_many_metrics_shows_every_name_whole_in_80_columns():
    """The built-in trainer reports a dozen metrics (its costs included) over a few epochs: `trial
    show` then lays the reports out a row per metric, so no name is cut in an 80-column terminal;
    a long run keeps a row per step."""
    from rich.console import Console

    from tuneserve_service.cli.trial import _curve

    names = ["train_loss", "val_loss", "val_acc", "lr", "grad_norm", "flops", "param_count", "latency_ms",
             "peak_memory_mb", "images_per_s", "epoch_time"]
    short = [{"step": s, "metrics": {n: float(s) for n in names}} for s in range(1, 5)]
    console = Console(width=80, record=True)
    console.print(_curve(short))
    lines = console.export_text().splitlines()
    assert lines[1].split() == ["metric", "\\", "step", "1", "2", "3", "4"]
    assert [line.split()[0] for line in lines[2:]] == ["train_loss", "val_loss", "val_acc", "lr", "grad_norm",
                                                        "epoch_time", "flops", "images_per_s", "latency_ms",
                                                        "param_count", "peak_memory_mb"]
    long = [{"step": s, "metrics": {"train_loss": 1 / s, "val_loss": 2 / s}} for s in range(1, 6)]
    console = Console(width=80, record=True)
    console.print(_curve(long))
    lines = console.export_text().splitlines()
    assert lines[1].split() == ["step", "train_loss", "val_loss"] and lines[-1].split() == ["5", "0.2", "0.4"]


def test_the_trial_table_keeps_every_parameter_whole_in_80_columns():
    """`study trials` with seven parameters: in 80 columns the parameters that differ share one wrapped
    column of name=value pairs (no ellipsis), the ones every row shares go to a line under the table;
    a wide terminal gives each differing parameter its own column."""
    from rich.console import Console

    from tuneserve_service.cli import _render as render

    trials = [{"id": 40 + n, "number": n, "state": "completed", "value": 0.5 / (n + 1), "last_step": 4,
               "params": {"lr": 0.00152 * (n + 1), "weight_decay": 0.00046 * (n + 1), "optimizer": ["sgd", "adam", "nesterov"][n],
                          "batch_size": 32 * (n + 1), "dropout": 0.0802, "dataset": "digits", "width": 8 + n},
               "diagnosis": {"label": "healthy"}, "worker_id": f"demo-w{n}"} for n in range(3)]
    shared, table = render.trial_table(trials, width=80)
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    words = text.split()
    for n in range(3):
        for pair in (f"lr={0.00152 * (n + 1):.3g}", f"weight_decay={0.00046 * (n + 1):.3g}",
                     f"batch_size={32 * (n + 1)}", f"width={8 + n}", f"optimizer={['sgd', 'adam', 'nesterov'][n]}"):
            assert pair in words
    assert shared == "same in every row: dataset=digits, dropout=0.0802"

    shared, table = render.trial_table(trials, width=200)
    console = Console(width=200, record=True)
    console.print(table)
    header = console.export_text().splitlines()[0].split()
    assert header == ["id", "#", "state", "value", "step", "batch_size", "lr", "optimizer", "weight_decay", "width",
                      "diagnosis", "worker"]
