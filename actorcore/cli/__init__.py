"""The `actorcore` command line, one module per command group.

| command | module |
|---|---|
| ``start`` (``--head`` or ``--address``) | `start` |
| ``stop`` | `stop` |
| ``status`` | `status` |
| ``health [--live]`` | `health` |
| ``credentials new`` | `credentials` |
| ``microbenchmark`` | `microbenchmark` |
| ``run SCRIPT [ARGS...]``, ``run -m MODULE [ARGS...]`` | `run` |
| ``supervise SPEC.toml``, ``supervise status``, ``supervise reload`` | `supervise` |
| ``timeline [--output FILE]`` | `timeline` |
| ``logs``, ``logs cluster|actor|worker|node`` | `logs` |
| ``list``, ``get``, ``summary``, ``memory`` | `state` |
| ``job submit|status|logs|stop|list|delete`` | `job` |

Flag names follow Ray's. Bad arguments exit with code 2 and name the flag; failures at run
time exit with code 1 (`common.fail`). Long waits show their progress on a terminal only
(`progress`). `main` is the console script's entry point.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from .credentials import add_credentials
from .health import add_health
from .job import add_job
from .logs import add_logs
from .microbenchmark import add_microbenchmark
from .run import add_run
from .start import add_start
from .state import add_state_commands
from .status import add_status
from .stop import add_stop
from .supervise import add_supervise
from .timeline import add_timeline

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every `actorcore` command."""
    parser = argparse.ArgumentParser(
        prog="actorcore",
        description="actorcore: Ray Core's API on an actor kernel with supervision trees and etcd.",
    )
    parser.add_argument("--version", action="version", version=f"actorcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_start(subparsers)
    add_stop(subparsers)
    add_status(subparsers)
    add_health(subparsers)
    add_credentials(subparsers)
    add_microbenchmark(subparsers)
    add_supervise(subparsers)
    add_run(subparsers)
    add_timeline(subparsers)
    add_logs(subparsers)
    add_state_commands(subparsers)
    add_job(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `actorcore` command in `argv` (default: ``sys.argv[1:]``); return its exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return args.handler(args)
