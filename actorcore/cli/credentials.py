"""``actorcore credentials new``: make the credentials of a new cluster before any of its nodes
runs (docs/architecture.md, "Security model" and "Deploying on Kubernetes").

`actorcore start --head` makes a cluster's credentials itself. Where they must exist first (a
Kubernetes Secret that the head's and the workers' pods mount), this command makes them: a
fresh token, CA and certificate (`credentials.make_credentials`), for the cluster whose etcd
will be at ``--address`` (e.g. the head's Service, ``actorcore-head:6380``); then
``actorcore start --head --credentials FILE`` starts the head of that cluster and
``actorcore start --address HOST:PORT --credentials FILE`` joins it. The cluster's processes
check the cluster's name in each other's certificate, not the address they dial, so the pods'
IPs need not be known; ``--host`` adds names to the certificate for other etcd clients
(etcdctl).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import cluster_files as files
from ..credentials import make_credentials
from . import common

__all__ = ["add_credentials"]


def add_credentials(subparsers) -> None:
    """The ``credentials`` command group (``credentials new``)."""
    command = subparsers.add_parser(
        "credentials", help="make the credentials of a new cluster (for a Kubernetes Secret)",
        description="Commands about a cluster's credentials file (its token, CA and certificate).")
    actions = command.add_subparsers(dest="action", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new", help="make the credentials of a new cluster",
        description="Make the credentials of a new cluster (a fresh token, CA and certificate) before its "
                    "nodes run; start its head with `actorcore start --head --credentials FILE` and join "
                    "nodes with `actorcore start --address HOST:PORT --credentials FILE`.")
    new.add_argument("--address", type=common.endpoints, metavar="HOST:PORT", required=True,
                     help="where the cluster's etcd will be reached, e.g. the head's Service "
                          f"(actorcore-head:{common.DEFAULT_PORT})")
    new.add_argument("--out", metavar="FILE",
                     help="write them to FILE (mode 0600; an existing file is not replaced); default: print them")
    new.add_argument("--host", action="append", default=[], metavar="NAME",
                     help="another name or IP for the certificate (repeatable), for etcd clients other than "
                          "actorcore's (which check the cluster's name, whatever address they dial)")
    new.add_argument("--cluster", default="default", metavar="NAME",
                     help="the cluster's name, the prefix of its keys in etcd (default: default)")
    new.add_argument("--external-etcd", action="store_true",
                     help="the head will use an existing etcd (start --head --etcd ...), which has credentials "
                          "of its own")
    new.set_defaults(handler=_new, parser=new)


def _new(args: argparse.Namespace) -> int:
    if not args.cluster.replace("-", "").replace("_", "").isalnum():
        args.parser.error(f"argument --cluster: letters, digits, '-' and '_' only, got {args.cluster!r}")
    hosts = [item.rpartition(":")[0].strip("[]") for item in args.address.split(",")] + args.host
    credentials = make_credentials(args.cluster, args.address, files.new_token(), hosts=hosts,
                                   etcd_tls=not args.external_etcd)
    if args.out is None:
        sys.stdout.write(credentials.to_json() + "\n")
        return 0
    path = os.path.abspath(os.path.expanduser(args.out))
    try:  # never replaced: a cluster's credentials lost by mistake cannot be made again
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return common.fail("credentials new", f"{path} exists: remove it first, or choose another --out")
    except OSError as e:
        return common.fail("credentials new", f"cannot write {path}: {e.strerror or e}")
    with os.fdopen(fd, "w") as f:
        f.write(credentials.to_json() + "\n")
    print(f"Wrote the credentials of a new cluster (etcd at {args.address}) to {path} (mode 0600: keep it secret).\n"
          "Start its head with:\n"
          f"    actorcore start --head --credentials {path}\n"
          "and join nodes with:\n"
          f"    actorcore start --address {args.address} --credentials {path}")
    return 0
