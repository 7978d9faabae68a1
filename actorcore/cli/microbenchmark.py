"""``actorcore microbenchmark``: Ray's microbenchmark workloads (benchmarks/microbenchmark.py,
shipped with the source tree) under actorcore and under Ray, side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_microbenchmark"]


def add_microbenchmark(subparsers) -> None:
    """The ``microbenchmark`` command."""
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
    command.add_argument("--spill", action="store_true",
                         help="run the spill benchmark instead (benchmarks/spill.py)")
    command.add_argument("--cluster", action="store_true",
                         help="run the cluster benchmarks instead (benchmarks/cluster.py: cross-node "
                              "transfer and round trip, 3 nodes vs 1), against Ray's cluster_utils.Cluster")
    command.add_argument("--timeout", type=float, default=None,
                         help="seconds without a result before a workload counts as hung")
    command.set_defaults(handler=_microbenchmark)


def _microbenchmark(args: argparse.Namespace) -> int:
    # The benchmarks package sits at the repository root, next to the actorcore package.
    root = str(Path(__file__).resolve().parents[2])
    if not (Path(root) / "benchmarks" / "microbenchmark.py").exists():
        print(f"actorcore microbenchmark: benchmarks/microbenchmark.py not found under {root} "
              "(it ships with the source tree, not the wheel)", file=sys.stderr)
        return 2
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import microbenchmark

    return microbenchmark.run(args)
