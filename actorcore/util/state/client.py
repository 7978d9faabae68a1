"""`StateClient`: the state API's one asynchronous client (docs/architecture.md, "Task events and
the state API").

It runs on an actor system's loop and reads the cluster two ways:

- records that live in etcd (nodes, dead nodes, actors) through a `RecordReader`: the
  cluster's etcd itself (`EtcdRecords`: the CLI, the dashboard inside the head) or a node's
  GcsLink (`NodeRecords`: a driver, which holds no etcd session of its own);
- what only the nodes and processes know, by fan-out with the kernel: each live node's
  TaskHistory (`ListTaskRecords`), its GcsLink's and Scheduler's lists of the node's processes
  (`ListCoreActors`, `ListWorkerProcesses`), each process's core actor (`DescribeProcess`:
  the objects it owns, its placement groups) and each node's ObjectStore (`ListStoredObjects`:
  which objects are spilled).

Answers are plain dicts with Ray's field names (`common`); `api` wraps them in records, filters
and cuts them, and runs the client from a driver or from a process of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import fields
from typing import Any, Protocol

from ...gcs import schema
from ...kernel import ActorRef, ActorSystem, PeerLostError
from ...kernel.ref import parse_uri
from ...protocol import (
    DescribeProcess,
    ListCoreActors,
    ListStoredObjects,
    ListTaskRecords,
    ListWorkerProcesses,
    ReadRecords,
)
from ...task_records import merge_records
from .common import RayStateApiException, TaskState

__all__ = ["TASK_FIELDS", "EtcdRecords", "NodeRecords", "RecordReader", "StateClient"]

#: the fields of a task record (Ray's TaskState), as the dashboard shows them
TASK_FIELDS = tuple(f.name for f in fields(TaskState))

#: What one node sends at most for one task query (its newest records).
NODE_TASK_LIMIT = 100_000


class RecordReader(Protocol):
    """Reads the cluster's etcd records of one kind (``nodes``, ``dead``, ``actors``, ...)."""

    async def read(self, kind: str, timeout: float) -> list[tuple[str, bytes]]:
        """``[(key, value)]`` of every record under ``<kind>/``."""
        ...


class EtcdRecords:
    """Records read from the cluster's etcd (a `SealedEtcd`, or anything with its `get_prefix`)."""

    def __init__(self, etcd: Any, cluster: str = schema.DEFAULT_CLUSTER) -> None:
        self.etcd, self.cluster = etcd, cluster

    async def read(self, kind: str, timeout: float) -> list[tuple[str, bytes]]:
        return await asyncio.wait_for(self.etcd.get_prefix(schema.key(self.cluster, kind, "")), timeout)


class NodeRecords:
    """Records read through a node's GcsLink (`ReadRecords`), for a process without etcd."""

    def __init__(self, gcs: ActorRef) -> None:
        self.gcs = gcs

    async def read(self, kind: str, timeout: float) -> list[tuple[str, bytes]]:
        return await self.gcs.ask(ReadRecords(kind), timeout=timeout)


