"""`actorcore status`: what a cluster's etcd says about it, gathered and formatted.

`gather_status` reads the cluster's keys (gcs/schema.py) — ``config``, ``nodes/*`` (alive),
``dead/*``, ``resources/*`` (a node's available resources and object-store use), ``actors/*``,
``jobs/*`` — in five prefix reads through a `SealedEtcd` (a record whose seal fails is left out, and
logged) and returns plain data (what ``actorcore status --json`` prints);
`format_status` turns it into tables. Both are plain functions, testable without the CLI.

A live node that has not published its load yet counts as idle (available = total).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .gcs import schema

if TYPE_CHECKING:
    from .gcs import SealedEtcd

__all__ = ["format_status", "gather_status"]

JOBS_SHOWN = 20  # the newest jobs `format_status` lists
_MIB = 1024 * 1024
_GIB = 1024 * _MIB


async def gather_status(client: SealedEtcd, cluster: str = schema.DEFAULT_CLUSTER) -> dict:
    """The cluster's state as one JSON-able dict::

        {"cluster", "etcd", "config": {...},
         "nodes": [{"node_id", "address", "head", "state": "ALIVE"|"DEAD", "pid", "kernel",
                    "start_time", "died", "resources": {"total", "available"},
                    "objects", "object_bytes", "object_store_capacity", "spilled_objects",
                    "spilled_bytes", "dashboard_url"}, ...],  # alive first, then by start time
         "actors": {"PENDING": n, "ALIVE": n, "RESTARTING": n, "DEAD": n, ...},
         "jobs": [{"submission_id", "status", "entrypoint", "start_time", "end_time"}, ...],  # oldest first
         "resources": {"total": {...}, "available": {...}},  # over the alive nodes
         "objects": {"count": n, "bytes": b, "capacity": c, "spilled_count": n, "spilled_bytes": b}}
    """
    prefix = schema.prefix(cluster)
    config = schema.ClusterConfig.from_json(await client.get(schema.key(cluster, "config")))
    alive = _records(await client.get_prefix(prefix + "nodes/"))
    dead = _records(await client.get_prefix(prefix + "dead/"))
    loads = _records(await client.get_prefix(prefix + "resources/"))
    actors = await client.get_prefix(prefix + "actors/")
    jobs = sorted(_records(await client.get_prefix(prefix + "jobs/")).values(),
                  key=lambda job: (job.get("start_time") or 0, str(job.get("submission_id"))))

    nodes = [_node(record, "ALIVE", loads.get(node_id)) for node_id, record in alive.items()]
    nodes += [_node(record, "DEAD", None) for node_id, record in dead.items() if node_id not in alive]
    nodes.sort(key=lambda n: (n["state"] != "ALIVE", not n["head"], n.get("start_time") or 0, n["node_id"]))

    total: dict[str, float] = {}
    available: dict[str, float] = {}
    objects = object_bytes = capacity = spilled = spilled_bytes = 0
    for node in nodes:
        if node["state"] != "ALIVE":
            continue
        for name, quantity in node["resources"]["total"].items():
            total[name] = total.get(name, 0.0) + quantity
        for name, quantity in node["resources"]["available"].items():
            available[name] = available.get(name, 0.0) + quantity
        objects += node["objects"]
        object_bytes += node["object_bytes"]
        capacity += node["object_store_capacity"]
        spilled += node["spilled_objects"]
        spilled_bytes += node["spilled_bytes"]

    return {
        "cluster": cluster,
        "etcd": ",".join(client.endpoints),
        "config": {"object_replicas": config.object_replicas, "lease_ttl": config.lease_ttl},
        "nodes": nodes,
        "actors": _count_actors(actors),
        "jobs": [{name: job.get(name) for name in ("submission_id", "status", "entrypoint", "start_time", "end_time")}
                 for job in jobs],
        "resources": {"total": total, "available": available},
        "objects": {"count": objects, "bytes": object_bytes, "capacity": capacity, "spilled_count": spilled,
                    "spilled_bytes": spilled_bytes},
    }


def _records(items: list[tuple[str, bytes]]) -> dict[str, dict]:
    """``{last key segment: decoded JSON record}``; undecodable values are skipped."""
    records = {}
    for key, value in items:
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict):
            records[key.rsplit("/", 1)[-1]] = record
    return records


def _number(value, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _node(record: dict, state: str, load: dict | None) -> dict:
    total = {name: _number(q) for name, q in (record.get("resources") or {}).items()}
    if load is not None and isinstance(load.get("available"), dict):
        available = {name: _number(load["available"].get(name), 0.0) for name in total}
    else:
        available = dict(total)
    return {
        "node_id": record.get("node_id", "?"),
        "address": record.get("address"),
        "head": bool(record.get("head")),
        "state": state,
        "pid": record.get("pid"),
        "kernel": record.get("kernel"),
        "start_time": record.get("start_time"),
        "died": record.get("died"),
        "resources": {"total": total, "available": available},
        "objects": int(_number((load or {}).get("objects"))),
        "object_bytes": int(_number((load or {}).get("object_bytes"))),
        "object_store_capacity": int(_number((load or {}).get("object_store_capacity"))),
        "spilled_objects": int(_number((load or {}).get("spilled_objects"))),
        "spilled_bytes": int(_number((load or {}).get("spilled_bytes"))),
        "dashboard_url": record.get("dashboard_url"),
    }


def _count_actors(items: list[tuple[str, bytes]]) -> dict[str, int]:
    counts = dict.fromkeys(schema.ACTOR_STATES, 0)
    for _key, value in items:
        try:
            state = json.loads(value).get("state") or "UNKNOWN"
        except (ValueError, AttributeError):
            state = "UNKNOWN"
        counts[str(state)] = counts.get(str(state), 0) + 1
    return counts


# -- formatting ------------------------------------------------------------------------------


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _quantity(value: float) -> str:
    return f"{value:.1f}" if value < 10_000 else f"{value:.0f}"


def _usage(total: dict[str, float], available: dict[str, float]) -> str:
    """``"CPU 1.0/2.0, GPU 0.0/1.0, disk 0.0/4.0, memory 1.0/15.2 GiB"`` (used/total; CPU and GPU
    first; the memory resource, in bytes, shown in GiB)."""
    return ", ".join(f"{name} {_pair(name, total[name] - available.get(name, total[name]), total[name])}"
                     for name in _ordered(total)) or "-"


def _pair(name: str, used: float, total: float) -> str:
    if name == "memory":
        return f"{used / _GIB:.1f}/{total / _GIB:.1f} GiB"
    return f"{_quantity(used)}/{_quantity(total)}"


def _ordered(resources: dict) -> list[str]:
    """CPU, GPU, then the custom resources by name (the object store's capacity is shown with
    the objects)."""
    return sorted((n for n in resources if n != "object_store_memory"),
                  key=lambda n: (n not in ("CPU", "GPU"), n != "CPU", n))


def _totals(total: dict[str, float]) -> str:
    """``"CPU 8.0"``: what a dead node had."""
    return ", ".join(f"{name} {total[name] / _GIB:.1f} GiB" if name == "memory" else f"{name} {_quantity(total[name])}"
                     for name in _ordered(total)) or "-"


def _objects(node: dict) -> str:
    capacity = node.get("object_store_capacity", 0)
    text = f"{node['objects']} ({node['object_bytes'] / _MIB:.1f}/{capacity / _MIB:.0f} MiB)"
    if node.get("spilled_objects"):
        text += f", {node['spilled_objects']} spilled ({node['spilled_bytes'] / _MIB:.1f} MiB)"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def format_status(status: dict) -> str:
    """`gather_status`'s dict as readable tables (what ``actorcore status`` prints)."""
    nodes = status["nodes"]
    alive = sum(node["state"] == "ALIVE" for node in nodes)
    lines = [f"Cluster {status['cluster']!r} (etcd {status['etcd']})", ""]
    dashboards = [node["dashboard_url"] for node in status["nodes"]
                  if node["state"] == "ALIVE" and node.get("dashboard_url")]
    if dashboards:
        lines[1:1] = [f"Dashboard: {', '.join(dashboards)}"]
    lines.append(f"Nodes: {alive} alive, {len(nodes) - alive} dead")
    if nodes:
        rows = [[node["node_id"], node.get("address") or "?", "yes" if node["head"] else "",
                 node["state"].lower(),
                 _usage(node["resources"]["total"], node["resources"]["available"]) if node["state"] == "ALIVE"
                 else _totals(node["resources"]["total"]),
                 _objects(node) if node["state"] == "ALIVE" else "-"]
                for node in nodes]
        lines += _table(["NODE", "ADDRESS", "HEAD", "STATE", "RESOURCES (used/total)",
                         "OBJECTS (in memory/capacity, spilled)"], rows)
    lines.append("")
    actors = status["actors"]
    lines.append(f"Actors: {sum(actors.values())}" + (
        " (" + ", ".join(f"{count} {state}" for state, count in actors.items() if count) + ")"
        if any(actors.values()) else ""))
    jobs = status.get("jobs") or []
    if jobs:
        lines.append("")
        by_status: dict[str, int] = {}
        for job in jobs:
            by_status[str(job["status"])] = by_status.get(str(job["status"]), 0) + 1
        lines.append(f"Jobs: {len(jobs)} (" + ", ".join(f"{n} {name}" for name, n in by_status.items()) + ")")
        lines += _table(["SUBMISSION ID", "STATUS", "ENTRYPOINT"],
                        [[str(job["submission_id"]), str(job["status"]), _short(str(job["entrypoint"]))]
                         for job in jobs[-JOBS_SHOWN:]])
    lines.append("")
    lines.append("Totals over the alive nodes:")
    resources = status["resources"]
    lines.append(f"  resources (used/total): {_usage(resources['total'], resources['available'])}")
    objects = status["objects"]
    lines.append(f"  object store: {objects['count']} objects, {objects['bytes'] / _MIB:.1f} MiB of "
                 f"{objects.get('capacity', 0) / _MIB:.0f} MiB in memory; {objects.get('spilled_count', 0)} spilled "
                 f"to disk ({objects.get('spilled_bytes', 0) / _MIB:.1f} MiB)")
    return "\n".join(lines)
