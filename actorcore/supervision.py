"""Supervision for users: groups of actors under an OTP supervisor, and death watch.

Beyond Ray. Policy is plain data, as in Akka typed and Erlang/OTP: a group is a list of
:class:`ChildSpec` plus a strategy and a restart intensity::

    group = actorcore.supervise(
        [ChildSpec("store", Store), ChildSpec("api", Api, args=("store",))],
        strategy="one_for_all", max_restarts=3, period=10)
    ray.get(group["api"].handle.remote(request))   # handles stay valid across restarts
    reason = actorcore.watch(group["store"]).result()  # once it is dead for good

How it is built. The children are ordinary actors created by this process (it owns them, so
they end with it). For each of them the owner's ``ActorState.on_death`` hook hands the death of
the actor's process to this module instead of Ray's per-actor ``max_restarts`` rule; a
:class:`supervisor.Supervisor` on the actor system's loop decides, with the child protocol of
``supervisor/child.py`` implemented by :class:`_Incarnation`: ``wait()`` resolves when the
process dies, ``shutdown()`` ends the process on purpose (``ActorSubmitter.stop_process``:
calls made meanwhile wait), a restart starts a new incarnation with the same actor id
(``ActorSubmitter.restart``). When the supervisor gives up (more than ``max_restarts``
restarts within ``period`` seconds) every child is marked dead for good with a cause naming
the group, the failing child and its failure, and :attr:`SupervisionGroup.dead` completes.

Ray's per-actor ``max_restarts=N`` is the special case of a one_for_one group of one permanent
child with intensity N over an infinite period; it stays implemented by the owner itself
(the core's actor submitter), where it costs nothing when unused. ``max_task_retries``
applies to group members as to any actor: calls in flight when a member's process ended (by
a crash or a sibling's restart) are redelivered to the new incarnation within it.

:func:`watch` is death watch for actor handles, built on the core's (``ActorSubmitter.death_of``):
a future completed once, with the reason, when the actor is dead for good (restarts within a
policy are not deaths).

:func:`supervise_gang` is gang supervision of a placement group: a one_for_all group whose
members run in the bundles of one placement group, so that when one member dies all of them
are stopped and started again together, each in its bundle (wherever the group's bundles are
by then: a dead node's bundles are reserved elsewhere first).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from supervisor import Backoff, Exit, StartInfo, Supervisor, SupervisorEvent
from supervisor import ChildSpec as _SupervisorSpec
from supervisor.child import RESTART_TYPES
from supervisor.errors import ChildNotFoundError, ChildStartError, SupervisorStoppedError

from . import api
from . import options as opts
from ._logging import get_logger
from .actor import ActorClass, ActorHandle
from .protocol import PublishSupervisionGroup
from .scheduling import PlacementGroupSchedulingStrategy

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["GROUP_STRATEGIES", "ChildSpec", "SupervisionGroup", "supervise", "supervise_gang", "watch"]

log = get_logger(__name__)

#: the strategies a group of actors can have (simple_one_for_one is for pools of like
#: children added at run time, which `supervise` does not offer)
GROUP_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")

BackoffLike = Backoff | Sequence[float] | None

_group_numbers = itertools.count(1)
_group_ids = itertools.count(1)
_private = object()  # SupervisionGroup is made by supervise() only


# -- policy -----------------------------------------------------------------------------------

def _as_backoff(value: Any, where: str) -> Backoff | None:
    if value is None or isinstance(value, Backoff):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            return Backoff(min=value[0], max=value[1])
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}: backoff={value!r} is not valid: {error}") from None
    raise TypeError(
        f"{where}: backoff={value!r} is not valid; give (min_seconds, max_seconds), "
        "a supervisor.Backoff(min=..., max=..., jitter=..., reset_after=...) or None"
    )


@dataclass(frozen=True)
class ChildSpec:
    """One actor of a group: how to create it, and when to restart it.

    - ``id``: its name in the group (``group[id]`` is its handle); unique in a group;
    - ``actor_class``: an ``@actorcore.remote`` class; ``args``/``kwargs``: its constructor's
      arguments, used again at every restart (its state comes only from its constructor);
    - ``options``: actor options as for ``Cls.options(...)`` (``num_cpus``, ``resources``,
      ``name``, ``max_task_retries``, ...), except ``max_restarts`` (the group decides
      restarts), ``lifetime="detached"`` and ``get_if_exists`` (a member lives and dies with
      its group);
    - ``restart``: ``"permanent"`` (always restarted), ``"transient"`` (only after an abnormal
      exit — the death of an actor's process always is one, so for actors it acts as
      permanent) or ``"temporary"`` (never restarted: its death is final, the group goes on);
    - ``shutdown``: seconds to wait for its process to end when the group stops it, then it is
      killed; ``"brutal_kill"`` (at once) or ``"infinity"``;
    - ``backoff``: delay its restarts (``(min_s, max_s)`` or a ``supervisor.Backoff``); None:
      the group's backoff.
    """

    id: str
    actor_class: Any
    args: tuple = ()
    kwargs: Mapping[str, Any] | None = None
    options: Mapping[str, Any] | None = None
    restart: str = "permanent"
    shutdown: float | str = 5.0
    backoff: BackoffLike = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec: id={self.id!r} is not valid; give a non-empty string")
        where = f"ChildSpec {self.id!r}"
        if not isinstance(self.actor_class, ActorClass):
            hint = (f"decorate class {self.actor_class.__name__} with @actorcore.remote"
                    if isinstance(self.actor_class, type) else "give a class decorated with @actorcore.remote")
            raise TypeError(f"{where}: actor_class={self.actor_class!r} is not an actor class; {hint}")
        if not isinstance(self.args, (tuple, list)):
            raise TypeError(f"{where}: args={self.args!r} is not a tuple; give the constructor's "
                            "positional arguments as a tuple, e.g. args=(1,)")
        object.__setattr__(self, "args", tuple(self.args))
        if self.kwargs is not None and not isinstance(self.kwargs, Mapping):
            raise TypeError(f"{where}: kwargs={self.kwargs!r} is not a dict of the constructor's "
                            "keyword arguments")
        object.__setattr__(self, "kwargs", dict(self.kwargs or {}))
        if self.options is not None and not isinstance(self.options, Mapping):
            raise TypeError(f"{where}: options={self.options!r} is not a dict of actor options")
        given = opts.validate("actor", dict(self.options or {}), where=f"{where}: options")
        if given.get("max_restarts") is not None:
            raise ValueError(
                f"{where}: options max_restarts={given['max_restarts']!r}: a group member's restarts "
                "are decided by its group; give supervise(..., max_restarts=N, period=S) instead "
                "(max_task_retries still applies to its calls)")
        effective = opts.resolve("actor", self.actor_class._options, given, where=f"{where}: options")
        if effective.get("lifetime") == "detached":
            raise ValueError(f"{where}: lifetime='detached': a group member lives and dies with its "
                             "group (and the process that called supervise()); drop lifetime='detached'")
        if effective.get("get_if_exists"):
            raise ValueError(f"{where}: get_if_exists=True: a group always creates its members; "
                             "drop get_if_exists")
        object.__setattr__(self, "options", {k: v for k, v in given.items() if v is not None})
        if self.restart not in RESTART_TYPES:
            raise ValueError(f"{where}: restart={self.restart!r} is not valid; "
                             f"use one of {', '.join(map(repr, RESTART_TYPES))}")
        object.__setattr__(self, "backoff", _as_backoff(self.backoff, where))
        self._supervisor_spec(lambda info: None, None)  # validates shutdown (same wording)

    @property
    def _shutdown_timeout(self) -> float | None:
        return self._supervisor_spec(lambda info: None, None).shutdown_timeout

    def _supervisor_spec(self, start: Callable, backoff: Backoff | None) -> _SupervisorSpec:
        return _SupervisorSpec(id=self.id, start=start, restart=self.restart,  # type: ignore[arg-type]
                               shutdown=self.shutdown, backoff=self.backoff or backoff)


# -- the child protocol for actors living in worker processes ---------------------------------

class _Member:
    """One child of a group across its incarnations (owner-side bookkeeping, on the core's loop)."""

    __slots__ = ("current", "early_death", "gone", "handle", "last_failure", "restarts", "spec", "state")

    def __init__(self, spec: ChildSpec, handle: Any) -> None:
        self.spec = spec
        self.handle = handle
        self.state: Any = None  # the owner's ActorState
        self.current: _Incarnation | None = None
        self.early_death: str | None = None  # it died before the supervisor took it over
        self.restarts = 0
        self.gone = False  # dead for good by a failed restart (the group gives up)
        self.last_failure: dict | None = None  # {"exit", "time"} of its last abnormal exit


class _Incarnation:
    """One process of a group member, seen through `supervisor.child.Child`."""

    def __init__(self, group: SupervisionGroup, member: _Member, *, tombstone: bool = False) -> None:
        self.group = group
        self.member = member
        self.tombstone = tombstone  # the actor was already dead for good: nothing to run
        self._exit: asyncio.Future = group._core.loop.create_future()

    def died(self, cause: str) -> None:
        self._resolve(Exit("crashed", detail=cause))

    def _resolve(self, exit: Exit) -> None:
        if not self._exit.done():
            self._exit.set_result(exit)

    async def wait(self) -> Exit:
        return await asyncio.shield(self._exit)

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        group, state = self.group, self.member.state
        if not self._exit.done():
            if state.dead is not None:  # killed with kill(no_restart=True): nothing to stop
                self._resolve(Exit("killed", detail=_cause_of(state.dead)))
            else:
                await group._core.actors.stop_process(state, timeout=timeout)
                self._resolve(Exit("shutdown", detail=f"stopped by supervision group {group.name!r}"))
        if not restarting and not group._ending and state.dead is None:
            # terminated for good while the group goes on (a temporary child stopped by a
            # sibling's restart): calls must not wait for a restart that will not come
            group._core.actors.mark_dead(state, f"it was stopped by its supervision group {group.name!r} "
                                               f"(restart={self.member.spec.restart!r})")
        return self._exit.result()

    def discard(self, why: Exit | None = None) -> None:
        """The supervisor will not restart this child (its restart type): it is dead for good."""
        group, state = self.group, self.member.state
        if why is not None or group._ending or state.dead is not None:
            return  # the group is ending: `_finish` marks every member with the group's cause
        ended = self._exit.result().detail if self._exit.done() else "it ended"
        group._core.actors.mark_dead(
            state, f"{ended} (restart={self.member.spec.restart!r}: not restarted by its supervision "
                   f"group {group.name!r})")


# -- the group ----------------------------------------------------------------------------------

class SupervisionGroup:
    """A running group of actors under one supervisor; made by :func:`supervise`.

    ``group[id]`` is a member's handle (stable across restarts); ``group.ids`` the ids in start
    order; ``group.restarts`` the restarts of each member; ``group.dead`` a
    ``concurrent.futures.Future`` completed with the cause once the group has ended (it gave
    up, or ``stop()``); ``group.stop()`` stops the members in reverse start order. A context
    manager: ``with supervise(...) as group:`` stops it on exit.
    """

    def __init__(self, token: object, core: Any, name: str, specs: tuple[ChildSpec, ...], strategy: str,
                 max_restarts: int, period: float, backoff: Backoff | None,
                 on_event: Callable[[SupervisorEvent], Any] | None) -> None:
        if token is not _private:
            raise TypeError("SupervisionGroup is made by actorcore.supervise([ChildSpec(...), ...], ...)")
        self._core = core
        self.name = name
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period = period
        self.specs = specs
        self._backoff = backoff
        self._on_event = on_event
        self._members = {spec.id: _Member(spec, None) for spec in specs}
        self._by_actor: dict[str, _Member] = {}
        self._supervisor: Supervisor | None = None
        self._ending = False  # stopping or giving up: members are marked dead by `_finish`
        self._failure: str | None = None  # a member could not be restarted
        self._last_failure: tuple[str, Exit] | None = None
        self._dead: concurrent.futures.Future = concurrent.futures.Future()
        #: the id of the group's record in etcd (`actorcore.supervision_records`)
        self.group_id = f"{core.prefix}-{next(_group_ids)}"
        self._started_at = time.time()
        self._published = False

    # -- the user's side (any thread but the core's loop) --------------------------------------

    @property
    def ids(self) -> tuple[str, ...]:
        """The members' child ids, in start order."""
        return tuple(self._members)

    def __getitem__(self, child_id: str) -> Any:
        member = self._members.get(child_id)
        if member is None:
            raise KeyError(f"supervision group {self.name!r} has no child {child_id!r} "
                           f"(children: {', '.join(map(repr, self._members))})")
        return member.handle

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    @property
    def restarts(self) -> dict[str, int]:
        """How many times each member was restarted (a new process that ran its constructor)."""
        return {child_id: member.restarts for child_id, member in self._members.items()}

    @property
    def dead(self) -> concurrent.futures.Future:
        """Completes with the cause when the group has ended: it gave up, or it was stopped."""
        return self._dead

    @property
    def alive(self) -> bool:
        """Whether the group still supervises its members (it has not stopped or given up)."""
        return not self._dead.done()

    def stop(self, timeout: float | None = 60.0) -> str:
        """Stop every member (reverse start order; each within its spec's ``shutdown``); they are
        dead for good with the cause "its supervision group ... was stopped". Returns the
        group's cause (the earlier one if it had already ended). Idempotent."""
        if not self._dead.done():
            if api._runtime_or_none() is not self._core:  # shutdown() ended the runtime and them
                self._settle(f"its supervision group {self.name!r} ended with the runtime (actorcore.shutdown())")
            else:
                asyncio.run_coroutine_threadsafe(self._stop(), self._core.loop)
        elif self._published and api._runtime_or_none() is self._core:  # it gave up: its record goes now
            self._core.loop.call_soon_threadsafe(self._publish, False)
        return self._dead.result(timeout)

    def _settle(self, cause: str) -> None:
        try:
            self._dead.set_result(cause)
        except concurrent.futures.InvalidStateError:
            pass  # it had ended already (the first cause stands)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return (f"SupervisionGroup(name={self.name!r}, strategy={self.strategy!r}, "
                f"max_restarts={self.max_restarts}, period={self.period:g}, children={list(self._members)!r}, "
                f"{state})")

    # -- starting (the caller's thread, then the loop) ------------------------------------------

    def _start(self) -> None:
        """Create the members in order, each once the previous one is up, then supervise them."""
        core = self._core
        started: list[_Member] = []
        for member in self._members.values():
            spec = member.spec
            try:
                member.handle = spec.actor_class.options(**spec.options, max_restarts=-1).remote(
                    *spec.args, **spec.kwargs)
                # max_restarts=-1 only keeps the constructor's arguments pinned for restarts:
                # with on_death set, the group decides every restart.
                core.system.run(self._adopt(member), timeout=None)
            except BaseException:
                self._abort(started, f"child {spec.id!r} could not be created")
                raise
            started.append(member)
            if member.state.dead is not None:
                error = member.state.dead
                self._abort(started[:-1], f"child {spec.id!r} failed to start")
                raise ChildStartError(
                    f"supervise(): child {spec.id!r} of group {self.name!r} failed to start: {error}; "
                    f"the children started before it ({', '.join(repr(m.spec.id) for m in started[:-1]) or 'none'}) "
                    "were stopped", supervisor=self.name, child_id=spec.id) from error
        core.system.run(self._start_supervisor(), timeout=None)

    async def _adopt(self, member: _Member) -> None:
        # The ActorState is known to the core already: `ActorSubmitter.create` registers it
        # with call_soon_threadsafe, before this coroutine's first step.
        state = self._core.actors.state(member.handle._actorcore_actor_id)
        member.state = state
        state.on_death = self._on_death
        self._by_actor[state.actor_id] = member
        watcher = self._core.loop.create_future()
        state.watchers.append(watcher)
        watcher.add_done_callback(lambda future: self._dead_for_good(member, future))
        await asyncio.shield(state.created)

    def _abort(self, started: list[_Member], why: str) -> None:
        if started:
            self._core.system.run(self._stop_members(started, f"supervise(): its group {self.name!r} "
                                                              f"failed to start: {why}"), timeout=None)
        self._ending = True
        self._settle(f"supervision group {self.name!r} failed to start: {why}")

    async def _stop_members(self, members: list[_Member], cause: str) -> None:
        for member in reversed(members):
            state = member.state
            if state is not None and state.dead is None:
                await self._core.actors.stop_process(state, timeout=member.spec._shutdown_timeout)
                self._core.actors.mark_dead(state, cause)

    async def _start_supervisor(self) -> None:
        specs = [m.spec._supervisor_spec(self._starter(m), self._backoff) for m in self._members.values()]
        supervisor = Supervisor(specs, strategy=self.strategy, max_restarts=self.max_restarts,  # type: ignore[arg-type]
                                period=self.period, name=self.name, on_event=self._event)
        self._supervisor = supervisor
        await supervisor.start()
        self._publish()
        self._core.loop.create_task(self._finish(supervisor), name=f"supervision-group:{self.name}")

    def _starter(self, member: _Member) -> Callable[[StartInfo], Any]:
        async def start(info: StartInfo) -> _Incarnation:
            return await self._start_member(member, info)
        return start

    # -- the loop's side ------------------------------------------------------------------------

    async def _start_member(self, member: _Member, info: StartInfo) -> _Incarnation:
        state = member.state
        if state.dead is not None:  # killed for good: kept as a tombstone until terminated
            member.current = _Incarnation(self, member, tombstone=True)
            self._core.loop.create_task(self._terminate(member))
            return member.current
        if member.current is not None:  # a restart: a new process, same actor id and handles
            member.early_death = None  # (only a process that is up can die: none is now)
            error = await self._core.actors.restart(state)
            if error is not None:
                member.gone = True
                self._failure = f"child {member.spec.id!r} could not be restarted: {_cause_of(error)}"
                self._core.loop.create_task(self._stop())
                raise error
            member.restarts += 1
        incarnation = member.current = _Incarnation(self, member)
        if member.early_death is not None:
            incarnation.died(member.early_death)
            member.early_death = None
        return incarnation

    def _on_death(self, state: Any, cause: str) -> None:
        """The owner's hook: `state`'s process died (calls now wait for our decision)."""
        member = self._by_actor.get(state.actor_id)
        if member is None:  # pragma: no cover - only members get this hook
            self._core.actors.mark_dead(state, cause)
            return
        incarnation = member.current
        if incarnation is not None and not incarnation._exit.done():
            incarnation.died(cause)
        elif self._dead.done():  # pragma: no cover - members are dead once the group is
            self._core.actors.mark_dead(state, cause)
        else:  # a process not wrapped yet (before the supervisor took over): its start sees it
            member.early_death = cause

    def _dead_for_good(self, member: _Member, future: asyncio.Future) -> None:
        """A member became dead for good without us (kill(no_restart=True)): stop supervising it."""
        if future.cancelled() or self._ending or member.gone or member.current is None:
            return
        self._core.loop.create_task(self._terminate(member))

    async def _terminate(self, member: _Member) -> None:
        supervisor = self._supervisor
        if supervisor is None:
            return
        try:
            await supervisor.terminate_child(member.spec.id)
        except (SupervisorStoppedError, ChildNotFoundError):
            pass

    def _event(self, event: SupervisorEvent) -> None:
        if event.kind == "child_exited" and event.exit is not None and event.exit.abnormal:
            member = self._members.get(event.child_id or "")
            if member is not None:
                member.last_failure = {"exit": str(event.exit), "time": time.time()}
                self._publish()
        elif event.kind == "child_started" and self._published:  # a restart
            self._publish()
        if event.kind == "intensity_exceeded":
            self._ending = True
            self._last_failure = (event.child_id or "?", event.exit or Exit("crashed"))
        elif event.kind == "child_restarting" and event.delay is not None:
            log.info("supervision group restarting", group=self.name, child=event.child_id,
                     cause=str(event.exit), strategy=self.strategy)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("on_event callback failed", group=self.name)

    async def _stop(self) -> None:
        self._ending = True
        if self._supervisor is not None:
            await self._supervisor.shutdown()

    async def _finish(self, supervisor: Supervisor) -> None:
        """The supervisor ended: every member is dead for good, with the group's cause."""
        exit = await supervisor.wait()
        self._ending = True
        cause = self._cause(exit)
        try:
            await self._stop_members(list(self._members.values()), cause)
        finally:
            if exit.abnormal:
                log.warning("supervision group gave up", group=self.name, cause=cause)
            self._settle(cause)
            self._publish(keep=self._failure is not None or exit.kind != "shutdown")

    # -- the group's record in etcd (actorcore/supervision_records.py) ---------------------------

    def _publish(self, keep: bool = True) -> None:
        """Send the group's record to the owner's node (on the loop), or have it deleted."""
        if not keep and not self._published:
            return
        self._published = keep
        self._core.gcs.tell(PublishSupervisionGroup(self.group_id, self._core.actor,
                                                    self._record() if keep else None))

    def _record(self) -> dict:
        members = []
        for member in self._members.values():
            state = member.state
            if state is None or state.dead is not None or member.gone:
                status = "DEAD"
            elif member.current is not None and member.current._exit.done():
                status = "RESTARTING"
            else:
                status = "ALIVE"
            members.append({"id": member.spec.id, "actor_id": getattr(state, "actor_id", None),
                            "class_name": member.spec.actor_class._name, "restart": member.spec.restart,
                            "state": status, "restarts": member.restarts, "last_failure": member.last_failure})
        failures = [(m["last_failure"]["time"], m["id"], m["last_failure"]) for m in members if m["last_failure"]]
        last = max(failures, key=lambda failure: failure[0], default=None)
        core = self._core
        return {
            "group_id": self.group_id, "name": self.name, "state": "DEAD" if self._dead.done() else "RUNNING",
            "cause": self._dead.result() if self._dead.done() else None, "strategy": self.strategy,
            "max_restarts": self.max_restarts, "period": None if math.isinf(self.period) else self.period,
            "owner": {"job_id": core.job_id, "node_id": core.node_id, "pid": os.getpid(), "driver": core.is_driver},
            "started": self._started_at, "updated": time.time(),
            "restarts": sum(m["restarts"] for m in members),
            "last_failure": {"child": last[1], **last[2]} if last else None,
            "members": members,
        }

    def _cause(self, exit: Exit) -> str:
        group = f"its supervision group {self.name!r}"
        if self._failure is not None:
            return f"{group} gave up: {self._failure}"
        if exit.kind == "restarts_exhausted" and self._last_failure is not None:
            child_id, failure = self._last_failure
            window = "" if math.isinf(self.period) else f" in {self.period:g} s"
            return (f"{group} gave up: more than {self.max_restarts} restart(s){window}; "
                    f"last failure: child {child_id!r} {failure}")
        if exit.kind == "shutdown":
            return f"{group} was stopped"
        return f"{group} failed: {exit}"


