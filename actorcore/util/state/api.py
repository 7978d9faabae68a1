"""The state API's functions, with Ray's names and signatures (`ray.util.state`).

Each runs one `StateClient` query: in a driver (after `init()`) on the driver's own actor
system, reading etcd records through its node (`address` may only name its own cluster: one
actor system per process); otherwise (the CLI, a script that did not call `init()`) in a
`ClusterSession` of its own, with the cluster at `address` (default: this machine's).
``list_*`` filter the records (``filters=[(field, "=" | "!=", value)]``, strings compared
without case), sort them and return at most `limit`; ``get_*`` return the one record of an id
(None if there is none); ``summarize_*`` count them as Ray's ``{"cluster": {...}}``. A node or
process that does not answer within `timeout` seconds makes the call raise
`RayStateApiException`, unless ``raise_on_missing_output=False`` (then the answer holds what
did answer). `detail` is accepted as Ray's; records always carry every field known (the CLI
shows the detail columns only with ``--detail``).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from ... import runtime
from .client import NodeRecords, StateClient, raise_if_missing
from .common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    ActorState,
    ActorSummaries,
    JobState,
    NodeState,
    ObjectState,
    ObjectSummaries,
    PlacementGroupState,
    TaskState,
    TaskSummaries,
    WorkerState,
    check_filters,
    check_limit,
    matches,
    to_record,
)
from .session import ClusterSession

__all__ = [
    "get_actor",
    "get_node",
    "get_objects",
    "get_placement_group",
    "get_task",
    "get_worker",
    "list_actors",
    "list_jobs",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "query",
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
]

Rows = tuple[list[dict], list[str]]


def query(work: Callable[[StateClient], Awaitable[Any]], address: str | None, timeout: float,
          auth: dict | None = None) -> Any:
    """`await work(client)` with a `StateClient` of the caller's driver, or of a session of its
    own (see the module's docstring)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    core = runtime.current()
    if core is not None:
        if address not in (None, "auto", core.node.etcd):
            raise ValueError(f"this driver is connected to the cluster at {core.node.etcd}: it cannot ask the "
                             f"one at {address} (one actor system per process); call shutdown() first")
        client = StateClient(core.system, NodeRecords(core.gcs), me=core.actor)
        return core.system.run(work(client), timeout=timeout * 2 + 5)

    async def detached() -> Any:
        async with ClusterSession(address, auth) as client:
            return await work(client)

    return asyncio.run(detached())


# -- what each kind is read from --------------------------------------------------------------


async def _nodes(client: StateClient, timeout: float, _filters: tuple, _limit: int) -> Rows:
    return await client.nodes(timeout), []


async def _actors(client: StateClient, timeout: float, _filters: tuple, _limit: int) -> Rows:
    rows = await client.actors(timeout)
    rows.sort(key=lambda r: (r["state"] == "DEAD", str(r["class_name"]), str(r["actor_id"])))
    return rows, []


async def _workers(client: StateClient, timeout: float, _filters: tuple, _limit: int) -> Rows:
    rows, missing = await client.processes(timeout, objects=False)
    return [{**row, "is_alive": True, "exit_type": None} for row in rows], missing


async def _jobs(client: StateClient, timeout: float, _filters: tuple, _limit: int) -> Rows:
    return await client.jobs(timeout), []


#: what each kind is read from: (client, timeout, filters, limit) -> rows, what did not answer
_SOURCES: dict[type, Callable[[StateClient, float, tuple, int], Awaitable[Rows]]] = {
    NodeState: _nodes,
    ActorState: _actors,
    TaskState: lambda client, timeout, filters, limit: client.tasks(timeout, filters, limit),
    WorkerState: _workers,
    ObjectState: lambda client, timeout, _filters, _limit: client.objects(timeout),
    PlacementGroupState: lambda client, timeout, _filters, _limit: client.placement_groups(timeout),
    JobState: _jobs,
}


def _list(record_type: type, address: str | None, filters: list | None, limit: int, timeout: float,
          raise_on_missing_output: bool) -> list:
    with _collector_paused():  # 100k records are 100k+ new containers: collections would rescan them all
        rows = _rows(record_type, address, filters, limit, timeout, raise_on_missing_output)
        return [to_record(record_type, row) for row in rows]


@contextmanager
def _collector_paused():
    """The garbage collector off while a listing builds its records (if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _rows(record_type: type, address: str | None, filters: list | None, limit: int, timeout: float,
          raise_on_missing_output: bool) -> list[dict]:
    """At most `limit` rows of `record_type` passing `filters`, as dicts (the fields of
    `record_type`, perhaps others)."""
    checked = check_filters(record_type, filters)
    check_limit(limit)

    pushed = tuple((name, "=" if equal else "!=", value) for name, equal, value in checked)

    async def work(client: StateClient) -> Rows:
        return await _SOURCES[record_type](client, timeout, pushed, limit)

    rows, missing = query(work, address, timeout)
    raise_if_missing(missing, raise_on_missing_output)
    if checked:
        rows = [row for row in rows if matches(row, checked)]
    return rows[:limit]


def _get(record_type: type, key: str, id: str, address: str | None, timeout: float) -> list:
    if not isinstance(id, str) or not id:
        raise ValueError(f"an id is a non-empty string, got {id!r}")
    return _list(record_type, address, [(key, "=", id)], 10_000, timeout, False)


# -- list ---------------------------------------------------------------------------------------


def list_nodes(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
               raise_on_missing_output: bool = True) -> list[NodeState]:
    """The cluster's nodes (etcd), alive ones first (the head first), then dead ones."""
    return _list(NodeState, address, filters, limit, timeout, raise_on_missing_output)


def list_actors(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                raise_on_missing_output: bool = True) -> list[ActorState]:
    """The actors etcd records (alive before dead), with their state, node, pid, restarts and,
    once dead, why (``death_cause``)."""
    return _list(ActorState, address, filters, limit, timeout, raise_on_missing_output)


def list_tasks(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
               raise_on_missing_output: bool = True) -> list[TaskState]:
    """The task attempts the live nodes' task histories remember, merged (an attempt's owner
    and worker may be on two nodes), newest first."""
    return _list(TaskState, address, filters, limit, timeout, raise_on_missing_output)


def list_objects(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                 raise_on_missing_output: bool = True) -> list[ObjectState]:
    """The objects the drivers and workers of the live nodes own, as each owner counts their
    references (``reference_type``: USED_BY_PENDING_TASK, LOCAL_REFERENCE, CAPTURED_IN_OBJECT
    when a ref left the process, else PINNED_IN_MEMORY). Call sites are not recorded
    (``call_site`` is "disabled")."""
    return _list(ObjectState, address, filters, limit, timeout, raise_on_missing_output)


def list_workers(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                 raise_on_missing_output: bool = True) -> list[WorkerState]:
    """The live drivers (``worker_type`` DRIVER) and worker processes (WORKER) of the live
    nodes; ``worker_id`` is the id `get_runtime_context().get_worker_id()` gives in it."""
    return _list(WorkerState, address, filters, limit, timeout, raise_on_missing_output)


def list_placement_groups(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                          timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                          raise_on_missing_output: bool = True) -> list[PlacementGroupState]:
    """The placement groups the live processes created (a group lives with its creator), with
    their state and bundles (``node_id`` of each placed bundle)."""
    return _list(PlacementGroupState, address, filters, limit, timeout, raise_on_missing_output)


def list_jobs(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
              timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
              raise_on_missing_output: bool = True) -> list[JobState]:
    """The jobs submitted to the cluster (`actorcore.job_submission`), oldest first, from their
    etcd records."""
    return _list(JobState, address, filters, limit, timeout, raise_on_missing_output)


# -- get ----------------------------------------------------------------------------------------


def get_node(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> NodeState | None:
    """The node `id`, or None."""
    return next(iter(_get(NodeState, "node_id", id, address, timeout)), None)


def get_actor(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> ActorState | None:
    """The actor `id`, or None."""
    return next(iter(_get(ActorState, "actor_id", id, address, timeout)), None)


def get_task(id: Any, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> TaskState | None:
    """The latest attempt of task `id` (or of the task that returns the ObjectRef `id`), or None."""
    if not isinstance(id, str) and hasattr(id, "hex"):
        id = id.hex().rpartition(".")[0]  # a task's return is "<task id>.<index>"
    attempts = _get(TaskState, "task_id", id, address, timeout)
    return max(attempts, key=lambda t: t.attempt_number, default=None)


def get_worker(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> WorkerState | None:
    """The live driver or worker `id`, or None."""
    return next(iter(_get(WorkerState, "worker_id", id, address, timeout)), None)


def get_objects(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> list[ObjectState]:
    """The object `id` as its owner lists it (a list, as Ray's: empty if no live process owns it)."""
    return _get(ObjectState, "object_id", id, address, timeout)


def get_placement_group(id: str, address: str | None = None,
                        timeout: int = DEFAULT_RPC_TIMEOUT) -> PlacementGroupState | None:
    """The placement group `id`, or None."""
    return next(iter(_get(PlacementGroupState, "placement_group_id", id, address, timeout)), None)


# -- summaries --------------------------------------------------------------------------------------


def summarize_tasks(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                    raise_on_missing_output: bool = True) -> dict:
    """Task attempts counted by function (``Class.method`` for actor tasks) and state, as
    ``{"cluster": TaskSummaries fields}``."""
    tasks = _rows(TaskState, address, None, 10**9, timeout, raise_on_missing_output)
    summary: dict[str, dict] = {}
    kinds: dict[str, int] = {}
    for task in tasks:
        key = task.get("func_or_class_name") or task.get("name") or "?"
        entry = summary.get(key)
        if entry is None:
            entry = summary[key] = {"func_or_class_name": key, "type": task.get("type"), "state_counts": {}}
        counts = entry["state_counts"]
        counts[task["state"]] = counts.get(task["state"], 0) + 1
        kinds[task.get("type")] = kinds.get(task.get("type"), 0) + 1
    actor_tasks = kinds.get("ACTOR_TASK", 0)
    return {"cluster": asdict(TaskSummaries(
        summary=summary, total_tasks=len(tasks) - actor_tasks, total_actor_tasks=actor_tasks,
        total_actor_scheduled=kinds.get("ACTOR_CREATION_TASK", 0)))}


def summarize_actors(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                     raise_on_missing_output: bool = True) -> dict:
    """Actors counted by class and state, as ``{"cluster": ActorSummaries fields}``."""
    actors = list_actors(address, limit=10**9, timeout=timeout, raise_on_missing_output=raise_on_missing_output)
    summary: dict[str, dict] = {}
    for actor in actors:
        key = actor.class_name or "?"
        entry = summary.setdefault(key, {"class_name": key, "state_counts": {}})
        entry["state_counts"][actor.state] = entry["state_counts"].get(actor.state, 0) + 1
    return {"cluster": asdict(ActorSummaries(summary=summary, total_actors=len(actors)))}


def summarize_objects(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                      raise_on_missing_output: bool = True) -> dict:
    """Objects counted as Ray's ``{"cluster": ObjectSummaries fields}``: one group (call sites
    are not recorded: "disabled") with their total size, owners, nodes, states and reference
    types."""
    objects = list_objects(address, limit=10**9, timeout=timeout, raise_on_missing_output=raise_on_missing_output)
    size_mb = sum(o.object_size or 0 for o in objects) / 1024**2
    summary = {}
    if objects:
        states: dict[str, int] = {}
        kinds: dict[str, int] = {}
        attempts: dict[str, int] = {}
        for o in objects:
            states[o.task_status] = states.get(o.task_status, 0) + 1
            kinds[o.reference_type] = kinds.get(o.reference_type, 0) + 1
            attempts[str(o.attempt_number)] = attempts.get(str(o.attempt_number), 0) + 1
        summary["disabled"] = {
            "total_objects": len(objects), "total_size_mb": size_mb,
            "total_num_workers": len({(o.ip, o.pid) for o in objects}),
            "total_num_nodes": len({o.node_id for o in objects}),
            "task_state_counts": states, "task_attempt_number_counts": attempts, "ref_type_counts": kinds,
        }
    return {"cluster": asdict(ObjectSummaries(summary=summary, total_objects=len(objects), total_size_mb=size_mb))}
