"""The argv of a sweep's program, built as W&B's agent builds it (wandb/wandb_agent.py `_command_run`
and wandb/sdk/launch/sweeps/utils.py `create_sweep_command_args` / `create_sweep_command`)."""
from __future__ import annotations

import json

import pytest

from tuneserve_workers.program.command import CommandError, DEFAULT_COMMAND, build_argv, command_args, wandb_order

PARAMS = {"lr": 0.001, "epochs": 5, "amsgrad": True, "nesterov": False, "mode": None,
          "optimizer": {"name": "adam", "beta": 0.9}, "layers": [64, 128]}


def argv(command, params=PARAMS, program="train.py", **kw):
    return build_argv(command, program, params, args_json_file="/runs/params.json", environ=kw.pop("environ", {}), **kw)


def test_default_command_is_wandbs():
    # W&B: ["${env}", "${interpreter}", "${program}", "${args}"] with env=/usr/bin/env, interpreter=python
    assert DEFAULT_COMMAND == ("${env}", "${interpreter}", "${program}", "${args}")
    assert argv(None, {"lr": 0.1, "batch_size": 64}) == [
        "/usr/bin/env", "python", "train.py", "--batch_size=64", "--lr=0.1"]
    assert argv([], {"lr": 0.1}) == ["/usr/bin/env", "python", "train.py", "--lr=0.1"]


def test_args_render_values_with_python_str():
    # f"{name}={value}": True/False/None as Python spells them, a nested block as a dict, a list as a list.
    assert command_args(PARAMS)["args"] == [
        "--amsgrad=True", "--epochs=5", "--layers=[64, 128]", "--lr=0.001", "--mode=None", "--nesterov=False",
        "--optimizer={'beta': 0.9, 'name': 'adam'}"]


def test_every_args_macro():
    words = command_args({"lr": 0.001, "amsgrad": True, "nesterov": False, "opt": {"name": "sgd"}})
    assert words["args_no_hyphens"] == ["amsgrad=True", "lr=0.001", "nesterov=False", "opt={'name': 'sgd'}"]
    # True becomes a bare flag, False disappears, other values keep --name=value.
    assert words["args_no_boolean_flags"] == ["--amsgrad", "--lr=0.001", "--opt={'name': 'sgd'}"]
    assert words["args_no_equals"] == ["--amsgrad", "True", "--lr", "0.001", "--nesterov", "False",
                                       "--opt", "{'name': 'sgd'}"]
    assert words["args_append_hydra"][0] == "+amsgrad=True"
    assert words["args_override_hydra"][0] == "++amsgrad=True"
    # One word holding json.dumps of the parameters (nested blocks as JSON objects).
    assert words["args_json"] == ['{"amsgrad": true, "lr": 0.001, "nesterov": false, "opt": {"name": "sgd"}}']
    assert json.loads(words["args_json"][0]) == {"amsgrad": True, "lr": 0.001, "nesterov": False, "opt": {"name": "sgd"}}


def test_order_is_the_sweeps_packages():
    # Plain names sorted, then nested blocks sorted, keys inside blocks sorted.
    ordered = wandb_order({"zeta": {"b": 1, "a": 2}, "b": 1, "alpha": {"y": 1, "x": {"d": 1, "c": 2}}, "a": 3})
    assert list(ordered) == ["a", "b", "alpha", "zeta"]
    assert list(ordered["alpha"]) == ["x", "y"] and list(ordered["alpha"]["x"]) == ["c", "d"]


def test_custom_command_with_macros_and_literals():
    command = ["${env}", "python3", "${program}", "-b", "your-training-config", "${args}"]
    assert argv(command, {"batch_size": 8, "lr": 0.0001}) == [
        "/usr/bin/env", "python3", "train.py", "-b", "your-training-config", "--batch_size=8", "--lr=0.0001"]
    assert argv(["${interpreter}", "${program}", "${args_json_file}"], {"lr": 1}) == [
        "python", "train.py", "/runs/params.json"]
    assert argv(["${interpreter}", "${program}", "--config", "${args_json}"], {"lr": 1}) == [
        "python", "train.py", "--config", '{"lr": 1}']
    assert argv(None, {"lr": 1}, interpreter="/opt/py/bin/python")[1] == "/opt/py/bin/python"


def test_macros_only_expand_as_whole_elements_and_unknown_ones_vanish():
    # W&B replaces an element only when it is exactly ${...}; a macro it does not know gives no words.
    assert argv(["${program}", "--tag=${args}", "${project}", "${args_dict}", 7, 0.5], {"lr": 1}) == [
        "train.py", "--tag=${args}", "7", "0.5"]


def test_envvar_macro():
    env = {"DATA_DIR": "/data", "SEED": "3"}
    assert argv(["${env}", "python", "${program}", "--data=${envvar:DATA_DIR}/x", "${envvar:SEED}",
                 "${envvar:MISSING_VAR}"], {}, environ=env) == [
        "/usr/bin/env", "python", "train.py", "--data=/data/x", "3", "MISSING_VAR"]


def test_a_command_without_program_needs_no_program():
    assert build_argv(["bash", "run.sh", "${args}"], None, {"lr": 1}, args_json_file="f", environ={}) == [
        "bash", "run.sh", "--lr=1"]
    with pytest.raises(CommandError, match="no `program`"):
        build_argv(None, None, {"lr": 1}, args_json_file="f", environ={})
    with pytest.raises(CommandError, match="empty"):
        build_argv(["${nothing}"], "t.py", {}, args_json_file="f", environ={})
