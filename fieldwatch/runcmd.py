"""`fieldwatch run --config FILE`: the daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from fieldwatch.config import load_config
from fieldwatch.daemon import EXIT_RUNTIME, Daemon
from fieldwatch.errors import ConfigError, FieldwatchError

__all__ = ["add_run", "cmd_run", "run_config"]

logger = logging.getLogger(__name__)


def add_run(sub: Any) -> None:
    """Declare `run`."""
    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("--config", "-c", required=True, metavar="FILE", help="the fieldwatch.yaml")


def run_config(config: Any, *, on_started: Any = None) -> int:
    """Start a Daemon on a loaded Config and block until it stops; the exit code."""
    daemon = Daemon(config)
    try:
        daemon.start()
    except FieldwatchError as err:
        logger.critical("start-up failed: %s", err)
        print(f"fieldwatch: start-up failed: {err}", file=sys.stderr)
        daemon.stop()
        return EXIT_RUNTIME
    except Exception as err:  # start-up boundary: report clearly, exit 1
        logger.critical("start-up failed: %s: %s", type(err).__name__, err, exc_info=True)
        print(f"fieldwatch: start-up failed: {type(err).__name__}: {err}", file=sys.stderr)
        daemon.stop()
        return EXIT_RUNTIME
    if on_started is not None:
        on_started(daemon)
    return daemon.run()


def cmd_run(args: argparse.Namespace) -> int:
    """Load the config (exit 2 with every error) and run the daemon."""
    try:
        config = load_config(args.config)
    except ConfigError as err:
        for line in err.errors:
            print(line, file=sys.stderr)
        return 2
    return run_config(config)
