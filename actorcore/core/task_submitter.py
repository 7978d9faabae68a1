"""The task submitter: worker leases per resource shape, the hot path of tasks, and retries.

A submitter asks the Scheduler for a worker lease per resource shape and sends tasks straight
to the leased workers; the node is not on the per-task path. A lease is kept while tasks of
its shape keep coming and returned after `LEASE_IDLE_SECONDS` idle; once the submitter holds
as many leases of a shape as the cluster can grant, a driver pipelines up to
`PIPELINE_DEPTH` tasks per worker. A task whose worker dies is retried up to `max_retries`.

No task waits behind a running one while a worker of its shape is free: only tasks of
functions measured short are pipelined, only behind such tasks, and the tasks queued on a
worker are taken back (`GiveBackTasks`) when another worker of the shape is idle or when the
task they wait behind runs long.

In a cluster a lease request may be answered with `Spillback` (another node has the
resources): the request goes there instead, once. The capacity of a shape counts every node's
resources, so a driver keeps all nodes busy; `scheduling_strategy="SPREAD"` sends each lease
task to the next node in turn (a queue of its own per node, leased from that node only).
A task with a strategy object (a placement group's, node affinity) is placed first by the
placement groups part (`placements`): its shape and target node, then queued as any other;
a task started by a task of a group that captures child tasks runs in that group too.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from .. import exceptions as exc
from .._logging import get_logger
from ..kernel import ActorRef, ActorSystem, PeerLostError
from ..object_ref import ObjectRef
from ..protocol import (
    CancelTask,
    ExecuteTask,
    ExitWorker,
    Failed,
    GiveBackTasks,
    NotStarted,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskSpec,
    UseDevices,
)
from ..runtime_context import current_placement
from ..scheduling import PlacementGroupSchedulingStrategy, group_of_shape
from .cluster import Cluster
from .object_table import ObjectTable
from .pending import PendingTask, has_refs, shape_of
from .runtime_envs import RuntimeEnvs
from .task_manager import TaskManager

__all__ = ["LEASE_IDLE_SECONDS", "PIPELINE_DEPTH", "ShapeQueue", "TaskSubmitter", "WorkerLease"]

log = get_logger(__name__)

LEASE_IDLE_SECONDS = 0.5
#: Once a driver holds as many leases of a shape as the node can grant, it queues up to
#: this many tasks on each leased worker, so the worker starts the next task without waiting
#: for a round trip (measured: async task throughput x2.5 on the 2-core dev machine).
PIPELINE_DEPTH = 8
#: ... but only tasks of functions measured short (their last `PIPELINE_AFTER_SHORT` runs each
#: took under `SHORT_TASK_SECONDS`), and only behind such tasks. Tasks queued behind one that
#: runs longer than that, or on a worker while another is idle, are taken back
#: (`GiveBackTasks`): no task waits behind a long one while a worker of its shape is free.
SHORT_TASK_SECONDS = 0.02
PIPELINE_AFTER_SHORT = 8


@dataclass(slots=True)
class WorkerLease:
    """A worker leased from a Scheduler, as the submitter holding it sees it."""

    lease_id: int
    worker: ActorRef
    pid: int
    shape: tuple  # the key of its ShapeQueue
    scheduler: ActorRef  # the Scheduler that granted it (it takes it back)
    idle_since: float = 0.0
    inflight: int = 0
    dead: bool = False
    busy_since: float = 0.0  # when the task it runs now started (as this submitter sees it)
    pipelined: bool = False  # it runs tasks of functions measured short: more may queue there
    giving_back: list | None = None  # tasks it gave back while a GiveBackTasks is unanswered
    retiring: bool = False  # its worker reached a function's max_calls: ended once idle


@dataclass(slots=True)
class ShapeQueue:
    """The tasks waiting for a worker of one shape, and the leases held for it."""

    shape: tuple  # the key: (resources, target node id or None, runtime env JSON)
    capacity: int  # how many leases of this shape the cluster can hold at once
    specs: deque = field(default_factory=deque)
    leases: list = field(default_factory=list)
    requesting: int = 0

    @property
    def resources(self) -> tuple:
        """The resources each task of this shape needs (the first part of its key)."""
        return self.shape[0]

    @property
    def target(self) -> str | None:
        """The node the tasks of this shape must run on, or None for any node."""
        return self.shape[1]

    @property
    def runtime_env(self) -> str:
        """The runtime env (canonical JSON) the workers of this shape must have been started for."""
        return self.shape[2]


class TaskSubmitter:
    """Submits tasks (not actor calls) to leased workers; also leases workers for actors."""

    def __init__(self, system: ActorSystem, owner: ActorRef, scheduler: ActorRef, objects: ObjectTable,
                 manager: TaskManager, cluster: Cluster, *, is_driver: bool,
                 new_id: Callable[[str], str], runtime_envs: RuntimeEnvs | None = None) -> None:
        self._system = system
        self._loop = system.loop
        self._owner = owner
        self._scheduler = scheduler
        self._objects = objects
        self._manager = manager
        self._cluster = cluster
        self._is_driver = is_driver
        self._new_id = new_id
        self._runtime_envs = runtime_envs
        self._queues: dict[tuple, ShapeQueue] = {}
        self._idle_timer: asyncio.TimerHandle | None = None
        self.placements = None  # the PlacementGroups part (set by the CoreWorker)
        self._stall_timer: asyncio.TimerHandle | None = None
        self._short_runs: dict[str, int] = {}  # function id -> its last runs in a row that were short

    # -- submission (user thread) ---------------------------------------------------------

    def submit(self, function_id: str, name: str, args: list, kwargs: dict, options: dict,
               namespace: str) -> list[ObjectRef]:
        """Submit a call of function `function_id` (resolved `options`); its return refs
        (none if ``num_returns=0``)."""
        runtime_env = self.runtime_env_of(options)
        task_id = self._new_id("t")
        num_returns = options["num_returns"]
        return_ids = [f"{task_id}.{i}" for i in range(max(num_returns, 1))]
        objects = self._objects
        objects.expect(return_ids)
        spec = TaskSpec(task_id, function_id, name, args, kwargs, num_returns, self._owner, namespace=namespace,
                        max_calls=options.get("max_calls") or 0)
        self._manager.submitted(spec, "NORMAL_TASK", None, options.get("enable_task_events", True))
        if num_returns < 0:  # a generator task
            spec.generator_backpressure = options["_generator_backpressure_num_objects"]
        shape = shape_of(options)
        cluster = self._cluster
        strategy = options.get("scheduling_strategy")
        if strategy is None:
            strategy = captured_strategy()
        if strategy is not None and type(strategy) is not str:
            spec.placement = self.placements.check(strategy, shape, name)
            pending = PendingTask(spec, (shape, None), options["max_retries"], options["retry_exceptions"],
                                  return_ids, [], runtime_env=runtime_env)
            self._loop.call_soon_threadsafe(self._submit_placed, pending, strategy)
            owner = self._owner
            refs = [ObjectRef(object_id, owner, objects) for object_id in return_ids]
            return refs if num_returns != 0 else []
        cluster.warn_if_infeasible(shape)
        target = None
        if strategy == "SPREAD" and cluster.cluster_mode:
            target = cluster.spread_target(shape)
        pending = PendingTask(spec, (shape, target), options["max_retries"], options["retry_exceptions"],
                              return_ids, [], runtime_env=runtime_env)
        self._loop.call_soon_threadsafe(self._submit, pending)
        owner = self._owner
        refs = [ObjectRef(object_id, owner, objects) for object_id in return_ids]
        return refs if num_returns != 0 else []

    def runtime_env_of(self, options: dict) -> str:
        """The canonical JSON of the runtime env a task or actor with `options` needs (user
        thread: a local path in its option is uploaded the first time)."""
        return self._runtime_envs.key_for(options.get("runtime_env")) if self._runtime_envs else ""

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool = True) -> None:
        """Cancel the task or actor call that returns `ref` (user thread): dropped if it waits
        for a worker, else its worker is asked to stop it (`force`: by ending its process;
        `recursive`: the tasks it submitted are cancelled too).

        Raises ValueError for `force` on an actor call, as Ray does.
        """
        if not force:
            self._loop.call_soon_threadsafe(self._cancel, ref.id, False, recursive)
            return
        refused = self._system.run(self._cancel_forced(ref.id, recursive), timeout=30)
        if refused is not None:
            raise ValueError(refused)

    #: set by the CoreWorker: cancels an actor call (the actor submitter's `cancel_call`)
    cancel_actor_call: Callable | None = None

    async def _cancel_forced(self, object_id: str, recursive: bool) -> str | None:
        pending = self._manager.task_of(object_id)
        if pending is not None and pending.spec.method is not None:
            return ("force=True is not supported for actor tasks: it would end the actor's "
                    "process; use kill(actor) to end the actor.")
        self._cancel(object_id, True, recursive)
        return None

    def cancel_submitted(self, task_id: str) -> None:
        """`cancel(recursive=True)` of task `task_id` running in this worker: cancel the tasks
        and actor calls this worker submitted that are still pending (a worker runs one task
        at a time: they are that task's, or those of an earlier task that left them running)."""
        for pending in self._manager.pending_tasks():
            self._cancel(pending.return_ids[0], False, True)

    # -- the loop ---------------------------------------------------------------------------

    def _submit(self, pending: PendingTask) -> None:
        self._manager.track(pending)
        if has_refs(pending.spec):
            self._loop.create_task(self._resolve_then_queue(pending))
        else:  # nothing to wait for: queue it now (saves a task and a loop iteration)
            queue = self._queue_for(pending)
            queue.specs.append(pending)
            self._pump(queue)

    def _submit_placed(self, pending: PendingTask, strategy) -> None:
        self._manager.track(pending)
        placing = self.placements.place(strategy, pending.shape[0], pending.spec.name, actor=False)
        self._loop.create_task(self._submit_when_placed(pending, placing))

    async def _place_again(self, pending: PendingTask) -> None:
        """A task of a placement group lost its node: placed again once the group is."""
        await self._submit_when_placed(pending, self.placements.place_again(pending.shape[0]))

    async def _submit_when_placed(self, pending: PendingTask, placing) -> None:
        """Submit `pending` with the shape and target `placing` resolves to; if it raises (the
        task can never run, or its group was removed meanwhile), that is the task's result."""
        try:
            pending.shape = await placing
        except Exception as error:  # noqa: BLE001 - the error is the task's result
            self._manager.finish(pending, [Failed(error)] * len(pending.return_ids))
            return
        if not pending.cancelled:
            self._submit(pending)

    async def _resolve_then_queue(self, pending: PendingTask) -> None:
        failed = await self._objects.resolve_args(pending)
        if failed is not None:
            self._manager.finish(pending, [failed] * len(pending.return_ids))
            return
        if pending.cancelled:
            return
        queue = self._queue_for(pending)
        queue.specs.append(pending)
        self._pump(queue)

    def _queue_for(self, pending: PendingTask) -> ShapeQueue:
        key = (*pending.shape, pending.runtime_env)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = ShapeQueue(key, self._cluster.capacity(*pending.shape))
        return queue

    def refresh_capacity(self) -> None:
        """The nodes changed: recount each shape's capacity and lease accordingly."""
        for queue in self._queues.values():
            queue.capacity = self._cluster.capacity(queue.resources, queue.target)
            self._pump(queue)

    async def lease_worker(self, shape: tuple, *, for_actor: bool = False, target: str | None = None,
                           runtime_env: str = ""):
        """A worker lease for `shape`, of a worker started for `runtime_env`: from this node's
        Scheduler or the one it spills back to (or from node `target`'s only).

        Returns `(LeaseGranted, the granting Scheduler)`; raises PeerLostError if this node's
        Scheduler is gone.
        """
        scheduler, spillable = self._scheduler, True
        if target is not None:
            scheduler, spillable = self._cluster.node_ref(target, "scheduler") or self._scheduler, False
        while True:
            try:
                reply = await scheduler.ask(RequestLease(shape, self._owner, for_actor, spillable, runtime_env),
                                            timeout=None)
            except PeerLostError:
                if scheduler == self._scheduler:
                    raise
                scheduler, spillable = self._scheduler, True  # that node died: ask ours again
                continue
            if type(reply) is Spillback:
                scheduler, spillable = reply.scheduler, False
                continue
            return reply, scheduler

    def _pump(self, queue: ShapeQueue) -> None:
        specs = queue.specs
        while specs:
            lease = self._pick_lease(queue, specs[0])
            if lease is None:
                break
            pending = specs.popleft()
            if not pending.cancelled:
                self._run(lease, pending)
        wanted = min(len(specs), queue.capacity - len(queue.leases)) - queue.requesting
        for _ in range(max(0, wanted)):
            queue.requesting += 1
            self._loop.create_task(self._request_lease(queue))
        if not specs and any(lease.inflight == 0 for lease in queue.leases):
            self._schedule_idle_check()
            if self._is_driver:
                for lease in queue.leases:  # a worker is idle: none waits behind another's task
                    self._take_back(lease)

    def _pick_lease(self, queue: ShapeQueue, pending: PendingTask) -> WorkerLease | None:
        best = None
        for lease in queue.leases:
            if lease.inflight == 0:
                return lease
            if lease.pipelined and (best is None or lease.inflight < best.inflight):
                best = lease
        # Only a driver pipelines: a task queued behind one that blocks in `get` waits for it,
        # and if tasks queued tasks, two of them could each wait behind the other's children.
        # A driver is no task: waiting behind its tasks cannot close such a cycle.
        if (self._is_driver and best is not None and len(queue.leases) >= queue.capacity
                and best.inflight < PIPELINE_DEPTH
                and self._short_runs.get(pending.spec.function_id, 0) >= PIPELINE_AFTER_SHORT):
            if self._stall_timer is None:
                self._stall_timer = self._loop.call_later(SHORT_TASK_SECONDS, self._check_stalls)
            return best
        return None

    def _take_back(self, lease: WorkerLease) -> None:
        """Ask `lease`'s worker to give back the tasks queued behind the one it runs
        (`GiveBackTasks`); they go back to the front of their queue, in order."""
        if lease.inflight > 1 and lease.giving_back is None:
            lease.giving_back = []
            future = lease.worker.ask(GiveBackTasks(lease.inflight - 1), timeout=None)
            future.add_done_callback(partial(self._given_back, lease))

    def _given_back(self, lease: WorkerLease, future: asyncio.Future) -> None:
        # Its NotStarted answers came first (one connection): `giving_back` holds them, in order.
        given, lease.giving_back = lease.giving_back, None
        if not future.cancelled():
            future.exception()  # a lost worker: its tasks' own answers say so
        queue = self._queues.get(lease.shape)
        if given and queue is not None:
            queue.specs.extendleft(reversed(given))
            self._pump(queue)

    def _check_stalls(self) -> None:
        """While tasks are pipelined: a worker whose task runs longer than SHORT_TASK_SECONDS
        gets no more and gives back those queued behind it."""
        self._stall_timer = None
        now = time.monotonic()
        pipelined = False
        for queue in self._queues.values():
            for lease in queue.leases:
                if lease.inflight > 1:
                    pipelined = True
                    if now - lease.busy_since > SHORT_TASK_SECONDS:
                        lease.pipelined = False
                        self._take_back(lease)
        if pipelined:
            self._stall_timer = self._loop.call_later(SHORT_TASK_SECONDS, self._check_stalls)

    async def _request_lease(self, queue: ShapeQueue) -> None:
        try:
            grant, scheduler = await self.lease_worker(queue.resources, target=queue.target,
                                                       runtime_env=queue.runtime_env)
        except Exception as error:  # noqa: BLE001 - a failed lease request fails the shape's queue
            queue.requesting -= 1
            # the tasks' placement group was removed, or their runtime env cannot be set up
            removed = isinstance(error, (exc.TaskPlacementGroupRemoved, exc.RuntimeEnvSetupError))
            if self._system._closing or isinstance(error, PeerLostError) or removed:
                log.debug("lease request ended with the node or the placement group", error=repr(error))
            else:
                log.error("lease request failed", error=repr(error))
            while queue.specs:
                pending = queue.specs.popleft()
                failure = error if removed else exc.RayError(f"cannot schedule {pending.spec.name}: {error}")
                self._manager.finish(pending, [Failed(failure)] * len(pending.return_ids))
            return
        queue.requesting -= 1
        if grant.gpu_ids:  # before its first task: the same sender's messages arrive in order
            grant.worker.tell(UseDevices(grant.lease_id, grant.gpu_ids))
        queue.leases.append(WorkerLease(grant.lease_id, grant.worker, grant.pid, queue.shape, scheduler,
                                        time.monotonic()))
        self._pump(queue)

    def _run(self, lease: WorkerLease, pending: PendingTask) -> None:
        pending.running_on = lease
        if not lease.inflight:
            lease.busy_since = time.monotonic()
            lease.pipelined = self._short_runs.get(pending.spec.function_id, 0) >= PIPELINE_AFTER_SHORT
        lease.inflight += 1
        future = lease.worker.ask(ExecuteTask(pending.spec, lease.lease_id), timeout=None)
        future.add_done_callback(lambda f: self._ran(lease, pending, f))

    def _ran(self, lease: WorkerLease, pending: PendingTask, future: asyncio.Future) -> None:
        pending.running_on = None
        lease.inflight -= 1
        queue = self._queues[lease.shape]
        if lease.retiring and lease.inflight == 0:
            self._retire(lease, queue)
        error = future.exception()
        if error is None:
            result = future.result()
            if type(result) is NotStarted:  # given back unstarted (GiveBackTasks): runs elsewhere
                if pending.cancelled:
                    self._manager.finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))]
                                         * len(pending.return_ids))
                elif lease.giving_back is not None:
                    lease.giving_back.append(pending)  # queued again once all are back
                else:
                    queue.specs.appendleft(pending)
                    self._pump(queue)
                return
            now = lease.idle_since = time.monotonic()
            function_id = pending.spec.function_id
            if now - lease.busy_since < SHORT_TASK_SECONDS:
                self._short_runs[function_id] = self._short_runs.get(function_id, 0) + 1
            else:
                self._short_runs[function_id] = 0
                lease.pipelined = False
                self._take_back(lease)
            lease.busy_since = now  # the next task queued there (if any) starts now
            if result.retire:
                self._retire(lease, queue)
            returns = result.returns
            if self._should_retry_exception(pending, returns):
                self._manager.next_attempt(pending)
                queue.specs.appendleft(pending)
            else:
                self._manager.finish(pending, returns)
        else:
            died = isinstance(error, PeerLostError)
            if not lease.dead:
                lease.dead = True
                if lease in queue.leases:
                    queue.leases.remove(lease)
                lease.scheduler.tell(ReturnLease(lease.lease_id, worker_died=died))
            if pending.cancelled:
                self._manager.finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))]
                                     * len(pending.return_ids))
            elif died and pending.may_retry():
                self._manager.next_attempt(pending, "WORKER_DIED", f"the worker running it died: {error}")
                if group_of_shape(queue.resources) is not None:
                    self._loop.create_task(self._place_again(pending))
                elif queue.target is not None and not self._cluster.is_live(queue.target):
                    # SPREAD to a node that died: retry wherever there is room.
                    pending.shape = (queue.resources, None)
                    retry_queue = self._queue_for(pending)
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
                self._manager.finish(pending, [Failed(error)] * len(pending.return_ids))
        self._pump(queue)

    def _retire(self, lease: WorkerLease, queue: ShapeQueue) -> None:
        """`max_calls`: the worker takes no more tasks and ends once those sent to it are done."""
        if lease in queue.leases:
            queue.leases.remove(lease)
        if lease.inflight == 0 and not lease.dead:
            lease.dead = True
            lease.scheduler.tell(ReturnLease(lease.lease_id, worker_died=True))
            lease.worker.tell(ExitWorker())
        else:
            lease.retiring = True

    def _should_retry_exception(self, pending: PendingTask, returns: list) -> bool:
        retry = pending.retry_exceptions
        if not retry or pending.cancelled or not returns or type(returns[0]) is not Failed:
            return False
        if not pending.may_retry():
            return False
        error = returns[0].error
        cause = error.cause if isinstance(error, exc.TaskError) else error
        if retry is True:
            return True
        return isinstance(cause, tuple(retry))

    def resubmit(self, pending: PendingTask) -> bool:
        """Run a finished task again to make its lost returns (lineage); False if out of retries."""
        if not pending.may_retry():
            return False
        if self._manager.is_pending(pending):
            return True  # already running again
        self._manager.next_attempt(pending)
        resources, target = pending.shape
        if target is not None and not self._cluster.is_live(target) and group_of_shape(resources) is None:
            pending.shape = (resources, None)
        if pending.arg_refs is not None:
            # Its arguments as refs again: each resolves to its current copy, or waits for it
            # to be made again itself (lineage, recursively).
            pending.spec.args, pending.spec.kwargs = list(pending.arg_refs[0]), dict(pending.arg_refs[1])
        if group_of_shape(resources) is not None and not self._cluster.is_live(target):
            self._manager.track(pending)  # a placement group's task: placed again with its group
            self._loop.create_task(self._place_again(pending))
            return True
        self._submit(pending)
        return True

    def _schedule_idle_check(self) -> None:
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_later(LEASE_IDLE_SECONDS, self._return_idle_leases)

    def _return_idle_leases(self) -> None:
        self._idle_timer = None
        now = time.monotonic()
        keep_checking = False
        for queue in self._queues.values():
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

    def _cancel(self, object_id: str, force: bool, recursive: bool = False) -> None:
        pending = self._manager.task_of(object_id)
        if pending is None or pending.cancelled:
            return
        if pending.spec.method is not None:
            self.cancel_actor_call(pending, recursive)
            return
        pending.cancelled = True
        lease = pending.running_on
        if lease is None:
            queue = self._queues.get((*pending.shape, pending.runtime_env))
            if queue is not None and pending in queue.specs:
                queue.specs.remove(pending)
            self._manager.finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))]
                                 * len(pending.return_ids))
        else:
            lease.worker.tell(CancelTask(pending.spec.task_id, force, recursive))


def captured_strategy() -> PlacementGroupSchedulingStrategy | None:
    """The strategy of a task started with none by a task of a group that captures child
    tasks: any bundle of that group (None outside such a task)."""
    placement = current_placement()
    if placement is None or not placement[1]:
        return None
    return PlacementGroupSchedulingStrategy(placement[0], -1, True)
