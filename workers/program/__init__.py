"""Running a W&B sweep's `program` as `wandb agent` does: command.py builds the argv from the
sweep's `command` and the trial's parameters, channel.py is the report socket the program talks
to, runner.py starts, supervises, stops and judges one run."""
from tuneserve_workers.program.command import DEFAULT_COMMAND, build_argv, command_args
from tuneserve_workers.program.runner import ProgramFailed, ProgramRunner, ProgramSpec

__all__ = ["DEFAULT_COMMAND", "build_argv", "command_args", "ProgramFailed", "ProgramRunner", "ProgramSpec"]
