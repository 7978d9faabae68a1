"""Actors in the CoreWorker: creation on a dedicated leased worker, calls, kill (DESIGN.md §2, §5).

Calls from one caller to one actor leave in submission order; a handle that reached this
process from elsewhere learns where its actor lives from the handle itself or from the
actor's owner.
"""

from __future__ import annotations

import asyncio
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
    Failed,
    ForgetActor,
    KillWorker,
    LookupActor,
    RegisterActor,
    ReturnLease,
    TaskSpec,
)

log = get_logger(__name__)

from .task_submission import PendingTask, _has_refs, _shape


@dataclass(slots=True)
class ActorState:
    actor_id: str
    name: str
    worker: ActorRef | None = None
    pid: int | None = None
    lease_id: int | None = None
    lease_scheduler: ActorRef | None = None
    node_id: str = ""
    created: asyncio.Future | None = None
    dead: BaseException | None = None
    owned: bool = False
    namespace: str = ""
    actor_name: str | None = None
    pending: set = field(default_factory=set)


class ActorSubmission:
    """Actor creation and calls; mixed into `CoreWorker`."""

    def create_actor(self, actor_id: str, class_id: str, name: str, args: list, kwargs: dict, options: dict,
                     is_async: bool) -> ActorState:
        namespace = options.get("namespace") or self.namespace
        state = ActorState(actor_id, name, owned=True, namespace=namespace, actor_name=options.get("name"))
        spec = TaskSpec(self.new_id("t"), class_id, f"{name}.__init__", args, kwargs, 0, self.actor)
        max_concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
        shape = _shape(options, actor=True)
        self._warn_if_infeasible(dict(shape))
        detached = options.get("lifetime") == "detached"
        spread = options.get("scheduling_strategy") == "SPREAD" and self.cluster_mode

        def start() -> None:
            state.created = self.loop.create_future()
            self.actors[actor_id] = state
            self.loop.create_task(self._create_actor(state, spec, shape, max_concurrency, is_async, detached, spread))

        self.loop.call_soon_threadsafe(start)
        return state

    async def _create_actor(self, state: ActorState, spec: TaskSpec, shape: tuple,
                            max_concurrency: int, is_async: bool, detached: bool = False,
                            spread: bool = False) -> None:
        pending = PendingTask(spec, shape, 0, False, [], [])
        failed = await self._resolve_args(pending)
        try:
            if failed is not None:
                raise failed.error
            target = self._spread_target(shape) if spread else None
            grant, scheduler = await self.lease_worker(shape, for_actor=True, target=target)
            state.lease_id, state.lease_scheduler, state.node_id = grant.lease_id, scheduler, grant.node_id
            result = await grant.worker.ask(
                BecomeActor(spec, state.actor_id, max_concurrency, is_async, detached), timeout=None)
            if type(result) is Failed:
                scheduler.tell(ReturnLease(grant.lease_id, worker_died=True))
                grant.worker.tell("exit")
                cause = result.error.cause if isinstance(result.error, exc.TaskError) else result.error
                raise exc.ActorDiedError.constructor_raised(state.name, cause)
            state.worker, state.pid = grant.worker, grant.pid
            self._watch(grant.worker)
            self.gcs.tell(ActorStateChanged(state.actor_id, {
                "actor_id": state.actor_id, "class_name": state.name, "state": "ALIVE", "node_id": grant.node_id,
                "pid": grant.pid, "name": state.actor_name, "namespace": state.namespace, "detached": detached,
                "worker": grant.worker.to_uri(),
            }))
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

    def lookup_actor(self, name: str, namespace: str) -> tuple | None:
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
            if state.dead is None:
                state.dead = exc.ActorDiedError(state.name, "its worker process died")
            error = state.dead
        self._finish(pending, [Failed(error)] * len(pending.return_ids))

    def kill_actor(self, handle, no_restart: bool) -> None:
        async def kill() -> None:
            state = await self._actor_state(handle._actor_id, handle._name, handle._owner, handle._worker)
            if state.worker is not None:
                state.worker.tell("exit")
            if state.pid is not None and self.pool is not None and state.node_id in ("", self.node_id):
                self.pool.tell(KillWorker(state.pid))
            state.dead = exc.ActorDiedError(state.name, "it was killed with kill()")
            self.gcs.tell(ActorStateChanged(state.actor_id, {"actor_id": state.actor_id, "state": "DEAD",
                                                              "death_cause": "killed"}))
            await self.gcs.ask(ForgetActor(state.actor_id, handle._namespace, handle._actor_name), timeout=30)

        self.system.run(kill(), timeout=30)
