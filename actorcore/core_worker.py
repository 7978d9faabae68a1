"""The CoreWorker: the runtime inside every driver and worker process (DESIGN.md §2, §5, §8).

It submits tasks and actor calls, owns the objects this process creates, and answers other
processes' requests for them. Its state lives on the process's actor-system thread; user
code calls it from its own thread (the driver's main thread, a worker's execution thread).

Hot path (DESIGN.md §5): a task is sent straight to a leased worker and its result comes
straight back; the Scheduler is asked only for leases (one per resource shape while tasks of
that shape keep coming; an idle lease is returned after `LEASE_IDLE_SECONDS`). Small objects
(< 100 KiB) travel inline and live in the owner's table; large ones live in shared memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import exceptions as exc
from ._logging import get_logger
from .kernel import Actor, ActorRef, ActorSystem, PeerLostError, Terminated
from .object_ref import ObjectRef
from .objects import INLINE_THRESHOLD, deserialize, get_shared, put_shared, serialize
from .protocol import (
    BecomeActor,
    CancelTask,
    ExecuteTask,
    Failed,
    ForgetActor,
    GetObject,
    GetResources,
    InShm,
    Inline,
    KillWorker,
    LeaseBlocked,
    LeaseGranted,
    LeaseUnblocked,
    LookupActor,
    RegisterActor,
    RegisterSegment,
    FreeObjects,
    RequestLease,
    ReturnLease,
    TaskSpec,
)

log = get_logger(__name__)

LEASE_IDLE_SECONDS = 0.5
#: Once a submitter holds as many leases of a shape as the node can grant, it queues up to
#: this many tasks on each leased worker, so the worker starts the next task without waiting
#: for a round trip (measured: async task throughput x2.5 on the 2-core dev machine).
PIPELINE_DEPTH = 8


# -- object table --------------------------------------------------------------------------

class Entry:
    __slots__ = ("payload", "waiters", "refs", "pins", "escaped")

    def __init__(self, payload=None, refs: int = 1) -> None:
        self.payload = payload  # Inline | InShm | Failed, None while pending
        self.waiters: list[asyncio.Future] | None = None
        self.refs = refs
        self.pins = 0
        self.escaped = False


def to_payload(value: Any, object_id: str, session: str, store: ActorRef | None, what: str):
    """Serialize a value into an Inline payload, or into shared memory (registered with the store)."""
    try:
        serialized = serialize(value)
    except TypeError as error:
        raise TypeError(f"{what} cannot be serialized: {error}") from None
    if serialized.total_size < INLINE_THRESHOLD or store is None:
        return Inline(serialized.to_bytes())
    name, size = put_shared(session, object_id, serialized)
    store.tell(RegisterSegment(object_id, name, size))
    return InShm(name, size)


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


# -- submission state ----------------------------------------------------------------------

@dataclass(slots=True)
class Lease:
    lease_id: int
    worker: ActorRef
    pid: int
    shape: tuple
    idle_since: float = 0.0
    inflight: int = 0
    dead: bool = False


@dataclass(slots=True)
class ShapeQueue:
    shape: tuple
    capacity: int  # how many leases of this shape the node can hold at once
    specs: deque = field(default_factory=deque)
    leases: list = field(default_factory=list)
    requesting: int = 0


@dataclass(slots=True)
class PendingTask:
    spec: TaskSpec
    shape: tuple
    max_retries: int
    retry_exceptions: Any
    return_ids: list
    pinned: list
    cancelled: bool = False
    running_on: Lease | None = None


@dataclass(slots=True)
class ActorState:
    actor_id: str
    name: str
    worker: ActorRef | None = None
    pid: int | None = None
    lease_id: int | None = None
    created: asyncio.Future | None = None
    dead: BaseException | None = None
    owned: bool = False
    namespace: str = ""
    actor_name: str | None = None
    pending: set = field(default_factory=set)


class CoreActor(Actor):
    """Answers other processes: object requests, actor lookups for borrowed handles."""

    def __init__(self, core: CoreWorker) -> None:
        self.core = core

    async def receive(self, message):
        if isinstance(message, GetObject):
            return await self.core._payload_for_remote(message.object_id)
        if isinstance(message, tuple) and message[0] == "resolve_actor":
            return await self.core._resolve_actor_for_remote(message[1])
        if isinstance(message, Terminated):
            self.core._on_terminated(message)
            return None
        return None


class CoreWorker:
    def __init__(self, system: ActorSystem, node: dict, *, job_id: str, namespace: str,
                 is_driver: bool) -> None:
        self.system = system
        self.loop = system.loop
        self.node = node
        self.job_id = job_id
        self.namespace = namespace
        self.is_driver = is_driver
        self.session = node["session"]
        self.node_id = node["node_id"]
        self.scheduler = system.ref_from_uri(node["scheduler"])
        self.gcs = system.ref_from_uri(node["gcs"])
        self.store = system.ref_from_uri(node["object_store"])
        self.pool = system.ref_from_uri(node["pool"]) if node.get("pool") else None
        self.actor = system.spawn(CoreActor, self, name="core")
        self.objects: dict[str, Entry] = {}
        self.queues: dict[tuple, ShapeQueue] = {}
        self.tasks: dict[str, PendingTask] = {}  # by return object id
        self.actors: dict[str, ActorState] = {}
        self._actor_chains: dict[str, asyncio.Task] = {}  # the last call sent to each actor
        self._unsent = 0  # actor calls submitted but not yet sent
        self._after_sent: list = []
        self.exported: set[str] = set()
        self.prefix = uuid.uuid4().hex[:10]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.current_lease: int | None = None  # set in workers while a task runs
        self.hosted_actor_id: str | None = None  # set in a worker that hosts an actor
        self._infeasible_warned: set = set()
        self._total_resources: dict | None = None
        self._idle_timer = None

    # -- identity -------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        return f"{self.prefix}{kind}{next(self._ids):x}"

    def owns(self, owner: ActorRef) -> bool:
        return owner == self.actor

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
        if not self.loop.is_closed():
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
        if type(entry.payload) is InShm:
            self.store.tell(FreeObjects([object_id]))

    # -- put / get / wait (user thread) ------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the value is already in the object store; "
                "pass the ref itself, or put a list containing it"
            )
        object_id = self.new_id("p")
        payload = to_payload(value, object_id, self.session, self.store, "the value passed to put()")
        self.objects[object_id] = Entry(payload)
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
            payloads.append(entry.payload)
        return payloads

    async def _gather(self, refs: list[ObjectRef], timeout: float | None) -> list:
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
                try:
                    result.set_result(from_payload(f.result()))
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

    # -- tasks (user thread) -----------------------------------------------------------------

    def export(self, function_id: str, blob: bytes) -> None:
        if function_id in self.exported:
            return
        from .protocol import ExportFunction

        self.gcs.tell(ExportFunction(function_id, blob))  # ordered before any task that uses it
        self.exported.add(function_id)

    def submit_task(self, function_id: str, name: str, args: list, kwargs: dict, options: dict) -> list[ObjectRef]:
        task_id = self.new_id("t")
        num_returns = options["num_returns"]
        return_ids = [f"{task_id}.{i}" for i in range(max(num_returns, 1))]
        for object_id in return_ids:
            self.objects[object_id] = Entry()
        spec = TaskSpec(task_id, function_id, name, args, kwargs, num_returns, self.actor)
        shape = _shape(options)
        self._warn_if_infeasible(dict(shape))
        pending = PendingTask(spec, shape, options["max_retries"], options["retry_exceptions"],
                              return_ids, [])
        self.loop.call_soon_threadsafe(self._submit, pending)
        refs = [ObjectRef(object_id, self.actor, self) for object_id in return_ids]
        return refs if num_returns != 0 else []

    def _warn_if_infeasible(self, shape: dict) -> None:
        if self._total_resources is None:
            self._total_resources = dict(self.node["resources"])
        key = tuple(sorted(shape.items()))
        if key in self._infeasible_warned:
            return
        if all(self._total_resources.get(k, 0.0) >= v for k, v in shape.items()):
            return
        self._infeasible_warned.add(key)
        import warnings

        warnings.warn(
            f"a task or actor requires {shape}, but the cluster has {self._total_resources} in total; "
            "it stays pending until a node with these resources joins (cancel it with cancel())",
            stacklevel=4,
        )

    def _submit(self, pending: PendingTask) -> None:
        for object_id in pending.return_ids:
            self.tasks[object_id] = pending
        if _has_refs(pending.spec):
            self.loop.create_task(self._resolve_then_queue(pending))
        else:  # nothing to wait for: queue it now (saves a task and a loop iteration)
            queue = self._queue_for(pending.shape)
            queue.specs.append(pending)
            self._pump(queue)

    async def _resolve_then_queue(self, pending: PendingTask) -> None:
        failed = await self._resolve_args(pending)
        if failed is not None:
            self._finish(pending, [failed] * len(pending.return_ids))
            return
        if pending.cancelled:
            return
        queue = self._queue_for(pending.shape)
        queue.specs.append(pending)
        self._pump(queue)

    async def _resolve_args(self, pending: PendingTask):
        spec = pending.spec
        refs = [a for a in spec.args if type(a) is ObjectRef] + [v for v in spec.kwargs.values() if type(v) is ObjectRef]
        if not refs:
            return None
        for ref in refs:
            entry = self.objects.get(ref.id)
            if entry is not None:
                entry.pins += 1
                pending.pinned.append(ref.id)
        payloads = await asyncio.gather(*(self._payload_future(ref) for ref in refs))
        by_id = {ref.id: payload for ref, payload in zip(refs, payloads)}
        for payload in payloads:
            if type(payload) is Failed:
                return payload
        spec.args = [by_id[a.id] if type(a) is ObjectRef else a for a in spec.args]
        spec.kwargs = {k: (by_id[v.id] if type(v) is ObjectRef else v) for k, v in spec.kwargs.items()}
        return None

    def _queue_for(self, shape: tuple) -> ShapeQueue:
        queue = self.queues.get(shape)
        if queue is None:
            queue = self.queues[shape] = ShapeQueue(shape, self._capacity(shape))
        return queue

    def _capacity(self, shape: tuple) -> int:
        total = self.node["resources"]
        fits = [int(total.get(name, 0.0) // quantity) for name, quantity in shape if quantity > 0]
        return max(1, min(fits)) if fits else 64

    def _pump(self, queue: ShapeQueue) -> None:
        specs = queue.specs
        while specs:
            lease = self._pick_lease(queue)
            if lease is None:
                break
            pending = specs.popleft()
            if not pending.cancelled:
                self._run(lease, pending)
        wanted = min(len(specs), queue.capacity - len(queue.leases)) - queue.requesting
        for _ in range(max(0, wanted)):
            queue.requesting += 1
            self.loop.create_task(self._request_lease(queue))
        if not specs and any(lease.inflight == 0 for lease in queue.leases):
            self._schedule_idle_check()

    @staticmethod
    def _pick_lease(queue: ShapeQueue) -> Lease | None:
        best = None
        for lease in queue.leases:
            if lease.inflight == 0:
                return lease
            if best is None or lease.inflight < best.inflight:
                best = lease
        if best is not None and len(queue.leases) >= queue.capacity and best.inflight < PIPELINE_DEPTH:
            return best
        return None

    async def _request_lease(self, queue: ShapeQueue) -> None:
        try:
            grant: LeaseGranted = await self.scheduler.ask(RequestLease(queue.shape, self.actor), timeout=None)
        except Exception as error:
            queue.requesting -= 1
            if self.system._closing or isinstance(error, PeerLostError):
                log.debug("lease request ended with the node", error=repr(error))
            else:
                log.error("lease request failed", error=repr(error))
            while queue.specs:
                pending = queue.specs.popleft()
                self._finish(pending, [Failed(exc.RayError(f"cannot schedule {pending.spec.name}: {error}"))]
                             * len(pending.return_ids))
            return
        queue.requesting -= 1
        queue.leases.append(Lease(grant.lease_id, grant.worker, grant.pid, queue.shape, time.monotonic()))
        self._pump(queue)

    def _run(self, lease: Lease, pending: PendingTask) -> None:
        pending.running_on = lease
        lease.inflight += 1
        future = lease.worker.ask(ExecuteTask(pending.spec, lease.lease_id), timeout=None)
        future.add_done_callback(lambda f: self._ran(lease, pending, f))

    def _ran(self, lease: Lease, pending: PendingTask, future: asyncio.Future) -> None:
        pending.running_on = None
        lease.inflight -= 1
        queue = self.queues[lease.shape]
        error = future.exception()
        if error is None:
            lease.idle_since = time.monotonic()
            returns = future.result().returns
            if self._should_retry_exception(pending, returns):
                pending.spec.attempt += 1
                queue.specs.appendleft(pending)
            else:
                self._finish(pending, returns)
        else:
            died = isinstance(error, PeerLostError)
            if not lease.dead:
                lease.dead = True
                if lease in queue.leases:
                    queue.leases.remove(lease)
                self.scheduler.tell(ReturnLease(lease.lease_id, worker_died=died))
            if pending.cancelled:
                self._finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))] * len(pending.return_ids))
            elif died and (pending.max_retries < 0 or pending.spec.attempt < pending.max_retries):
                pending.spec.attempt += 1
                queue.specs.appendleft(pending)
            else:
                if died:
                    error = exc.WorkerCrashedError(
                        pending.spec.name,
                        f"Its worker (pid {lease.pid}) died; it was retried {pending.spec.attempt} time(s).",
                    )
                self._finish(pending, [Failed(error)] * len(pending.return_ids))
        self._pump(queue)

    def _should_retry_exception(self, pending: PendingTask, returns: list) -> bool:
        retry = pending.retry_exceptions
        if not retry or not returns or type(returns[0]) is not Failed:
            return False
        if not (pending.max_retries < 0 or pending.spec.attempt < pending.max_retries):
            return False
        error = returns[0].error
        cause = error.cause if isinstance(error, exc.TaskError) else error
        if retry is True:
            return True
        return isinstance(cause, tuple(retry))

    def _finish(self, pending: PendingTask, returns: list) -> None:
        for object_id, payload in zip(pending.return_ids, returns):
            self.tasks.pop(object_id, None)
            self._resolve(object_id, payload)
        for object_id in pending.pinned:
            entry = self.objects.get(object_id)
            if entry is not None:
                entry.pins -= 1
                self._maybe_free(object_id, entry)
        pending.pinned = []

    def _schedule_idle_check(self) -> None:
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(LEASE_IDLE_SECONDS, self._return_idle_leases)

    def _return_idle_leases(self) -> None:
        self._idle_timer = None
        now = time.monotonic()
        keep_checking = False
        for queue in self.queues.values():
            if queue.specs:
                continue
            for lease in list(queue.leases):
                if lease.inflight:
                    continue
                if now - lease.idle_since >= LEASE_IDLE_SECONDS:
                    queue.leases.remove(lease)
                    self.scheduler.tell(ReturnLease(lease.lease_id))
                else:
                    keep_checking = True
        if keep_checking:
            self._schedule_idle_check()

    # -- cancel ---------------------------------------------------------------------------

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        self.loop.call_soon_threadsafe(self._cancel, ref.id, force)

    def _cancel(self, object_id: str, force: bool) -> None:
        pending = self.tasks.get(object_id)
        if pending is None or pending.cancelled:
            return
        pending.cancelled = True
        lease = pending.running_on
        if lease is None:
            queue = self.queues.get(pending.shape)
            if queue is not None and pending in queue.specs:
                queue.specs.remove(pending)
            self._finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))] * len(pending.return_ids))
        else:
            lease.worker.tell(CancelTask(pending.spec.task_id, force))

    # -- resources, misc ---------------------------------------------------------------------

    def resources(self, available: bool) -> dict:
        return self.system.ask_sync(self.scheduler, GetResources(available), timeout=30)

    def _on_terminated(self, terminated: Terminated) -> None:
        for state in self.actors.values():
            if state.worker == terminated.ref and state.dead is None:
                state.dead = exc.ActorDiedError(
                    state.name, "its worker process died" if terminated.reason == "peer_lost" else terminated.reason
                )

    # -- actors ---------------------------------------------------------------------------

    def create_actor(self, actor_id: str, class_id: str, name: str, args: list, kwargs: dict, options: dict,
                     is_async: bool) -> ActorState:
        namespace = options.get("namespace") or self.namespace
        state = ActorState(actor_id, name, owned=True, namespace=namespace, actor_name=options.get("name"))
        spec = TaskSpec(self.new_id("t"), class_id, f"{name}.__init__", args, kwargs, 0, self.actor)
        max_concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
        shape = _shape(options, actor=True)
        self._warn_if_infeasible(dict(shape))

        def start() -> None:
            state.created = self.loop.create_future()
            self.actors[actor_id] = state
            self.loop.create_task(self._create_actor(state, spec, shape, max_concurrency, is_async))

        self.loop.call_soon_threadsafe(start)
        return state

    async def _create_actor(self, state: ActorState, spec: TaskSpec, shape: tuple,
                            max_concurrency: int, is_async: bool) -> None:
        pending = PendingTask(spec, shape, 0, False, [], [])
        failed = await self._resolve_args(pending)
        try:
            if failed is not None:
                raise failed.error
            grant: LeaseGranted = await self.scheduler.ask(RequestLease(shape, self.actor, True), timeout=None)
            state.lease_id = grant.lease_id
            result = await grant.worker.ask(BecomeActor(spec, state.actor_id, max_concurrency, is_async), timeout=None)
            if type(result) is Failed:
                self.scheduler.tell(ReturnLease(grant.lease_id, worker_died=True))
                if self.pool is not None:
                    self.pool.tell(KillWorker(grant.pid))
                cause = result.error.cause if isinstance(result.error, exc.TaskError) else result.error
                raise exc.ActorDiedError.constructor_raised(state.name, cause)
            state.worker, state.pid = grant.worker, grant.pid
            self._watch(grant.worker)
        except BaseException as error:
            if not isinstance(error, exc.RayError):
                error = exc.ActorDiedError(state.name, f"it could not be created: {error!r}")
            state.dead = error
        finally:
            self._finish(pending, [])
            if not state.created.done():
                state.created.set_result(None)

    def register_actor(self, actor_id: str, namespace: str, name: str, handle_blob: bytes) -> bool:
        message = RegisterActor(actor_id, namespace, name, handle_blob)
        return self.system.ask_sync(self.gcs, message, timeout=30)

    def lookup_actor(self, name: str, namespace: str) -> bytes | None:
        return self.system.ask_sync(self.gcs, LookupActor(namespace, name), timeout=30)

    async def _actor_state(self, actor_id: str, name: str, owner: ActorRef, hint=None) -> ActorState:
        state = self.actors.get(actor_id)
        if state is None:
            state = self.actors[actor_id] = ActorState(actor_id, name)
            state.created = self.loop.create_future()
            if hint is not None:  # the handle says where the actor lives: no trip to its owner
                state.worker, state.pid = hint
                self._watch(state.worker)
                state.created.set_result(None)
                return state
            try:
                worker, pid, dead = await owner.ask(("resolve_actor", actor_id), timeout=None)
                state.worker, state.pid, state.dead = worker, pid, dead
                if worker is not None:
                    self._watch(worker)
            except PeerLostError:
                state.dead = exc.ActorDiedError(name, "its owner (the process that created it) died")
            state.created.set_result(None)
        await state.created
        return state

    async def _resolve_actor_for_remote(self, actor_id: str):
        state = self.actors.get(actor_id)
        if state is None:
            return None, None, exc.ActorDiedError(actor_id, "unknown actor")
        await state.created
        return state.worker, state.pid, state.dead

    def submit_actor_task(self, handle, method: str, args: list, kwargs: dict, num_returns: int) -> list[ObjectRef]:
        task_id = self.new_id("t")
        return_ids = [f"{task_id}.{i}" for i in range(max(num_returns, 1))]
        for object_id in return_ids:
            self.objects[object_id] = Entry()
        spec = TaskSpec(task_id, handle._class_id, f"{handle._name}.{method}", args, kwargs, num_returns,
                        self.actor, method=method)
        pending = PendingTask(spec, (), 0, False, return_ids, [])
        self.loop.call_soon_threadsafe(self._submit_actor_task, handle, pending)
        refs = [ObjectRef(object_id, self.actor, self) for object_id in return_ids]
        return refs if num_returns != 0 else []

    def _submit_actor_task(self, handle, pending: PendingTask) -> None:
        for object_id in pending.return_ids:
            self.tasks[object_id] = pending
        chain = self._actor_chains.get(handle._actor_id)
        state = self.actors.get(handle._actor_id)
        if ((chain is None or chain.done()) and state is not None and state.worker is not None
                and state.dead is None and not _has_refs(pending.spec) and self.system.is_connected(state.worker)):
            # The common case: send at once, in order, with no task in between.
            self._actor_chains.pop(handle._actor_id, None)
            future = state.worker.ask(ExecuteTask(pending.spec, None), timeout=None)
            future.add_done_callback(lambda f: self._actor_task_done(state, pending, f))
            return
        self._unsent += 1
        task = self.loop.create_task(self._send_actor_task(handle, pending, chain))
        self._actor_chains[handle._actor_id] = task

    async def _send_actor_task(self, handle, pending: PendingTask, previous: asyncio.Task | None) -> None:
        try:
            failed = await self._resolve_args(pending)
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # calls from one caller leave in submission order
            state = await self._actor_state(handle._actor_id, handle._name, handle._owner, handle._worker)
            if failed is not None:
                self._finish(pending, [failed] * len(pending.return_ids))
                return
            if state.dead is not None:
                self._finish(pending, [Failed(state.dead)] * len(pending.return_ids))
                return
            future = state.worker.ask(ExecuteTask(pending.spec, None), timeout=None)
            future.add_done_callback(lambda f: self._actor_task_done(state, pending, f))
            await self.system.connected(state.worker)
        finally:
            self._unsent -= 1
            if not self._unsent and self._after_sent:
                callbacks, self._after_sent = self._after_sent, []
                for callback in callbacks:
                    callback()

    def when_sent(self, callback) -> None:
        """Run `callback` (in the loop) once every actor call submitted so far has left.

        A worker replies to its task only then, so calls a task made (e.g. `tracker.incr.remote()`)
        are on their way before its caller can see the task's result, as with Ray.
        """
        if self._unsent:
            self._after_sent.append(callback)
        else:
            callback()

    def worker_hint(self, actor_id: str):
        state = self.actors.get(actor_id)
        if state is not None and state.worker is not None and state.dead is None:
            return state.worker, state.pid
        return None

    def _actor_task_done(self, state: ActorState, pending: PendingTask, future: asyncio.Future) -> None:
        error = future.exception()
        if error is None:
            self._finish(pending, future.result().returns)
            return
        if isinstance(error, PeerLostError):
            if state.dead is None:
                state.dead = exc.ActorDiedError(state.name, "its worker process died")
            error = state.dead
        self._finish(pending, [Failed(error)] * len(pending.return_ids))

    def kill_actor(self, handle, no_restart: bool) -> None:
        async def kill() -> None:
            state = await self._actor_state(handle._actor_id, handle._name, handle._owner, handle._worker)
            if state.pid is not None and self.pool is not None:
                self.pool.tell(KillWorker(state.pid))
            state.dead = exc.ActorDiedError(state.name, "it was killed with kill()")
            await self.gcs.ask(ForgetActor(state.actor_id, handle._namespace, handle._actor_name), timeout=30)

        self.system.run(kill(), timeout=30)

    def _watch(self, ref: ActorRef) -> None:
        """Death watch by the core actor: `_on_terminated` marks the actors on `ref` dead."""
        self.system._watch(("actor", self.actor.actor_id), ref)


def _has_refs(spec: TaskSpec) -> bool:
    return any(type(a) is ObjectRef for a in spec.args) or any(type(v) is ObjectRef for v in spec.kwargs.values())


def _shape(options: dict, actor: bool = False) -> tuple:
    shape: dict[str, float] = {}
    cpus = options.get("num_cpus")
    if cpus is None:
        cpus = 0 if actor else 1
    if cpus:
        shape["CPU"] = float(cpus)
    if options.get("num_gpus"):
        shape["GPU"] = float(options["num_gpus"])
    for name, quantity in (options.get("resources") or {}).items():
        if quantity:
            shape[name] = float(quantity)
    return tuple(sorted(shape.items()))
