"""``actorcore list|get|summary|memory``: the state API on the command line (`actorcore.util.state`,
docs/architecture.md "Task events and the state API"), as Ray's ``ray list`` etc.

- ``list KIND [--filter K=V | K!=V ...] [--limit N] [--detail] [--format table|json|yaml]``
- ``get KIND ID [--format yaml|json]``
- ``summary tasks|actors|objects [--format table|json|yaml]``
- ``memory [--group-by NODE_ADDRESS|STACK_TRACE] [--sort-by OBJECT_SIZE|PID|REFERENCE_TYPE]``:
  who holds which references, by node, with the bytes they keep and the object stores' totals.

Every command takes ``--address HOST:PORT`` (the cluster's etcd; default: the cluster of this
machine) and ``--timeout``. A filter naming an unknown field, or written wrong, is a usage
error (exit code 2); a cluster that cannot be reached or answers only in part exits with 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from . import common

__all__ = ["add_state_commands"]

#: the kinds `list` and `get` take (Ray's spelling), and their state API record names
_KINDS = ("actors", "tasks", "objects", "nodes", "workers", "placement-groups", "jobs")
_GET_KINDS = ("actors", "tasks", "objects", "nodes", "workers", "placement-groups")
_SUMMARIES = ("tasks", "actors", "objects")
_MIB = 1024 * 1024


def _positive(text: str) -> int:
    """An integer >= 1 (``--limit``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    """A number of seconds > 0 (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _filter(text: str) -> tuple[str, str, str]:
    """``KEY=VALUE`` or ``KEY!=VALUE``."""
    for predicate in ("!=", "="):
        key, found, value = text.partition(predicate)
        if found and key.strip():
            return key.strip(), predicate, value.strip()
    raise argparse.ArgumentTypeError(f"expected KEY=VALUE or KEY!=VALUE, got {text!r}")


def _common_flags(command: argparse.ArgumentParser, formats: tuple[str, ...], default: str) -> None:
    command.add_argument("--address", type=common.endpoints, metavar="HOST:PORT",
                         help="the cluster's etcd (default: the cluster started or joined on this machine)")
    command.add_argument("--format", choices=formats, default=default, help=f"output format (default: {default})")
    command.add_argument("--timeout", type=_seconds, default=30, metavar="SECONDS",
                         help="how long a node or process may take to answer (default: 30)")


def add_state_commands(subparsers) -> None:
    """The ``list``, ``get``, ``summary`` and ``memory`` commands."""
    listing = subparsers.add_parser(
        "list", help="list the cluster's actors, tasks, objects, nodes, workers, placement groups or jobs",
        description="List what the cluster runs and holds, as Ray's `ray list`.")
    listing.add_argument("kind", choices=_KINDS, metavar="KIND", help=" | ".join(_KINDS))
    listing.add_argument("--filter", "-f", type=_filter, action="append", default=[], metavar="KEY=VALUE",
                         help="keep the records whose KEY is (KEY=VALUE) or is not (KEY!=VALUE) VALUE, "
                              "compared without case; repeat to combine")
    listing.add_argument("--limit", type=_positive, default=100, metavar="N", help="at most N records (default: 100)")
    listing.add_argument("--detail", action="store_true", help="show every field")
    _common_flags(listing, ("table", "json", "yaml"), "table")
    listing.set_defaults(handler=_list, parser=listing)

    getting = subparsers.add_parser("get", help="show one actor, task, object, node, worker or placement group",
                                    description="Show every field of one record, as Ray's `ray get`.")
    getting.add_argument("kind", choices=_GET_KINDS, metavar="KIND", help=" | ".join(_GET_KINDS))
    getting.add_argument("id", metavar="ID")
    _common_flags(getting, ("yaml", "json"), "yaml")
    getting.set_defaults(handler=_get, parser=getting)

    summary = subparsers.add_parser("summary", help="count tasks, actors or objects by function, class or state",
                                    description="Count the cluster's tasks, actors or objects, as Ray's `ray summary`.")
    summary.add_argument("kind", choices=_SUMMARIES, metavar="KIND", help=" | ".join(_SUMMARIES))
    _common_flags(summary, ("table", "json", "yaml"), "table")
    summary.set_defaults(handler=_summary, parser=summary)

    memory = subparsers.add_parser(
        "memory", help="show which processes hold which object references, by node",
        description="Show the object references the drivers and workers hold, grouped by node, with the "
                    "bytes they keep and the object stores' totals, as Ray's `ray memory`.")
    memory.add_argument("--group-by", choices=("NODE_ADDRESS", "STACK_TRACE"), default="NODE_ADDRESS",
                        help="group the references by node (default) or by call site")
    memory.add_argument("--sort-by", choices=("OBJECT_SIZE", "PID", "REFERENCE_TYPE"), default="OBJECT_SIZE",
                        help="order of the references in a group (default: OBJECT_SIZE, largest first)")
    memory.add_argument("--stats-only", action="store_true", help="show the object stores' totals only")
    _common_flags(memory, ("table", "json"), "table")
    memory.set_defaults(handler=_memory, parser=memory)


# -- running a query --------------------------------------------------------------------------


def _run(command: str, call) -> Any:
    """`call()`, or the exit code 1 of a reported failure."""
    from ..gcs.etcd_client import EtcdAuthError, EtcdUnavailableError
    from ..gcs.sealed import TamperedRecordError
    from ..util.state import RayStateApiException

    try:
        return call()
    except EtcdUnavailableError as error:
        return common.fail(command, f"cannot reach the cluster's etcd ({common.last_error(error)}); "
                                    "is the cluster running?")
    except (ConnectionError, RayStateApiException, EtcdAuthError, OSError, TamperedRecordError,
            TimeoutError) as error:
        return common.fail(command, str(error) or repr(error))


_LISTERS = {"actors": "list_actors", "tasks": "list_tasks", "objects": "list_objects", "nodes": "list_nodes",
            "workers": "list_workers", "placement-groups": "list_placement_groups", "jobs": "list_jobs"}


def _record_type(kind: str) -> type:
    from ..util.state import common as records

    return {"actors": records.ActorState, "tasks": records.TaskState, "objects": records.ObjectState,
            "nodes": records.NodeState, "workers": records.WorkerState,
            "placement-groups": records.PlacementGroupState, "jobs": records.JobState}[kind]


def _list(args: argparse.Namespace) -> int:
    from ..util import state
    from ..util.state.common import check_filters, columns

    record_type = _record_type(args.kind)
    try:
        check_filters(record_type, args.filter)
    except ValueError as error:
        args.parser.error(f"argument --filter: {error}")
    lister = getattr(state, _LISTERS[args.kind])
    records = _run(f"list {args.kind}", lambda: lister(address=args.address, filters=args.filter, limit=args.limit,
                                                       timeout=args.timeout, detail=args.detail))
    if isinstance(records, int):
        return records
    rows = [_plain(record) for record in records]
    if args.format != "table":
        print(_dump(rows, args.format))
        return 0
    shown = columns(record_type, args.detail)
    print(f"======== List: {_now()} ========")
    print(f"Total: {len(rows)}" + (f" (limit {args.limit}: there may be more)" if len(rows) == args.limit else ""))
    if rows:
        print()
        print(_table([name.upper() for name in shown], [[_cell(row.get(name)) for name in shown] for row in rows]))
    return 0


def _get(args: argparse.Namespace) -> int:
    from ..util import state

    getter = {"actors": state.get_actor, "tasks": state.get_task, "objects": state.get_objects,
              "nodes": state.get_node, "workers": state.get_worker,
              "placement-groups": state.get_placement_group}[args.kind]
    found = _run(f"get {args.kind}", lambda: getter(args.id, address=args.address, timeout=args.timeout))
    if isinstance(found, int):
        return found
    if not found:
        return common.fail(f"get {args.kind}", f"no {args.kind.rstrip('s').replace('-', ' ')} with id {args.id!r}")
    print(_dump([_plain(r) for r in found] if isinstance(found, list) else _plain(found), args.format))
    return 0


def _summary(args: argparse.Namespace) -> int:
    from ..util import state

    summarize = {"tasks": state.summarize_tasks, "actors": state.summarize_actors,
                 "objects": state.summarize_objects}[args.kind]
    answer = _run(f"summary {args.kind}", lambda: summarize(address=args.address, timeout=args.timeout))
    if isinstance(answer, int):
        return answer
    if args.format != "table":
        print(_dump(answer, args.format))
        return 0
    cluster = answer["cluster"]
    print(f"======== {args.kind.capitalize()} Summary: {_now()} ========")
    for name in sorted(k for k in cluster if k.startswith("total")):
        print(f"{name}: {cluster[name]:.2f}" if isinstance(cluster[name], float) else f"{name}: {cluster[name]}")
    groups = list(cluster["summary"].values())
    if groups:
        keys = [k for k in groups[0] if k not in ("task_attempt_number_counts",)]
        print(f"\nTable (by {cluster['summary_by']}):")
        print(_table([k.upper() for k in keys], [[_counts(group[k]) for k in keys] for group in groups]))
    return 0


def _memory(args: argparse.Namespace) -> int:
    from ..util.state.api import query
    from ..util.state.client import raise_if_missing

    async def gather(client):
        (objects, missing), usage, nodes = (await client.objects(args.timeout), await client.store_usage(args.timeout),
                                            await client.nodes(args.timeout))
        raise_if_missing(missing, True)
        return objects, usage, nodes

    answer = _run("memory", lambda: query(gather, args.address, args.timeout))
    if isinstance(answer, int):
        return answer
    objects, usage, nodes = answer
    report = _memory_report(objects, usage, nodes, args.group_by, args.sort_by)
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_format_memory(report, args.group_by, args.sort_by, args.stats_only))
    return 0


# -- ray memory --------------------------------------------------------------------------------------


def _memory_report(objects: list[dict], usage: dict, nodes: list[dict], group_by: str, sort_by: str) -> dict:
    address = {node["node_id"]: node["node_ip"] for node in nodes}
    order = {"OBJECT_SIZE": lambda o: -(o.get("object_size") or 0), "PID": lambda o: o.get("pid") or 0,
             "REFERENCE_TYPE": lambda o: str(o.get("reference_type"))}[sort_by]
    groups: dict[str, dict] = {}
    for obj in sorted(objects, key=order):
        key = obj.get("owner_node_id") if group_by == "NODE_ADDRESS" else obj.get("call_site") or "disabled"
        group = groups.setdefault(key, {"group": key, "address": address.get(key), "references": [],
                                        "summary": {"bytes": 0, "LOCAL_REFERENCE": 0, "PINNED_IN_MEMORY": 0,
                                                    "USED_BY_PENDING_TASK": 0, "CAPTURED_IN_OBJECT": 0}})
        group["references"].append({k: obj.get(k) for k in ("ip", "pid", "type", "call_site", "task_status",
                                                             "attempt_number", "object_size", "reference_type",
                                                             "object_id", "node_id", "in_shared_memory",
                                                             "spilled")})
        group["summary"]["bytes"] += obj.get("object_size") or 0
        kind = obj.get("reference_type")
        group["summary"][kind] = group["summary"].get(kind, 0) + 1
    alive = [node for node in nodes if node["state"] == "ALIVE"]
    stores = {node["node_id"]: {name: (usage.get(node["node_id"]) or {}).get(name, 0)
                                for name in ("objects", "object_bytes", "spilled_objects", "spilled_bytes")}
              for node in alive}
    for node in alive:  # a node publishes its store's use once it holds something; its capacity is in its record
        stores[node["node_id"]]["object_store_capacity"] = int(node["resources_total"].get("object_store_memory", 0))
    totals = {name: sum(store[name] for store in stores.values())
              for name in ("objects", "object_bytes", "object_store_capacity", "spilled_objects", "spilled_bytes")}
    return {"groups": list(groups.values()), "stores": stores, "totals": totals,
            "references": len(objects), "bytes": sum(o.get("object_size") or 0 for o in objects)}


def _format_memory(report: dict, group_by: str, sort_by: str, stats_only: bool) -> str:
    lines = [f"======== Object references status: {_now()} ========",
             f"Grouped by {group_by.lower().replace('_', ' ')}; sorted by {sort_by.lower().replace('_', ' ')}"]
    if not stats_only:
        for group in report["groups"]:
            title = (f"node {group['group']} ({group['address']})" if group_by == "NODE_ADDRESS"
                     else f"call site {group['group']}")
            summary = group["summary"]
            lines += ["", f"--- Summary for {title} ---",
                      _table(["MEM USED BY OBJECTS", "LOCAL REFERENCES", "PINNED", "USED BY TASK",
                              "CAPTURED IN OBJECTS"],
                             [[f"{summary['bytes']} B", f"{summary['LOCAL_REFERENCE']}",
                               f"{summary['PINNED_IN_MEMORY']}", f"{summary['USED_BY_PENDING_TASK']}",
                               f"{summary['CAPTURED_IN_OBJECT']}"]]),
                      f"--- Object references for {title} ---",
                      _table(["IP ADDRESS", "PID", "TYPE", "CALL SITE", "STATUS", "SIZE", "REFERENCE TYPE",
                              "SPILLED", "OBJECT REF"],
                             [[_cell(r["ip"]), _cell(r["pid"]), _cell(r["type"]), _cell(r["call_site"]),
                               _cell(r["task_status"]), _size(r["object_size"]), _cell(r["reference_type"]),
                               "yes" if r["spilled"] else "", _cell(r["object_id"])] for r in group["references"]])]
        if not report["groups"]:
            lines += ["", "No object references are held."]
        lines.append("\nCall sites are not recorded: every reference's call site is 'disabled'.")
    totals = report["totals"]
    capacity = totals["object_store_capacity"]
    lines += ["", "--- Aggregate object store stats across all nodes ---",
              (f"Object store memory used: {totals['object_bytes'] / _MIB:.1f} MiB of {capacity / _MIB:.0f} MiB "
               f"({100 * totals['object_bytes'] / capacity if capacity else 0:.1f}% full), {totals['objects']} "
               f"objects; spilled to disk: {totals['spilled_objects']} objects, "
               f"{totals['spilled_bytes'] / _MIB:.1f} MiB"),
              (f"References held by drivers and workers: {report['references']} "
               f"({report['bytes'] / _MIB:.2f} MiB serialized)")]
    return "\n".join(lines)


# -- formatting --------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _plain(record: Any) -> dict:
    from dataclasses import asdict

    return asdict(record)


def _dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, indent=2, default=str)
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(value, default=str)), sort_keys=False, width=120).rstrip()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _counts(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return f"{value:.2f}" if isinstance(value, float) else _cell(value)


def _size(value: Any) -> str:
    return "?" if value is None else f"{value} B"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])
