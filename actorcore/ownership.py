"""Object ownership in the CoreWorker (DESIGN.md §5: ownership, small and large objects).

The process that creates an object owns it: its table holds the payload (inline bytes for
objects under 100 KiB, a shared-memory segment's name for larger ones) and counts the
references to it (live `ObjectRef`s here, pending tasks that take it as an argument). When
both counts reach zero and the ref never left the process, the object is freed. `put`, `get`
and `wait` run on the user's thread and reach the loop only when they must wait.

In a cluster a large object may live on another node: a reader's ObjectStore pulls a copy
first (`localize`). The owner knows every location of its large objects (the `InShm`
payload's node and replicas): it has `object_replicas` copies made on distinct nodes in the
background, drops the locations on nodes that died (promoting a replica when the primary's
node died, else running the task that made it again: lineage, recursively, since a task
keeps its arguments pinned while its results may have to be made again), and frees a freed
object on every node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from . import exceptions as exc
from ._logging import get_logger
from .kernel import ActorRef, PeerLostError
from .object_ref import ObjectRef
from .objects import INLINE_THRESHOLD, deserialize, get_shared, put_shared, serialize
from .objects.shm import object_id_of, segment_name
from .protocol import (
    Failed,
    FetchObject,
    FreeObjects,
    GetObject,
    GetStoreUsage,
    Inline,
    InShm,
    LeaseBlocked,
    LeaseUnblocked,
    RegisterSegment,
)

log = get_logger(__name__)

#: How long a reader waits for the owner to sort out an object whose copies are all unreachable
#: (its node died: the owner learns it within the lease TTL) before `get` raises ObjectLostError.
LOST_GRACE_SECONDS = 30.0


class Entry:
    __slots__ = ("escaped", "payload", "pins", "refs", "waiters")

    def __init__(self, payload=None, refs: int = 1) -> None:
        self.payload = payload  # Inline | InShm | Failed, None while pending
        self.waiters: list[asyncio.Future] | None = None
        self.refs = refs
        self.pins = 0
        self.escaped = False


def to_payload(value: Any, object_id: str, session: str, store: ActorRef | None, what: str,
               owner: ActorRef | None = None):
    """Serialize a value into an Inline payload, or into shared memory (registered with the store)."""
    try:
        serialized = serialize(value)
    except TypeError as error:
        raise TypeError(f"{what} cannot be serialized: {error}") from None
    if serialized.total_size < INLINE_THRESHOLD or store is None:
        return Inline(serialized.to_bytes())
    name, size = put_shared(session, object_id, serialized)
    store.tell(RegisterSegment(object_id, name, size, owner))
    return InShm(name, size, session)


def from_payload(payload) -> Any:
    """The value of a payload (raises the error of a Failed one, as `get` does)."""
    if type(payload) is Inline:
        return deserialize(memoryview(payload.data))
    if type(payload) is InShm:
        return get_shared(payload.name, payload.size)
    error = payload.error
    if isinstance(error, exc.TaskError):
        raise error.as_instanceof_cause()
    raise error


class ObjectOwnership:
    """The owner's table and put/get/wait; mixed into `CoreWorker`."""

    def local_ref(self, object_id: str) -> ObjectRef:
        entry = self.objects.get(object_id)
        if entry is None:
            return ObjectRef(object_id, self.actor)
        self.loop.call_soon_threadsafe(self._add_ref, object_id)
        return ObjectRef(object_id, self.actor, self)

    def _add_ref(self, object_id: str) -> None:
        entry = self.objects.get(object_id)
        if entry is not None:
            entry.refs += 1

    def mark_escaped(self, object_id: str) -> None:
        entry = self.objects.get(object_id)
        if entry is not None:
            entry.escaped = True

    def release(self, object_id: str) -> None:
        if threading.get_ident() == self.system._thread_id:
            self._release(object_id)
        elif not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._release, object_id)
            except RuntimeError:
                pass

    def _release(self, object_id: str) -> None:
        entry = self.objects.get(object_id)
        if entry is None:
            return
        entry.refs -= 1
        self._maybe_free(object_id, entry)

    def _maybe_free(self, object_id: str, entry: Entry) -> None:
        if entry.refs > 0 or entry.pins > 0 or entry.escaped or entry.payload is None:
            return
        del self.objects[object_id]
        self._drop_lineage(object_id)
        if type(entry.payload) is InShm:
            if self.cluster_mode:  # any node may hold a copy (replicas, readers' pulls)
                for store in self.stores():
                    store.tell(FreeObjects([object_id]))
            else:
                self.store.tell(FreeObjects([object_id]))

    # -- put / get / wait (user thread) ------------------------------------------------------

    def put(self, value: Any, replicas: int | None = None) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the value is already in the object store; "
                "pass the ref itself, or put a list containing it"
            )
        object_id = self.new_id("p")
        payload = to_payload(value, object_id, self.session, self.store, "the value passed to put()", self.actor)
        self.objects[object_id] = Entry(payload)
        if type(payload) is InShm:
            # Once put returns, the store knows the segment and its owner (it frees it if this
            # process dies): one round trip, on puts of 100 KiB and more only.
            self.system.ask_sync(self.store, GetStoreUsage(), timeout=30)
        if type(payload) is InShm and self.cluster_mode:
            wanted = self.object_replicas if replicas is None else replicas
            if wanted > 1:
                self.loop.call_soon_threadsafe(self._start_replication, object_id, payload, wanted)
        return ObjectRef(object_id, self.actor, self)

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list:
        payloads = self._ready_payloads(refs)
        if payloads is None:
            blocked = self.current_lease is not None
            if blocked:
                self.scheduler.tell(LeaseBlocked(self.current_lease))
            try:
                future = asyncio.run_coroutine_threadsafe(self._gather(refs, timeout), self.loop)
                payloads = future.result()
            finally:
                if blocked:
                    self.scheduler.tell(LeaseUnblocked(self.current_lease))
        return [from_payload(p) for p in payloads]

    def _ready_payloads(self, refs: list[ObjectRef]) -> list | None:
        payloads = []
        objects = self.objects
        for ref in refs:
            entry = objects.get(ref.id)
            if entry is None or entry.payload is None:
                return None
            payload = entry.payload
            if type(payload) is InShm and payload.node != self.node_id and self.cluster_mode:
                return None  # held on another node: the loop fetches a copy first
            payloads.append(payload)
        return payloads

    async def _gather(self, refs: list[ObjectRef], timeout: float | None) -> list:
        if self.cluster_mode:
            futures = [self.loop.create_task(self._local_payload(ref)) for ref in refs]
        else:
            futures = [self._payload_future(ref) for ref in refs]
        if timeout is not None:
            done, pending = await asyncio.wait(futures, timeout=timeout)
            if pending:
                for future in pending:
                    future.cancel()
                raise exc.GetTimeoutError(
                    f"get timed out after {timeout:g} s: {len(pending)} of {len(refs)} object(s) not ready"
                )
        else:
            await asyncio.wait(futures)
        return [future.result() for future in futures]

    async def _local_payload(self, ref: ObjectRef):
        """The payload of `ref`, readable here (clusters). If no copy it knows of can be reached,
        it waits (up to `LOST_GRACE_SECONDS`) for the owner to learn of the node's death: the
        owner then names a replica, or makes the object again, or declares it lost."""
        payload = await self._payload_future(ref)
        deadline = self.loop.time() + LOST_GRACE_SECONDS
        while True:
            if type(payload) is not InShm:
                return payload
            local = await self.localize(payload)
            if type(local) is not Failed or self.loop.time() > deadline:
                return local
            await asyncio.sleep(0.25)
            payload = await self._payload_future(ref)

    def _payload_future(self, ref: ObjectRef) -> asyncio.Future:
        entry = self.objects.get(ref.id)
        future = self.loop.create_future()
        if entry is not None:
            if entry.payload is not None:
                future.set_result(entry.payload)
            else:
                if entry.waiters is None:
                    entry.waiters = []
                entry.waiters.append(future)
            return future
        if ref.owner == self.actor:
            future.set_result(Failed(exc.ObjectLostError(ref.id, "it was freed: no reference to it was left")))
            return future
        ask = ref.owner.ask(GetObject(ref.id), timeout=None)

        def done(ask_future: asyncio.Future) -> None:
            if future.done():
                return
            if ask_future.cancelled():
                future.cancel()
            elif ask_future.exception() is not None:
                error = ask_future.exception()
                if isinstance(error, PeerLostError):
                    error = exc.OwnerDiedError(ref.id, "its owner's process died")
                future.set_result(Failed(error))
            else:
                future.set_result(ask_future.result())

        ask.add_done_callback(done)
        return future

    async def _payload_for_remote(self, object_id: str):
        entry = self.objects.get(object_id)
        if entry is None:
            return Failed(exc.ObjectLostError(object_id, "its owner has freed it"))
        if entry.payload is None:
            future = self.loop.create_future()
            if entry.waiters is None:
                entry.waiters = []
            entry.waiters.append(future)
            return await future
        return entry.payload

    def _resolve(self, object_id: str, payload) -> None:
        entry = self.objects.get(object_id)
        if entry is None:
            return
        entry.payload = payload
        if type(payload) is InShm and self.cluster_mode and self.object_replicas > 1:
            self._start_replication(object_id, payload, self.object_replicas)
        waiters, entry.waiters = entry.waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(payload)
        self._maybe_free(object_id, entry)

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        result: concurrent.futures.Future = concurrent.futures.Future()

        def on_loop() -> None:
            future = self._payload_future(ref)

            def done(f: asyncio.Future) -> None:
                payload = f.result()
                if self.cluster_mode and type(payload) is InShm and payload.node != self.node_id:
                    self.loop.create_task(self.localize(payload)).add_done_callback(done)
                    return
                try:
                    result.set_result(from_payload(payload))
                except BaseException as error:  # the error get() would raise
                    result.set_exception(error)

            future.add_done_callback(done)

        self.loop.call_soon_threadsafe(on_loop)
        return result

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> tuple[list, list]:
        ready_ids = self._ready_now(refs, num_returns)
        if ready_ids is None:
            future = asyncio.run_coroutine_threadsafe(self._wait(refs, num_returns, timeout), self.loop)
            ready_ids = future.result()
        ready = [ref for ref in refs if ref.id in ready_ids]
        not_ready = [ref for ref in refs if ref.id not in ready_ids]
        return ready, not_ready

    def _ready_now(self, refs: list[ObjectRef], num_returns: int) -> set | None:
        """The first `num_returns` refs that are ready, if that many are (no trip to the loop)."""
        objects = self.objects
        ready = set()
        for ref in refs:
            entry = objects.get(ref.id)
            if entry is not None and entry.payload is not None:
                ready.add(ref.id)
                if len(ready) == num_returns:
                    return ready
        return None

    async def _wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> set:
        futures = [self._payload_future(ref) for ref in refs]
        ready_count = sum(1 for future in futures if future.done())
        pending = {future for future in futures if not future.done()}
        deadline = None if timeout is None else self.loop.time() + timeout
        while ready_count < num_returns and pending:
            remaining = None if deadline is None else deadline - self.loop.time()
            if remaining is not None and remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            ready_count += len(done)
        for future in pending:
            future.cancel()
        ready: set[str] = set()
        for ref, future in zip(refs, futures):
            if future.done() and not future.cancelled():
                ready.add(ref.id)
                if len(ready) == num_returns:
                    break
        return ready

    # -- objects on other nodes (clusters) ---------------------------------------------------

    async def localize(self, payload):
        """A payload readable on this node: a large object held elsewhere is pulled here first."""
        if type(payload) is not InShm or payload.node == self.node_id or not self.cluster_mode:
            return payload
        object_id = object_id_of(payload.name)
        if self.node_id in payload.replicas:
            return InShm(segment_name(self.node_id, object_id), payload.size, self.node_id)
        try:
            name = await self.store.ask(FetchObject(object_id, payload.size, (payload.node, *payload.replicas)),
                                        timeout=None)
        except Exception as error:
            return Failed(exc.ObjectLostError(object_id, f"no copy of it could be fetched: {error}"))
        return InShm(name, payload.size, self.node_id)

    async def localize_args(self, spec) -> None:
        """Pull the large arguments of a task that live on other nodes (before it runs)."""
        if any(_remote_shm(a, self.node_id) for a in spec.args):
            spec.args = list(await asyncio.gather(*(self.localize(a) for a in spec.args)))
        if any(_remote_shm(v, self.node_id) for v in spec.kwargs.values()):
            values = await asyncio.gather(*(self.localize(v) for v in spec.kwargs.values()))
            spec.kwargs = dict(zip(spec.kwargs, values))

    def _start_replication(self, object_id: str, payload: InShm, wanted: int) -> None:
        candidates = [n for n in self.view if n != payload.node and n not in payload.replicas]
        missing = wanted - 1 - len(payload.replicas)
        # Spread replicas: start from a different node for each object.
        offset = hash(object_id) % len(candidates) if candidates else 0
        for node_id in (candidates[offset:] + candidates[:offset])[:max(0, missing)]:
            self.loop.create_task(self._replicate(object_id, payload, node_id))

    async def _replicate(self, object_id: str, payload: InShm, node_id: str) -> None:
        store = self.store_of(node_id)
        if store is None:
            return
        try:
            await store.ask(FetchObject(object_id, payload.size, (payload.node, *payload.replicas), self.actor),
                            timeout=None)
        except Exception as error:
            log.warning("replication failed", object=object_id, node=node_id, error=repr(error))
            return
        entry = self.objects.get(object_id)
        if entry is None:  # freed meanwhile: drop the copy too
            store.tell(FreeObjects([object_id]))
            return
        current = entry.payload
        if type(current) is InShm and node_id not in current.replicas and node_id != current.node:
            entry.payload = InShm(current.name, current.size, current.node, (*current.replicas, node_id))

    def _drop_dead_locations(self, dead: tuple) -> None:
        """Forget copies on dead nodes; a primary copy lost is replaced by a replica, if any."""
        dead_set = set(dead)
        for object_id, entry in list(self.objects.items()):
            payload = entry.payload
            if type(payload) is not InShm or not (payload.node in dead_set or dead_set & set(payload.replicas)):
                continue
            replicas = tuple(n for n in payload.replicas if n not in dead_set)
            if payload.node not in dead_set:
                entry.payload = InShm(payload.name, payload.size, payload.node, replicas)
            elif replicas:
                entry.payload = InShm(segment_name(replicas[0], object_id), payload.size, replicas[0], replicas[1:])
            elif object_id in self.lineage and self.reconstruct(self.lineage[object_id]):
                entry.payload = None  # made again by its task (lineage); `get` waits for it
            else:
                why = f"the node that held it ({payload.node}) died and it had no replica"
                if object_id in self.lineage:
                    why += "; running its task again exceeded its max_retries"
                entry.payload = Failed(exc.ObjectLostError(object_id, why))


def _remote_shm(payload, node_id: str) -> bool:
    return type(payload) is InShm and payload.node != node_id and node_id not in payload.replicas