def _decoded(items: list[tuple[str, bytes]]) -> list[dict]:
    records = []
    for _key, value in items:
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class StateClient:
    """The cluster's state as seen from `system` (see the module's docstring). `me` is the
    caller's own core actor, if it has one (a driver): asked like any other process, and the
    only one asked on a node outside a cluster, whose processes do not follow the cluster view."""

    def __init__(self, system: ActorSystem, records: RecordReader, *, me: ActorRef | None = None) -> None:
        self.system = system
        self.records = records
        self.me = me

    # -- etcd records ------------------------------------------------------------------------

    async def nodes(self, timeout: float) -> list[dict]:
        """Every node, alive then dead, as NodeState dicts (plus ``uris``: its actors)."""
        alive, dead = await asyncio.gather(self.records.read("nodes", timeout), self.records.read("dead", timeout))
        rows = [_node_row(record, "ALIVE") for record in _decoded(alive)]
        known = {row["node_id"] for row in rows}
        rows += [_node_row(record, "DEAD") for record in _decoded(dead) if record.get("node_id") not in known]
        rows.sort(key=lambda r: (r["state"] != "ALIVE", not r["is_head_node"], r["start_time_ms"] or 0, r["node_id"]))
        return rows

    async def actors(self, timeout: float) -> list[dict]:
        """Every actor etcd records, as ActorState dicts."""
        return [_actor_row(record) for record in _decoded(await self.records.read("actors", timeout))]

    async def jobs(self, timeout: float) -> list[dict]:
        """Every submitted job etcd records, as JobState dicts, oldest first."""
        rows = _decoded(await self.records.read("jobs", timeout))
        rows.sort(key=lambda r: (r.get("start_time") or 0, str(r.get("submission_id"))))
        return rows

    async def store_usage(self, timeout: float) -> dict[str, dict]:
        """Node id -> what its object store holds, as the node last published it (etcd
        ``resources/``: objects, object_bytes, object_store_capacity, spilled_objects, spilled_bytes)."""
        usage = {}
        for key, value in await self.records.read("resources", timeout):
            (record,) = _decoded([(key, value)]) or ({},)
            usage[key.rsplit("/", 1)[-1]] = record
        return usage

    # -- fan-out to the nodes ---------------------------------------------------------------------

    async def tasks(self, timeout: float, filters: tuple = (),
                    limit: int | None = None) -> tuple[list[dict], list[str]]:
        """The task attempts the live nodes remember, merged, newest first; and the nodes that
        did not answer. With a `limit`, each node sends its newest `limit` records only, and
        with `filters` (``(field, "=" | "!=", value)``) only those matching, when that is exact
        (see below); the caller filters and cuts the merged records again.

        An attempt's records are merged from its owner's node and its worker's node. Filters
        are applied by the nodes only when one node is alive (each attempt's record there is
        whole); else each node sends all it holds, as a field may be on the part of another node.
        Without filters, a node's newest `limit` records are taken as the newest attempts (the
        two parts of an attempt reach their nodes at about the same time)."""
        nodes = [n for n in await self.nodes(timeout) if n["state"] == "ALIVE" and n["uris"].get("task_history")]
        exact = not filters or len(nodes) == 1
        query = ListTaskRecords(tuple(filters) if exact else (), limit if exact and limit else NODE_TASK_LIMIT)
        refs = [self.system.ref_from_uri(n["uris"]["task_history"]) for n in nodes]
        answers = await asyncio.gather(*(ref.ask(query, timeout=timeout) for ref in refs), return_exceptions=True)
        parts: dict[tuple[str, int], list[dict]] = defaultdict(list)
        missing = []
        for node, answer in zip(nodes, answers, strict=True):
            if isinstance(answer, BaseException):
                missing.append(f"node {node['node_id']} ({answer!r})")
                continue
            for record in answer[0]:
                parts[(record["task_id"], record["attempt_number"])].append(record)
        # An attempt known to one node is its record as sent (not copied: the dashboard's asks are
        # answered in its own process, with the history's own dicts); `events` come with the record.
        merged = [records[0] if len(records) == 1 else merge_records(records) for records in parts.values()]
        merged.sort(key=lambda r: r.get("creation_time_ms") or r.get("start_time_ms") or 0, reverse=True)
        return merged, missing

    async def processes(self, timeout: float, objects: bool) -> tuple[list[dict], list[str]]:
        """The drivers and workers of the live nodes, each as its `DescribeProcess` answer plus
        ``ip``, ``worker_type`` and ``leased``; and what did not answer."""
        nodes = [n for n in await self.nodes(timeout) if n["state"] == "ALIVE"]
        listed = await asyncio.gather(*(self._node_processes(n, timeout) for n in nodes), return_exceptions=True)
        cores: dict[str, tuple[dict, dict]] = {}  # core URI -> (node, what the node said of it)
        missing = []
        for node, answer in zip(nodes, listed, strict=True):
            if isinstance(answer, BaseException):
                missing.append(f"node {node['node_id']} ({answer!r})")
                continue
            for uri, known in answer.items():
                cores.setdefault(uri, (node, known))
        if self.me is not None:
            uri = self.me.to_uri()
            if uri not in cores:
                cores[uri] = ({}, {})
        uris = list(cores)
        answers = await asyncio.gather(*(self.system.ref_from_uri(uri).ask(DescribeProcess(objects), timeout=timeout)
                                         for uri in uris), return_exceptions=True)
        rows = []
        for uri, answer in zip(uris, answers, strict=True):
            node, known = cores[uri]
            if isinstance(answer, PeerLostError):
                continue  # the process ended meanwhile
            if isinstance(answer, BaseException):
                missing.append(f"process {known.get('pid', uri)} ({answer!r})")
                continue
            ip = node.get("node_ip") or next((n["node_ip"] for n in nodes if n["node_id"] == answer["node_id"]), None)
            rows.append({**answer, "ip": ip, "worker_type": "DRIVER" if answer["is_driver"] else "WORKER",
                         "leased": known.get("leased")})
        rows.sort(key=lambda r: (r["node_id"], r["worker_type"] != "DRIVER", r["pid"]))
        return rows, missing

    async def _node_processes(self, node: dict, timeout: float) -> dict[str, dict]:
        """Core actor URI -> what the node knows of it, for every driver and worker of `node`."""
        uris = node["uris"]
        gcs = self.system.ref_from_uri(uris["gcs"])
        scheduler = self.system.ref_from_uri(uris["scheduler"])
        cores, workers = await asyncio.gather(gcs.ask(ListCoreActors(), timeout=timeout),
                                              scheduler.ask(ListWorkerProcesses(), timeout=timeout))
        found: dict[str, dict] = {uri: {} for uri in cores or ()}
        for pid, executor_uri, leased, _for_actor in workers or ():
            address, _ = parse_uri(executor_uri)
            uri = ActorRef(self.system, address, "core").to_uri()
            found[uri] = {"pid": pid, "leased": leased or found.get(uri, {}).get("leased", False)}
        return found

    async def objects(self, timeout: float) -> tuple[list[dict], list[str]]:
        """Every object the processes own, as ObjectState dicts, by owner."""
        (processes, missing), stored = await asyncio.gather(self.processes(timeout, objects=True),
                                                             self._stored(timeout))
        rows = [{**obj, "type": process["worker_type"], "pid": process["pid"], "ip": process["ip"],
                 "owner_worker_id": process["worker_id"], "owner_node_id": process["node_id"],
                 "call_site": "disabled", "attempt_number": 0}
                for process in processes for obj in process.get("objects", ())]
        for row in rows:
            if row.get("in_shared_memory"):
                held = stored.get((row["node_id"], row["object_id"]))
                row["spilled"] = bool(held and held[2])
        return rows, missing

    async def _stored(self, timeout: float) -> dict[tuple[str, str], tuple]:
        """(node id, object id) -> (size, in the arena, spilled) of what the live nodes' stores hold
        (a store that does not answer is left out: its objects' ``spilled`` stays unknown)."""
        nodes = [n for n in await self.nodes(timeout) if n["state"] == "ALIVE" and n["uris"].get("object_store")]
        answers = await asyncio.gather(*(self.system.ref_from_uri(n["uris"]["object_store"])
                                         .ask(ListStoredObjects(), timeout=timeout) for n in nodes),
                                       return_exceptions=True)
        return {(node["node_id"], object_id): held for node, answer in zip(nodes, answers, strict=True)
                if isinstance(answer, dict) for object_id, held in answer.items()}

    async def placement_groups(self, timeout: float) -> tuple[list[dict], list[str]]:
        """Every placement group a live process created, as PlacementGroupState dicts."""
        processes, missing = await self.processes(timeout, objects=True)
        rows = []
        for process in processes:
            for group_id, record in (process.get("placement_groups") or {}).items():
                to_node = record.get("bundles_to_node_id") or {}
                rows.append({
                    "placement_group_id": group_id, "name": record.get("name") or "",
                    "creator_job_id": process["job_id"], "state": record.get("state"),
                    "bundles": [{"bundle_id": f"{group_id}:{index}", "node_id": to_node.get(index),
                                 "unit_resources": dict(bundle)}
                                for index, bundle in sorted((record.get("bundles") or {}).items())],
                    "is_detached": record.get("detached", False), "stats": record.get("stats"),
                    "strategy": record.get("strategy"),
                })
        return rows, missing