# -- the API ------------------------------------------------------------------------------------

def supervise(
    children: Sequence[ChildSpec],
    *,
    strategy: str = "one_for_one",
    max_restarts: int = 3,
    period: float = 5.0,
    backoff: BackoffLike = None,
    name: str | None = None,
    on_event: Callable[[SupervisorEvent], Any] | None = None,
) -> SupervisionGroup:
    """Start ``children`` (in order, each once the previous one's constructor has run) under one
    supervisor and return the :class:`SupervisionGroup`.

    - ``strategy``: ``"one_for_one"`` (restart the member whose process died),
      ``"one_for_all"`` (stop the others in reverse order, restart all in start order) or
      ``"rest_for_one"`` (restart it and the members started after it);
    - ``max_restarts``/``period``: more than ``max_restarts`` restarts within ``period``
      seconds and the group gives up: every member is dead for good (calls raise
      ``ActorDiedError`` naming the group, the failing child and its failure) and
      ``group.dead`` completes with that cause. ``max_restarts=-1``: no limit;
      ``period=math.inf``: count restarts forever;
    - ``backoff``: delay restarts (``(min_s, max_s)``, doubling from min up to max, with
      jitter; or a ``supervisor.Backoff``); None: restart at once;
    - ``name``: the group's name in causes and logs (default ``"group-<n>"``);
    - ``on_event``: called with each ``supervisor.SupervisorEvent`` (on actorcore's background
      thread: keep it short).

    The members are owned by the calling process (they end with it). A member whose
    constructor raises at the start stops the ones started before it and raises
    ``supervisor.ChildStartError``; a restart whose constructor raises (or that finds no
    worker) ends the group, with that as its cause.
    """
    where = "supervise()"
    if isinstance(children, ChildSpec) or not isinstance(children, (list, tuple)):
        raise TypeError(f"{where}: children={children!r} is not a list; give a list of ChildSpec(...)")
    if not children:
        raise ValueError(f"{where}: children is empty; give at least one ChildSpec(...)")
    seen: set[str] = set()
    for spec in children:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"{where}: {spec!r} is not a ChildSpec; build children with "
                            "actorcore.ChildSpec(id, ActorClass, args=..., options=...)")
        if spec.id in seen:
            raise ValueError(f"{where}: two children have id {spec.id!r}; ids must be unique in a group")
        seen.add(spec.id)
    if strategy not in GROUP_STRATEGIES:
        raise ValueError(f"{where}: strategy={strategy!r} is not valid; use one of "
                         f"{', '.join(map(repr, GROUP_STRATEGIES))}")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < -1:
        raise ValueError(f"{where}: max_restarts={max_restarts!r} is not valid; use an int >= 0, "
                         "or -1 for no limit")
    if isinstance(period, bool) or not isinstance(period, (int, float)) or math.isnan(period) or period <= 0:
        raise ValueError(f"{where}: period={period!r} is not valid; use seconds > 0 (math.inf: no time limit)")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"{where}: name={name!r} is not valid; give a non-empty string or None")
    if on_event is not None and not callable(on_event):
        raise TypeError(f"{where}: on_event={on_event!r} is not callable")
    group = SupervisionGroup(
        _private, api._runtime(), name or f"group-{next(_group_numbers)}", tuple(children), strategy,
        max_restarts, float(period), _as_backoff(backoff, where), on_event)
    group._start()
    return group


