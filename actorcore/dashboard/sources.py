"""Where the dashboard's task and object listings come from (docs/architecture.md, "The web
dashboard").

`StateSource` is the interface: two coroutines that return at most ``limit`` rows with Ray's
field names (``TaskState``: task_id, name, state, node_id, worker_id, ...; ``ObjectState``:
object_id, object_size, reference_type, ...). `ClusterStateSource` answers them with the state
API's `StateClient` on the head node's loop (etcd records read through the node's GcsLink);
`UnavailableStateSource` answers with no rows and says so (`available`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["ClusterStateSource", "StateSource", "UnavailableStateSource"]

#: seconds a node or process may take to answer the dashboard (the others are left out)
QUERY_TIMEOUT = 10.0


@runtime_checkable
class StateSource(Protocol):
    """What the dashboard asks for tasks and objects."""

    async def tasks(self, limit: int) -> list[dict]:
        """At most `limit` tasks, newest first, as dicts with Ray's TaskState field names."""
        ...

    async def objects(self, limit: int) -> list[dict]:
        """At most `limit` objects, as dicts with Ray's ObjectState field names."""
        ...


class UnavailableStateSource:
    """The source used until task and object listings exist: always empty."""

    available = False
    note = "task and object listings are not available yet in this version"

    async def tasks(self, limit: int) -> list[dict]:
        return []

    async def objects(self, limit: int) -> list[dict]:
        return []



class ClusterStateSource:
    """Tasks and objects of the whole cluster, asked of its nodes and processes from `system`
    (the head node's actor system); `gcs` is that node's GcsLink."""

    available = True
    note = None

    def __init__(self, system: Any, gcs: Any) -> None:
        from ..util.state.client import TASK_FIELDS, NodeRecords, StateClient

        self.client = StateClient(system, NodeRecords(gcs))
        self.task_fields = TASK_FIELDS

    async def tasks(self, limit: int) -> list[dict]:
        rows, _missing = await self.client.tasks(QUERY_TIMEOUT, limit=limit)
        return [{name: row.get(name) for name in self.task_fields} for row in rows[:limit]]

    async def objects(self, limit: int) -> list[dict]:
        rows, _missing = await self.client.objects(QUERY_TIMEOUT)
        rows.sort(key=lambda row: -(row.get("object_size") or 0))
        return rows[:limit]
