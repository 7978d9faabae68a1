"""The ObjectStore actor: the node's arena of large objects, its capacity, and spilling
(docs/architecture.md, "The node's object store").

Large objects (≥ 100 KiB) live in the node's shared-memory arena (`objects.arena`), a file of
`capacity` bytes. A producer asks for an extent (`AllocateObject`), writes the object into it
itself and seals it (`SealObject`); readers of the node read it in place without asking
(`InShm.offset`), and ask only when the object has moved (`LocateObject`). The owner frees
an object when the last reference is gone (`FreeObjects`, sent to every node that may hold
a copy); the store frees it when its owner's process dies, and an unsealed extent when its
writer's does. The node's shutdown removes the arena and the spill folder.

Room: when an allocation does not fit, the store spills the least recently used sealed
objects that no reader pins to files (`objects.spill`) until it does (those that already
have a file first), then answers. A spilled object is restored into the arena when a reader
or a task needs it (`LocateObject`), and keeps its file, so spilling it again costs nothing;
the file goes when the object is freed. If no room can be made to restore it, the reader is
given the file's path and maps it read-only; other nodes pull it from its file. Requests
that need room are served one at a time, in order, while the store goes on with other
messages. An object larger than the capacity, or room that
neither spilling (every object pinned, or the disk full) nor waiting `FULL_WAIT_SECONDS`
for pins to go can make, fails with `ObjectStoreFullError` naming capacity and use.

In a cluster the store also serves its objects to other nodes over its object-transfer gRPC
endpoint (pinned while they stream), and answers `FetchObject` (a reader here needs an object
held elsewhere, or the owner asks for a replica here) by pulling it from the first of its
sources that answers straight into an extent of this node's arena. Concurrent fetches of one
object share one pull. The owner learns the new location from the reply.
"""

from __future__ import annotations

import asyncio
import collections
import errno
from dataclasses import dataclass, field

from .. import exceptions as exc
from .._logging import get_logger
from ..kernel import Actor, Terminated
from ..objects import shm
from ..objects.allocator import ExtentAllocator
from ..objects.arena import HEADER_SIZE, Arena, extent_size
from ..objects.spill import SpillDirectory
from ..protocol import (
    AllocateObject,
    ClusterView,
    FetchObject,
    FreeObjects,
    GetStoreUsage,
    GetTransferAddress,
    ListStoredObjects,
    LocateObject,
    SealObject,
    StoreUsage,
)

__all__ = ["FULL_WAIT_SECONDS", "ObjectStore"]

log = get_logger(__name__)

#: How long a request for room waits for readers to let go of pinned objects before it fails.
FULL_WAIT_SECONDS = 5.0
_RETRY_SECONDS = 0.05


@dataclass(slots=True, eq=False)
class _Object:
    size: int  # serialized bytes
    start: int | None = None  # its extent in the arena, None while only spilled
    sealed: bool = False
    spilled: bool = False  # a spill file holds it
    owner: object = None
    writer: object = None
    freed: bool = False  # freed while the store was moving it: dropped when the move ends
    moved: asyncio.Future | None = None  # set while it is being spilled or restored
    sealed_waiters: list = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _RoomRequest:
    object_id: str
    size: int
    done: asyncio.Future
    since: float


def _release_view(view: memoryview) -> None:
    try:
        view.release()
    except BufferError:  # a slice of it is still alive: released with it
        pass


