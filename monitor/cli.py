"""The ``runaway-monitor`` command line: one module per subcommand in ``monitor.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed args and returning an exit status.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from monitor.cli_settings import SettingsError

COMMANDS = (
    "demo",
    "worker",
    "detector",
    "status",
    "run",
    "replay",
    "evaluate",
    "plot",
    "serve",
    "experiment",
    "report",
    "autopsy",
    "export-dataset",
    "propensity",
    "mirror",
    "finetune",
    "sample-efficiency",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runaway-monitor",
        description="Run and watch LLM agents for runaway single-objective behaviour.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"monitor.commands.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:  # a flag or RUNAWAY_ variable the settings model refused
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
