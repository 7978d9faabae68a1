"""`ObjectRef`: a reference to an object in the object store.

The process that created a ref (by `.remote()` or `put`) owns the object; the ref names its
owner (the owner's core actor), so any process holding it can ask for the value. The owner
counts its live refs: when the last one is dropped (and no pending task needs the object, and
the ref never left the process) the object is freed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from . import runtime

__all__ = ["ObjectRef"]


class ObjectRef:
    """A reference to an object (a task's return value, or a value given to `put`).

    Pass it to `get` for the value, to `wait` to learn when it is ready, or as an argument to a
    task or actor call (the callee receives the value). `await ref` works in async code. It
    can be pickled and sent to other processes; `id` names the object, `owner` the process that
    created it.
    """

    __slots__ = ("id", "owner", "_counter", "__weakref__")

    def __init__(self, object_id: str, owner, counter=None) -> None:
        self.id = object_id
        self.owner = owner  # the owner's core actor ref
        self._counter = counter  # the owner's object table: set only in the owner, which counts this ref

    def hex(self) -> str:
        """The object's id (as Ray's `ObjectRef.hex()`)."""
        return self.id

    def is_nil(self) -> bool:
        """Whether this is the nil ref: what a generator's `_next_sync` returns when no item came in time."""
        return self.id == "nil"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

    def __reduce__(self):
        counter = self._counter
        if counter is not None:
            counter.mark_escaped(self.id)
        return (_restore_ref, (self.id, self.owner))

    def __del__(self) -> None:
        counter = self._counter
        if counter is not None:
            counter.release(self.id)

    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future resolved with the value (or the error `get` would raise)."""
        return runtime.require().objects.get_future(self)

    def __await__(self):
        future = runtime.require().objects.get_future(self)
        return asyncio.wrap_future(future).__await__()


def _restore_ref(object_id: str, owner) -> ObjectRef:
    core = runtime.current()
    if core is not None and core.owns(owner):
        return core.objects.local_ref(object_id)
    return ObjectRef(object_id, owner)