class _Served:
    """An object's bytes lent to a transfer (see `TransferServer`'s ``source_for``)."""

    __slots__ = ("view", "_release")

    def __init__(self, view: memoryview, release) -> None:
        self.view = view
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class ObjectStore(Actor):
    """The node's arena of large objects (see the module's docstring)."""

    def __init__(self, node_id: str, *, capacity: int, spill_base: str | None = None,
                 transfer_bind: str | None = None, token: str | None = None, gcs=None) -> None:
        self.gcs = gcs  # in a cluster: told what the store holds (for `actorcore status`)
        self._usage_scheduled = False
        self.node_id = node_id
        self.capacity = capacity
        self.spill_base = spill_base
        self.transfer_bind = transfer_bind
        self.token = token
        self.objects: dict[str, _Object] = {}
        self.lru: collections.OrderedDict[str, None] = collections.OrderedDict()  # sealed, in the arena
        self.zombies: dict[int, int] = {}  # extents freed while a reader still pinned them: start -> size
        self.bytes_used = 0  # extents in use, zombies included
        self.spilled_bytes = 0
        self.spilled_objects = 0
        self.transfers = [0, 0, 0, 0]  # objects and bytes pulled from other nodes, then lent to them
        self.room_requests: collections.deque[_RoomRequest] = collections.deque()
        self._room_task: asyncio.Task | None = None
        self.arena: Arena | None = None
        self.allocator: ExtentAllocator | None = None
        self.spill: SpillDirectory | None = None
        self.server = None
        self.transfer_addresses: dict[str, str] = {}  # node id -> its transfer endpoint
        self.pulls = None  # a PullMerger in a cluster: concurrent fetches of one object share one pull
        self.pulling: dict[str, int] = {}  # object id -> fetches of it waiting for a pull
        self.freed_while_pulling: set[str] = set()
        self.watched: set = set()

    async def pre_start(self) -> None:
        self.arena = Arena(self.node_id, self.capacity)
        self.allocator = ExtentAllocator(self.capacity)
        self.spill = SpillDirectory(self.node_id, self.spill_base)
        if self.transfer_bind:  # (grpc is imported only in a cluster: a local node starts faster)
            from ..objects.transfer import PullMerger, TransferServer

            self.pulls = PullMerger()
            self.server = TransferServer(self.transfer_bind, self.token, self._source_for,
                                         tls=self.context.system.tls)
            await self.server.start()

    async def receive(self, message):
        if isinstance(message, AllocateObject):
            return self._allocate(message)
        if isinstance(message, SealObject):
            self._seal(message.object_id)
        elif isinstance(message, LocateObject):
            record = self.objects.get(message.object_id)
            if record is not None and record.sealed and record.start is not None and record.moved is None:
                self.lru.move_to_end(message.object_id)
                return record.start
            return self._answer_later(self._locate(message.object_id))
        elif isinstance(message, FetchObject):
            return self._fetch(message)
        elif isinstance(message, FreeObjects):
            for object_id in message.names:
                self._free(object_id)
        elif isinstance(message, Terminated):
            self._process_died(message.ref)
        elif isinstance(message, ClusterView):
            self.transfer_addresses = {
                node_id: record["transfer"] for node_id, record in message.nodes.items() if record.get("transfer")
            }
        elif isinstance(message, GetTransferAddress):
            return self.server.address if self.server is not None else None
        elif isinstance(message, GetStoreUsage):
            return self._usage()
        elif isinstance(message, ListStoredObjects):
            return {object_id: (record.size, record.start is not None, record.spilled)
                    for object_id, record in self.objects.items() if record.sealed and not record.freed}
        return None

    # -- allocation and room -------------------------------------------------------------------

    def _answer_later(self, coroutine) -> None:
        """Reply with what `coroutine` returns (or raises) once it ends; the store meanwhile goes
        on with other messages."""
        reply = self.context.defer_reply()

        def answer(done: asyncio.Future) -> None:
            if done.cancelled():
                reply.fail(ConnectionError("the node's object store stopped"))
            elif done.exception() is not None:
                reply.fail(done.exception())
            else:
                reply.send(done.result())

        asyncio.get_running_loop().create_task(coroutine).add_done_callback(answer)

    def _allocate(self, message: AllocateObject) -> int | None:
        object_id, size = message.object_id, message.size
        if size <= 0:
            raise ValueError(f"object {object_id}: cannot allocate {size} bytes")
        existing = self.objects.get(object_id)
        if existing is not None:
            # A copy of this very object is here (its task ran again to make it anew): replace it,
            # once the store is done moving it if it is.
            if existing.moved is not None:
                return self._answer_later(self._allocate_later(message, after=existing.moved))
            self._free(object_id)
        need = extent_size(size)
        if need > self.allocator.capacity:
            raise exc.ObjectStoreFullError(
                f"object {object_id} of {size} bytes is larger than the node's object store "
                f"(capacity {self.allocator.capacity} bytes): start the node with a larger "
                "--object-store-memory (init(object_store_memory=...))")
        start = self._extent_now(size)
        if start is not None:
            return self._record(message, start)
        return self._answer_later(self._allocate_later(message))

    async def _allocate_later(self, message: AllocateObject, after: asyncio.Future | None = None) -> int:
        """`AllocateObject` once room is made (and, with `after`, once a former copy is moved)."""
        if after is not None:
            await asyncio.shield(after)
        start = await self._room_for(message.object_id, message.size)
        self._free(message.object_id)  # a copy left, or pulled, meanwhile: replaced
        return self._record(message, start)

    def _record(self, message: AllocateObject, start: int) -> int:
        self.objects[message.object_id] = _Object(message.size, start, owner=message.owner, writer=message.writer)
        self._watch(message.owner)
        self._watch(message.writer)
        return start

    async def _room_for(self, object_id: str, size: int) -> int:
        """An extent for `size` bytes: at once if one is free and nobody waits before, else in
        turn, once spilling made room."""
        start = self._extent_now(size)
        if start is not None:
            return start
        request = _RoomRequest(object_id, size, asyncio.get_running_loop().create_future(),
                               asyncio.get_running_loop().time())
        self.room_requests.append(request)
        if self._room_task is None:
            self._room_task = asyncio.get_running_loop().create_task(self._make_room())
        return await request.done

    def _extent_now(self, size: int) -> int | None:
        """An extent at once, if one is free and no request for room waits before."""
        return None if self.room_requests else self._take_extent(size)

    def _take_extent(self, size: int) -> int | None:
        start = self.allocator.allocate(extent_size(size))
        if start is None and self.zombies:
            self._reclaim_zombies()
            start = self.allocator.allocate(extent_size(size))
        if start is None:
            return None
        try:
            self.arena.reserve(start, extent_size(size))
        except OSError as error:
            self.allocator.free(start, extent_size(size))
            if error.errno in (errno.ENOSPC, errno.ENOMEM):
                raise exc.ObjectStoreFullError(
                    f"shared memory (/dev/shm) is full: the node's object store could not grow to "
                    f"{start + extent_size(size)} of its {self.capacity} bytes; give the node a smaller "
                    "--object-store-memory or free /dev/shm") from None
            raise
        self.bytes_used += extent_size(size)
        self._usage_changed()
        return start

    async def _make_room(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.room_requests:
                request = self.room_requests[0]
                if request.done.done():  # its asker gave up
                    self.room_requests.popleft()
                    continue
                try:
                    start = self._take_extent(request.size)
                    if start is None:
                        victim = self._spill_candidate()
                        if victim is not None:
                            await self._spill(victim)
                            continue
                        if loop.time() - request.since < FULL_WAIT_SECONDS:
                            await asyncio.sleep(_RETRY_SECONDS)  # readers let go of pins as they finish
                            continue
                        raise exc.ObjectStoreFullError(self._full_message(request, "every object in it is in use"))
                except exc.ObjectStoreFullError as error:
                    self.room_requests.popleft()
                    request.done.set_exception(error)
                    continue
                except OSError as error:
                    self.room_requests.popleft()
                    request.done.set_exception(exc.ObjectStoreFullError(self._full_message(
                        request, f"spilling to {self.spill.path} failed ({error.strerror or error}): "
                                 "free disk space there or give --object-spilling-directory a disk with room")))
                    continue
                self.room_requests.popleft()
                if request.done.done():
                    self._release_extent(start, request.size)
                else:
                    request.done.set_result(start)
        finally:
            self._room_task = None

    def _full_message(self, request: _RoomRequest, why: str) -> str:
        return (f"the node's object store is full: object {request.object_id} needs {request.size} bytes, "
                f"{self.bytes_used} of the capacity {self.capacity} bytes are in use and {why}. Release "
                "ObjectRefs you no longer need, or give the node a larger --object-store-memory "
                "(init(object_store_memory=...))")

    def _spill_candidate(self) -> str | None:
        """The least recently used sealed object no reader or transfer pins (the exclusive lock
        tells), locked for the store;
        one that already has its file first (dropping it from memory costs no write)."""
        for with_file in (True, False):
            for object_id in self.lru:
                record = self.objects[object_id]
                if record.moved is not None or record.spilled is not with_file:
                    continue
                if self.arena.try_exclusive(record.start, extent_size(record.size)):
                    return object_id
        return None

    async def _spill(self, object_id: str) -> None:
        """Move `object_id` (locked by `_spill_candidate`) out of the arena into its file."""
        record = self.objects[object_id]
        start, length = record.start, extent_size(record.size)
        record.moved = asyncio.get_running_loop().create_future()
        try:
            if not record.spilled:
                await asyncio.to_thread(self.spill.write, object_id, self.arena.data(start, record.size))
                record.spilled = True
                self.spilled_objects += 1
                self.spilled_bytes += record.size
            self.arena.invalidate(start)
            self.lru.pop(object_id, None)
            record.start = None
            self.allocator.free(start, length)
            self.bytes_used -= length
            self._usage_changed()
        finally:
            self.arena.release(start, length)
            moved, record.moved = record.moved, None
            moved.set_result(None)
            if record.freed:
                self._free(object_id)

    async def _restore(self, object_id: str, record: _Object) -> None:
        record.moved = asyncio.get_running_loop().create_future()
        try:
            start = await self._room_for(object_id, record.size)
            try:
                await asyncio.to_thread(self.spill.read_into, object_id, self.arena.data(start, record.size))
            except BaseException:
                self._release_extent(start, record.size)
                raise
            self.arena.write_header(start, object_id, record.size)
            record.start = start
            self.lru[object_id] = None
        finally:
            moved, record.moved = record.moved, None
            moved.set_result(None)
            if record.freed:
                self._free(object_id)

    def _release_extent(self, start: int, size: int) -> None:
        """Give back an extent nobody reads (never sealed, or locked by the store)."""
        self.allocator.free(start, extent_size(size))
        self.bytes_used -= extent_size(size)
        self._usage_changed()

    def _drop_extent(self, start: int, size: int) -> bool:
        """Free the extent of a freed object unless a reader or transfer still pins it (False)."""
        length = extent_size(size)
        if not self.arena.try_exclusive(start, length):
            return False
        self.arena.invalidate(start)
        self._release_extent(start, size)
        self.arena.release(start, length)
        return True

    def _reclaim_zombies(self) -> None:
        for start, size in list(self.zombies.items()):
            if self._drop_extent(start, size):
                del self.zombies[start]

    # -- sealing, locating, freeing ------------------------------------------------------------

    def _seal(self, object_id: str) -> None:
        record = self.objects.get(object_id)
        if record is None or record.sealed:
            return
        record.sealed = True
        record.writer = None
        if record.start is not None:
            self.lru[object_id] = None
        waiters, record.sealed_waiters = record.sealed_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _locate(self, object_id: str) -> int | str:
        """Where `object_id` is in the arena now, restored first if it was spilled; if no room
        can be made for it, the path of its spill file (readers map it: a full store and a full
        disk still give every object back)."""
        while True:
            record = self.objects.get(object_id)
            if record is None or record.freed:
                raise LookupError(f"object {object_id} is not held by node {self.node_id}")
            if record.moved is not None:
                await asyncio.shield(record.moved)
                continue
            if not record.sealed:
                waiter = asyncio.get_running_loop().create_future()
                record.sealed_waiters.append(waiter)
                await waiter
                continue
            if record.start is not None:
                self.lru.move_to_end(object_id)
                return record.start
            try:
                await self._restore(object_id, record)
            except exc.ObjectStoreFullError:
                if not record.spilled or record.freed:
                    raise
                return str(self.spill.file(object_id))

    def _free(self, object_id: str) -> None:
        record = self.objects.get(object_id)
        if record is None:
            if self.pulling.get(object_id):
                self.freed_while_pulling.add(object_id)
            return
        if record.moved is not None:  # dropped once the spill or restore ends
            record.freed = True
            return
        del self.objects[object_id]
        if record.spilled:
            self.spill.delete(object_id)
            self.spilled_objects -= 1
            self.spilled_bytes -= record.size
            self._usage_changed()
        for waiter in record.sealed_waiters:
            if not waiter.done():
                waiter.set_result(None)
        start = record.start
        if start is None:
            return
        self.lru.pop(object_id, None)
        if not self._drop_extent(start, record.size):
            self.zombies[start] = record.size  # a reader still uses it: reclaimed when room is needed

    def _watch(self, ref) -> None:
        if ref is not None and ref not in self.watched:
            self.watched.add(ref)
            self.context.watch(ref)

    def _process_died(self, ref) -> None:
        """An owner died: nobody can free its objects now. A writer died: its unsealed extents go."""
        self.watched.discard(ref)
        for object_id, record in list(self.objects.items()):
            if record.owner == ref or (not record.sealed and record.writer == ref):
                self._free(object_id)

    # -- transfers between nodes ---------------------------------------------------------------

    def _source_for(self, object_id: str):
        """The bytes of `object_id` for a transfer, pinned until it releases them; None if not here."""
        record = self.objects.get(object_id)
        if record is None or record.freed or not record.sealed:
            return None
        self.transfers[2] += 1
        self.transfers[3] += record.size
        start = record.start
        if start is not None and record.moved is None and self.arena.pins.acquire(start):
            # Pinned as a reader pins it: neither spilled nor reused (even once freed) while lent.
            self.arena.populate(start + HEADER_SIZE, record.size, write=False)
            view = self.arena.data(start, record.size).toreadonly()

            def release() -> None:
                _release_view(view)
                self.arena.pins.drop(start)

            return _Served(view, release)
        if record.spilled:  # served from its file, zero-copy through the page cache
            mapped = self.spill.map(object_id, record.size)
            view = memoryview(mapped)

            def close() -> None:
                _release_view(view)
                try:
                    mapped.close()
                except BufferError:  # a slice still alive: unmapped when it goes
                    pass

            return _Served(view, close)
        return None

    def _fetch(self, message: FetchObject) -> None:
        if message.object_id in self.objects:
            return self._answer_later(self._locate(message.object_id))
        object_id = message.object_id
        self.pulling[object_id] = self.pulling.get(object_id, 0) + 1  # (a free from now on cancels it)

        async def fetch() -> int:
            try:
                return await self.pulls.fetch(object_id, lambda: self._pull(message))
            finally:
                left = self.pulling.pop(object_id) - 1
                if left:
                    self.pulling[object_id] = left
                else:
                    self.freed_while_pulling.discard(object_id)

        return self._answer_later(fetch())

    async def _pull(self, message: FetchObject) -> int:
        from ..objects.transfer import pull

        object_id, size = message.object_id, message.size
        failures = []
        start = await self._room_for(object_id, size)
        self.arena.populate(start, extent_size(size), write=True)
        try:
            for source in message.sources:
                address = self.transfer_addresses.get(source)
                if address is None:
                    failures.append(f"node {source} is not alive")
                    continue
                try:
                    await pull(address, self.token, object_id, self.arena.data(start, size),
                               tls=self.context.system.tls)
                except ConnectionError as error:
                    failures.append(str(error))
                    continue
                if object_id in self.freed_while_pulling:
                    raise LookupError(f"object {object_id} was freed while it was pulled")
                self.arena.write_header(start, object_id, size)
                self.objects[object_id] = _Object(size, start, sealed=True, owner=message.owner)
                self.lru[object_id] = None
                self._watch(message.owner)
                pulled, start = start, None  # (kept: no longer given back below)
                self.transfers[0] += 1
                self.transfers[1] += size
                return pulled
            raise ConnectionError(f"object {object_id} could not be pulled from any of its "
                                  f"{len(message.sources)} location(s): " + "; ".join(failures))
        finally:
            if start is not None:
                self._release_extent(start, size)

    # -- usage and lifetime ----------------------------------------------------------------------

    def _usage(self) -> StoreUsage:
        return StoreUsage(len(self.lru) + len(self.zombies), self.bytes_used, self.capacity,
                          self.spilled_objects, self.spilled_bytes, *self.transfers)

    def _usage_changed(self) -> None:
        if self.gcs is not None and not self._usage_scheduled:
            self._usage_scheduled = True
            self.context.system.loop.call_soon(self._send_usage)

    def _send_usage(self) -> None:
        self._usage_scheduled = False
        self.gcs.tell(self._usage())

    async def post_stop(self) -> None:
        if self._room_task is not None:
            self._room_task.cancel()
        if self.pulls is not None:
            await self.pulls.close()
        if self.server is not None:
            await self.server.stop()
        self.objects.clear()
        if self.arena is not None:
            self.arena.close()
        if self.spill is not None:
            self.spill.remove()
        shm.cleanup_session(self.node_id)
