"""The `fieldwatch` command line (SPEC section 8).

Each subcommand is one `_add_<name>(subparsers)` that declares its arguments
and one `_cmd_<name>(args) -> int` that runs it, registered in `COMMANDS`.
Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error, 3 the root
supervisor gave up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from fieldwatch import __version__
from fieldwatch.client import CLIENT_COMMANDS
from fieldwatch.errors import ConfigError

__all__ = ["COMMANDS", "EXIT_CONFIG", "EXIT_OK", "EXIT_RUNTIME", "EXIT_SUPERVISOR", "main"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SUPERVISOR = 3

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]
"""Runs one subcommand with its parsed arguments; returns the exit code."""


def _add_check_config(sub: SubParsers) -> None:
    p = sub.add_parser("check-config", help="validate a config file and exit 0, or print every error and exit 2")
    p.add_argument("file", metavar="FILE", help="the fieldwatch.yaml to check")


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Validate FILE (and its supervision file): `ok: ...` and 0, or the errors and 2."""
    from fieldwatch.config import load_config

    try:
        config = load_config(args.file)
    except ConfigError as err:
        for line in err.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    endpoints = sum(len(site.endpoints) for site in config.sites)
    print(f"ok: {args.file} ({len(config.sites)} sites, {endpoints} endpoints)")
    return EXIT_OK


# Other subcommands go here, one `_add_x` + `_cmd_x` pair each, plus one line in
# COMMANDS: run (--config FILE), demo, status, enable SITE, disable SITE,
# logs [-f] [--level L] [--site S], events [-f]. Client commands take --url
# (default $FIELDWATCH_URL, else http://127.0.0.1:8080) and --token
# (default $FIELDWATCH_TOKEN).

def _lazy(module: str, name: str) -> Handler:
    """A handler imported on use, so `check-config` never imports the daemon."""

    def _run(args: argparse.Namespace) -> int:
        import importlib

        handler: Handler = getattr(importlib.import_module(module), name)
        return handler(args)

    return _run


def _add_run(sub: SubParsers) -> None:
    from fieldwatch.runcmd import add_run

    add_run(sub)


def _add_demo(sub: SubParsers) -> None:
    from fieldwatch.demo import add_demo

    add_demo(sub)


COMMANDS: dict[str, tuple[Callable[[SubParsers], None], Handler]] = {
    "check-config": (_add_check_config, _cmd_check_config),
    "run": (_add_run, _lazy("fieldwatch.runcmd", "cmd_run")),
    "demo": (_add_demo, _lazy("fieldwatch.demo", "cmd_demo")),
}
"""Subcommand name -> (declare its arguments, run it)."""
COMMANDS.update(CLIENT_COMMANDS)  # status, enable, disable, logs, events: clients of the HTTP API


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fieldwatch",
        description="Supervised live monitoring of field connections.",
    )
    parser.add_argument("--version", action="version", version=f"fieldwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_CONFIG
    _, handler = COMMANDS[args.command]
    return handler(args)
