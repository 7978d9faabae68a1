"""`ObjectRef`: a reference to an object in the object store (DESIGN.md §5, ownership).

The process that created a ref (by `.remote()` or `put`) owns the object; the ref names its
owner (the owner's core actor), so any process holding it can ask for the value. The owner
counts its live refs: when the last one is dropped (and no pending task needs the object, and
the ref never left the process) the object is freed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any


class ObjectRef:
    __slots__ = ("id", "owner", "_core", "__weakref__")

    def __init__(self, object_id: str, owner, core=None) -> None:
        self.id = object_id
        self.owner = owner  # the owner's core actor ref
        self._core = core  # set only in the owner process, which counts this ref

    def hex(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

    def __reduce__(self):
        core = self._core
        if core is not None:
            core.mark_escaped(self.id)
        return (_restore_ref, (self.id, self.owner))

    def __del__(self) -> None:
        core = self._core
        if core is not None:
            core.release(self.id)

    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future resolved with the value (or the error `get` would raise)."""
        from . import api

        return api._runtime().get_future(self)

    def __await__(self):
        from . import api

        future = api._runtime().get_future(self)
        return asyncio.wrap_future(future).__await__()


def _restore_ref(object_id: str, owner) -> ObjectRef:
    from . import api

    runtime = api._runtime_or_none()
    if runtime is not None and runtime.owns(owner):
        return runtime.local_ref(object_id)
    return ObjectRef(object_id, owner)


def is_ref(value: Any) -> bool:
    return type(value) is ObjectRef
