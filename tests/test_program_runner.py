"""ProgramRunner with real subprocesses and no server (a LocalContext stands in for the worker's):
reports and answers over the socket, stops by answer and by signal, exit statuses, logs, environment."""
from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tuneserve_workers.program import ProgramFailed, ProgramRunner, ProgramSpec
from tuneserve_workers.program.runner import physical_gpu, program_env
from tuneserve_workers.training.objective import Diverged, LocalContext


class Ctx(LocalContext):
    """A LocalContext that remembers uploads and can be told to stop from outside (a heartbeat)."""

    def __init__(self, stop_after=None, metric="val_loss"):
        super().__init__("cpu", stop_after=stop_after)
        self.trial_id, self.metric, self.uploads = 7, metric, []

    def upload_log(self, text, size, final=False):
        self.uploads.append((text, size, final))
        return True


def program(tmp_path: Path, body: str) -> ProgramSpec:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return ProgramSpec(program=str(path), command=None)


def runner(tmp_path, spec, **kw) -> ProgramRunner:
    return ProgramRunner(spec, runs_dir=tmp_path / "runs", **{"kill_grace": 5.0, **kw})


def trial_dir(tmp_path) -> Path:
    return tmp_path / "runs" / "local" / "trial-7-0"


def test_reports_flow_and_the_last_value_is_the_result(tmp_path):
    spec = program(tmp_path, """
        import argparse, sys
        from tuneserve import report
        p = argparse.ArgumentParser()
        p.add_argument("--lr", type=float)
        p.add_argument("--epochs", type=int)
        a = p.parse_args()
        print("training with", a.lr)
        print("a warning", file=sys.stderr)
        for e in range(1, a.epochs + 1):
            assert report(e, train_loss=1.0 / e, val_loss=2.0 / e)
    """)
    ctx = Ctx()
    result = runner(tmp_path, spec)({"lr": 0.1, "epochs": 3}, ctx)
    assert [s for s, _ in ctx.history] == [1, 2, 3]
    assert result == {"train_loss": pytest.approx(1 / 3), "val_loss": pytest.approx(2 / 3)}
    log = (trial_dir(tmp_path) / "output.log").read_text()
    assert "--epochs=3 --lr=0.1" in log.splitlines()[0]
    assert "training with 0.1" in log and "a warning" in log
    assert json.loads((trial_dir(tmp_path) / "params.json").read_text()) == {"epochs": 3, "lr": 0.1}
    text, size, final = ctx.uploads[-1]
    assert final and "training with 0.1" in text and size == len(log.encode())


def test_summary_sets_the_value(tmp_path):
    spec = program(tmp_path, """
        from tuneserve import report, summary
        report(1, val_loss=0.9)
        summary(val_loss=0.5, val_acc=0.8)
    """)
    assert runner(tmp_path, spec)({}, Ctx()) == {"val_loss": 0.5, "val_acc": 0.8}


def test_a_stop_answer_ends_the_program_and_it_is_not_judged_by_its_exit(tmp_path):
    spec = program(tmp_path, """
        import sys, time
        from tuneserve import report
        for e in range(1, 100):
            if not report(e, val_loss=1.0):
                print("told to stop at", e)
                sys.exit(3)
    """)
    ctx = Ctx(stop_after=2)
    result = runner(tmp_path, spec)({}, ctx)
    assert [s for s, _ in ctx.history] == [1, 2] and ctx.stop_reason == "stop_after"
    assert result["val_loss"] == 1.0
    assert "told to stop at 2" in (trial_dir(tmp_path) / "output.log").read_text()


def test_a_program_that_ignores_the_stop_gets_sigterm_then_sigkill(tmp_path):
    spec = program(tmp_path, """
        import signal, time
        from tuneserve import report
        signal.signal(signal.SIGTERM, lambda *a: print("got SIGTERM, ignoring it", flush=True))
        report(1, val_loss=1.0)
        while True:
            time.sleep(0.05)
    """)
    ctx = Ctx(stop_after=1)
    started = time.monotonic()
    runner(tmp_path, spec, kill_grace=1.0)({}, ctx)
    took = time.monotonic() - started
    assert "got SIGTERM, ignoring it" in (trial_dir(tmp_path) / "output.log").read_text()
    assert 1.0 <= took < 30  # SIGTERM after min(notice, grace), SIGKILL a grace later


def test_a_stop_from_a_heartbeat_sends_sigterm_at_once(tmp_path):
    spec = program(tmp_path, """
        import signal, sys, time
        from tuneserve import report
        signal.signal(signal.SIGTERM, lambda *a: (print("got SIGTERM", flush=True), sys.exit(0)))
        report(1, val_loss=1.0)
        time.sleep(60)
    """)
    ctx = Ctx()

    def send(step, metrics):
        ctx.stop_reason = "pruned by a heartbeat"  # decided after this report was answered
        return True
    ctx._send = send
    started = time.monotonic()
    runner(tmp_path, spec)({}, ctx)
    assert time.monotonic() - started < 20
    assert ctx.stop_reason == "pruned by a heartbeat"
    assert "got SIGTERM" in (trial_dir(tmp_path) / "output.log").read_text()


def test_nonzero_exit_fails_with_the_tail_of_stderr(tmp_path):
    spec = program(tmp_path, """
        import sys
        print("lots of stdout " * 100)
        print("x" * 10000, file=sys.stderr)
        raise RuntimeError("CUDA error: the real cause")
    """)
    with pytest.raises(ProgramFailed) as info:
        runner(tmp_path, spec)({}, Ctx())
    reason = info.value.reason
    assert reason.startswith("the program exited with status 1; stderr:")
    assert reason.rstrip().endswith("RuntimeError: CUDA error: the real cause")
    assert len(reason) < 4200 and "lots of stdout" not in reason


