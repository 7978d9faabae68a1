"""The `actorcore` command line: `actorcore microbenchmark` (later issues add start, stop,
status, supervise as subcommands of this parser)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorcore",
        description="actorcore: Ray Core's API on an actor kernel with supervision trees and etcd.",
    )
    parser.add_argument("--version", action="version", version=f"actorcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_microbenchmark(subparsers)
    return parser


def _add_microbenchmark(subparsers) -> None:
    command = subparsers.add_parser(
        "microbenchmark",
        help="Ray's `ray microbenchmark` workloads (and a few more) under actorcore and under Ray",
        description="Run benchmarks/microbenchmark.py: Ray's microbenchmark workloads, init time, a "
                    "100 MB zero-copy get and a 2M-word MapReduce under actorcore, then under Ray "
                    "(another virtualenv's python), and print both with ratios (> 1: actorcore better).",
    )
    command.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    command.add_argument("--quick", action="store_true", help="short runs, for smoke tests")
    command.add_argument("--ray-python", metavar="PATH",
                         help="python of a virtualenv with Ray (default: /tmp/rayvenv/bin/python if it exists)")
    command.add_argument("--no-ray", action="store_true", help="run actorcore only")
    command.add_argument("--timeout", type=float, default=None,
                         help="seconds without a result before a workload counts as hung")
    command.set_defaults(handler=_microbenchmark)


def _microbenchmark(args: argparse.Namespace) -> int:
    # The benchmarks package sits at the repository root, next to the actorcore package.
    root = str(Path(__file__).resolve().parents[1])
    if not (Path(root) / "benchmarks" / "microbenchmark.py").exists():
        print(f"actorcore microbenchmark: benchmarks/microbenchmark.py not found under {root} "
              "(it ships with the source tree, not the wheel)", file=sys.stderr)
        return 2
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import microbenchmark

    return microbenchmark.run(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = getattr(args, "handler", None)
    return handler(args) if handler is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
