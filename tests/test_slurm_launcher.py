"""The Slurm launcher's pure parts (workers/launchers/slurm.py): the sbatch script it renders, the
time limits it reads, and squeue/sbatch output it parses. No Slurm needed; tests/test_slurm.py runs
the same scripts on a real cluster."""
from __future__ import annotations

import subprocess

import pytest

from tuneserve_workers.identity import detect, slurm_job_id
from tuneserve_workers.launchers.slurm import (SlurmFleet, job_name, parse_sbatch, parse_squeue, parse_time,
                                               scancel_argv, squeue_argv)


def fleet(**kw) -> SlurmFleet:
    return SlurmFleet(**{"study": "cifar", "server": "http://tune.example:8000", "workers": 3, **kw})


def sbatch(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            out[key] = value
    return out


def test_one_array_of_n_workers_that_exit_when_done():
    script = fleet().render()
    opts = sbatch(script)
    assert opts["job-name"] == "tuneserve-cifar" and opts["array"] == "0-2" and opts["ntasks"] == "1"
    assert opts["signal"] == "B:USR1@120" and "requeue" in opts and opts["open-mode"] == "append"
    assert opts["export"] == "ALL"
    last = script.strip().splitlines()[-1]
    assert last.startswith("exec tuneserve worker --server http://tune.example:8000 --study cifar --slots 1 --device cpu")
    assert "--exit-when-done" in last and '--worker-id "$WORKER_ID"' in last
    assert "SLURM_RESTART_COUNT" in script  # a requeued task is a new worker id
    assert "gres" not in opts and "partition" not in opts


def test_gpus_partition_time_account_setup_and_extras():
    script = fleet(gpus_per_worker=2, slots=4, partition="gpu", time="4:00:00", account="ml", signal_lead=300,
                   setup="module load cuda/12.4\nsource ~/venv/bin/activate", sbatch_options=("--qos=long",),
                   worker_args=("--idle-max", "5")).render()
    opts = sbatch(script)
    assert opts["gres"] == "gpu:2" and opts["partition"] == "gpu" and opts["time"] == "4:00:00"
    assert opts["account"] == "ml" and opts["signal"] == "B:USR1@300" and opts["qos"] == "long"
    assert "module load cuda/12.4\nsource ~/venv/bin/activate" in script
    assert script.index("module load") < script.index("exec tuneserve worker")
    assert "--slots 4 --device auto --exit-when-done --idle-max 5" in script


def test_the_token_is_never_in_the_script(tmp_path):
    assert "TUNESERVE_TOKEN=" not in fleet().render()
    script = fleet(token_file="/home/me/.tuneserve token").render()
    assert "export TUNESERVE_TOKEN=\"$(cat '/home/me/.tuneserve token')\"" in script


def test_the_script_is_valid_bash():
    script = fleet(setup="echo 'quoted; stuff'", study="it's a study").render()
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert sbatch(script)["job-name"] == "tuneserve-it_s_a_study"


@pytest.mark.parametrize("bad", [dict(workers=0), dict(slots=0), dict(gpus_per_worker=-1),
                                 dict(time="1", signal_lead=60), dict(time="1:30", signal_lead=90), dict(server="")])
def test_bad_fleets_are_refused(bad):
    with pytest.raises(ValueError):
        fleet(**bad)


@pytest.mark.parametrize("text,seconds", [("30", 1800), ("1:30", 90), ("2:00:00", 7200), ("1-0", 86400),
                                          ("1-2:30", 95400), ("0-0:0:45", 45)])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("bad", ["", "a", "1:2:3:4", "1-2:3:4:5"])
def test_parse_time_refuses(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def test_sbatch_squeue_scancel():
    assert parse_sbatch("4242\n") == "4242" and parse_sbatch("4242;cluster\n") == "4242"
    with pytest.raises(ValueError):
        parse_sbatch("sbatch: error: Batch job submission failed")
    tasks = parse_squeue("12_0|RUNNING|0:05|1:00|node1|tuneserve-cifar\n12_[1-2]|PENDING|0:00|1:00|(Resources)|tuneserve-cifar\n")
    assert [(t.job_id, t.state, t.where) for t in tasks] == [("12_0", "RUNNING", "node1"), ("12_[1-2]", "PENDING", "(Resources)")]
    assert "--name=tuneserve-cifar" in squeue_argv("cifar", "me") and "--user=me" in squeue_argv("cifar", "me")
    assert scancel_argv("cifar") == ["scancel", "--name=tuneserve-cifar"]
    assert scancel_argv("cifar", signal="USR1")[-2:] == ["--signal=USR1", "--batch"]
    assert job_name("a/b c") == "tuneserve-a_b_c"


def test_identity_from_slurm_and_kubernetes_environments():
    slurm = {"SLURM_JOB_ID": "101", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "1", "SLURM_RESTART_COUNT": "2",
             "SLURMD_NODENAME": "gpu07"}
    assert slurm_job_id(slurm) == "100_1.2" and slurm_job_id({"SLURM_JOB_ID": "7"}) == "7"
    found = detect("cuda:0", env=slurm, gpu_name="NVIDIA H100")
    assert found["scheduler"] == "slurm" and found["job_id"] == "100_1.2" and found["host"] == "gpu07"
    assert found["gpu"] == "NVIDIA H100"
    pod = detect("cpu", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "TUNESERVE_POD_NAME": "w-abc",
                             "TUNESERVE_NODE_NAME": "n1"}, gpu_name="")
    assert pod["scheduler"] == "kubernetes" and pod["pod"] == "w-abc" and pod["node"] == "n1" and "gpu" not in pod
    assert "scheduler" not in detect("cpu", env={}, gpu_name="")