def supervise_gang(
    placement_group: Any,
    children: Sequence[ChildSpec],
    *,
    max_restarts: int = 3,
    period: float = 5.0,
    backoff: BackoffLike = None,
    name: str | None = None,
    on_event: Callable[[SupervisorEvent], Any] | None = None,
) -> SupervisionGroup:
    """Gang supervision of ``placement_group``: start ``children`` in its bundles, as one
    ``one_for_all`` group: when one member's process dies, every member is stopped and all
    are started again together (within ``max_restarts`` restarts per ``period`` seconds,
    after ``backoff``, as :func:`supervise` has them).

    Child ``i`` runs in bundle ``i`` (any bundle of the group if there are more children
    than bundles), unless its options give a ``PlacementGroupSchedulingStrategy`` of this
    group (say, another bundle index). Members wait for the group to be placed; if it is
    removed, restarts fail and the group ends with that as its cause. ``name`` and
    ``on_event`` are those of :func:`supervise` (the group's name in causes and logs; a
    callback for each ``supervisor.SupervisorEvent``). Returns the :class:`SupervisionGroup`.
    """
    where = "supervise_gang()"
    if not (hasattr(placement_group, "bundle_specs") and hasattr(placement_group, "id")):
        raise TypeError(f"{where}: placement_group={placement_group!r} is not a placement group; "
                        "give the result of placement_group(...)")
    if isinstance(children, ChildSpec) or not isinstance(children, (list, tuple)):
        raise TypeError(f"{where}: children={children!r} is not a list; give a list of ChildSpec(...)")
    bundles = len(placement_group.bundle_specs)
    placed = []
    for index, spec in enumerate(children):
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"{where}: {spec!r} is not a ChildSpec")
        options = dict(spec.options or {})
        strategy = options.get("scheduling_strategy")
        if strategy is None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group, index if index < bundles else -1)
        elif not (isinstance(strategy, PlacementGroupSchedulingStrategy)
                  and strategy.placement_group.id == placement_group.id):
            raise ValueError(f"{where}: child {spec.id!r} has scheduling_strategy={strategy!r}; a member of the "
                             "gang runs in the placement group: drop it, or give a "
                             "PlacementGroupSchedulingStrategy of this group")
        placed.append(ChildSpec(spec.id, spec.actor_class, spec.args, spec.kwargs, options, spec.restart,
                                spec.shutdown, spec.backoff))
    return supervise(placed, strategy="one_for_all", max_restarts=max_restarts, period=period, backoff=backoff,
                     name=name, on_event=on_event)


