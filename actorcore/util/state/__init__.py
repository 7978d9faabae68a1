"""`actorcore.util.state`: Ray's state API (`ray.util.state`): what runs where in a cluster
(docs/architecture.md, "Task events and the state API").

| module | role |
|---|---|
| `common` | the records (Ray's `ActorState`, `TaskState`, ...), filters, summaries |
| `client` | `StateClient`: one async client reading etcd and fanning out to nodes and processes |
| `session` | `ClusterSession`: a process's own etcd and actor system, when it is no driver |
| `api` | the functions: ``list_*``, ``get_*``, ``summarize_*`` |
"""

from __future__ import annotations

from .api import (
    get_actor,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    list_workers,
    summarize_actors,
    summarize_objects,
    summarize_tasks,
)
from .common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    RayStateApiException,
    TaskState,
    WorkerState,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RPC_TIMEOUT",
    "ActorState",
    "JobState",
    "NodeState",
    "ObjectState",
    "PlacementGroupState",
    "RayStateApiException",
    "TaskState",
    "WorkerState",
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
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
]
