"""`actorcore.util.state`: Ray's state API (`ray.util.state`): what runs where in a cluster
(docs/architecture.md, "Task events and the state API").

| module | role |
|---|---|
| `common` | the records (Ray's `ActorState`, `TaskState`, ...), filters, summaries |
| `client` | `StateClient`: one async client reading etcd and fanning out to nodes and processes |
| `session` | `ClusterSession`: a process's own etcd and actor system, when it is no driver |
| `api` | the functions: ``list_*``, ``get_*``, ``summarize_*`` |
| `actorcore.util.logs` | ``list_logs``, ``get_log`` (re-exported here, as Ray has them) |

Names load on first use (PEP 562): the head node's dashboard imports `client` alone, and so
never loads the driver's runtime.
"""

from __future__ import annotations

import importlib

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
    "get_log",
    "get_node",
    "get_objects",
    "get_placement_group",
    "get_task",
    "get_worker",
    "list_actors",
    "list_jobs",
    "list_logs",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
]

_COMMON = frozenset({"DEFAULT_LIMIT", "DEFAULT_RPC_TIMEOUT", "ActorState", "JobState", "NodeState", "ObjectState",
                     "PlacementGroupState", "RayStateApiException", "TaskState", "WorkerState"})


_LOGS = frozenset({"get_log", "list_logs"})


def __getattr__(name: str):
    if name in __all__:
        if name in _LOGS:
            module = importlib.import_module("..logs", __name__)
        else:
            module = importlib.import_module(".common" if name in _COMMON else ".api", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
