"""Where the dashboard's task and object listings come from (docs/architecture.md, "The web
dashboard").

`StateSource` is the interface: two coroutines that return at most ``limit`` rows with Ray's
field names (``TaskState``: task_id, name, state, node_id, worker_id, ...; ``ObjectState``:
object_id, object_size, reference_type, ...). The node's task history plugs in behind it;
until it does, `UnavailableStateSource` answers with no rows and says so (`available`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["StateSource", "UnavailableStateSource"]


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
