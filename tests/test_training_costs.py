"""What a model costs (issue 19 item 3), measured by the built-in trainer on CPU: param_count, flops
(torch's FlopCounterMode), latency_ms (median after warm-up) and peak_memory_mb (peak RSS growth on
CPU); measuring touches no random generator and no model state. The run's determinism flags are set
and restored around it. A program reports whatever metrics it likes, costs included, and its
provenance names its command line and code (git commit, dirty flag, sha256)."""
from __future__ import annotations

import hashlib
import subprocess
import textwrap

import pytest
import torch
from torch import nn

from tuneserve_workers.program import ProgramRunner, ProgramSpec
from tuneserve_workers.program.runner import command_provenance
from tuneserve_workers.provenance import code_of_file, for_run
from tuneserve_workers.training import costs
from tuneserve_workers.training.config import TrainConfig
from tuneserve_workers.training.determinism import run_settings
from tuneserve_workers.training.nets import build_cnn
from tuneserve_workers.training.objective import LocalContext
from tuneserve_workers.training.run import train_cnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"epochs": 2, "width": 8, "data_fraction": 0.3, "batch_size": 32, "seed": 5, "dropout": 0.3}


def test_flops_are_counted_by_torch_two_per_multiply_add():
    assert costs.forward_flops(nn.Linear(4, 3), torch.zeros(1, 4)) == 2 * 4 * 3
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    assert costs.forward_flops(conv, torch.zeros(1, 1, 4, 4)) == 2 * (2 * 4 * 4) * 9


def test_measuring_touches_no_generator_and_no_model_state():
    model = build_cnn(TrainConfig(width=8, dropout=0.5), 1, 10, 8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    x = torch.ones(1, 1, 8, 8)
    assert costs.forward_flops(model, x) > 0 and costs.latency_ms(model, x, warmup=1, reps=3) > 0
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # batch norm stats untouched


def test_the_trainer_reports_its_costs():
    ctx = LocalContext()
    final = train_cnn(TINY, ctx)
    model = build_cnn(TrainConfig.from_params(TINY), 1, 10, 8)
    first, last = ctx.history[0][1], ctx.history[-1][1]
    assert first["param_count"] == last["param_count"] == final["param_count"] == sum(p.numel() for p in model.parameters())
    assert first["flops"] == final["flops"] == costs.forward_flops(model, torch.zeros(1, 1, 8, 8))
    assert "latency_ms" not in first and 0 < final["latency_ms"] == last["latency_ms"] < 1000
    peaks = [m["peak_memory_mb"] for _, m in ctx.history]
    assert all(p >= 0 for p in peaks) and peaks == sorted(peaks)  # a high-water mark only rises
    assert ctx.provenance["peak_memory"] == "rss_peak_growth"  # Linux: /proc/self/clear_refs
    assert ctx.provenance["seed"] == 5 and ctx.provenance["fidelity"]["data_fraction"] == 0.3
    assert ctx.provenance["determinism"] == {"deterministic": False, "cudnn_benchmark": False,
                                             "cudnn_deterministic": False, "deterministic_algorithms": False,
                                             "cublas_workspace_config": None, "num_threads": 1}


def test_peak_memory_on_cpu_sees_what_the_run_allocates():
    memory = costs.PeakMemory(torch.device("cpu")).start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert memory.peak_mb() >= 60
    del block


def test_the_deterministic_knob_sets_and_restores_the_flags():
    assert not torch.are_deterministic_algorithms_enabled()
    with run_settings(torch.device("cpu"), True) as flags:
        assert torch.are_deterministic_algorithms_enabled() and flags["deterministic_algorithms"]
    assert not torch.are_deterministic_algorithms_enabled()
    ctx = LocalContext()
    a = train_cnn({**TINY, "deterministic": True}, ctx)
    assert ctx.provenance["determinism"]["deterministic"] is True
    assert a["val_loss"] == train_cnn(TINY, LocalContext())["val_loss"]  # on CPU the same numbers either way


def test_a_program_reports_any_metric_and_its_provenance_names_its_code(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(textwrap.dedent("""
        from tuneserve import report, summary
        report(1, val_loss=0.9, latency_ms=3.5, param_count=1200, my_own_metric=-1)
        summary(val_loss=0.5, peak_memory_mb=42.0)
    """))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    ctx = LocalContext()
    result = ProgramRunner(ProgramSpec(str(script), None), runs_dir=tmp_path / "runs")({"lr": 0.1}, ctx)
    assert ctx.history == [(1, {"val_loss": 0.9, "latency_ms": 3.5, "param_count": 1200.0, "my_own_metric": -1.0})]
    assert result == {"val_loss": 0.5, "latency_ms": 3.5, "param_count": 1200.0, "my_own_metric": -1.0,
                      "peak_memory_mb": 42.0}
    p = ctx.provenance
    assert p["command"][-2:] == [str(script), "--lr=0.1"]
    assert p["code"] == {"path": str(script.resolve()), "sha256": hashlib.sha256(script.read_bytes()).hexdigest(),
                         "git_commit": commit, "git_dirty": False}
    script.write_text(script.read_text() + "# changed\n")
    assert code_of_file(script)["git_dirty"] is True
    outside = tmp_path / "loose.py"
    outside.write_text("pass\n")
    assert set(code_of_file(outside)) == {"path", "sha256"}  # no git tree: the file's hash alone


def test_a_token_in_a_command_line_is_masked(monkeypatch):
    monkeypatch.setenv("TUNESERVE_TOKEN", "tsv_secret123")
    got = command_provenance(["python", "-c", "pass", "--token=tsv_secret123"], None)
    assert got == {"command": ["python", "-c", "pass", "<redacted>"], "code": None}


def test_the_worker_adds_versions_and_the_trainer_code():
    p = for_run(device="cpu", worker_id="w", objective_name="builtin:cnn", objective=train_cnn,
                params={"seed": 3, "lr": 0.1}, attempt=0, extra={"dataset": "digits"})
    assert p["seed"] == 3 and p["dataset"] == "digits" and p["device"] == "cpu"
    assert p["versions"]["torch"] == torch.__version__ and p["versions"]["tuneserve"] and p["versions"]["python"]
    assert len(p["code"]["sha256"]) == 64 and p["code"]["path"].endswith("training")
    assert "command" not in p  # an in-process objective: the worker's argv may carry its token