def watch(actor: Any, callback: Callable[[str], Any] | None = None) -> concurrent.futures.Future:
    """A future completed with the reason (a str) once ``actor`` is dead for good: killed,
    out of restarts, its constructor raised, its owner died, its group gave up or was stopped.

    Restarts are not deaths. If it is dead already the future completes at once. Works for
    any handle: for one this process does not own, its owner is asked (and if the owner dies
    first, the reason is "its owner died"; but a detached actor outlives its owner, and is then
    dead when its process ends). ``callback(reason)``, if given, runs once then, on
    actorcore's background thread (or at once in this thread if it is dead already).
    """
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"watch() takes an actor handle (from Cls.remote() or get_actor()), "
                        f"got a {type(actor).__qualname__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"watch(): callback={callback!r} is not callable; give a function of the reason")
    core = api._runtime()
    future = asyncio.run_coroutine_threadsafe(core.actors.death_of(actor), core.loop)
    if callback is not None:
        def call(done: concurrent.futures.Future) -> None:
            if not done.cancelled() and done.exception() is None:
                try:
                    callback(done.result())
                except Exception:
                    log.exception("watch() callback failed", actor=repr(actor))
        future.add_done_callback(call)
    return future


def _cause_of(error: BaseException) -> str:
    return getattr(error, "cause", None) or str(error)
