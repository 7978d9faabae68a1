"""The owner's object table: payloads, reference counts, pins and lineage of the objects it owns.

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
from collections.abc import Callable
from typing import Any

from .. import exceptions as exc
from .._logging import get_logger
from ..kernel import ActorRef, ActorSystem, PeerLostError
from ..object_ref import ObjectRef
from ..objects import Serialized
from ..protocol import (
    Failed,
    FetchObject,
    FreeObjects,
    GetObject,
    Inline,
    InShm,
    LeaseBlocked,
    LeaseUnblocked,
)
from .cluster import Cluster
from .local_objects import LocalObjects
from .payloads import from_payload, to_payload
from .pending import PendingTask

__all__ = ["LOST_GRACE_SECONDS", "Entry", "ObjectTable"]

log = get_logger(__name__)

#: How long a reader waits for the owner to sort out an object whose copies are all unreachable
#: (its node died: the owner learns it within the lease TTL) before `get` raises ObjectLostError.
LOST_GRACE_SECONDS = 30.0

#: How long the loop polls instead of sleeping while a user thread waits in `get` (it holds no
#: GIL meanwhile): a result that comes sooner is read without waking a halted vCPU (~50 µs on
#: a VM). A task round trip to another node takes ~0.4 ms.
GET_SPIN_SECONDS = 0.001


class Entry:
    """One owned object: its payload (None while its task runs) and what keeps it alive."""

    __slots__ = ("escaped", "payload", "pins", "refs", "waiters")

    def __init__(self, payload=None, refs: int = 1) -> None:
        self.payload = payload  # Inline | InShm | Failed, None while pending
        self.waiters: list[asyncio.Future] | None = None
        self.refs = refs  # live ObjectRefs in this process
        self.pins = 0  # pending tasks that take it as an argument
        self.escaped = False  # a ref left the process: never freed by counting


class ObjectTable:
    """The objects this process owns, and `put`/`get`/`wait` for any object.

    ``table[object_id]`` is the `Entry` of an owned object (KeyError if unknown or freed).
    """

    def __init__(self, system: ActorSystem, owner: ActorRef, node_id: str, store: ActorRef,
                 scheduler: ActorRef, cluster: Cluster, new_id: Callable[[str], str]) -> None:
        self._system = system
        self._loop = system.loop
        self._owner = owner
        self._node_id = node_id
        self._store = store
        self._scheduler = scheduler
        self._cluster = cluster
        self._new_id = new_id
        self._entries: dict[str, Entry] = {}
        #: this process's reads and writes of the node's arena
        self.local = LocalObjects(system, store, node_id, owner)
        self._lineage: dict[str, PendingTask] = {}  # large task returns -> the finished task
        #: runs a finished task again to make its lost returns (False if out of retries);
        #: the task submitter's, set when the core is wired
        self.remake: Callable[[PendingTask], bool] = lambda task: False
        #: set in a worker while a task runs: a `get` that must wait has its lease marked
        #: blocked meanwhile, so the Scheduler may lend its CPU to another worker
        self.current_lease: int | None = None

    @property
    def owner(self) -> ActorRef:
        """The owner of the objects of this table: this process's core actor."""
        return self._owner

    def __getitem__(self, object_id: str) -> Entry:
        return self._entries[object_id]

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> list[dict[str, Any]]:
        """The owned objects as the state API lists them (loop thread): Ray's ObjectState fields
        ``object_id``, ``object_size`` (serialized bytes; None while pending), ``task_status``,
        ``reference_type`` (why it is kept), plus ``node_id`` (where its primary copy is) and
        ``local_refs``/``pinned_by_tasks`` (the counts)."""
        rows = []
        for object_id, entry in self._entries.items():
            payload = entry.payload
            if entry.pins > 0:
                why = "USED_BY_PENDING_TASK"
            elif entry.refs > 0:
                why = "LOCAL_REFERENCE"
            elif entry.escaped:
                why = "CAPTURED_IN_OBJECT"
            else:
                why = "PINNED_IN_MEMORY"
            kind = type(payload)
            rows.append({
                "object_id": object_id,
                "object_size": payload.size if kind is InShm else len(payload.data) if kind is Inline else None,
                "task_status": "FAILED" if kind is Failed else "PENDING" if payload is None else "FINISHED",
                "reference_type": why,
                "node_id": payload.node if kind is InShm else self._node_id,
                "in_shared_memory": kind is InShm,
                "local_refs": entry.refs,
                "pinned_by_tasks": entry.pins,
            })
        return rows

    # -- references (any thread; counted on the loop) --------------------------------------

    def expect(self, object_ids: list[str]) -> None:
        """Own the objects `object_ids`, a task's returns, pending until `resolve`d."""
        entries = self._entries
        for object_id in object_ids:
            entries[object_id] = Entry()

    def local_ref(self, object_id: str) -> ObjectRef:
        """A ref to `object_id` (owned here) that came back to this process: counted again."""
        entry = self._entries.get(object_id)
        if entry is None:
            return ObjectRef(object_id, self._owner)
        self._loop.call_soon_threadsafe(self._add_ref, object_id)
        return ObjectRef(object_id, self._owner, self)

    def _add_ref(self, object_id: str) -> None:
        entry = self._entries.get(object_id)
        if entry is not None:
            entry.refs += 1

    def mark_escaped(self, object_id: str) -> None:
        """A ref to `object_id` was pickled: another process may use it, so it is never freed."""
        entry = self._entries.get(object_id)
        if entry is not None:
            entry.escaped = True

    def release(self, object_id: str) -> None:
        """A counted ref to `object_id` was dropped (from any thread)."""
        if threading.get_ident() == self._system._thread_id:
            self._release(object_id)
        elif not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._release, object_id)
            except RuntimeError:
                pass

    def _release(self, object_id: str) -> None:
        entry = self._entries.get(object_id)
        if entry is None:
            return
        entry.refs -= 1
        self._maybe_free(object_id, entry)

    def _maybe_free(self, object_id: str, entry: Entry) -> None:
        if entry.refs > 0 or entry.pins > 0 or entry.escaped or entry.payload is None:
            return
        del self._entries[object_id]
        self._drop_lineage(object_id)
        if type(entry.payload) is InShm:
            if self._cluster.cluster_mode:  # any node may hold a copy (replicas, readers' pulls)
                for store in self._cluster.stores():
                    store.tell(FreeObjects([object_id]))
            else:
                self._store.tell(FreeObjects([object_id]))

    # -- put / get / wait (user thread) ------------------------------------------------------

    def put(self, value: Any, replicas: int | None = None, serialized: Serialized | None = None) -> ObjectRef:
        """Store `value` (or its `serialized` form), owned here; `replicas`: copies on distinct
        nodes (default: the cluster's)."""
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the value is already in the object store; "
                "pass the ref itself, or put a list containing it"
            )
        object_id = self._new_id("p")
        payload = to_payload(value, object_id, self.local, "the value passed to put()", self._owner, serialized)
        self._entries[object_id] = Entry(payload)
        if type(payload) is InShm and self._cluster.cluster_mode:
            wanted = self._cluster.object_replicas if replicas is None else replicas
            if wanted > 1:
                self._loop.call_soon_threadsafe(self._start_replication, object_id, payload, wanted)
        return ObjectRef(object_id, self._owner, self)

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list:
        """The values of `refs`, waiting up to `timeout` seconds (GetTimeoutError after)."""
        payloads = self._ready_payloads(refs)
        if payloads is None:
            lease = self.current_lease
            if lease is not None:
                self._scheduler.tell(LeaseBlocked(lease))
            try:
                payloads = self._wait_payloads(refs, timeout)
            finally:
                if lease is not None:
                    self._scheduler.tell(LeaseUnblocked(lease))
        return [from_payload(p, self.local) for p in payloads]

    def _ready_payloads(self, refs: list[ObjectRef]) -> list | None:
        payloads = []
        entries = self._entries
        for ref in refs:
            entry = entries.get(ref.id)
            if entry is None or entry.payload is None:
                return None
            payload = entry.payload
            if type(payload) is InShm and payload.node != self._cluster.node_id and self._cluster.cluster_mode:
                return None  # held on another node: the loop fetches a copy first
            payloads.append(payload)
        return payloads

    def _wait_payloads(self, refs: list[ObjectRef], timeout: float | None) -> list:
        """The payloads of `refs`, readable here, waited for on the loop (user thread).

        Payloads that need no pull reach this thread from the callbacks of their futures,
        without a coroutine on the way: one wake of the loop and one of this thread per get.
        """
        result: concurrent.futures.Future = concurrent.futures.Future()
        futures: list[asyncio.Future] = []

        def on_loop() -> None:
            futures.extend(self.payload_future(ref) for ref in refs)
            remaining = len(futures)

            def one_done(future: asyncio.Future) -> None:
                nonlocal remaining
                remaining -= 1
                if remaining or result.done() or any(f.cancelled() for f in futures):  # (get timed out)
                    return
                payloads = [f.result() for f in futures]
                node_id = self._cluster.node_id
                if self._cluster.cluster_mode and any(type(p) is InShm and p.node != node_id for p in payloads):
                    gathering = self._loop.create_task(self._gather(refs))
                    futures.append(gathering)
                    gathering.add_done_callback(lambda task: _copy_outcome(task, result))
                else:
                    self._system.stop_spinning()  # the user thread runs on: it needs the GIL
                    result.set_result(payloads)

            for future in futures:
                future.add_done_callback(one_done)
            if remaining and self._system.open_asks <= 1:
                # A lone request (as a task's round trip): its reply is read at once if it comes
                # soon. With more in flight, other processes of the machine need the CPU.
                self._system.spin_for(GET_SPIN_SECONDS)

        self._loop.call_soon_threadsafe(on_loop)
        try:
            return result.result(timeout)
        except concurrent.futures.TimeoutError:
            self._loop.call_soon_threadsafe(lambda: [f.cancel() for f in futures])
            missing = sum(1 for f in futures[:len(refs)] if not f.done())
            raise exc.GetTimeoutError(
                f"get timed out after {timeout:g} s: {max(missing, 1)} of {len(refs)} object(s) not ready"
            ) from None

    async def _gather(self, refs: list[ObjectRef]) -> list:
        """The payloads of `refs`, those held on other nodes pulled here first (clusters)."""
        return list(await asyncio.gather(*(self._local_payload(ref) for ref in refs)))

    async def _local_payload(self, ref: ObjectRef):
        """The payload of `ref`, readable here (clusters). If no copy it knows of can be reached,
        it waits (up to `LOST_GRACE_SECONDS`) for the owner to learn of the node's death: the
        owner then names a replica, or makes the object again, or declares it lost."""
        payload = await self.payload_future(ref)
        deadline = self._loop.time() + LOST_GRACE_SECONDS
        while True:
            if type(payload) is not InShm:
                return payload
            local = await self.localize(payload)
            if type(local) is not Failed or self._loop.time() > deadline:
                return local
            await asyncio.sleep(0.25)
            payload = await self.payload_future(ref)

    def payload_future(self, ref: ObjectRef) -> asyncio.Future:
        """A future of `ref`'s payload: from this table, or asked of its owner (on the loop).

        An owner that died gives a `Failed(OwnerDiedError)` payload.
        """
        entry = self._entries.get(ref.id)
        future = self._loop.create_future()
        if entry is not None:
            if entry.payload is not None:
                future.set_result(entry.payload)
            else:
                if entry.waiters is None:
                    entry.waiters = []
                entry.waiters.append(future)
            return future
        if ref.owner == self._owner:
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

    async def payload_for_remote(self, object_id: str):
        """The payload of owned object `object_id` for another process, once it is made."""
        entry = self._entries.get(object_id)
        if entry is None:
            return Failed(exc.ObjectLostError(object_id, "its owner has freed it"))
        if entry.payload is None:
            future = self._loop.create_future()
            if entry.waiters is None:
                entry.waiters = []
            entry.waiters.append(future)
            return await future
        return entry.payload

    def resolve(self, object_id: str, payload) -> None:
        """Owned object `object_id` is made (or failed): wake its waiters; free it if unused."""
        entry = self._entries.get(object_id)
        if entry is None:
            return
        entry.payload = payload
        if type(payload) is InShm and self._cluster.cluster_mode:
            dead = self._cluster.dead_nodes.intersection((payload.node, *payload.replicas))
            if dead:
                # Its node died while the result was on its way here (a death is seen in well
                # under a second): handled as that death is, once this call is done.
                self._loop.call_soon(self.drop_dead_locations, tuple(dead))
            elif self._cluster.object_replicas > 1:
                self._start_replication(object_id, payload, self._cluster.object_replicas)
        waiters, entry.waiters = entry.waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(payload)
        self._maybe_free(object_id, entry)

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A future (any thread) of `ref`'s value, or of the error `get` would raise."""
        result: concurrent.futures.Future = concurrent.futures.Future()

        def on_loop() -> None:
            future = self.payload_future(ref)

            def done(f: asyncio.Future) -> None:
                payload = f.result()
                if (self._cluster.cluster_mode and type(payload) is InShm
                        and payload.node != self._cluster.node_id):
                    self._loop.create_task(self.localize(payload)).add_done_callback(done)
                    return
                if type(payload) is InShm:
                    found, value = self.local.try_read(payload)
                    if not found:  # moved (spilled): asked of the store without blocking the loop
                        self._loop.create_task(self.local.read_async(payload)).add_done_callback(deliver)
                        return
                    result.set_result(value)
                    return
                try:
                    result.set_result(from_payload(payload))
                except BaseException as error:  # noqa: BLE001 - the error get() would raise
                    result.set_exception(error)

            def deliver(task: asyncio.Task) -> None:
                if task.cancelled():
                    result.set_exception(exc.ObjectLostError(ref.id, "its read was cancelled"))
                elif task.exception() is not None:
                    result.set_exception(task.exception())
                else:
                    result.set_result(task.result())

            future.add_done_callback(done)

        self._loop.call_soon_threadsafe(on_loop)
        return result

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> tuple[list, list]:
        """`(ready, not_ready)`: the first `num_returns` refs ready within `timeout`, the rest."""
        ready_ids = self._ready_now(refs, num_returns)
        if ready_ids is None:
            future = asyncio.run_coroutine_threadsafe(self._wait(refs, num_returns, timeout), self._loop)
            ready_ids = future.result()
        ready = [ref for ref in refs if ref.id in ready_ids]
        not_ready = [ref for ref in refs if ref.id not in ready_ids]
        return ready, not_ready

    def _ready_now(self, refs: list[ObjectRef], num_returns: int) -> set | None:
        """The first `num_returns` refs that are ready, if that many are (no trip to the loop)."""
        entries = self._entries
        ready = set()
        for ref in refs:
            entry = entries.get(ref.id)
            if entry is not None and entry.payload is not None:
                ready.add(ref.id)
                if len(ready) == num_returns:
                    return ready
        return None

    async def _wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> set:
        futures = [self.payload_future(ref) for ref in refs]
        ready_count = sum(1 for future in futures if future.done())
        pending = {future for future in futures if not future.done()}
        deadline = None if timeout is None else self._loop.time() + timeout
        while ready_count < num_returns and pending:
            remaining = None if deadline is None else deadline - self._loop.time()
            if remaining is not None and remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            ready_count += len(done)
        for future in pending:
            future.cancel()
        ready: set[str] = set()
        for ref, future in zip(refs, futures, strict=True):
            if future.done() and not future.cancelled():
                ready.add(ref.id)
                if len(ready) == num_returns:
                    break
        return ready

    # -- arguments of pending tasks -----------------------------------------------------------

    async def resolve_args(self, task: PendingTask):
        """Pin the objects `task` takes as arguments and replace its refs by their payloads;
        the first `Failed` payload among them if any (the task fails with it), else None."""
        spec = task.spec
        refs = [a for a in spec.args if type(a) is ObjectRef]
        refs += [v for v in spec.kwargs.values() if type(v) is ObjectRef]
        if not refs:
            return None
        if self._cluster.cluster_mode and task.arg_refs is None and spec.method is None and task.return_ids:
            task.arg_refs = (list(spec.args), dict(spec.kwargs))  # only a task's lineage reads it
        for ref in refs:
            entry = self._entries.get(ref.id)
            if entry is not None and ref.id not in task.pinned:  # (a task run again is pinned)
                entry.pins += 1
                task.pinned.append(ref.id)
        payloads = await asyncio.gather(*(self.payload_future(ref) for ref in refs))
        by_id = {ref.id: payload for ref, payload in zip(refs, payloads, strict=True)}
        for payload in payloads:
            if type(payload) is Failed:
                return payload
        spec.args = [by_id[a.id] if type(a) is ObjectRef else a for a in spec.args]
        spec.kwargs = {k: (by_id[v.id] if type(v) is ObjectRef else v) for k, v in spec.kwargs.items()}
        return None

    def unpin(self, task: PendingTask) -> None:
        """`task` no longer needs its arguments: unpin them (freeing those otherwise unused)."""
        pinned, task.pinned = task.pinned, []
        for object_id in pinned:
            entry = self._entries.get(object_id)
            if entry is not None:
                entry.pins -= 1
                self._maybe_free(object_id, entry)

    def keep_lineage(self, object_id: str, task: PendingTask) -> None:
        """Remember that `task` made `object_id` (large, in a cluster): if every node holding a
        copy dies it is made again. The task keeps its arguments pinned meanwhile."""
        self._lineage[object_id] = task

    def _drop_lineage(self, object_id: str) -> None:
        task = self._lineage.pop(object_id, None)
        if task is not None and not any(self._lineage.get(o) is task for o in task.return_ids):
            self.unpin(task)

    # -- objects on other nodes (clusters) ---------------------------------------------------

    async def localize(self, payload):
        """A payload readable on this node: a large object held elsewhere is pulled here first."""
        node_id = self._cluster.node_id
        if type(payload) is not InShm or payload.node == node_id or not self._cluster.cluster_mode:
            return payload
        object_id = payload.object_id
        if node_id in payload.replicas:
            return InShm(object_id, payload.size, node_id)  # (where in the arena: its store says)
        try:
            offset = await self._store.ask(FetchObject(object_id, payload.size, (payload.node, *payload.replicas)),
                                           timeout=None)
        except Exception as error:  # noqa: BLE001 - any failed fetch means the object is lost
            return Failed(exc.ObjectLostError(object_id, f"no copy of it could be fetched: {error}"))
        return InShm(object_id, payload.size, node_id, (), offset)

    async def localize_args(self, spec) -> None:
        """Pull the large arguments of a task that live on other nodes (before it runs)."""
        node_id = self._cluster.node_id
        if any(_remote_shm(a, node_id) for a in spec.args):
            spec.args = list(await asyncio.gather(*(self.localize(a) for a in spec.args)))
        if any(_remote_shm(v, node_id) for v in spec.kwargs.values()):
            values = await asyncio.gather(*(self.localize(v) for v in spec.kwargs.values()))
            spec.kwargs = dict(zip(spec.kwargs, values, strict=True))

    def _start_replication(self, object_id: str, payload: InShm, wanted: int) -> None:
        candidates = [n for n in self._cluster.view if n != payload.node and n not in payload.replicas]
        missing = wanted - 1 - len(payload.replicas)
        # Spread replicas: start from a different node for each object.
        offset = hash(object_id) % len(candidates) if candidates else 0
        for node_id in (candidates[offset:] + candidates[:offset])[:max(0, missing)]:
            self._loop.create_task(self._replicate(object_id, payload, node_id))

    async def _replicate(self, object_id: str, payload: InShm, node_id: str) -> None:
        store = self._cluster.store_of(node_id)
        if store is None:
            return
        try:
            await store.ask(FetchObject(object_id, payload.size, (payload.node, *payload.replicas), self._owner),
                            timeout=None)
        except Exception as error:  # noqa: BLE001 - a failed replica is logged; the object keeps its copies
            log.warning("replication failed", object=object_id, node=node_id, error=repr(error))
            return
        entry = self._entries.get(object_id)
        if entry is None:  # freed meanwhile: drop the copy too
            store.tell(FreeObjects([object_id]))
            return
        current = entry.payload
        if type(current) is InShm and node_id not in current.replicas and node_id != current.node:
            entry.payload = InShm(current.object_id, current.size, current.node, (*current.replicas, node_id),
                                  current.offset)

    def drop_dead_locations(self, dead: tuple) -> None:
        """Forget copies on dead nodes; a primary copy lost is replaced by a replica, if any,
        else made again by its task (lineage), else the object is lost."""
        dead_set = set(dead)
        for object_id, entry in list(self._entries.items()):
            payload = entry.payload
            if type(payload) is not InShm or not (payload.node in dead_set or dead_set & set(payload.replicas)):
                continue
            replicas = tuple(n for n in payload.replicas if n not in dead_set)
            if payload.node not in dead_set:
                entry.payload = InShm(object_id, payload.size, payload.node, replicas, payload.offset)
            elif replicas:
                entry.payload = InShm(object_id, payload.size, replicas[0], replicas[1:])
            elif object_id in self._lineage and self.remake(self._lineage[object_id]):
                entry.payload = None  # made again by its task (lineage); `get` waits for it
            else:
                why = f"the node that held it ({payload.node}) died and it had no replica"
                if object_id in self._lineage:
                    why += "; running its task again exceeded its max_retries"
                entry.payload = Failed(exc.ObjectLostError(object_id, why))


def _remote_shm(payload, node_id: str) -> bool:
    return type(payload) is InShm and payload.node != node_id and node_id not in payload.replicas


def _copy_outcome(task: asyncio.Task, result: concurrent.futures.Future) -> None:
    """Give `result` (a thread's future) the outcome of `task`, unless it was given up on."""
    if result.done() or task.cancelled():  # (cancelled: get timed out)
        return
    if task.exception() is not None:
        result.set_exception(task.exception())
    else:
        result.set_result(task.result())
