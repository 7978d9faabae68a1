"""The ObjectStore actor: the node's table of shared-memory objects (docs/architecture.md,
"Objects: put and get").

Large objects (≥ 100 KiB) are written by their producer into one shared-memory segment each
and registered here; same-node readers map them read-only. The owner frees them when the
last reference is gone (`FreeObjects`, sent to every node that may hold a copy), and the
node's shutdown removes whatever is left, so no segment outlives the node. The store watches
the owners it is told of: when an owner's process dies (a driver that exits), its objects go.

In a cluster the store also serves its segments to other nodes over its object-transfer gRPC
endpoint, and answers `FetchObject` (a reader here needs an object held elsewhere, or the
owner asks for a replica here) by pulling the object from the first of its sources that
answers, into a segment of this node (``segment_name(node_id, object_id)``). Concurrent
fetches of one object share one pull. The owner learns the new location from the reply.
"""

from __future__ import annotations

import asyncio

from .._logging import get_logger
from ..kernel import Actor, Terminated
from ..objects import shm
from ..protocol import (
    ClusterView,
    FetchObject,
    FreeObjects,
    GetStoreUsage,
    GetTransferAddress,
    RegisterSegment,
    StoreUsage,
)

__all__ = ["ObjectStore"]

log = get_logger(__name__)


class ObjectStore(Actor):
    """The node's shared-memory objects (see the module's docstring)."""

    def __init__(self, node_id: str, *, transfer_bind: str | None = None, token: str | None = None,
                 gcs=None) -> None:
        self.gcs = gcs  # in a cluster: told what the store holds (for `actorcore status`)
        self._usage_scheduled = False
        self.node_id = node_id  # its segments are named after it
        self.transfer_bind = transfer_bind
        self.token = token
        self.segments: dict[str, tuple[str, int]] = {}
        self.bytes_used = 0
        self.server = None
        self.transfer_addresses: dict[str, str] = {}  # node id -> its transfer endpoint
        self.pulls = None  # a PullMerger in a cluster: concurrent fetches of one object share one pull
        self.freed_while_pulling: set[str] = set()
        self.owned: dict = {}  # owner ref -> its object ids here
        self.owner_of: dict[str, object] = {}

    async def pre_start(self) -> None:
        if self.transfer_bind:  # (grpc is imported only in a cluster: a local node starts faster)
            from ..objects.transfer import PullMerger, TransferServer

            self.pulls = PullMerger()
            self.server = TransferServer(self.transfer_bind, self.token, self._source_for,
                                         tls=self.context.system.tls)
            await self.server.start()

    async def receive(self, message):
        if isinstance(message, RegisterSegment):
            self._add(message.object_id, message.name, message.size, message.owner)
        elif isinstance(message, FetchObject):
            return await self._fetch(message)
        elif isinstance(message, Terminated):  # an owner died: nobody can free its objects now
            self._free(self.owned.pop(message.ref, ()))
        elif isinstance(message, FreeObjects):
            self._free(message.names)
        elif isinstance(message, ClusterView):
            self.transfer_addresses = {
                node_id: record["transfer"] for node_id, record in message.nodes.items() if record.get("transfer")
            }
        elif isinstance(message, GetTransferAddress):
            return self.server.address if self.server is not None else None
        elif isinstance(message, GetStoreUsage):
            return StoreUsage(len(self.segments), self.bytes_used)
        return None

    def _free(self, object_ids) -> None:
        for object_id in list(object_ids):
            owner = self.owner_of.pop(object_id, None)
            if owner is not None:
                self.owned.get(owner, set()).discard(object_id)
            if self.pulls is not None and object_id in self.pulls:
                self.freed_while_pulling.add(object_id)
            entry = self.segments.pop(object_id, None)
            if entry is not None:
                self.bytes_used -= entry[1]
                shm.unlink_segment(entry[0])
                self._usage_changed()

    def _add(self, object_id: str, name: str, size: int, owner=None) -> None:
        if object_id not in self.segments:
            self.segments[object_id] = (name, size)
            self.bytes_used += size
            self._usage_changed()
        if owner is not None and object_id not in self.owner_of:
            self.owner_of[object_id] = owner
            if owner not in self.owned:
                self.owned[owner] = set()
                self.context.watch(owner)
            self.owned[owner].add(object_id)

    def _usage_changed(self) -> None:
        if self.gcs is not None and not self._usage_scheduled:
            self._usage_scheduled = True
            self.context.system.loop.call_soon(self._send_usage)

    def _send_usage(self) -> None:
        self._usage_scheduled = False
        self.gcs.tell(StoreUsage(len(self.segments), self.bytes_used))

    async def _fetch(self, message: FetchObject):
        entry = self.segments.get(message.object_id)
        if entry is not None:
            return entry[0]
        # Answered when the pull is done; the store meanwhile goes on with other messages.
        reply = self.context.defer_reply()
        task = asyncio.get_running_loop().create_task(
            self.pulls.fetch(message.object_id, lambda: self._pull(message)))

        def answer(done: asyncio.Future) -> None:
            if done.cancelled():
                reply.fail(ConnectionError(f"the pull of object {message.object_id} was cancelled"))
            elif done.exception() is not None:
                reply.fail(done.exception())
            else:
                reply.send(done.result())

        task.add_done_callback(answer)
        return None

    def _source_for(self, object_id: str) -> _ServedSegment | None:
        """The local copy of ``object_id`` for the transfer server: its segment mapped read-only."""
        entry = self.segments.get(object_id)
        if entry is None:
            return None
        try:
            return _ServedSegment(shm.open_segment(*entry))
        except FileNotFoundError:
            return None

    async def _pull(self, message: FetchObject) -> str:
        from ..objects.transfer import pull

        name = shm.segment_name(self.node_id, message.object_id)
        failures = []
        try:
            segment = shm.create_segment(name, message.size)  # pre-faulted: the pull writes straight into it
            pulled = False
            try:
                for source in message.sources:
                    address = self.transfer_addresses.get(source)
                    if address is None:
                        failures.append(f"node {source} is not alive")
                        continue
                    try:
                        await pull(address, self.token, message.object_id, segment.view, tls=self.context.system.tls)
                    except ConnectionError as error:
                        failures.append(str(error))
                        continue
                    pulled = True
                    break
            finally:
                segment.close()
                if not pulled:
                    shm.unlink_segment(name)
            if not pulled:
                raise ConnectionError(f"object {message.object_id} could not be pulled from any of its "
                                      f"{len(message.sources)} location(s): " + "; ".join(failures))
            if message.object_id in self.freed_while_pulling:
                shm.unlink_segment(name)
                raise LookupError(f"object {message.object_id} was freed while it was pulled")
            self._add(message.object_id, name, message.size, message.owner)
            return name
        finally:
            self.freed_while_pulling.discard(message.object_id)  # however the pull ended

    async def post_stop(self) -> None:
        if self.pulls is not None:
            await self.pulls.close()
        if self.server is not None:
            await self.server.stop()
        self.segments.clear()
        shm.cleanup_session(self.node_id)


class _ServedSegment:
    """A segment the transfer server reads (a `transfer.Source`): released by closing it."""

    __slots__ = ("segment", "view")

    def __init__(self, segment: shm.Segment) -> None:
        self.segment = segment
        self.view = segment.view

    def release(self) -> None:
        self.view = None
        self.segment.close()
