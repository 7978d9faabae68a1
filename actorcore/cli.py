"""The `actorcore` command line (a skeleton: later issues add start, stop, status, supervise,
microbenchmark as subcommands of this parser)."""

from __future__ import annotations

import argparse
import sys

from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorcore",
        description="actorcore: Ray Core's API on an actor kernel with supervision trees and etcd.",
    )
    parser.add_argument("--version", action="version", version=f"actorcore {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
