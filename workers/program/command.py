"""A sweep's `command` turned into an argv for one trial, exactly as `wandb agent` builds it.

What W&B's agent does (wandb/wandb_agent.py and wandb/sdk/launch/sweeps/utils.py), and so do we:
- The default command is `${env} ${interpreter} ${program} ${args}`.
- `${envvar:NAME}` anywhere inside an element becomes the value of NAME in the worker's
  environment (NAME itself when unset). Then an element that is exactly `${macro}` is replaced by
  the macro's list of words; an element that only contains a macro is kept as it is; an unknown
  macro disappears. Other elements are passed through `str()`.
- `${env}` is `/usr/bin/env`; `${interpreter}` is `python`; `${program}` the sweep's program.
- `${args}` is one `--name=value` word per top-level parameter, the value formatted by Python's
  `str()`: `--lr=0.001`, `--amsgrad=True`, `--mode=None`, and a nested block as a dict,
  `--optimizer={'lr': 0.001, 'name': 'adam'}`. `${args_no_hyphens}` drops the `--`;
  `${args_no_boolean_flags}` turns True into `--name` and drops False; `${args_no_equals}` is
  `--name value`; `${args_append_hydra}` `+name=value`; `${args_override_hydra}` `++name=value`.
- `${args_json}` is one word, `json.dumps` of the parameters; `${args_json_file}` the path of a file
  holding that same JSON.
- Parameters come in the order W&B's sweeps package gives them: plain names sorted, then nested
  blocks sorted, keys inside a block sorted.
W&B's `${args_dict}` (which splices a dict's keys into the argv) is left out on purpose.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable, Mapping

DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")
ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")
MACRO = re.compile(r"^\$\{(.*)\}$")


class CommandError(ValueError):
    """The study's program/command cannot make an argv (reported as the trial's failure)."""


def wandb_order(params: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level plain parameters sorted, then nested blocks sorted; block keys sorted, recursively."""

    def tidy(value: Any) -> Any:
        return {k: tidy(value[k]) for k in sorted(value)} if isinstance(value, dict) else value

    plain = sorted(k for k, v in params.items() if not isinstance(v, dict))
    nested = sorted(k for k, v in params.items() if isinstance(v, dict))
    return {k: tidy(params[k]) for k in (*plain, *nested)}


def command_args(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every `${args...}` macro's words for these parameters (nested dicts as the trial has them)."""
    ordered = wandb_order(params)
    out: dict[str, list[str]] = {k: [] for k in (
        "args", "args_no_hyphens", "args_no_boolean_flags", "args_no_equals",
        "args_append_hydra", "args_override_hydra")}
    for name, value in ordered.items():
        flag = f"{name}={value}"
        out["args"].append("--" + flag)
        out["args_no_hyphens"].append(flag)
        out["args_no_equals"] += [f"--{name}", str(value)]
        out["args_append_hydra"].append("+" + flag)
        out["args_override_hydra"].append("++" + flag)
        if isinstance(value, bool):
            if value:
                out["args_no_boolean_flags"].append("--" + name)
        else:
            out["args_no_boolean_flags"].append("--" + flag)
    out["args_json"] = [json.dumps(ordered)]
    return out


def expand_envvars(element: Any, environ: Mapping[str, str]) -> Any:
    text = str(element)
    if not ENVVAR.search(text):
        return element
    return ENVVAR.sub(lambda m: environ.get(m.group(1), m.group(1)), text)


def build_argv(command: Iterable[Any] | None, program: str | None, params: Mapping[str, Any], *,
               args_json_file: str, interpreter: str = "python",
               environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv of one trial. `command` None or empty means W&B's default command."""
    environ = os.environ if environ is None else environ
    template = list(command) if command else list(DEFAULT_COMMAND)
    words = {**command_args(params), "interpreter": [interpreter], "env": ["/usr/bin/env"],
             "args_json_file": [args_json_file]}
    if program is not None:
        words["program"] = [str(program)]
    argv: list[str] = []
    for element in template:
        text = str(expand_envvars(element, environ))
        macro = MACRO.match(text)
        if macro is None:
            argv.append(text)
        elif macro.group(1) == "program" and program is None:
            raise CommandError("the command uses ${program} but the study has no `program`")
        else:
            argv += words.get(macro.group(1), [])
    if not argv:
        raise CommandError("the command is empty once its macros are expanded")
    return argv
