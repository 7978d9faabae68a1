"""``actorcore stop``: stop the nodes started on this machine, the other nodes first, then
the heads (which may run the etcd the others use); SIGTERM, then SIGKILL after
`STOP_TIMEOUT` seconds (at once with ``--force``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .. import cluster_files as files
from . import progress
from .local_nodes import forget_node, kill, node_running, wait_gone

__all__ = ["STOP_TIMEOUT", "add_stop"]

STOP_TIMEOUT = 15.0  # seconds `stop` waits after SIGTERM before SIGKILL


def add_stop(subparsers) -> None:
    """The ``stop`` command."""
    command = subparsers.add_parser(
        "stop", help="stop the actorcore nodes started on this machine",
        description="Stop the nodes `actorcore start` started on this machine: the other nodes first, "
                    f"then the heads; SIGTERM, and SIGKILL after {STOP_TIMEOUT:g} s.")
    command.add_argument("--force", action="store_true", help="SIGKILL at once")
    command.set_defaults(handler=_stop, parser=command)


def _stop(args: argparse.Namespace) -> int:
    records = files.node_files()
    if not records:
        files.remove_cluster_info()
        print("no actorcore nodes were running on this machine")
        return 0
    stopped = 0
    for heads in (False, True):  # the other nodes first: the heads may run the etcd they use
        group = [r for r in records if bool(r.get("head")) == heads]
        running = [r for r in group if node_running(r)]
        for record in list(running):
            try:
                if args.force:
                    kill(record["pid"])
                else:
                    os.kill(record["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            except PermissionError:
                print(f"cannot signal node {record['node_id']} (pid {record['pid']}): it belongs to another "
                      "user; stop it as that user", file=sys.stderr)
                running.remove(record)
                group.remove(record)
        with progress.waiting(f"actorcore stop: stopping the {'head ' if heads else ''}nodes",
                              count=lambda nodes=running: (sum(not node_running(r) for r in nodes), len(nodes)),
                              enabled=bool(running)):
            stubborn = wait_gone(running, 5.0 if args.force else STOP_TIMEOUT)
        for record in stubborn:
            kill(record["pid"])
        still = {r["node_id"] for r in wait_gone(stubborn, 5.0)}
        for record in group:
            removed = forget_node(record)
            role = "head node" if heads else "node"
            if record not in running:
                what = "was not running"
            elif record["node_id"] in still:
                what = "did not exit after SIGKILL"
            elif args.force or record in stubborn:
                what = "killed (SIGKILL)" if args.force else f"killed (SIGKILL) after {STOP_TIMEOUT:g} s"
            else:
                what = "stopped"
            extra = f"; removed {removed} shared-memory segment(s) it left" if removed else ""
            print(f"{role} {record['node_id']} (pid {record.get('pid')}): {what}{extra}")
            stopped += record in running
    if not stopped:
        print("no actorcore nodes were running on this machine")
    return 0
