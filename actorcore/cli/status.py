"""``actorcore status``: print what the cluster's etcd says about it (`actorcore.status`)."""

from __future__ import annotations

import argparse
import json

from . import common

__all__ = ["add_status"]


def add_status(subparsers) -> None:
    """The ``status`` command."""
    command = subparsers.add_parser(
        "status", help="show the cluster's nodes, resources and actors",
        description="Show what the cluster's etcd says: the nodes (alive and dead) with their resources "
                    "and object stores, the actors by state, and the totals.")
    common.add_query_flags(command, "print one JSON object")
    common.add_etcd_auth_flags(command)
    command.set_defaults(handler=_status, parser=command)


def _status(args: argparse.Namespace) -> int:
    from ..status import format_status, gather_status

    status = common.ask_cluster("status", args.address, common.etcd_auth(args, args.parser), gather_status)
    if isinstance(status, int):
        return status
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0