def test_out_of_memory_in_stderr_reads_as_oom(tmp_path):
    spec = program(tmp_path, """
        raise SystemExit("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    """)
    with pytest.raises(ProgramFailed, match="out of memory"):
        runner(tmp_path, spec)({}, Ctx())


def test_exit_zero_without_the_metric_fails(tmp_path):
    spec = program(tmp_path, """
        from tuneserve import report
        report(1, train_loss=0.3)
    """)
    with pytest.raises(ProgramFailed, match="never reported 'val_loss'"):
        runner(tmp_path, spec)({}, Ctx())


def test_a_non_finite_loss_is_diverged_and_the_program_is_stopped(tmp_path):
    spec = program(tmp_path, """
        import time
        from tuneserve import report
        report(1, val_loss=float("nan"))
        time.sleep(60)
    """)
    started = time.monotonic()
    with pytest.raises(Diverged):
        runner(tmp_path, spec)({}, Ctx())
    assert time.monotonic() - started < 20


def test_a_missing_program_fails_clearly(tmp_path):
    spec = ProgramSpec(program=None, command=("/no/such/binary", "${args}"))
    with pytest.raises(ProgramFailed, match="cannot start /no/such/binary"):
        runner(tmp_path, spec)({"lr": 1}, Ctx())


def test_bad_lines_get_an_error_answer_and_any_language_can_report(tmp_path):
    # A shell program speaking the protocol through python's socket module as a stand-in for `nc -U`.
    relay = ("import json,os,socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(os.environ['TUNESERVE_REPORT_SOCKET']); "
             "f=s.makefile('rwb'); [ (f.write(l.encode()), f.flush(), print(f.readline().decode().strip())) for l in sys.stdin ]")
    script = tmp_path / "run.sh"
    script.write_text(textwrap.dedent(f"""\
        printf '%s\\n' 'not json' '{{"step": -1, "metrics": {{}}}}' '{{"step": 1, "metrics": {{"val_loss": "x"}}}}' \\
          '{{"step": 1, "metrics": {{"val_loss": 0.25}}}}' | {sys.executable} -c "{relay}"
    """))
    spec = ProgramSpec(program=None, command=("bash", str(script)))
    ctx = Ctx()
    assert runner(tmp_path, spec)({}, ctx) == {"val_loss": 0.25}
    answers = [json.loads(a) for a in (trial_dir(tmp_path) / "output.log").read_text().splitlines()[1:]]
    assert answers[0]["error"].startswith("not JSON")
    assert answers[1:] == [
        {"error": "step must be an integer >= 0, got -1"},
        {"error": "metric 'val_loss' must be a number, got 'x'"},
        {"continue": True},
    ]
    assert [s for s, _ in ctx.history] == [1]


def test_environment_of_a_program(tmp_path):
    spec = program(tmp_path, """
        import json, os, shutil, sys
        from tuneserve import summary
        keys = ["TUNESERVE_TRIAL_ID", "TUNESERVE_DEVICE", "TUNESERVE_STUDY", "TUNESERVE_METRIC", "CUDA_VISIBLE_DEVICES",
                "TUNESERVE_TOKEN", "TUNESERVE_API_TOKEN", "TUNESERVE_RUN_DIR", "TUNESERVE_PARAMS_FILE"]
        print(json.dumps({k: os.environ.get(k) for k in keys}))
        print(json.dumps({"python": sys.executable, "params": json.load(open(os.environ["TUNESERVE_PARAMS_FILE"]))}))
        summary(val_loss=1.0)
    """)
    os.environ["TUNESERVE_TOKEN"] = "secret-token"
    try:
        runner(tmp_path, spec)({"b": 2, "a": {"y": 1, "x": 2}}, Ctx())
    finally:
        del os.environ["TUNESERVE_TOKEN"]
    lines = (trial_dir(tmp_path) / "output.log").read_text().splitlines()
    env, other = json.loads(lines[1]), json.loads(lines[2])
    assert env["TUNESERVE_TRIAL_ID"] == "7" and env["TUNESERVE_DEVICE"] == "cpu"
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["TUNESERVE_METRIC"] == "val_loss"
    assert env["TUNESERVE_TOKEN"] is None and env["TUNESERVE_API_TOKEN"] is None
    assert env["TUNESERVE_RUN_DIR"] == str(trial_dir(tmp_path).resolve())
    assert other["params"] == {"b": 2, "a": {"x": 2, "y": 1}}
    # ${interpreter} is `python` through /usr/bin/env, and the worker's interpreter comes first on PATH.
    assert Path(other["python"]).parent == Path(sys.executable).parent


def test_device_pinning():
    env = program_env({"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "4,5,6,7"}, device="cuda:2", extra={})
    assert env["CUDA_VISIBLE_DEVICES"] == "6" and env["TUNESERVE_DEVICE"] == "cuda:0"
    env = program_env({"PATH": "/usr/bin"}, device="cuda:1", extra={})
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert physical_gpu(0, "GPU-aaaa,GPU-bbbb") == "GPU-aaaa"
    assert program_env({"PATH": "/usr/bin"}, device="cpu", extra={})["CUDA_VISIBLE_DEVICES"] == ""