def _millis(seconds: Any) -> int | None:
    return int(seconds * 1000) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None


def _node_row(record: dict, state: str) -> dict:
    return {
        "node_id": record.get("node_id", "?"), "node_ip": record.get("address"),
        "is_head_node": bool(record.get("head")), "state": state,
        "state_message": None if state == "ALIVE" else "its etcd lease expired",
        "node_name": record.get("address"), "resources_total": dict(record.get("resources") or {}), "labels": {},
        "start_time_ms": _millis(record.get("start_time")), "end_time_ms": _millis(record.get("died")),
        "uris": dict(record.get("uris") or {}),
    }


def _actor_row(record: dict) -> dict:
    return {
        "actor_id": record.get("actor_id"), "class_name": record.get("class_name"), "state": record.get("state"),
        "job_id": record.get("job_id"), "name": record.get("name") or "", "node_id": record.get("node_id"),
        "pid": record.get("pid"), "ray_namespace": record.get("namespace"), "death_cause": record.get("death_cause"),
        "is_detached": bool(record.get("detached")), "placement_group_id": record.get("placement_group_id"),
        "repr_name": record.get("repr_name") or "", "num_restarts": int(record.get("restarts") or 0),
        "required_resources": record.get("required_resources"),
    }


def raise_if_missing(missing: list[str], raise_on_missing_output: bool) -> None:
    """Raise `RayStateApiException` naming what did not answer, if anything did not and it must."""
    if missing and raise_on_missing_output:
        raise RayStateApiException(
            "the answer is incomplete: " + "; ".join(missing)
            + " did not answer (pass raise_on_missing_output=False to get what answered)")
