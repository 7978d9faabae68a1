"""The actor submitter: creating actors on leased workers, restarts, calls in order, kill.

The owner of an actor (the process that created it) places it on a dedicated leased worker,
restarts it when its process dies while `max_restarts` allows (in a new process, leased anew:
on another node if its node is gone) and decides when it is dead for good. Calls in flight
when its process died are redelivered if `max_task_retries` allows, else fail with
`ActorDiedError`; calls made meanwhile wait for the new incarnation. Calls from one caller to
one actor leave in submission order. A process that got a handle from elsewhere (a borrower)
learns where the actor lives from the handle itself or from its owner (`ResolveActor`); when
the actor's process dies, it asks the owner where the next incarnation lives
(`ResolveRestartedActor`) and redelivers its calls in flight there within `max_task_retries`,
as the owner does. A worker replies to its task only once the actor calls the task made are in
their actors' mailboxes (`when_sent`).

A handle is read through its attributes ``_actorcore_actor_id``, ``_actorcore_class_id``,
``_actorcore_name``, ``_actorcore_owner`` and ``_actorcore_worker`` (`actorcore.actor`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import exceptions as exc
from .._logging import get_logger
from ..kernel import ActorRef, ActorStoppedError, ActorSystem, AskTimeoutError, PeerLostError, Terminated
from ..object_ref import ObjectRef
from ..protocol import (
    ActorStateChanged,
    BecomeActor,
    CallsReceived,
    CancelTask,
    ExecuteTask,
    ExitWorker,
    Failed,
    ForgetActor,
    GetActorRecord,
    KillWorker,
    LookupActor,
    RegisterActor,
    ReturnLease,
    TaskSpec,
)
from ..runtime_env.packaging import package_uris
from .cluster import Cluster
from .death_watch import DeathWatch
from .messages import KillActor, ResolveActor, ResolveRestartedActor, WatchActor
from .object_table import ObjectTable
from .pending import PendingTask, has_refs, shape_of
from .task_manager import TaskManager
from .task_submitter import TaskSubmitter, captured_strategy

__all__ = ["EXIT_STATUS_WAIT", "ActorState", "ActorSubmitter", "Placement"]

log = get_logger(__name__)

#: How long an owner waits for the exit status of its dead actor's process (for the cause).
EXIT_STATUS_WAIT = 0.5
#: How long a borrower whose actor's owner is gone waits for a detached actor's own record to
#: say where it lives (it is written once the actor's constructor has run).
DETACHED_LOOKUP_SECONDS = 10.0
#: How long kill() waits for the actor's process to take its ExitWorker.
EXIT_TIMEOUT = 5.0


@dataclass(slots=True)
class Placement:
    """What an owner needs to (re)start its actor: the constructor call and where it may run."""

    ctor: PendingTask  # its args stay pinned while the actor may still be restarted
    shape: tuple
    max_concurrency: int
    is_async: bool
    detached: bool
    spread: bool
    strategy: Any = None  # a strategy object (placement group, node affinity), placed at each start
    concurrency_groups: dict = field(default_factory=dict)  # group name -> max concurrency
    runtime_env: str = ""  # the canonical JSON of the runtime env its worker must have


@dataclass(slots=True)
class ActorState:
    """What this process knows of an actor: where it lives and, for its owner, its restarts."""

    actor_id: str
    name: str
    worker: ActorRef | None = None
    pid: int | None = None
    node_id: str = ""
    created: asyncio.Future | None = None
    dead: BaseException | None = None
    owned: bool = False
    namespace: str = ""
    actor_name: str | None = None
    # -- restarts (the owner's side) --
    placement: Placement | None = None
    max_restarts: int = 0  # -1: forever
    max_task_retries: int = 0  # -1: forever
    restarts: int = 0
    restarting: asyncio.Future | None = None  # set while a new incarnation is being started
    retry_queue: list = field(default_factory=list)  # calls to redeliver to the new incarnation
    no_restart: bool = False
    dying: bool = False  # dead for good, waiting a moment for its exit status
    #: set when a user's supervision group manages this actor (actorcore.supervise): the owner
    #: then reports each death to it, `on_death(state, cause)`, instead of deciding itself
    on_death: Callable | None = None
    #: futures completed with the cause when the actor is dead for good (`death_of`)
    watchers: list = field(default_factory=list)
    owner: ActorRef | None = None  # a borrower's: the owner's core actor
    #: why it ended itself (`exit_actor()`), told by its worker: it is not restarted
    exited: str | None = None


class ActorSubmitter:
    """Actors this process created or holds handles to: creation, calls, restarts, kill, death."""

    def __init__(self, system: ActorSystem, owner: ActorRef, gcs: ActorRef, pool: ActorRef | None,
                 objects: ObjectTable, manager: TaskManager, tasks: TaskSubmitter, cluster: Cluster,
                 deaths: DeathWatch, *, new_id: Callable[[str], str]) -> None:
        self._system = system
        self._loop = system.loop
        self._owner = owner
        self._gcs = gcs
        self._pool = pool
        self._objects = objects
        self._manager = manager
        self._tasks = tasks
        self._cluster = cluster
        self._deaths = deaths
        self._new_id = new_id
        self._states: dict[str, ActorState] = {}
        self._chains: dict[str, asyncio.Task] = {}  # the last call sent to each actor
        self._unsent = 0  # actor calls submitted but not yet sent
        self._after_sent: list = []
        #: workers calls were sent to since their last `CallsReceived` (None: not tracked, in a driver)
        self._unconfirmed: set | None = None
        self._detached_creations: set[asyncio.Future] = set()  # detached actors being placed (in a worker)
        #: callbacks waiting for the CallsReceived round under way, and for the next one
        self._receipt_round: list | None = None
        self._next_round: list = []
        self._remote_watches: set[asyncio.Task] = set()  # keeps `answer_watch` tasks referenced

    def state(self, actor_id: str) -> ActorState | None:
        """This process's state of actor `actor_id`, if it has one."""
        return self._states.get(actor_id)

    # -- creation ---------------------------------------------------------------------------

    def create(self, actor_id: str, class_id: str, name: str, args: list, kwargs: dict, options: dict,
               is_async: bool, namespace: str, handle_blob: bytes | None = None) -> ActorState | None:
        """Create the actor (placement runs in the background); `namespace`: the creator's. A
        named actor (``handle_blob``: its pickled handle) is known here before its name is
        registered, so a borrower that finds the name at once can resolve it with us; None if
        the name is taken."""
        actor_namespace = options.get("namespace") or namespace
        runtime_env = self._tasks.runtime_env_of(options)
        state = ActorState(actor_id, name, owned=True, namespace=actor_namespace, actor_name=options.get("name"),
                           max_restarts=options.get("max_restarts") or 0,
                           max_task_retries=options.get("max_task_retries") or 0)
        spec = TaskSpec(self._new_id("t"), class_id, f"{name}.__init__", args, kwargs, 0, self._owner,
                        namespace=namespace)
        self._manager.submitted(spec, "ACTOR_CREATION_TASK", actor_id, options.get("enable_task_events", True))
        shape = shape_of(options, actor=True)
        strategy = options.get("scheduling_strategy")
        if strategy is None:
            strategy = captured_strategy()
        if strategy is not None and type(strategy) is not str:
            spec.placement = self._tasks.placements.check(strategy, shape, name)
        else:
            strategy = None
            self._cluster.warn_if_infeasible(shape)
        state.placement = Placement(
            PendingTask(spec, shape, 0, False, [], []), shape,
            options.get("max_concurrency") or (1000 if is_async else 1), is_async,
            options.get("lifetime") == "detached",
            options.get("scheduling_strategy") == "SPREAD" and self._cluster.cluster_mode,
            strategy,
            dict(options.get("concurrency_groups") or {}),
            runtime_env,
        )

        def start() -> None:
            state.created = self._loop.create_future()
            self._states[actor_id] = state
            self._loop.create_task(self._create(state))

        async def start_named() -> bool:
            state.created = self._loop.create_future()
            self._states[actor_id] = state
            registered = await self._gcs.ask(
                RegisterActor(actor_id, actor_namespace, state.actor_name, handle_blob), timeout=30)
            if not registered:
                del self._states[actor_id]
                return False
            self._loop.create_task(self._create(state))
            return True

        if handle_blob is None:
            self._loop.call_soon_threadsafe(start)
            return state
        return state if self._system.run(start_named()) else None

    async def _create(self, state: ActorState) -> None:
        if state.placement.detached and self._unconfirmed is not None:
            # In a worker: the task or call that creates a detached actor replies once the actor
            # is placed (`when_sent`), so the actor outlives this process dying right after.
            self._detached_creations.add(state.created)
            state.created.add_done_callback(self._detached_creations.discard)
        ctor = state.placement.ctor
        failed = await self._objects.resolve_args(ctor)
        error = failed.error if failed is not None else await self._place(state)
        if error is not None:
            state.dead = error
        if error is not None or state.max_restarts == 0:
            self._manager.finish(ctor, [])  # the constructor's arguments are not needed again
        if not state.created.done():
            state.created.set_result(None)

    async def _place(self, state: ActorState) -> BaseException | None:
        """Lease a worker and run the constructor there; None, or why the actor is dead."""
        placement = state.placement
        try:
            shape = placement.shape
            if placement.strategy is not None:
                shape, target = await self._tasks.placements.place(placement.strategy, shape, state.name, actor=True)
            else:
                target = self._cluster.spread_target(shape) if placement.spread else None
            grant, scheduler = await self._tasks.lease_worker(shape, for_actor=True, target=target,
                                                              runtime_env=placement.runtime_env)
            state.node_id = grant.node_id
            result = await grant.worker.ask(
                BecomeActor(placement.ctor.spec, state.actor_id, placement.max_concurrency, placement.is_async,
                            placement.detached, grant.gpu_ids, placement.concurrency_groups), timeout=None)
            self._manager.constructor_ran(placement.ctor)
            if type(result) is Failed:
                scheduler.tell(ReturnLease(grant.lease_id, worker_died=True))
                grant.worker.tell(ExitWorker())
                cause = result.error.cause if isinstance(result.error, exc.TaskError) else result.error
                return exc.ActorDiedError.constructor_raised(state.name, cause)
        except BaseException as error:  # noqa: BLE001 - any failure to create the actor is its death cause
            return error if isinstance(error, exc.RayError) else exc.ActorDiedError(
                state.name, f"it could not be created: {error!r}")
        state.worker, state.pid = grant.worker, grant.pid
        self._deaths.watch(grant.worker)
        self._gcs.tell(ActorStateChanged(state.actor_id, {
            "actor_id": state.actor_id, "class_name": state.name, "state": "ALIVE", "node_id": grant.node_id,
            "pid": grant.pid, "name": state.actor_name, "namespace": state.namespace,
            "detached": placement.detached, "worker": grant.worker.to_uri(), "restarts": state.restarts,
            "packages": package_uris(placement.runtime_env),  # kept while the actor is not DEAD
        }))
        return None

    # -- deaths and restarts ----------------------------------------------------------------

    def on_worker_ended(self, terminated: Terminated) -> None:
        """A worker process ended: each actor it hosted restarts or is dead (owned), or is
        looked up again at its next call (borrowed)."""
        for state in list(self._states.values()):
            if state.worker != terminated.ref or state.dead is not None:
                continue
            cause = self._death_cause(state, terminated.reason)
            if state.owned:
                self._worker_died(state, cause)
            else:  # a borrowed handle: ask the owner where the actor lives now
                self._relocate(state, terminated.ref)

    def _death_cause(self, state: ActorState, reason: str = "peer_lost") -> str:
        if state.exited is not None:
            return state.exited
        removed = self._group_removed(state)
        if removed is not None:
            return removed
        if state.node_id in self._cluster.dead_nodes:
            return f"its node ({state.node_id}) died"
        if reason == "peer_lost":
            how = self._deaths.exit_of(state.pid)
            return f"its worker process (pid {state.pid}) died" + (f": {how}" if how else "")
        return str(reason)

    def _group_removed(self, state: ActorState) -> str | None:
        """Why the actor is dead if the placement group it runs in was removed (else None):
        then it is not restarted, as in Ray."""
        placement = state.placement
        if placement is None or placement.strategy is None:
            return None
        return self._tasks.placements.removal_cause(placement.strategy)

    def _may_restart(self, state: ActorState) -> bool:
        if not state.owned or state.no_restart or state.placement is None:
            return False
        if state.on_death is None and self._group_removed(state) is not None:
            return False
        return state.on_death is not None or state.max_restarts < 0 or state.restarts < state.max_restarts

    def _worker_died(self, state: ActorState, cause: str) -> None:
        """The owner's decision when its actor's process is gone: restart it, or it is dead."""
        if state.on_death is not None and not state.no_restart:
            state.worker = None
            state.restarting = self._loop.create_future()  # calls wait for the group's decision
            state.on_death(state, cause)
            return
        if self._may_restart(state):
            state.restarts += 1
            state.worker = None
            state.restarting = self._loop.create_future()
            self._gcs.tell(ActorStateChanged(state.actor_id, {
                "actor_id": state.actor_id, "state": "RESTARTING", "restarts": state.restarts,
                "death_cause": cause}))
            self._loop.create_task(self._restart(state))
            return
        if (state.pid is not None and self._deaths.exit_of(state.pid) is None
                and state.node_id not in self._cluster.dead_nodes):
            # Dead for good: wait a moment for its Scheduler to say how its process ended.
            state.dying = True
            state.worker = None
            state.restarting = self._loop.create_future()
            self._loop.create_task(self._die_with_exit_status(state))
            return
        self.mark_dead(state, _with_restarts(state, cause))

    async def _die_with_exit_status(self, state: ActorState) -> None:
        await self._deaths.wait_exit(state.pid, EXIT_STATUS_WAIT)
        self.mark_dead(state, _with_restarts(state, self._death_cause(state)))

    def _dead(self, state: ActorState, error: BaseException, cause: str) -> None:
        """Dead for good: pending calls, watchers and calls waiting for a restart get `error`."""
        restarting, state.restarting = state.restarting, None
        state.dead = error
        watchers, state.watchers = state.watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(cause)
        retry, state.retry_queue = state.retry_queue, []
        for pending in retry:
            self._manager.finish(pending, [Failed(error)] * len(pending.return_ids))
        if state.placement is not None and state.max_restarts != 0:
            self._manager.finish(state.placement.ctor, [])
        self._gcs.tell(ActorStateChanged(state.actor_id, {
            "actor_id": state.actor_id, "state": "DEAD", "death_cause": cause}))
        if restarting is not None and not restarting.done():
            restarting.set_result(None)

    async def _restart(self, state: ActorState) -> None:
        self._manager.constructor_again(state.placement.ctor, state.actor_id)
        error = await self._place(state)
        restarting, state.restarting = state.restarting, None
        if error is not None:
            self._dead(state, error, f"its restart failed: {error}")
        else:
            retry, state.retry_queue = state.retry_queue, []
            for pending in retry:  # redelivered first, in their order, before calls made since
                self._send(state, pending)
        if restarting is not None:
            restarting.set_result(None)

    # -- for supervision groups (actorcore.supervise): same actor id, new process ----------

    async def restart(self, state: ActorState) -> BaseException | None:
        """Start a new incarnation of an owned actor (same id; handles stay valid); None, or
        the error that left it dead."""
        if state.restarting is None:
            state.restarting = self._loop.create_future()
        state.restarts += 1
        await self._restart(state)
        return state.dead

    async def stop_process(self, state: ActorState, timeout: float | None = 10.0) -> None:
        """End an actor's current process (a sibling's restart in one_for_all / rest_for_one)
        without declaring the actor dead: its calls wait for `restart`."""
        worker = state.worker
        if worker is None:
            return
        state.worker = None
        if state.restarting is None:
            state.restarting = self._loop.create_future()
        stopped = await self._deaths.stop(worker, timeout)
        if (not stopped and state.pid is not None and self._pool is not None
                and state.node_id in ("", self._cluster.node_id)):
            self._pool.tell(KillWorker(state.pid))

    def mark_dead(self, state: ActorState, cause: str) -> None:
        """The actor is dead for good, with `cause` (e.g. its supervision group gave up on it)."""
        self._dead(state, exc.ActorDiedError(state.name, cause), cause)

    def exited(self, actor_id: str, cause: str) -> None:
        """The owner's side of `ActorExited`: the actor ends itself; dead for good once its
        process is gone (calls in flight then fail with this cause)."""
        state = self._states.get(actor_id)
        if state is not None and state.owned:
            state.no_restart = True
            state.exited = cause

    # -- death watch of actors -----------------------------------------------------------------

    async def owned_death(self, state: ActorState) -> str:
        """The cause, once owned actor `state` is dead for good (restarts are not deaths)."""
        if state.created is not None:
            await asyncio.shield(state.created)
        if state.dead is not None:
            return _cause_of(state.dead)
        watcher = self._loop.create_future()
        state.watchers.append(watcher)
        reason = await watcher
        # the reason as the actor's ActorDiedError gives it, the same whether watched before or after
        return _cause_of(state.dead) if state.dead is not None else reason

    async def death_of(self, handle: Any) -> str:
        """The reason, once the actor of `handle` is dead for good. A borrower asks the owner
        (`WatchActor`); if the owner is gone, the actor is dead with it, unless it is detached:
        then it is dead when its process ends."""
        actor_id = handle._actorcore_actor_id
        owner = handle._actorcore_owner
        state = self._states.get(actor_id)
        if state is not None and state.owned:
            return await self.owned_death(state)
        if owner == self._owner:
            return "unknown actor: this process created no actor with that id"
        try:
            return await owner.ask(WatchActor(actor_id), timeout=None)
        except ActorStoppedError:
            pass
        record = await self._gcs.ask(GetActorRecord(actor_id), timeout=30)
        hint = handle._actorcore_worker
        if hint is not None and record and record.get("detached") and record.get("state") != "DEAD":
            return await self._deaths.process_death(hint[0])
        return "its owner died"

    def answer_watch(self, actor_id: str, reply: Any) -> None:
        """The owner's side of `WatchActor`: answer `reply` with the reason once the actor is
        dead for good."""
        state = self._states.get(actor_id)
        if state is None or not state.owned:
            reply.send("unknown actor: its owner has no record of it")
            return
        task = self._loop.create_task(self.owned_death(state))
        self._remote_watches.add(task)

        def done(task: asyncio.Task) -> None:
            self._remote_watches.discard(task)
            if task.cancelled():
                reply.fail(exc.ActorDiedError(None, "the owner stopped watching it"))
            elif task.exception() is not None:
                reply.fail(task.exception())
            else:
                reply.send(task.result())
        task.add_done_callback(done)

    # -- looking actors up ---------------------------------------------------------------------

    def lookup(self, name: str, namespace: str) -> tuple | None:
        """The named actor's record in the GCS: ``(pickled handle, (worker uri, pid) or None)``."""
        return self._system.ask_sync(self._gcs, LookupActor(namespace, name), timeout=30)

    async def _state_of(self, actor_id: str, name: str, owner: ActorRef, hint=None) -> ActorState:
        state = self._states.get(actor_id)
        if state is None:
            state = self._states[actor_id] = ActorState(actor_id, name, owner=owner)
            state.created = self._loop.create_future()
            if hint is not None and not self._deaths.is_dead(hint[0]):  # no trip to its owner
                state.worker, state.pid = hint
                self._deaths.watch(state.worker)
                state.created.set_result(None)
                return state
            try:
                # (a worker this process saw die is no hint: the actor may live elsewhere now)
                worker, pid, dead = await owner.ask(ResolveActor(actor_id), timeout=None)
                state.worker, state.pid, state.dead = worker, pid, dead
                if worker is not None:
                    self._deaths.watch(worker)
            except PeerLostError:
                located = await self._detached_location(actor_id)
                if located is None:
                    state.dead = exc.ActorDiedError(name, "its owner (the process that created it) died")
                else:
                    state.worker, state.pid = located
                    self._deaths.watch(state.worker)
            state.created.set_result(None)
        await state.created
        return state

    async def resolve_for_remote(self, actor_id: str):
        """The owner's answer to `ResolveActor`: ``(worker, pid, dead)`` once not restarting."""
        state = self._states.get(actor_id)
        if state is None:
            return None, None, exc.ActorDiedError(actor_id, "unknown actor")
        await state.created
        while state.restarting is not None:
            await asyncio.shield(state.restarting)
        return state.worker, state.pid, state.dead

    def answer_restarted(self, actor_id: str, dead_worker: ActorRef, reply: Any) -> None:
        """The owner's side of `ResolveRestartedActor`: answer `reply` once the actor no longer
        lives in `dead_worker` (restarted, or dead for good)."""
        task = self._loop.create_task(self._restarted(actor_id, dead_worker))
        self._remote_watches.add(task)

        def done(task: asyncio.Task) -> None:
            self._remote_watches.discard(task)
            if task.cancelled():
                reply.fail(exc.ActorDiedError(None, "its owner stopped"))
            elif task.exception() is not None:
                reply.fail(task.exception())
            else:
                reply.send(task.result())
        task.add_done_callback(done)

    async def _restarted(self, actor_id: str, dead_worker: ActorRef):
        state = self._states.get(actor_id)
        if state is None or not state.owned:
            return None, None, exc.ActorDiedError(actor_id, "unknown actor: its owner has no record of it"), 0
        await asyncio.shield(state.created)
        if state.worker == dead_worker and state.restarting is None and state.dead is None:
            await self._deaths.process_death(dead_worker)  # then its death is handled here too
        while state.restarting is not None:
            await asyncio.shield(state.restarting)
        return state.worker, state.pid, state.dead, state.max_task_retries

    async def _detached_location(self, actor_id: str, dead_worker: ActorRef | None = None):
        """``(worker, pid)`` of a detached actor whose owner is gone, from its etcd record (its
        process writes it once constructed; waited for up to `DETACHED_LOOKUP_SECONDS`), or
        None if the actor is not detached, is dead, or still lives only in `dead_worker`."""
        deadline = self._loop.time() + DETACHED_LOOKUP_SECONDS
        while True:
            try:
                record = await self._gcs.ask(GetActorRecord(actor_id), timeout=30)
            except Exception:  # noqa: BLE001 - no record to be read: the actor is unreachable
                return None
            if not record or not record.get("detached") or record.get("state") == "DEAD":
                return None
            uri = record.get("worker")
            if uri and (dead_worker is None or uri != dead_worker.to_uri()):
                worker = self._system.ref_from_uri(uri)
                if not self._deaths.is_dead(worker):
                    return worker, record.get("pid")
            if self._loop.time() >= deadline:
                return None
            await asyncio.sleep(0.05)

    def _relocate(self, state: ActorState, dead_worker: ActorRef) -> None:
        """A borrower saw the actor's process `dead_worker` end: calls wait while the owner says
        where the actor lives now; those in flight then go there (`_redeliver`)."""
        if state.restarting is not None or state.dead is not None or state.worker != dead_worker:
            return
        state.worker = None
        state.restarting = self._loop.create_future()
        self._loop.create_task(self._follow(state, dead_worker))

    async def _follow(self, state: ActorState, dead_worker: ActorRef) -> None:
        try:
            worker, pid, dead, retries = await state.owner.ask(
                ResolveRestartedActor(state.actor_id, dead_worker), timeout=None)
        except PeerLostError:
            located = await self._detached_location(state.actor_id, dead_worker)
            if located is None:
                worker, pid, dead, retries = None, None, exc.ActorDiedError(
                    state.name, "its owner (the process that created it) died"), 0
            else:
                (worker, pid), dead, retries = located, None, state.max_task_retries
        except Exception as error:  # noqa: BLE001 - the owner's answer failed: the actor is unreachable
            worker, pid, dead, retries = None, None, exc.ActorDiedError(
                state.name, f"its owner could not say where it lives: {error!r}"), 0
        state.worker, state.pid, state.dead, state.max_task_retries = worker, pid, dead, retries
        if worker is not None:
            self._deaths.watch(worker)
        retry, state.retry_queue = state.retry_queue, []
        for pending in retry:  # redelivered first, in their order, before calls made since
            self._redeliver(state, pending)
        restarting, state.restarting = state.restarting, None
        restarting.set_result(None)

    def _redeliver(self, state: ActorState, pending: PendingTask) -> None:
        """A borrower's call that was in flight when the actor's process died: sent to its new
        process if its `max_task_retries` allows, else failed as the owner fails its own."""
        if state.dead is not None:
            self._manager.finish(pending, [Failed(state.dead)] * len(pending.return_ids))
            return
        retries = state.max_task_retries
        if retries < 0 or pending.spec.attempt < retries:
            self._manager.next_attempt(pending, "ACTOR_DIED", f"the process of actor {state.name} died")
            self._send(state, pending)
            return
        self._manager.finish(pending, [Failed(_not_retried(state))] * len(pending.return_ids))

    def worker_hint(self, actor_id: str):
        """``(worker, pid)`` of the actor's current process if known here (put in pickled handles)."""
        state = self._states.get(actor_id)
        if state is not None and state.worker is not None and state.dead is None:
            return state.worker, state.pid
        return None

    # -- calls ---------------------------------------------------------------------------------

    def submit(self, handle: Any, method: str, args: list, kwargs: dict, num_returns: int,
               backpressure: int = -1, concurrency_group: str | None = None, events: bool = True) -> list[ObjectRef]:
        """Submit a call of `method` on the actor of `handle` (user thread); its return refs
        (`backpressure`: of a streaming generator method, see TaskSpec; `events`: whether the
        call is recorded in the task events)."""
        task_id = self._new_id("t")
        return_ids = [f"{task_id}.{i}" for i in range(max(num_returns, 1))]
        objects = self._objects
        objects.expect(return_ids)
        spec = TaskSpec(task_id, handle._actorcore_class_id, f"{handle._actorcore_name}.{method}", args, kwargs,
                        num_returns, self._owner, method=method, concurrency_group=concurrency_group)
        if num_returns < 0:  # a generator method
            spec.generator_backpressure = backpressure
        self._manager.submitted(spec, "ACTOR_TASK", handle._actorcore_actor_id, events)
        pending = PendingTask(spec, (), 0, False, return_ids, [])
        self._loop.call_soon_threadsafe(self._submit, handle, pending)
        owner = self._owner
        refs = [ObjectRef(object_id, owner, objects) for object_id in return_ids]
        return refs if num_returns != 0 else []

    def _submit(self, handle: Any, pending: PendingTask) -> None:
        self._manager.track(pending)
        actor_id = handle._actorcore_actor_id
        chain = self._chains.get(actor_id)
        state = self._states.get(actor_id)
        if ((chain is None or chain.done()) and state is not None and state.worker is not None
                and state.dead is None and not has_refs(pending.spec) and self._system.is_connected(state.worker)):
            # The common case: send at once, in order, with no task in between.
            self._chains.pop(actor_id, None)
            self._send(state, pending)
            return
        self._unsent += 1
        task = self._loop.create_task(self._send_later(handle, pending, chain))
        self._chains[actor_id] = task

    async def _send_later(self, handle: Any, pending: PendingTask, previous: asyncio.Task | None) -> None:
        try:
            failed = await self._objects.resolve_args(pending)
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # calls from one caller leave in submission order
            state = await self._state_of(handle._actorcore_actor_id, handle._actorcore_name,
                                         handle._actorcore_owner, handle._actorcore_worker)
            while state.restarting is not None:  # calls made while it restarts wait for it
                await asyncio.shield(state.restarting)
            if failed is not None:
                self._manager.finish(pending, [failed] * len(pending.return_ids))
                return
            if state.dead is not None:
                self._manager.finish(pending, [Failed(state.dead)] * len(pending.return_ids))
                return
            if pending.cancelled:  # finished by `cancel_call` already
                return
            self._send(state, pending)
            await self._system.connected(state.worker)
        finally:
            self._unsent -= 1
            if not self._unsent and self._after_sent:
                callbacks, self._after_sent = self._after_sent, []
                for callback in callbacks:
                    self._when_received(callback)

    def _send(self, state: ActorState, pending: PendingTask) -> None:
        worker = pending.running_on = state.worker
        future = worker.ask(ExecuteTask(pending.spec, None), timeout=None)
        future.add_done_callback(lambda f: self._call_done(state, pending, f, worker))
        if self._unconfirmed is not None:
            self._unconfirmed.add(worker)

    def confirm_receipts(self) -> None:
        """Make `when_sent` wait until the calls are in their actors' mailboxes (in a worker)."""
        if self._unconfirmed is None:
            self._unconfirmed = set()

    def when_sent(self, callback: Callable[[], Any]) -> None:
        """Run `callback` (in the loop) once every actor call submitted so far has left, and
        (after `confirm_receipts`) has been accepted by its actor's executor.

        A worker replies to its task only then, so calls a task made (e.g. `tracker.incr.remote()`)
        are in the actor's mailbox before its caller can see the task's result, and a call the
        caller makes next comes after them, as with Ray. Detached actors this process is still
        placing are placed first: they then outlive this process, as with Ray.
        """
        if self._detached_creations:
            placing = asyncio.gather(*self._detached_creations, return_exceptions=True)
            placing.add_done_callback(lambda _: self.when_sent(callback))
            return
        if self._unsent:
            self._after_sent.append(callback)
        else:
            self._when_received(callback)

    def _when_received(self, callback: Callable[[], Any]) -> None:
        if self._receipt_round is not None:  # one round at a time: the next covers its calls
            self._next_round.append(callback)
            return
        if not self._unconfirmed:
            callback()
            return
        self._start_round([callback])

    def _start_round(self, callbacks: list) -> None:
        workers, self._unconfirmed = self._unconfirmed, set()
        self._receipt_round = callbacks
        # One message per actor process called: it is answered after the calls sent before it.
        receipts = asyncio.gather(*[worker.ask(CallsReceived(), timeout=None) for worker in workers],
                                  return_exceptions=True)  # a lost actor: its calls say so
        receipts.add_done_callback(self._round_done)

    def _round_done(self, _: asyncio.Future) -> None:
        callbacks, self._receipt_round = self._receipt_round, None
        waiting, self._next_round = self._next_round, []
        if waiting and self._unconfirmed:
            self._start_round(waiting)
        else:
            callbacks += waiting
        for callback in callbacks:
            callback()

    def _call_done(self, state: ActorState, pending: PendingTask, future: asyncio.Future, worker: ActorRef) -> None:
        error = future.exception()
        if error is None:
            self._manager.finish(pending, future.result().returns)
            return
        if isinstance(error, PeerLostError) and not state.owned and state.owner is not None:
            # A borrower's call: redelivered like the owner's, once the owner says where to.
            if state.worker == worker:
                self._relocate(state, worker)
            if state.restarting is not None:
                state.retry_queue.append(pending)
            else:  # already relocated (or dead): decide now
                self._redeliver(state, pending)
            return
        if isinstance(error, PeerLostError):
            # (its death may have been processed first: then it is restarting already)
            if (state.restarting is not None and not state.dying) or self._may_restart(state):
                retries = state.max_task_retries
                if retries < 0 or pending.spec.attempt < retries:
                    self._manager.next_attempt(pending, "ACTOR_DIED", f"the process of actor {state.name} died")
                    state.retry_queue.append(pending)  # redelivered to the next incarnation
                    return
                error = _not_retried(state)
            else:
                error = state.dead or exc.ActorDiedError(state.name, _with_restarts(state, self._death_cause(state)))
        self._manager.finish(pending, [Failed(error)] * len(pending.return_ids))

    def cancel_call(self, pending: PendingTask, recursive: bool) -> None:
        """`cancel()` of an actor call: one not sent yet fails with TaskCancelledError now;
        else the actor's worker drops it if queued there, cancels its coroutine (async actors)
        or lets it finish (a running sync call is not interrupted, as in Ray)."""
        if pending.cancelled:
            return
        pending.cancelled = True
        if pending.running_on is None:
            self._manager.finish(pending, [Failed(exc.TaskCancelledError(pending.spec.task_id))]
                                 * len(pending.return_ids))
        else:
            pending.running_on.tell(CancelTask(pending.spec.task_id, False, recursive))

    # -- kill ------------------------------------------------------------------------------------

    def kill(self, handle: Any, no_restart: bool) -> None:
        """`kill()` (user thread): end the actor of `handle`; dead for good unless it may restart
        and `no_restart` is False. Its owner decides, if that is another process."""
        self._system.run(self._kill(handle._actorcore_actor_id, handle._actorcore_name, handle._actorcore_owner,
                                    handle._actorcore_worker, no_restart), timeout=30)

    async def kill_owned(self, actor_id: str, no_restart: bool) -> None:
        """The owner's side of `KillActor` (a borrower's kill())."""
        state = self._states.get(actor_id)
        if state is not None:
            await self._kill(actor_id, state.name, self._owner, None, no_restart)

    async def _kill(self, actor_id: str, name: str, owner: ActorRef, hint, no_restart: bool) -> None:
        state = self._states.get(actor_id)
        if (state is None or not state.owned) and owner != self._owner:
            # The owner decides about restarts: ask it; if it is gone, end the process ourselves.
            try:
                await owner.ask(KillActor(actor_id, no_restart), timeout=30)
                return
            except PeerLostError:
                pass
        state = await self._state_of(actor_id, name, owner, hint)
        while state.restarting is not None:
            await asyncio.shield(state.restarting)
        if no_restart:
            state.no_restart = True
        if state.worker is not None:
            try:  # asked, not told: a driver that exits right after kill() must not lose it
                await state.worker.ask(ExitWorker(), timeout=EXIT_TIMEOUT)
            except (PeerLostError, AskTimeoutError, ActorStoppedError):
                pass  # it ended before it answered (as it does), or cannot be reached: ended below if local
        if state.pid is not None and self._pool is not None and state.node_id in ("", self._cluster.node_id):
            self._pool.tell(KillWorker(state.pid))
        if no_restart or not self._may_restart(state):
            self._dead(state, exc.ActorDiedError(state.name, "it was killed with kill()"), "killed")
            await self._gcs.ask(ForgetActor(state.actor_id, state.namespace, state.actor_name), timeout=30)


def _with_restarts(state: ActorState, cause: str) -> str:
    return f"{cause} (after {state.restarts} restart(s))" if state.restarts else cause


def _not_retried(state: ActorState) -> exc.ActorDiedError:
    return exc.ActorDiedError(state.name, "its process died while it ran this call (it is being restarted; "
                              f"max_task_retries={state.max_task_retries}: not retried)")


def _cause_of(error: BaseException) -> str:
    return getattr(error, "cause", None) or str(error)
