"""``actorcore health``: whether the nodes started on this machine are up, as an exit code: the
check of a container's HEALTHCHECK and a Kubernetes pod's probes (docs/architecture.md,
"Deploying on Kubernetes").

- ``actorcore health --live``: every node `actorcore start` started here still runs (its
  process, from the node files; no network). A liveness probe: an etcd outage must not
  restart every node.
- ``actorcore health``: also, each of them is registered in the cluster's etcd (its record
  ``nodes/<node_id>``, which its lease keeps): the node is a working member. A readiness probe.

Exit code 0 when healthy, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import argparse

from .. import cluster_files as files
from . import common
from .local_nodes import node_running

__all__ = ["add_health"]


def add_health(subparsers) -> None:
    """The ``health`` command."""
    command = subparsers.add_parser(
        "health", help="exit 0 if the nodes started on this machine are up (for probes)",
        description="Exit with code 0 if every node started on this machine runs and is registered in the "
                    "cluster's etcd (with --live: runs), else 1 with the reason: a container's health check.")
    command.add_argument("--live", action="store_true",
                         help="only check that the nodes' processes run (no etcd): a liveness probe")
    command.set_defaults(handler=_health, parser=command)


def _health(args: argparse.Namespace) -> int:
    records = files.node_files()
    if not records:
        return common.fail("health", "no node was started on this machine")
    stopped = [r["node_id"] for r in records if not node_running(r)]
    if stopped:
        return common.fail("health", f"node(s) {', '.join(stopped)} no longer run")
    if args.live:
        print(f"ok: {len(records)} node(s) running")
        return 0
    missing = common.ask_cluster("health", None, None, lambda client, cluster: _unregistered(client, cluster, records))
    if isinstance(missing, int):
        return missing
    if missing:
        return common.fail("health", f"node(s) {', '.join(missing)} run but are not registered in etcd")
    print(f"ok: {len(records)} node(s) running and registered")
    return 0


async def _unregistered(client, cluster: str, records: list[dict]) -> list[str]:
    from ..gcs import schema

    return [r["node_id"] for r in records if await client.get(schema.key(cluster, "nodes", r["node_id"])) is None]
