"""This process's side of its node's object store: write large objects into the node's arena,
read them zero-copy (docs/architecture.md, "The node's object store").

A put asks the store for an extent (one round trip), copies the object into it and seals it
(a tell); a get reads the extent the payload names without asking anyone, and asks the store
only when the object has moved (`LocateObject`: spilled, then restored elsewhere). Both run
on a thread other than the kernel's loop (the user's thread, an executor thread); the loop's
own reads use `read_async`.
"""

from __future__ import annotations

import threading
from typing import Any

from .. import exceptions as exc
from ..kernel import ActorRef, ActorSystem
from ..objects import Serialized
from ..objects.arena import ArenaClient
from ..protocol import AllocateObject, FreeObjects, InShm, LocateObject, SealObject

__all__ = ["ALLOCATE_TIMEOUT", "LocalObjects"]

#: How long a put waits for room (the store may spill gigabytes to disk to make it).
ALLOCATE_TIMEOUT = 600.0
#: A reader that finds its object moved asks where it went at most this many times (each
#: answer is right when given; only a store spilling it again at once could move it again).
_LOCATE_ATTEMPTS = 20


class LocalObjects:
    """Large objects of this process's node (see the module's docstring)."""

    def __init__(self, system: ActorSystem, store: ActorRef, node_id: str, me: ActorRef) -> None:
        self._system = system
        self._store = store
        self.node_id = node_id
        self._me = me
        self._arena: ArenaClient | None = None
        self._lock = threading.Lock()

    @property
    def arena(self) -> ArenaClient:
        arena = self._arena
        if arena is None:
            with self._lock:
                if self._arena is None:
                    self._arena = ArenaClient(self.node_id)
                arena = self._arena
        return arena

    def write(self, object_id: str, serialized: Serialized, owner: ActorRef | None) -> InShm:
        """Put `serialized` into the node's arena for `owner`; raises ObjectStoreFullError if
        the store has no room even after spilling."""
        size = serialized.total_size
        start = self._system.ask_sync(self._store, AllocateObject(object_id, size, owner, self._me),
                                      timeout=ALLOCATE_TIMEOUT)
        try:
            self.arena.write(start, object_id, serialized)
        except BaseException:
            self._store.tell(FreeObjects([object_id]))
            raise
        self._store.tell(SealObject(object_id))
        return InShm(object_id, size, self.node_id, (), start)

    def read(self, payload: InShm) -> Any:
        """The value of a large object held by this node (ObjectLostError if it is not)."""
        if payload.node == self.node_id:
            found, value = self.arena.read(payload.offset, payload.object_id, payload.size)
            if found:
                return value
        for _ in range(_LOCATE_ATTEMPTS):
            found, value = self._read_at(self._locate_sync(payload.object_id), payload)
            if found:
                return value
        raise exc.ObjectLostError(payload.object_id, "its node's object store kept moving it")

    def try_read(self, payload: InShm) -> tuple[bool, Any]:
        """``(True, value)`` if the payload's extent still holds the object, without asking
        the store; else ``(False, None)`` (then `read_async`)."""
        if payload.node != self.node_id:
            return False, None
        return self.arena.read(payload.offset, payload.object_id, payload.size)

    async def read_async(self, payload: InShm) -> Any:
        """`read` on the kernel's loop."""
        found, value = self.try_read(payload)
        if found:
            return value
        for _ in range(_LOCATE_ATTEMPTS):
            try:
                start = await self._store.ask(LocateObject(payload.object_id), timeout=ALLOCATE_TIMEOUT)
            except LookupError as error:
                raise exc.ObjectLostError(payload.object_id, str(error)) from None
            found, value = self._read_at(start, payload)
            if found:
                return value
        raise exc.ObjectLostError(payload.object_id, "its node's object store kept moving it")

    def _read_at(self, where: int | str, payload: InShm) -> tuple[bool, Any]:
        """Read the object where the store said it is: an offset in the arena, or the path of
        its spill file (no room could be made to restore it)."""
        if isinstance(where, str):
            try:
                return True, ArenaClient.read_spilled(where, payload.size)
            except FileNotFoundError:  # freed or restored meanwhile: ask again
                return False, None
        return self.arena.read(where, payload.object_id, payload.size)

    def _locate_sync(self, object_id: str) -> int | str:
        try:
            return self._system.ask_sync(self._store, LocateObject(object_id), timeout=ALLOCATE_TIMEOUT)
        except LookupError as error:
            raise exc.ObjectLostError(object_id, str(error)) from None

    def close(self) -> None:
        """Let go of the arena (values still alive keep their part of the mapping)."""
        with self._lock:
            arena, self._arena = self._arena, None
        if arena is not None:
            arena.close()
