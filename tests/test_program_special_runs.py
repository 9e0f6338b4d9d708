"""Special runs through a sweep's program (real subprocesses, no server): the request arrives in the
environment, a program takes part by what it reports, and one that does not is told how to opt in."""
from __future__ import annotations

import json

import pytest

from tests.test_program_runner import Ctx, program, runner, trial_dir
from tuneserve_workers.program.runner import LR_RANGE_FORWARD_EVERY
from tuneserve_workers.training.lr_range import run_lr_range_objective
from tuneserve_workers.training.objective import LrRangeRequest, SanityRequest
from tuneserve_workers.training.sanity import run_sanity_objective

# Opts in: reads the request from the environment, "fits" a few epochs, reports sanity_done=1.
SANITY_PROGRAM = """
    import json, os
    from tuneserve import report
    samples = int(os.environ["TUNESERVE_SANITY_SAMPLES"])
    epochs = int(os.environ["TUNESERVE_SANITY_MAX_EPOCHS"])
    lrs = [float(x) for x in os.environ.get("TUNESERVE_SANITY_LRS", "").split(",") if x]
    print(json.dumps({"samples": samples, "epochs": epochs, "lrs": lrs}), flush=True)
    for epoch in range(1, 4):
        extra = {"initial_loss": 2.3, "num_classes": 10} if epoch == 1 else {}
        if epoch == 3:
            extra = {"sanity_done": 1, "input_std": 0.9}  # with the last epoch's metrics
        report(epoch, train_loss=2.0 / epoch, train_acc=min(1.0, 0.4 * epoch), **extra)
    report(3, sanity_done=1)  # alone, again: kept from the server (a step is stored once)
"""

# Knows nothing of the gates: trains as a trial and exits 0.
PLAIN_PROGRAM = """
    from tuneserve import report
    for epoch in range(1, 3):
        report(epoch, train_loss=1.0 / epoch, val_loss=1.5 / epoch)
"""


def sanity_ctx() -> Ctx:
    ctx = Ctx()
    ctx.sanity = SanityRequest(32, 30, (0.1, 0.01))
    return ctx


def test_a_program_that_opts_in_runs_the_sanity_check(tmp_path):
    ctx = sanity_ctx()
    done = run_sanity_objective(runner(tmp_path, program(tmp_path, SANITY_PROGRAM)), {"lr": 0.1}, ctx)
    assert done.supported is True and done.message == ""
    # Its figures: every metric's last reported value (the server reads the reports themselves too).
    assert done.figures == {"train_loss": pytest.approx(2 / 3), "train_acc": 1.0, "initial_loss": 2.3,
                            "num_classes": 10.0, "input_std": 0.9}
    assert [step for step, _ in ctx.history] == [1, 2, 3]  # the marker itself never goes to the server
    assert ctx.history[2][1] == {"train_loss": pytest.approx(2 / 3), "train_acc": 1.0, "input_std": 0.9}
    assert ctx.history[0][1] == {"train_loss": 2.0, "train_acc": 0.4, "initial_loss": 2.3, "num_classes": 10.0}
    seen = json.loads((trial_dir(tmp_path) / "output.log").read_text().splitlines()[1])
    assert seen == {"samples": 32, "epochs": 30, "lrs": [0.1, 0.01]}


def test_a_program_that_does_not_opt_in_skips_the_sanity_check_with_how_to(tmp_path):
    ctx = sanity_ctx()
    done = run_sanity_objective(runner(tmp_path, program(tmp_path, PLAIN_PROGRAM)), {}, ctx)
    assert done.supported is False and done.figures == {}
    assert done.message.startswith("the program did not run the sanity check (it never reported sanity_done=1)")
    assert "TUNESERVE_SANITY_SAMPLES" in done.message and "report train_loss and train_acc" in done.message
    assert ctx.stop_reason is None  # ended by itself: the worker completes it with the outcome


def test_a_sanity_program_that_fails_is_a_failure_not_a_skip(tmp_path):
    from tuneserve_workers.program import ProgramFailed

    spec = program(tmp_path, """
        raise SystemExit("cannot open the dataset")
    """)
    with pytest.raises(ProgramFailed, match="cannot open the dataset"):
        run_sanity_objective(runner(tmp_path, spec), {}, sanity_ctx())


def test_a_program_reports_the_range_test_per_mini_batch_and_the_curve_comes_back(tmp_path):
    spec = program(tmp_path, """
        import math, os
        from tuneserve import report
        start = float(os.environ["TUNESERVE_LR_RANGE_START_LR"])
        end = float(os.environ["TUNESERVE_LR_RANGE_END_LR"])
        steps = int(os.environ["TUNESERVE_LR_RANGE_STEPS"])
        for i in range(steps):
            lr = start * (end / start) ** (i / (steps - 1))
            loss = float("nan") if i == 41 else 2.0 + math.log10(lr)
            if not report(i, lr=lr, loss=loss):
                break
            if i == 41:
                break
    """)
    ctx = Ctx()
    ctx.lr_range = LrRangeRequest(1e-4, 1.0, 60)
    done = run_lr_range_objective(runner(tmp_path, spec), {}, ctx)
    assert done.supported is True
    lrs, losses = done.curve["lr"], done.curve["loss"]
    assert len(lrs) == len(losses) == 42
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-4 * 1e4 ** (41 / 59))
    assert losses[0] == pytest.approx(-2.0) and losses[-1] is None  # NaN at the blow-up goes out as None
    # Progress reaches the server every 25th batch only.
    assert [step for step, _ in ctx.history] == list(range(0, 42, LR_RANGE_FORWARD_EVERY)) == [0, 25]


def test_a_program_without_the_range_test_says_how_to_opt_in(tmp_path):
    ctx = Ctx()
    ctx.lr_range = LrRangeRequest(1e-4, 1.0, 60)
    done = run_lr_range_objective(runner(tmp_path, program(tmp_path, PLAIN_PROGRAM)), {}, ctx)
    assert done.supported is False and done.curve is None
    assert done.message.startswith("the program did not run the lr range test (it reported no lr and loss)")
    assert "TUNESERVE_LR_RANGE_STEPS" in done.message


def test_a_program_told_to_stop_during_the_range_test_returns_its_partial_curve(tmp_path):
    spec = program(tmp_path, """
        from tuneserve import report
        for i in range(1000):
            if not report(i, lr=0.001 * (i + 1), loss=2.0):
                break
    """)
    ctx = Ctx(stop_after=2)  # the server says stop on the second forwarded report (batch 25)
    ctx.lr_range = LrRangeRequest(1e-3, 1.0, 1000)
    done = run_lr_range_objective(runner(tmp_path, spec), {}, ctx)
    assert ctx.stop_reason == "stop_after"  # the worker prunes (or releases) it; the outcome is not sent
    assert done.supported is True and len(done.curve["lr"]) == 26
