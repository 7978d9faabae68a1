"""``actorcore logs``: list and print the log files of the cluster's nodes, as ``ray logs``
(docs/architecture.md, "Logs"; the API is `actorcore.util.logs`).

| command | prints |
|---|---|
| ``logs`` | the log files of every node |
| ``logs cluster [GLOB] [--node-id ID]`` | the files matching GLOB; the file itself when one matches |
| ``logs actor --id ID`` (or ``--name NAME``) | the actor's stdout (``--err``: stderr) |
| ``logs worker --pid PID`` (or ``--worker-id ID``) ``[--node-id ID]`` | a worker's stdout or stderr |
| ``logs node [--node-id ID]`` | a node process's own log (the head's by default) |

``--tail N`` prints the last N lines (-1: all), ``--follow`` goes on printing what is written
until interrupted (Ctrl-C or SIGTERM end it with exit code 0). The command joins the cluster
with the cluster token of this machine (or ``$ACTORCORE_TOKEN``), as ``actorcore status`` does.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import signal
import sys

from . import common

__all__ = ["add_logs"]

DEFAULT_TAIL = 1000  # as `ray logs`


def add_logs(subparsers) -> None:
    """The ``logs`` command and its subcommands."""
    command = subparsers.add_parser(
        "logs", help="list and print the log files of the cluster's nodes, workers and actors",
        description="Without a subcommand: list the log files of every node. Worker output is kept in "
                    "worker-<worker_id>-<pid>.out/.err files in each node's log folder.")
    _add_connection_flags(command)
    command.add_argument("--json", action="store_true", help="list the files as one JSON object")
    command.set_defaults(handler=_list_all, parser=command)
    kinds = command.add_subparsers(dest="kind", metavar="KIND")

    cluster = kinds.add_parser("cluster", help="list the files matching GLOB, or print the one that matches",
                               description="List the log files whose names match GLOB on every node (or "
                                           "--node-id); print the file if exactly one matches.")
    cluster.add_argument("glob", nargs="?", default="*", metavar="GLOB", help="a file name pattern (default: *)")
    _add_node_flags(cluster)
    _add_read_flags(cluster)
    cluster.set_defaults(handler=_cluster, parser=cluster)

    actor = kinds.add_parser("actor", help="print an actor's stdout or stderr",
                             description="Print the output of the worker that hosts (or hosted) an actor.")
    which = actor.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", "-a", dest="actor_id", metavar="ID", help="the actor's id")
    which.add_argument("--name", metavar="NAME", help="the actor's name")
    actor.add_argument("--namespace", metavar="NS", help="the namespace of --name (default: the anonymous one)")
    _add_read_flags(actor, err=True)
    actor.set_defaults(handler=_actor, parser=actor)

    worker = kinds.add_parser("worker", help="print a worker process's stdout or stderr",
                              description="Print the output of a worker process, named by its pid or worker id.")
    which = worker.add_mutually_exclusive_group(required=True)
    which.add_argument("--pid", type=_pid, metavar="PID", help="the worker's pid")
    which.add_argument("--worker-id", metavar="ID", help="the worker's id (its get_worker_id())")
    _add_node_flags(worker)
    _add_read_flags(worker, err=True)
    worker.set_defaults(handler=_worker, parser=worker)

    node = kinds.add_parser("node", help="print a node process's own log",
                            description="Print the log of a node process (the head's unless --node-id).")
    _add_node_flags(node)
    _add_read_flags(node)
    node.set_defaults(handler=_node, parser=node)


def _add_connection_flags(command: argparse.ArgumentParser, inherited: bool = False) -> None:
    # A subcommand's flags default to what `actorcore logs --address ...` before it set.
    command.add_argument("--address", type=common.endpoints, metavar="HOST:PORT",
                         default=argparse.SUPPRESS if inherited else None,
                         help="the cluster's etcd (default: the cluster started or joined on this machine)")
    command.add_argument("--timeout", type=_positive_int, default=argparse.SUPPRESS if inherited else 30,
                         metavar="SECONDS", help="how long a node may take to answer (default: 30)")


def _add_node_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--node-id", "-id", metavar="ID", help="the node (its id, or a unique prefix of it)")
    command.add_argument("--node-ip", "-ip", metavar="IP", type=common.ip, help="the node at this IP")


def _add_read_flags(command: argparse.ArgumentParser, err: bool = False) -> None:
    _add_connection_flags(command, inherited=True)
    command.add_argument("--tail", type=_tail, default=DEFAULT_TAIL, metavar="N",
                         help=f"print the last N lines (-1: the whole file; default: {DEFAULT_TAIL})")
    command.add_argument("--follow", "-f", action="store_true",
                         help="go on printing what is written, until interrupted")
    command.add_argument("--interval", type=float, default=0.5, metavar="SECONDS",
                         help="how often --follow looks for more (default: 0.5)")
    if err:
        command.add_argument("--err", action="store_true", help="print stderr instead of stdout")


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a process id (a whole number >= 1), got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _tail(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < -1:
        raise argparse.ArgumentTypeError(f"expected a number of lines >= 0, or -1 for the whole file; got {text!r}")
    return value


# -- the handlers -----------------------------------------------------------------------------


def _connected(args: argparse.Namespace, action) -> int:
    """Run `action(connection)` on a `LogConnection`; report what fails as ``actorcore logs: ...``."""
    from .. import cluster_files as files
    from ..kernel.errors import KernelError
    from ..util.logs import LogConnection, LogError

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with LogConnection.open(args.address) as connection:
            return action(connection)
    except KeyboardInterrupt:
        return 0
    except (LogError, ConnectionError, files.TokenNotFoundError, files.UnsafeFileError, ValueError) as error:
        return common.fail("logs", str(error))
    except (OSError, TimeoutError, KernelError) as error:
        return common.fail("logs", f"the cluster did not answer: {error}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _list_all(args: argparse.Namespace) -> int:
    def action(connection) -> int:
        listing = _listings(connection, None, None, "*", args.timeout)
        _print_listing(listing, args.json)
        return 0

    return _connected(args, action)


def _listings(connection, node_id, node_ip, glob, timeout) -> dict[str, dict]:
    from ..kernel.errors import KernelError
    from ..util.logs import LogError

    nodes = [connection.node(node_id, node_ip)] if node_id or node_ip else connection.nodes
    listing = {}
    for node in sorted(nodes, key=lambda n: (not n.get("head"), n["node_id"])):
        entry = listing[node["node_id"]] = {"address": node.get("address"), "head": bool(node.get("head")),
                                            "files": []}
        try:
            entry["files"] = connection.list_files(node, glob, timeout)
        except (OSError, TimeoutError, LogError, KernelError) as error:  # one node's silence is not all
            entry["error"] = f"the node did not answer: {error}"
    return listing


def _print_listing(listing: dict[str, dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    for node_id, entry in listing.items():
        role = "head" if entry["head"] else "worker node"
        print(f"Node {node_id} ({role}, {entry['address']}):")
        if entry.get("error"):
            print(f"  ({entry['error']})")
        elif not entry["files"]:
            print("  (no log files)")
        width = max((len(f["name"]) for f in entry["files"]), default=0)
        for file in entry["files"]:
            print(f"  {file['name']:<{width}}  {_size(file['size'])}")


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _cluster(args: argparse.Namespace) -> int:
    def action(connection) -> int:
        listing = _listings(connection, args.node_id, args.node_ip, args.glob, args.timeout)
        matches = [(node_id, f["name"]) for node_id, entry in listing.items() for f in entry["files"]]
        if len(matches) == 1 and (fnmatch.filter([matches[0][1]], args.glob)):
            node_id, name = matches[0]
            return _print_log(args, connection=connection, node_id=node_id, filename=name)
        if not matches:
            return common.fail("logs", f"no log file matches {args.glob!r}")
        _print_listing(listing, False)
        return 0

    return _connected(args, action)


def _actor(args: argparse.Namespace) -> int:
    return _print_log(args, actor_id=args.actor_id, actor_name=args.name, namespace=args.namespace,
                      suffix="err" if args.err else "out")


def _worker(args: argparse.Namespace) -> int:
    return _print_log(args, node_id=args.node_id, node_ip=args.node_ip, pid=args.pid, worker_id=args.worker_id,
                      suffix="err" if args.err else "out", search_nodes=not (args.node_id or args.node_ip))


def _node(args: argparse.Namespace) -> int:
    def action(connection) -> int:
        node = connection.node(args.node_id, args.node_ip)
        return _print_log(args, connection=connection, node_id=node["node_id"],
                          filename=f"node-{node['node_id']}.log")

    return _connected(args, action)


def _print_log(args: argparse.Namespace, search_nodes: bool = False, connection=None, **query) -> int:
    from ..util.logs import get_log

    def action(connection) -> int:
        if search_nodes:
            query["node_id"] = _node_with_worker(connection, query, args.timeout)
        for chunk in get_log(tail=args.tail, follow=args.follow, timeout=args.timeout, errors="replace",
                             _interval=args.interval, _connection=connection, **query):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return 0

    return action(connection) if connection is not None else _connected(args, action)


def _node_with_worker(connection, query: dict, timeout: float) -> str:
    """The one node that has files of the worker `query` names (a pid may be taken on several machines)."""
    from ..util.logs import LogError

    pattern = (f"worker-*-{query['pid']}.*" if query.get("pid") is not None
               else f"worker-{query['worker_id']}-*")
    found = [node["node_id"] for node in connection.nodes if connection.list_files(node, pattern, timeout)]
    if not found:
        which = f"pid {query['pid']}" if query.get("pid") is not None else f"worker id {query['worker_id']!r}"
        raise LogError(f"no node has log files of a worker with {which}")
    if len(found) > 1:
        raise LogError(f"workers with that pid ran on several nodes ({', '.join(found)}): pass --node-id")
    return found[0]
