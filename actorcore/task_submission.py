"""Task submission in the CoreWorker (DESIGN.md §5: worker leases, the hot path).

A submitter asks the Scheduler for a worker lease per resource shape and sends tasks straight
to the leased workers; the node is not on the per-task path. A lease is kept while tasks of
its shape keep coming and returned after `LEASE_IDLE_SECONDS` idle; once the submitter holds
as many leases of a shape as the node can grant, it pipelines up to `PIPELINE_DEPTH` tasks per
worker. A task whose worker dies is retried up to `max_retries` (DESIGN.md §8).

In a cluster a lease request may be answered with `Spillback` (another node has the
resources): the request goes there instead, once. The capacity of a shape counts every node's
resources, so a driver keeps all nodes busy; `scheduling_strategy="SPREAD"` sends each lease
task to the next node in turn (a queue of its own per node, leased from that node only).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import exceptions as exc
from ._logging import get_logger
from .kernel import ActorRef, PeerLostError
from .object_ref import ObjectRef
from .ownership import Entry
from .protocol import (
    CancelTask,
    ExecuteTask,
    Failed,
    InShm,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskSpec,
)

log = get_logger(__name__)

LEASE_IDLE_SECONDS = 0.5
#: Once a driver holds as many leases of a shape as the node can grant, it queues up to
#: this many tasks on each leased worker, so the worker starts the next task without waiting
#: for a round trip (measured: async task throughput x2.5 on the 2-core dev machine).
PIPELINE_DEPTH = 8


@dataclass(slots=True)
class Lease:
    lease_id: int
    worker: ActorRef
    pid: int
    shape: tuple  # the key of its ShapeQueue
    scheduler: ActorRef  # the Scheduler that granted it (it takes it back)
    idle_since: float = 0.0
    inflight: int = 0
    dead: bool = False


@dataclass(slots=True)
class ShapeQueue:
    shape: tuple  # the key: (resources, target node id or None)
    capacity: int  # how many leases of this shape the cluster can hold at once
    specs: deque = field(default_factory=deque)
    leases: list = field(default_factory=list)
    requesting: int = 0

    @property
    def resources(self) -> tuple:
        return self.shape[0]

    @property
    def target(self) -> str | None:
        return self.shape[1]


@dataclass(slots=True)
class PendingTask:
    spec: TaskSpec
    shape: tuple
    max_retries: int
    retry_exceptions: Any
    return_ids: list
    pinned: list
    cancelled: bool = False
    arg_refs: tuple | None = None  # (args, kwargs) as submitted, refs unresolved: for lineage
    running_on: Lease | None = None


class TaskSubmission:
    """Leases, queues and retries of tasks; mixed into `CoreWorker`."""

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
        spec = TaskSpec(task_id, function_id, name, args, kwargs, num_returns, self.actor, namespace=self.namespace)
        shape = _shape(options)
        self._warn_if_infeasible(shape)
        target = None
        if options.get("scheduling_strategy") == "SPREAD" and self.cluster_mode:
            target = self._spread_target(shape)
        key = (shape, target)
        pending = PendingTask(spec, key, options["max_retries"], options["retry_exceptions"],
                              return_ids, [])
        self.loop.call_soon_threadsafe(self._submit, pending)
        refs = [ObjectRef(object_id, self.actor, self) for object_id in return_ids]
        return refs if num_returns != 0 else []

    def _warn_if_infeasible(self, shape: tuple) -> None:
        # Once per task: a shape seen to fit is not checked again until the nodes change
        # (measured: the check over the nodes' records cost 6-10 us per task, with this set, under 1 us).
        feasible = self._feasible_shapes  # (taken first: `_on_view` replaces it)
        if shape in feasible or shape in self._infeasible_warned:
            return
        totals = [record.get("resources", {}) for record in self.view.values()]
        if any(all(total.get(k, 0.0) >= v for k, v in shape) for total in totals):
            feasible.add(shape)
            return
        self._infeasible_warned.add(shape)
        largest = max(totals, key=lambda total: total.get("CPU", 0.0)) if totals else {}
        warnings.warn(
            f"a task or actor requires {dict(shape)}, but no node of the cluster has that much "
            f"(the largest has {largest}); it stays pending until a node with these resources "
            "joins (cancel it with cancel())",
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
        if self.cluster_mode and pending.arg_refs is None and spec.method is None and pending.return_ids:
            pending.arg_refs = (list(spec.args), dict(spec.kwargs))  # only a task's lineage reads it
        for ref in refs:
            entry = self.objects.get(ref.id)
            if entry is not None and ref.id not in pending.pinned:  # (a task run again is pinned)
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
            queue = self.queues[shape] = ShapeQueue(shape, self._capacity(*shape))
        return queue

    def _capacity(self, shape: tuple, node_id: str | None = None) -> int:
        if not any(quantity > 0 for _, quantity in shape):
            return 64
        count = 0
        records = self.view.values() if node_id is None else [self.view.get(node_id, {})]
        for record in records:
            total = record.get("resources", {})
            count += min(int(total.get(name, 0.0) // quantity) for name, quantity in shape if quantity > 0)
        return max(1, count)

    async def lease_worker(self, shape: tuple, *, for_actor: bool = False, target: str | None = None):
        """A worker lease for `shape`: from this node's Scheduler or the one it spills back to
        (or from node `target`'s only).

        Returns `(LeaseGranted, the granting Scheduler)`.
        """
        scheduler, spillable = self.scheduler, True
        if target is not None:
            scheduler, spillable = self._node_ref(target, "scheduler") or self.scheduler, False
        while True:
            try:
                reply = await scheduler.ask(RequestLease(shape, self.actor, for_actor, spillable), timeout=None)
            except PeerLostError:
                if scheduler == self.scheduler:
                    raise
                scheduler, spillable = self.scheduler, True  # that node died: ask ours again
                continue
            if type(reply) is Spillback:
                scheduler, spillable = reply.scheduler, False
                continue
            return reply, scheduler

    def _spread_target(self, shape: tuple) -> str | None:
        feasible = sorted(
            node_id for node_id, record in self.view.items()
            if all(record.get("resources", {}).get(k, 0.0) >= v for k, v in shape)
        )
        if not feasible:
            return None
        self._spread_next += 1
        return feasible[self._spread_next % len(feasible)]

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

    def _pick_lease(self, queue: ShapeQueue) -> Lease | None:
        best = None
        for lease in queue.leases:
            if lease.inflight == 0:
                return lease
            if best is None or lease.inflight < best.inflight:
                best = lease
        # Only a driver pipelines: a task queued behind one that blocks in `get` waits for it,
        # and if tasks queued tasks, two of them could each wait behind the other's children.
        # A driver is no task: waiting behind its tasks cannot close such a cycle.
        if (self.is_driver and best is not None and len(queue.leases) >= queue.capacity
                and best.inflight < PIPELINE_DEPTH):
            return best
        return None

    async def _request_lease(self, queue: ShapeQueue) -> None:
        try:
            grant, scheduler = await self.lease_worker(queue.resources, target=queue.target)
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
        queue.leases.append(Lease(grant.lease_id, grant.worker, grant.pid, queue.shape, scheduler, time.monotonic()))
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
                lease.scheduler.tell(ReturnLease(lease.lease_id, worker_died=died))
            if pending.cancelled:
                self._finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))] * len(pending.return_ids))
            elif died and (pending.max_retries < 0 or pending.spec.attempt < pending.max_retries):
                pending.spec.attempt += 1
                if queue.target is not None and queue.target not in self.view:
                    # SPREAD to a node that died: retry wherever there is room.
                    pending.shape = (queue.resources, None)
                    retry_queue = self._queue_for(pending.shape)
                    retry_queue.specs.appendleft(pending)
                    self._pump(retry_queue)
                else:
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
        keep_args = False
        for object_id, payload in zip(pending.return_ids, returns):
            self.tasks.pop(object_id, None)
            if type(payload) is InShm and self.cluster_mode and pending.spec.method is None:
                # Lineage: how to make it again if every node holding a copy dies (its
                # arguments stay pinned meanwhile: they may have to be made again too).
                self.lineage[object_id] = pending
                keep_args = True
            self._resolve(object_id, payload)
        if not keep_args:
            self._unpin(pending)

    def _unpin(self, pending: PendingTask) -> None:
        pinned, pending.pinned = pending.pinned, []
        for object_id in pinned:
            entry = self.objects.get(object_id)
            if entry is not None:
                entry.pins -= 1
                self._maybe_free(object_id, entry)

    def _drop_lineage(self, object_id: str) -> None:
        pending = self.lineage.pop(object_id, None)
        if pending is not None and not any(self.lineage.get(o) is pending for o in pending.return_ids):
            self._unpin(pending)

    def reconstruct(self, pending: PendingTask) -> bool:
        """Run a finished task again to rebuild its lost returns; False if out of retries."""
        if not (pending.max_retries < 0 or pending.spec.attempt < pending.max_retries):
            return False
        if any(self.tasks.get(object_id) is pending for object_id in pending.return_ids):
            return True  # already running again
        pending.spec.attempt += 1
        for object_id in pending.return_ids:
            self.tasks[object_id] = pending
        resources, target = pending.shape
        if target is not None and target not in self.view:
            pending.shape = (resources, None)
        if pending.arg_refs is not None:
            # Its arguments as refs again: each resolves to its current copy, or waits for it
            # to be made again itself (lineage, recursively).
            pending.spec.args, pending.spec.kwargs = list(pending.arg_refs[0]), dict(pending.arg_refs[1])
        self._submit(pending)
        return True

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
                    lease.scheduler.tell(ReturnLease(lease.lease_id))
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
