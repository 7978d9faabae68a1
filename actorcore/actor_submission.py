"""Actors in the CoreWorker: creation on a dedicated leased worker, calls, kill (DESIGN.md §2, §5).

Calls from one caller to one actor leave in submission order; a handle that reached this
process from elsewhere learns where its actor lives from the handle itself or from the
actor's owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from . import exceptions as exc
from ._logging import get_logger
from .kernel import ActorRef, PeerLostError
from .object_ref import ObjectRef
from .ownership import Entry
from .protocol import (
    ActorStateChanged,
    BecomeActor,
    ExecuteTask,
    ExitWorker,
    Failed,
    ForgetActor,
    KillWorker,
    LookupActor,
    RegisterActor,
    ReturnLease,
    TaskSpec,
)
from .task_submission import PendingTask, _has_refs, _shape

log = get_logger(__name__)

#: How long an owner waits for the exit status of its dead actor's process (for the cause).
EXIT_STATUS_WAIT = 0.5


@dataclass(slots=True)
class Placement:
    """What an owner needs to (re)start its actor: the constructor call and where it may run."""

    ctor: PendingTask  # its args stay pinned while the actor may still be restarted
    shape: tuple
    max_concurrency: int
    is_async: bool
    detached: bool
    spread: bool


@dataclass(slots=True)
class ActorState:
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
    # -- restarts (DESIGN.md §8; the owner's side) --
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
    #: futures of `actorcore.watch`: completed with the cause when the actor is dead for good
    watchers: list = field(default_factory=list)


class ActorSubmission:
    """Actor creation, restarts and calls; mixed into `CoreWorker`.

    The owner restarts an actor whose process died while `max_restarts` allows (in a new
    process, leased anew: on another node if its node is gone); calls in flight then are
    redelivered if `max_task_retries` allows, else fail with `ActorDiedError`; calls made
    meanwhile wait for the new incarnation. Other holders of the handle ask the owner where
    the actor lives now.
    """

    def create_actor(self, actor_id: str, class_id: str, name: str, args: list, kwargs: dict, options: dict,
                     is_async: bool, handle_blob: bytes | None = None) -> ActorState | None:
        """Create the actor (placement runs in the background). A named actor (``handle_blob``:
        its pickled handle) is known here before its name is registered, so a borrower that
        finds the name at once can resolve it with us; None if the name is taken."""
        namespace = options.get("namespace") or self.namespace
        state = ActorState(actor_id, name, owned=True, namespace=namespace, actor_name=options.get("name"),
                           max_restarts=options.get("max_restarts") or 0,
                           max_task_retries=options.get("max_task_retries") or 0)
        spec = TaskSpec(self.new_id("t"), class_id, f"{name}.__init__", args, kwargs, 0, self.actor,
                        namespace=self.namespace)
        shape = _shape(options, actor=True)
        self._warn_if_infeasible(shape)
        state.placement = Placement(
            PendingTask(spec, shape, 0, False, [], []), shape,
            options.get("max_concurrency") or (1000 if is_async else 1), is_async,
            options.get("lifetime") == "detached",
            options.get("scheduling_strategy") == "SPREAD" and self.cluster_mode,
        )

        def start() -> None:
            state.created = self.loop.create_future()
            self.actors[actor_id] = state
            self.loop.create_task(self._create_actor(state))

        async def start_named() -> bool:
            state.created = self.loop.create_future()
            self.actors[actor_id] = state
            registered = await self.gcs.ask(RegisterActor(actor_id, namespace, state.actor_name, handle_blob),
                                            timeout=30)
            if not registered:
                del self.actors[actor_id]
                return False
            self.loop.create_task(self._create_actor(state))
            return True

        if handle_blob is None:
            self.loop.call_soon_threadsafe(start)
            return state
        return state if self.system.run(start_named()) else None

    async def _create_actor(self, state: ActorState) -> None:
        ctor = state.placement.ctor
        failed = await self._resolve_args(ctor)
        error = failed.error if failed is not None else await self._place(state)
        if error is not None:
            state.dead = error
        if error is not None or state.max_restarts == 0:
            self._finish(ctor, [])  # the constructor's arguments are not needed again
        if not state.created.done():
            state.created.set_result(None)

    async def _place(self, state: ActorState) -> BaseException | None:
        """Lease a worker and run the constructor there; None, or why the actor is dead."""
        placement = state.placement
        try:
            target = self._spread_target(placement.shape) if placement.spread else None
            grant, scheduler = await self.lease_worker(placement.shape, for_actor=True, target=target)
            state.node_id = grant.node_id
            result = await grant.worker.ask(
                BecomeActor(placement.ctor.spec, state.actor_id, placement.max_concurrency, placement.is_async,
                            placement.detached), timeout=None)
            if type(result) is Failed:
                scheduler.tell(ReturnLease(grant.lease_id, worker_died=True))
                grant.worker.tell(ExitWorker())
                cause = result.error.cause if isinstance(result.error, exc.TaskError) else result.error
                return exc.ActorDiedError.constructor_raised(state.name, cause)
        except BaseException as error:
            return error if isinstance(error, exc.RayError) else exc.ActorDiedError(
                state.name, f"it could not be created: {error!r}")
        state.worker, state.pid = grant.worker, grant.pid
        self._watch(grant.worker)
        self.gcs.tell(ActorStateChanged(state.actor_id, {
            "actor_id": state.actor_id, "class_name": state.name, "state": "ALIVE", "node_id": grant.node_id,
            "pid": grant.pid, "name": state.actor_name, "namespace": state.namespace,
            "detached": placement.detached, "worker": grant.worker.to_uri(), "restarts": state.restarts,
        }))
        return None

    # -- restarts -------------------------------------------------------------------------

    def _may_restart(self, state: ActorState) -> bool:
        if not state.owned or state.no_restart or state.placement is None:
            return False
        return state.on_death is not None or state.max_restarts < 0 or state.restarts < state.max_restarts

    def _actor_worker_died(self, state: ActorState, cause: str) -> None:
        """The owner's decision when its actor's process is gone: restart it, or it is dead."""
        if state.on_death is not None and not state.no_restart:
            state.worker = None
            state.restarting = self.loop.create_future()  # calls wait for the group's decision
            state.on_death(state, cause)
            return
        if self._may_restart(state):
            state.restarts += 1
            state.worker = None
            state.restarting = self.loop.create_future()
            self.gcs.tell(ActorStateChanged(state.actor_id, {
                "actor_id": state.actor_id, "state": "RESTARTING", "restarts": state.restarts,
                "death_cause": cause}))
            self.loop.create_task(self._restart(state))
            return
        if state.pid is not None and state.pid not in self._exits and state.node_id not in self._dead_nodes:
            # Dead for good: wait a moment for its Scheduler to say how its process ended.
            state.dying = True
            state.worker = None
            state.restarting = self.loop.create_future()
            self.loop.create_task(self._die_with_exit_status(state))
            return
        self.mark_actor_dead(state, _with_restarts(state, cause))

    async def _die_with_exit_status(self, state: ActorState) -> None:
        if state.pid not in self._exits:
            told = self._exit_waiters.setdefault(state.pid, self.loop.create_future())
            try:
                await asyncio.wait_for(asyncio.shield(told), EXIT_STATUS_WAIT)
            except asyncio.TimeoutError:
                pass
            finally:
                self._exit_waiters.pop(state.pid, None)
        self.mark_actor_dead(state, _with_restarts(state, self._death_cause(state)))

    def _actor_dead(self, state: ActorState, error: BaseException, cause: str) -> None:
        """Dead for good: pending calls, watchers and calls waiting for a restart get `error`."""
        restarting, state.restarting = state.restarting, None
        state.dead = error
        watchers, state.watchers = state.watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(cause)
        retry, state.retry_queue = state.retry_queue, []
        for pending in retry:
            self._finish(pending, [Failed(error)] * len(pending.return_ids))
        if state.placement is not None and state.max_restarts != 0:
            self._finish(state.placement.ctor, [])
        self.gcs.tell(ActorStateChanged(state.actor_id, {
            "actor_id": state.actor_id, "state": "DEAD", "death_cause": cause}))
        if restarting is not None and not restarting.done():
            restarting.set_result(None)

    async def _restart(self, state: ActorState) -> None:
        error = await self._place(state)
        restarting, state.restarting = state.restarting, None
        if error is not None:
            self._actor_dead(state, error, f"its restart failed: {error}")
        else:
            retry, state.retry_queue = state.retry_queue, []
            for pending in retry:  # redelivered first, in their order, before calls made since
                self._send_to_actor(state, pending)
        if restarting is not None:
            restarting.set_result(None)

    # -- for supervision groups (actorcore.supervise): same actor id, new process ----------

    async def restart_actor(self, state: ActorState) -> BaseException | None:
        """Start a new incarnation of an owned actor (same id; handles stay valid); None, or
        the error that left it dead."""
        if state.restarting is None:
            state.restarting = self.loop.create_future()
        state.restarts += 1
        await self._restart(state)
        return state.dead

    async def stop_actor_process(self, state: ActorState, timeout: float = 10.0) -> None:
        """End an actor's current process (a sibling's restart in one_for_all / rest_for_one)
        without declaring the actor dead: its calls wait for `restart_actor`."""
        worker = state.worker
        if worker is None:
            return
        state.worker = None
        if state.restarting is None:
            state.restarting = self.loop.create_future()
        stopped = self._stopping[worker] = self.loop.create_future()  # see CoreWorker._on_terminated
        worker.tell(ExitWorker())
        try:
            await asyncio.wait_for(stopped, timeout)
        except asyncio.TimeoutError:
            if state.pid is not None and self.pool is not None and state.node_id in ("", self.node_id):
                self.pool.tell(KillWorker(state.pid))
        finally:
            self._stopping.pop(worker, None)

    def mark_actor_dead(self, state: ActorState, cause: str) -> None:
        """The actor is dead for good, with `cause` (e.g. its supervision group gave up on it)."""
        self._actor_dead(state, exc.ActorDiedError(state.name, cause), cause)

    def lookup_actor(self, name: str, namespace: str) -> tuple | None:
        return self.system.ask_sync(self.gcs, LookupActor(namespace, name), timeout=30)

    async def _actor_state(self, actor_id: str, name: str, owner: ActorRef, hint=None) -> ActorState:
        state = self.actors.get(actor_id)
        if state is None:
            state = self.actors[actor_id] = ActorState(actor_id, name)
            state.created = self.loop.create_future()
            if hint is not None and hint[0] not in self._dead_workers:  # no trip to its owner
                state.worker, state.pid = hint
                self._watch(state.worker)
                state.created.set_result(None)
                return state
            try:
                # (a worker this process saw die is no hint: the actor may live elsewhere now)
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
        while state.restarting is not None:
            await asyncio.shield(state.restarting)
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
            self._send_to_actor(state, pending)
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
            while state.restarting is not None:  # calls made while it restarts wait for it
                await asyncio.shield(state.restarting)
            if failed is not None:
                self._finish(pending, [failed] * len(pending.return_ids))
                return
            if state.dead is not None:
                self._finish(pending, [Failed(state.dead)] * len(pending.return_ids))
                return
            self._send_to_actor(state, pending)
            await self.system.connected(state.worker)
        finally:
            self._unsent -= 1
            if not self._unsent and self._after_sent:
                callbacks, self._after_sent = self._after_sent, []
                for callback in callbacks:
                    callback()

    def _send_to_actor(self, state: ActorState, pending: PendingTask) -> None:
        future = state.worker.ask(ExecuteTask(pending.spec, None), timeout=None)
        future.add_done_callback(lambda f: self._actor_task_done(state, pending, f))

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
            # (its death may have been processed first: then it is restarting already)
            if (state.restarting is not None and not state.dying) or self._may_restart(state):
                retries = state.max_task_retries
                if retries < 0 or pending.spec.attempt < retries:
                    pending.spec.attempt += 1
                    state.retry_queue.append(pending)  # redelivered to the next incarnation
                    return
                error = exc.ActorDiedError(state.name, "its process died while it ran this call "
                                           "(it is being restarted; max_task_retries=0: not retried)")
            else:
                error = state.dead or exc.ActorDiedError(state.name, _with_restarts(state, self._death_cause(state)))
        self._finish(pending, [Failed(error)] * len(pending.return_ids))

    def kill_actor(self, handle, no_restart: bool) -> None:
        self.system.run(self._kill_actor(handle._actor_id, handle._name, handle._owner, handle._worker,
                                         no_restart), timeout=30)

    async def _kill_actor(self, actor_id: str, name: str, owner: ActorRef, hint, no_restart: bool) -> None:
        state = self.actors.get(actor_id)
        if (state is None or not state.owned) and owner != self.actor:
            # The owner decides about restarts: ask it; if it is gone, end the process ourselves.
            try:
                await owner.ask(("kill_actor", actor_id, no_restart), timeout=30)
                return
            except PeerLostError:
                pass
        state = await self._actor_state(actor_id, name, owner, hint)
        while state.restarting is not None:
            await asyncio.shield(state.restarting)
        if no_restart:
            state.no_restart = True
        if state.worker is not None:
            state.worker.tell(ExitWorker())
        if state.pid is not None and self.pool is not None and state.node_id in ("", self.node_id):
            self.pool.tell(KillWorker(state.pid))
        if no_restart or not self._may_restart(state):
            self._actor_dead(state, exc.ActorDiedError(state.name, "it was killed with kill()"), "killed")
            await self.gcs.ask(ForgetActor(state.actor_id, state.namespace, state.actor_name), timeout=30)


def _with_restarts(state: ActorState, cause: str) -> str:
    return f"{cause} (after {state.restarts} restart(s))" if state.restarts else cause
