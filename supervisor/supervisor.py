"""OTP supervisors on asyncio (docs/supervision.md: strategies, intensity, shutdown, escalation).

A :class:`Supervisor` starts its children in order, watches them, restarts them according to
its strategy and their restart type, gives up when restarts exceed its intensity, and stops
them in reverse order. It implements the :class:`~supervisor.child.Child` protocol itself, so
trees nest (:func:`supervisor_spec`); a supervisor that gives up ends with
``Exit(kind="restarts_exhausted")``, which its parent sees as an abnormal exit of a child:
that is escalation.

How it runs (the choices behind the code):

- One *main task* per supervisor processes a mailbox (an ``asyncio.Queue``) one message at a
  time, like an Erlang process: child exits, due restarts, API requests (``start_child``,
  ``terminate_child``, ...) and the stop request. Every decision is therefore serialized and
  no lock is needed. While it starts or stops a child it handles nothing else (as in OTP).
- One small *watcher task* per running incarnation awaits ``child.wait()`` and posts the exit
  to the mailbox. An exit is acted on only if it belongs to the record's current incarnation;
  the supervisor's own stops are reported (``child_exited``) where they happen, so each
  incarnation yields exactly one ``child_exited`` event.
- Restarts without backoff are posted straight back to the mailbox (no timer), so a killed
  child's replacement starts within a few loop iterations of its exit being seen; with a
  backoff, a timer set on the supervisor's clock posts it (no sleeping task to cancel).
  Restarting children are in state ``"restarting"``; a stop cancels pending timers.
- Time is read from one :class:`~supervisor.clock.Clock`, given as ``clock=`` (default: real
  time, :data:`~supervisor.clock.MONOTONIC`): the backoff timers, how long an incarnation ran
  (``Backoff.reset_after``), the restart-intensity window and the ``time`` of every event.
  ``supervisor.testing.ManualClock`` stands still until a test calls ``advance(seconds)``, so
  backoff and intensity can be tested without sleeping. Shutdown timeouts are real time
  (they bound real work) and do not use the clock.
- Every exit from the main task — orderly stop, giving up, a shutdown timeout (the task is
  cancelled and the children killed at once) or a bug in this module (logged at error) — goes
  through one ``finally`` that cancels timers and watcher tasks, fails pending requests with
  :class:`~supervisor.errors.SupervisorStoppedError` and resolves ``wait()``.

Strategies: ``one_for_one`` restarts the failed child; ``one_for_all`` stops the other running
children (reverse start order, ``shutdown(restarting=True)``) and restarts them all in start
order; ``rest_for_one`` does that for the children started after the failed one;
``simple_one_for_one`` has one template spec and children added with ``start_child(args)``,
restarted one for one and stopped in parallel. Children left ``"stopped"`` (a transient child
that ended normally, a terminated child) are not restarted by a sibling's failure; temporary
children are never restarted and are removed once they end or are stopped.

A restart attempt whose start factory raises counts as a restart against the intensity and is
retried (after the failed child's backoff, if any); in a group restart the children started
in that attempt are stopped again first.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ._log import get_logger
from .backoff import Backoff
from .child import Child, ChildSpec, Exit, RestartType, ShutdownPolicy, StartInfo
from .clock import MONOTONIC, Clock, TimerHandle
from .errors import ChildNotFoundError, ChildStartError, SupervisorError, SupervisorStoppedError
from .events import EventKind, SupervisorEvent
from .intensity import RestartIntensity

__all__ = ["STRATEGIES", "ChildInfo", "ChildState", "Strategy", "Supervisor", "supervisor_spec"]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
ChildState = Literal["running", "restarting", "stopped"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

EventCallback = Callable[[SupervisorEvent], Any]


@dataclass(frozen=True)
class ChildInfo:
    """A snapshot of one child, as returned by :meth:`Supervisor.which_children`."""

    id: str
    state: ChildState
    restarts: int
    child: Child | None = field(repr=False)
    incarnation: int
    type: str
    restart: RestartType
    last_exit: Exit | None = None
    spec: ChildSpec | None = field(default=None, repr=False, compare=False)


class _Record:
    """The supervisor's mutable bookkeeping for one child id."""

    __slots__ = (
        "id", "spec", "args", "child", "state", "incarnation", "restarts",
        "started_at", "backoff_n", "pending", "last_exit", "ended",
    )

    def __init__(self, id: str, spec: ChildSpec, args: tuple = ()) -> None:
        self.id = id
        self.spec = spec
        self.args = args
        self.child: Child | None = None
        self.state: ChildState = "stopped"
        self.incarnation = -1  # number of the running (or last) incarnation
        self.restarts = 0
        self.started_at: float | None = None  # None while not running stably
        self.backoff_n = 0
        self.pending: _Pending | None = None
        self.last_exit: Exit | None = None
        self.ended: Child | None = None  # the incarnation that ended, until restarted or discarded

    def info(self) -> ChildInfo:
        return ChildInfo(
            id=self.id, state=self.state, restarts=self.restarts, child=self.child,
            incarnation=self.incarnation, type=self.spec.type, restart=self.spec.restart,
            last_exit=self.last_exit, spec=self.spec,
        )


class _Pending:
    """A scheduled restart of one child or of a group of children (in start order)."""

    __slots__ = ("members", "failed", "cause", "handle", "cancelled")

    def __init__(self, members: list[_Record], failed: _Record, cause: Exit) -> None:
        self.members = members
        self.failed = failed
        self.cause = cause
        self.handle: TimerHandle | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()
        for member in self.members:
            if member.pending is self:
                member.pending = None


# Mailbox messages.
@dataclass
class _ChildExited:
    record: _Record
    child: Child
    exit: Exit


@dataclass
class _RestartDue:
    pending: _Pending


@dataclass
class _Request:
    op: Callable[..., Any]
    args: tuple
    future: asyncio.Future


@dataclass
class _Stop:
    pass


def _check_policy(name: str, strategy: Any, max_restarts: Any, period: Any) -> None:
    """Raise ValueError naming the supervisor and the first invalid policy field."""
    where = f"Supervisor {name!r}"
    if strategy not in STRATEGIES:
        raise ValueError(
            f"{where}: strategy={strategy!r} is not valid; use one of {', '.join(map(repr, STRATEGIES))}"
        )
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < -1:
        raise ValueError(
            f"{where}: max_restarts={max_restarts!r} is not valid; use an int >= 0, or -1 for unlimited"
        )
    if (
        isinstance(period, bool)
        or not isinstance(period, (int, float))
        or math.isnan(period)
        or period <= 0
    ):
        raise ValueError(
            f"{where}: period={period!r} is not valid; use seconds > 0 (math.inf: no time limit)"
        )


class Supervisor:
    """An OTP supervisor: ``Supervisor(children, strategy=..., max_restarts=3, period=5.0, name=...)``.

    ``children``: the child specs, started in this order (for ``simple_one_for_one``: exactly
    one template spec). ``max_restarts``/``period``: give up after more than ``max_restarts``
    restarts within ``period`` seconds (``-1``: unlimited; ``math.inf`` period: ever).
    ``on_event``: optional callback receiving :class:`~supervisor.events.SupervisorEvent`.
    ``clock``: where backoff timers, run times and the intensity window are measured
    (default: real time; see :mod:`supervisor.clock`). A nested supervisor does not inherit
    it: give ``clock=`` to :func:`supervisor_spec` too.

    Use ``await sup.start()`` … ``await sup.shutdown()``, or ``async with Supervisor(...)``.
    """

    def __init__(
        self,
        children: Iterable[ChildSpec],
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        period: float = 5.0,
        name: str = "supervisor",
        on_event: EventCallback | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Supervisor: name={name!r} is not valid; give a non-empty string")
        _check_policy(name, strategy, max_restarts, period)
        where = f"Supervisor {name!r}"
        if on_event is not None and not callable(on_event):
            raise TypeError(f"{where}: on_event={on_event!r} is not callable")
        if not isinstance(clock, Clock):
            raise TypeError(f"{where}: clock={clock!r} is not a Clock; it needs now() and call_later()")
        specs = tuple(children)
        for spec in specs:
            if not isinstance(spec, ChildSpec):
                raise TypeError(
                    f"{where}: {spec!r} is not a ChildSpec; build children with ChildSpec(...), "
                    "process_spec(...) or supervisor_spec(...)"
                )
        if strategy == "simple_one_for_one" and len(specs) != 1:
            raise ValueError(
                f"{where}: strategy='simple_one_for_one' takes exactly one child spec (the template "
                f"for start_child(args)), got {len(specs)}"
            )
        seen: set[str] = set()
        for spec in specs:
            if spec.id in seen:
                raise ValueError(f"{where}: two children have id {spec.id!r}; child ids must be unique")
            seen.add(spec.id)

        self._name = name
        self._strategy: Strategy = strategy
        self._max_restarts = max_restarts
        self._period = float(period)
        self._specs = specs
        self._on_event = on_event
        self._clock = clock

        self._records: list[_Record] = (
            [] if strategy == "simple_one_for_one" else [_Record(s.id, s) for s in specs]
        )
        self._intensity = RestartIntensity(max_restarts, self._period, clock=clock)
        self._restart_count = 0
        self._dynamic_seq = 0
        self._mailbox: asyncio.Queue = asyncio.Queue()
        self._ended = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._watchers: set[asyncio.Task] = set()
        self._started = False
        self._stopping = False
        self._exit: Exit | None = None

    @property
    def _log(self) -> Any:
        # Looked up at each use: the application may configure structlog after building us.
        return get_logger()

    # ------------------------------------------------------------------ policy (read-only data)
    @property
    def name(self) -> str:
        """The name this supervisor logs and reports its events under."""
        return self._name

    @property
    def strategy(self) -> Strategy:
        """Which children are restarted when one ends abnormally."""
        return self._strategy

    @property
    def max_restarts(self) -> int:
        """How many restarts are allowed within :attr:`period` before the supervisor gives up."""
        return self._max_restarts

    @property
    def period(self) -> float:
        """The sliding window, in seconds, in which :attr:`max_restarts` are counted."""
        return self._period

    @property
    def clock(self) -> Clock:
        """The clock restarts are timed on (see :mod:`supervisor.clock`)."""
        return self._clock

    @property
    def child_specs(self) -> tuple[ChildSpec, ...]:
        """The specs given at construction (the template for ``simple_one_for_one``)."""
        return self._specs

    @property
    def restart_count(self) -> int:
        """Restarts this supervisor has made (each counted against its intensity, failed attempts included)."""
        return self._restart_count

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        if self._exit is not None:
            return "stopped"
        if self._stopping:
            return "stopping"
        return "running" if self._started else "new"

    @property
    def exit(self) -> Exit | None:
        """How the supervisor ended, or None while it has not."""
        return self._exit

    def __repr__(self) -> str:
        ids = [r.id for r in self._records] if self._started else [s.id for s in self._specs]
        return (
            f"Supervisor(name={self._name!r}, strategy={self._strategy!r}, "
            f"max_restarts={self._max_restarts}, period={self._period}, children={ids!r}, "
            f"state={self.state!r})"
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Supervisor:
        """Start the children in order.

        If one fails to start, those already started are stopped in reverse order, the
        supervisor ends (``wait()`` gives ``crashed``) and :class:`ChildStartError` is raised.
        """
        if self._started or self._exit is not None:
            raise SupervisorError(
                f"Supervisor {self._name!r} was already started; build a new Supervisor to start again"
            )
        self._started = True
        started: list[_Record] = []
        for record in self._records:
            try:
                await self._start_record(record, cause=None)
            except BaseException as err:
                for done in reversed(started):
                    await self._stop_record(done, restarting=False)
                await self._cancel_watchers()
                exit = Exit("crashed", error=err, detail=f"child {record.id!r} failed to start")
                self._finish(exit)
                if isinstance(err, Exception):
                    raise self._start_error(record, err) from err
                raise
            started.append(record)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"supervisor:{self._name}")
        self._log.debug("supervisor started", supervisor=self._name, strategy=self._strategy)
        return self

    async def wait(self) -> Exit:
        """Resolve with the supervisor's Exit when it ends (any number of waiters)."""
        await self._ended.wait()
        assert self._exit is not None
        return self._exit

    async def shutdown(self, timeout: float | None = None, *, restarting: bool = False) -> Exit:
        """Stop all children (reverse start order, each within its own shutdown policy).

        ``timeout`` bounds the whole stop: when it elapses (or is 0) the remaining children
        are killed at once. ``restarting`` is accepted for the Child protocol and ignored:
        a restarted supervisor starts its children afresh.
        """
        del restarting
        if self._exit is not None:
            return self._exit
        if not self._started:
            self._finish(Exit("shutdown", detail=f"supervisor {self._name!r} stopped before it started"))
            return self._exit  # type: ignore[return-value]
        if not self._stopping:
            # Also right while start() is still running: the main task handles it first thing.
            self._stopping = True
            self._mailbox.put_nowait(_Stop())
        if timeout is None:
            return await self.wait()
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except asyncio.TimeoutError:
            self._log.warning(
                "supervisor shutdown timed out; killing its children",
                supervisor=self._name, timeout=timeout,
            )
            if self._task is not None:
                self._task.cancel()
        return await self.wait()

    async def __aenter__(self) -> Supervisor:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.shutdown()

    # ------------------------------------------------------------------ API requests
    def which_children(self) -> list[ChildInfo]:
        """A snapshot of the children, in start order."""
        return [r.info() for r in self._records]

    async def start_child(self, spec_or_args: ChildSpec | Sequence[Any] = ()) -> str:
        """Add and start a child; returns its id.

        For ``simple_one_for_one`` give the arguments (a tuple or list, passed as
        ``StartInfo.args``); the id is ``"<template id>-<n>"``. Otherwise give a ChildSpec.
        Raises :class:`ChildStartError` if it fails to start (it is not kept).
        """
        return await self._call(self._op_start_child, spec_or_args)

    async def terminate_child(self, child_id: str) -> Exit:
        """Stop a child (its shutdown policy applies) without restarting it.

        Temporary and ``simple_one_for_one`` children are removed; others stay ``"stopped"``
        (see :meth:`restart_child`, :meth:`delete_child`). Returns the child's Exit.
        """
        return await self._call(self._op_terminate_child, child_id)

    async def restart_child(self, child_id: str) -> Child:
        """Start a ``"stopped"`` child again; returns the new incarnation."""
        return await self._call(self._op_restart_child, child_id)

    async def delete_child(self, child_id: str) -> None:
        """Forget a ``"stopped"`` child."""
        await self._call(self._op_delete_child, child_id)

    async def replace_child(self, spec: ChildSpec) -> Child:
        """Stop the child ``spec.id`` (its shutdown policy applies) and start it from ``spec``,
        in the same place of the start order: a change of code or configuration (a release
        upgrade), not a failure, so it does not count against the intensity. Returns the new
        incarnation; raises :class:`ChildStartError` if it fails to start (the child then
        stays ``"stopped"`` with the new spec)."""
        return await self._call(self._op_replace_child, spec)

    def reconfigure(self, *, strategy: Strategy | None = None, max_restarts: int | None = None,
                    period: float | None = None) -> None:
        """Change the policy of a running supervisor (None: keep). The restart history starts
        anew; ``simple_one_for_one`` can be neither left nor entered."""
        strategy = self._strategy if strategy is None else strategy
        max_restarts = self._max_restarts if max_restarts is None else max_restarts
        period = self._period if period is None else period
        _check_policy(self._name, strategy, max_restarts, period)
        if (strategy == "simple_one_for_one") != (self._strategy == "simple_one_for_one"):
            raise ValueError(f"Supervisor {self._name!r}: cannot change strategy from {self._strategy!r} "
                             f"to {strategy!r}; build a new supervisor")
        self._strategy, self._max_restarts, self._period = strategy, max_restarts, float(period)
        self._intensity = RestartIntensity(max_restarts, self._period, clock=self._clock)

    async def _call(self, op: Callable[..., Any], *args: Any) -> Any:
        if self._task is None or self._exit is not None or self._stopping:
            raise SupervisorStoppedError(
                f"Supervisor {self._name!r} is {self.state}; start() it first"
                if not self._started
                else f"Supervisor {self._name!r} is {self.state} and takes no more requests"
            )
        future = asyncio.get_running_loop().create_future()
        self._mailbox.put_nowait(_Request(op, args, future))
        return await future

    # ------------------------------------------------------------------ the main task
    async def _run(self) -> None:
        try:
            while self._exit is None:
                message = await self._mailbox.get()
                if isinstance(message, _ChildExited):
                    await self._on_child_exited(message)
                elif isinstance(message, _RestartDue):
                    if not message.pending.cancelled and not self._stopping:
                        await self._do_restart(message.pending)
                elif isinstance(message, _Request):
                    await self._serve(message)
                elif isinstance(message, _Stop):
                    await self._stop_all()
                    self._finish(Exit("shutdown", detail=f"supervisor {self._name!r} shut down"))
                else:  # pragma: no cover - a bug in this module
                    raise AssertionError(f"unknown supervisor message {message!r}")
        except asyncio.CancelledError:
            # shutdown() timed out (or the event loop is closing): kill everything now.
            await self._kill_all()
            self._finish(Exit("shutdown", detail=f"supervisor {self._name!r} killed its children (shutdown timeout)"))
        except BaseException as err:
            self._log.error("supervisor failed; stopping its children", supervisor=self._name, exc_info=True)
            try:
                await self._stop_all()
            except BaseException:  # noqa: BLE001 - whatever broke the stop, the children get killed
                self._log.error("supervisor failed while stopping its children", supervisor=self._name, exc_info=True)
                await self._kill_all()
            self._finish(Exit("crashed", error=err, detail=f"supervisor {self._name!r} failed (a bug)"))
            if not isinstance(err, Exception):
                raise
        finally:
            await self._cleanup()

    async def _serve(self, request: _Request) -> None:
        try:
            result = await request.op(*request.args)
        except Exception as err:  # noqa: BLE001 - every failure goes back to the caller
            if not request.future.done():
                request.future.set_exception(err)
        except BaseException:  # cancelled (killed) or worse: the caller still gets an answer
            if not request.future.done():
                request.future.set_exception(
                    SupervisorStoppedError(f"Supervisor {self._name!r} was stopped while serving this request")
                )
            raise
        else:
            if not request.future.done():
                request.future.set_result(result)

    def _finish(self, exit: Exit) -> None:
        if self._exit is not None:
            return
        self._exit = exit
        self._stopping = True
        self._emit("supervisor_exited", exit=exit)
        if exit.abnormal:
            self._log.warning("supervisor exited", supervisor=self._name, exit=str(exit))
        else:
            self._log.debug("supervisor exited", supervisor=self._name, exit=str(exit))
        self._ended.set()

    async def _cleanup(self) -> None:
        for record in self._records:
            if record.pending is not None:
                record.pending.cancel()
            self._discard(record, self._exit)
        await self._cancel_watchers()
        while not self._mailbox.empty():
            message = self._mailbox.get_nowait()
            if isinstance(message, _Request) and not message.future.done():
                message.future.set_exception(
                    SupervisorStoppedError(f"Supervisor {self._name!r} stopped before serving this request")
                )
        if self._exit is None:  # pragma: no cover - every path above finishes first
            self._finish(Exit("crashed", detail=f"supervisor {self._name!r} ended unexpectedly"))

    async def _cancel_watchers(self) -> None:
        watchers = list(self._watchers)
        for task in watchers:
            task.cancel()
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)

    # ------------------------------------------------------------------ starting and stopping one child
    async def _start_record(self, record: _Record, cause: Exit | None) -> Child:
        info = StartInfo(incarnation=record.incarnation + 1, cause=cause, args=record.args)
        try:
            child = record.spec.start(info)
            if inspect.isawaitable(child):
                child = await child
            if not isinstance(child, Child):
                raise TypeError(
                    f"the start function of child {record.id!r} returned {child!r}, which is not a Child "
                    "(it needs async wait() and async shutdown(timeout, *, restarting=False))"
                )
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            record.started_at = None
            self._emit("child_start_failed", record, incarnation=info.incarnation, error=err)
            self._log.warning(
                "child failed to start", supervisor=self._name, child=record.id,
                incarnation=info.incarnation, error=repr(err),
            )
            raise
        record.child = child
        record.ended = None
        record.incarnation = info.incarnation
        if info.incarnation > 0:
            record.restarts += 1
        record.state = "running"
        record.started_at = self._clock.now()
        watcher = asyncio.get_running_loop().create_task(
            self._watch(record, child), name=f"supervisor:{self._name}:watch:{record.id}"
        )
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        self._emit("child_started", record, incarnation=info.incarnation, child=child)
        self._log.debug("child started", supervisor=self._name, child=record.id, incarnation=info.incarnation)
        return child

    async def _watch(self, record: _Record, child: Child) -> None:
        try:
            exit = await child.wait()
            if not isinstance(exit, Exit):
                raise TypeError(f"wait() of child {record.id!r} returned {exit!r}, not an Exit")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken wait() is the child's crash
            self._log.error("child.wait() failed", supervisor=self._name, child=record.id, exc_info=True)
            exit = Exit("crashed", error=err, detail="the child's wait() raised")
        self._mailbox.put_nowait(_ChildExited(record, child, exit))

    async def _stop_record(self, record: _Record, *, restarting: bool, timeout: Any = "spec") -> Exit | None:
        """Stop one child (cancelling its pending restart); returns its Exit, None if it was not running."""
        self._detach(record)
        child = record.child
        if child is None:
            record.state = "restarting" if restarting else "stopped"
            return None
        if timeout == "spec":
            timeout = record.spec.shutdown_timeout
        try:
            exit = await child.shutdown(timeout, restarting=restarting)
            if not isinstance(exit, Exit):
                raise TypeError(f"shutdown() of child {record.id!r} returned {exit!r}, not an Exit")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken shutdown() is the child's crash
            self._log.error("child.shutdown() failed", supervisor=self._name, child=record.id, exc_info=True)
            exit = Exit("crashed", error=err, detail="the child's shutdown() raised")
        record.child = None
        record.started_at = None
        record.last_exit = exit
        record.state = "restarting" if restarting else "stopped"
        self._emit("child_exited", record, incarnation=record.incarnation, exit=exit)
        self._log.debug("child stopped", supervisor=self._name, child=record.id, exit=str(exit))
        return exit

    async def _stop_all(self) -> None:
        """Stop every child: reverse start order, or all at once for simple_one_for_one."""
        for record in self._records:
            if record.pending is not None:
                record.pending.cancel()
        if self._strategy == "simple_one_for_one":
            await asyncio.gather(*(self._stop_record(r, restarting=False) for r in self._records))
        else:
            for record in reversed(self._records):
                await self._stop_record(record, restarting=False)

    async def _kill_all(self) -> None:
        """Brutal kill of whatever still runs (after a shutdown timeout or a bug)."""
        for record in self._records:
            if record.pending is not None:
                record.pending.cancel()
        targets = [r for r in reversed(self._records) if r.child is not None]
        results = await asyncio.gather(
            *(self._stop_record(r, restarting=False, timeout=0.0) for r in targets), return_exceptions=True
        )
        for record, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                self._log.error(
                    "killing child failed", supervisor=self._name, child=record.id, error=repr(result)
                )

    def _detach(self, record: _Record) -> None:
        """Take ``record`` out of its pending restart; the rest of that group still restarts."""
        pending = record.pending
        if pending is None:
            return
        record.pending = None
        if record in pending.members:
            pending.members.remove(record)
        if not pending.members:
            pending.cancel()

    def _discard(self, record: _Record, why: Exit | None = None) -> None:
        """Tell an ended incarnation it will not be restarted (see `Child`: optional `discard()`)."""
        child, record.ended = record.ended, None
        discard = getattr(child, "discard", None)
        if discard is not None:
            try:
                discard(why)
            except Exception:  # noqa: BLE001 - a broken discard() is logged, not the supervisor's failure
                self._log.error("child.discard() failed", supervisor=self._name, child=record.id, exc_info=True)

    def _remove(self, record: _Record) -> None:
        self._discard(record)
        self._detach(record)
        if record in self._records:
            self._records.remove(record)

    # ------------------------------------------------------------------ failures and restarts
    async def _on_child_exited(self, message: _ChildExited) -> None:
        record, exit = message.record, message.exit
        if record.child is not message.child or record not in self._records:
            return  # an incarnation we stopped ourselves (already reported) or forgot
        now = self._clock.now()
        ran_for = now - record.started_at if record.started_at is not None else 0.0
        record.child = None
        record.ended = message.child
        record.started_at = None
        record.last_exit = exit
        self._emit("child_exited", record, incarnation=record.incarnation, exit=exit)
        restart = record.spec.restart
        if self._stopping:  # a stop is queued: do not start what is about to be stopped
            record.state = "stopped"
            self._discard(record)
            return
        if restart == "temporary" or (restart == "transient" and not exit.abnormal):
            self._log.debug("child exited", supervisor=self._name, child=record.id, exit=str(exit))
            record.state = "stopped"
            self._discard(record)
            if restart == "temporary" or self._strategy == "simple_one_for_one":
                self._remove(record)
            return
        self._log.info("child exited; restarting", supervisor=self._name, child=record.id, exit=str(exit))
        if self._strategy in ("one_for_all", "rest_for_one"):
            group = self._group_of(record)
            for other in reversed(group):
                if other is not record:
                    temporary = other.spec.restart == "temporary"
                    await self._stop_record(other, restarting=not temporary)
                    if temporary:
                        self._remove(other)
            group = [g for g in group if g in self._records]
        else:
            group = [record]
        await self._schedule_restart(group, record, exit, ran_for=ran_for)

    def _group_of(self, record: _Record) -> list[_Record]:
        """The children a failure of ``record`` restarts, in start order (stopped ones excluded)."""
        one_for_all = self._strategy == "one_for_all"  # else rest_for_one
        candidates = self._records if one_for_all else self._records[self._records.index(record):]
        return [r for r in candidates if r is record or r.state != "stopped"]

    async def _schedule_restart(
        self, group: list[_Record], failed: _Record, cause: Exit, *, ran_for: float = 0.0
    ) -> None:
        if not self._intensity.record():
            await self._give_up(failed, cause)
            return
        self._restart_count += 1
        delay = self._backoff_delay(failed, ran_for)
        pending = _Pending(group, failed, cause)
        for member in group:
            self._detach(member)
            member.pending = pending
            member.state = "restarting"
        for member in group:
            self._emit(
                "child_restarting", member, incarnation=member.incarnation,
                exit=cause, delay=delay if member is failed else None,
            )
        if delay > 0:
            self._log.info("restart backing off", supervisor=self._name, child=failed.id, delay=round(delay, 3))
            pending.handle = self._clock.call_later(delay, self._mailbox.put_nowait, _RestartDue(pending))
        else:
            self._mailbox.put_nowait(_RestartDue(pending))

    def _backoff_delay(self, record: _Record, ran_for: float) -> float:
        backoff: Backoff | None = record.spec.backoff
        if backoff is None:
            return 0.0
        if ran_for >= backoff.reset_after:
            record.backoff_n = 0
        delay = backoff.delay(record.backoff_n)
        record.backoff_n += 1
        return delay

    async def _do_restart(self, pending: _Pending) -> None:
        members = [m for m in pending.members if m in self._records and m.pending is pending]
        for member in members:
            member.pending = None
        started: list[_Record] = []
        for member in members:
            cause = pending.cause if member is pending.failed else (member.last_exit or pending.cause)
            try:
                await self._start_record(member, cause=cause)
            except asyncio.CancelledError:
                raise
            except BaseException as err:  # noqa: BLE001 - any failed restart is counted and retried
                # A failed restart: stop what this attempt started, count it, try again.
                for done in reversed(started):
                    await self._stop_record(done, restarting=True)
                failed_exit = Exit("crashed", error=err, detail=f"child {member.id!r} failed to restart")
                remaining = [m for m in members if m in self._records]
                for m in remaining:
                    m.state = "restarting"
                await self._schedule_restart(remaining, member, failed_exit)
                return
            started.append(member)

    async def _give_up(self, failed: _Record, cause: Exit) -> None:
        detail = (
            f"supervisor {self._name!r}: more than {self._max_restarts} restarts in "
            f"{self._period:g} s; last failure: child {failed.id!r} {cause}"
        )
        self._emit("intensity_exceeded", failed, incarnation=failed.incarnation, exit=cause)
        self._log.error("restart intensity exceeded; stopping all children", supervisor=self._name,
                        child=failed.id, exit=str(cause), max_restarts=self._max_restarts, period=self._period)
        failed.state = "stopped"
        await self._stop_all()
        self._finish(Exit("restarts_exhausted", error=cause.error, detail=detail))

    # ------------------------------------------------------------------ request handlers (main task)
    def _find(self, child_id: str) -> _Record:
        for record in self._records:
            if record.id == child_id:
                return record
        known = ", ".join(repr(r.id) for r in self._records) or "none"
        raise ChildNotFoundError(f"Supervisor {self._name!r} has no child {child_id!r} (children: {known})")

    def _start_error(self, record: _Record, err: BaseException) -> ChildStartError:
        return ChildStartError(
            f"Supervisor {self._name!r}: child {record.id!r} failed to start: {err!r} "
            "(the start function's exception is chained below)",
            supervisor=self._name, child_id=record.id,
        )

    async def _op_start_child(self, spec_or_args: ChildSpec | Sequence[Any]) -> str:
        if self._strategy == "simple_one_for_one":
            if isinstance(spec_or_args, (ChildSpec, str, bytes)) \
                    or not isinstance(spec_or_args, (tuple, list)):
                raise TypeError(
                    f"Supervisor {self._name!r} is simple_one_for_one: start_child takes the child's "
                    f"arguments as a tuple or list, not {spec_or_args!r}"
                )
            self._dynamic_seq += 1
            template = self._specs[0]
            record = _Record(f"{template.id}-{self._dynamic_seq}", template, tuple(spec_or_args))
        else:
            if not isinstance(spec_or_args, ChildSpec):
                raise TypeError(
                    f"Supervisor {self._name!r}: start_child takes a ChildSpec, not {spec_or_args!r}"
                )
            if any(r.id == spec_or_args.id for r in self._records):
                raise ValueError(
                    f"Supervisor {self._name!r} already has a child {spec_or_args.id!r}; "
                    "terminate_child and delete_child it first, or pick another id"
                )
            record = _Record(spec_or_args.id, spec_or_args)
        self._records.append(record)
        try:
            await self._start_record(record, cause=None)
        except Exception as err:
            self._records.remove(record)
            raise self._start_error(record, err) from err
        return record.id

    async def _op_terminate_child(self, child_id: str) -> Exit | None:
        record = self._find(child_id)
        exit = await self._stop_record(record, restarting=False)
        if record.spec.restart == "temporary" or self._strategy == "simple_one_for_one":
            self._remove(record)
        return exit if exit is not None else record.last_exit

    async def _op_restart_child(self, child_id: str) -> Child:
        record = self._find(child_id)
        if record.state != "stopped":
            raise SupervisorError(
                f"Supervisor {self._name!r}: child {child_id!r} is {record.state}; "
                "only a stopped child can be restarted with restart_child"
            )
        try:
            return await self._start_record(record, cause=record.last_exit)
        except Exception as err:
            raise self._start_error(record, err) from err

    async def _op_replace_child(self, spec: ChildSpec) -> Child:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"Supervisor {self._name!r}: replace_child takes a ChildSpec, not {spec!r}")
        if self._strategy == "simple_one_for_one":
            raise SupervisorError(f"Supervisor {self._name!r} is simple_one_for_one: its children share one spec")
        record = self._find(spec.id)
        await self._stop_record(record, restarting=False)
        record.spec = spec
        record.backoff_n = 0
        try:
            return await self._start_record(record, cause=None)
        except Exception as err:
            record.state = "stopped"
            raise self._start_error(record, err) from err

    async def _op_delete_child(self, child_id: str) -> None:
        record = self._find(child_id)
        if record.state != "stopped":
            raise SupervisorError(
                f"Supervisor {self._name!r}: child {child_id!r} is {record.state}; terminate_child it first"
            )
        self._remove(record)

    # ------------------------------------------------------------------ events
    def _emit(self, kind: EventKind, record: _Record | None = None, **fields: Any) -> None:
        if self._on_event is None:
            return
        event = SupervisorEvent(kind=kind, supervisor=self._name, child_id=record.id if record else None,
                                time=self._clock.now(), **fields)
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a broken callback is logged, not the supervisor's failure
            self._log.error("on_event callback failed", supervisor=self._name, event_kind=kind, exc_info=True)


def supervisor_spec(
    id: str,
    children: Iterable[ChildSpec],
    *,
    restart: RestartType = "permanent",
    shutdown: ShutdownPolicy | None = None,
    backoff: Backoff | None = None,
    **flags: Any,
) -> ChildSpec:
    """A ChildSpec (type ``"supervisor"``) for a nested :class:`Supervisor` of ``children``.

    ``flags`` are the Supervisor's keyword arguments (``strategy``, ``max_restarts``,
    ``period``, ``on_event``, ``clock``, ``name`` — default: ``id``). Each (re)start builds a fresh
    Supervisor that starts its children anew. ``shutdown`` defaults to ``"infinity"``.
    """
    flags.setdefault("name", id)
    specs = tuple(children)
    Supervisor(specs, **flags)  # validate the flags now, where the mistake is made

    async def start(info: StartInfo) -> Supervisor:
        return await Supervisor(specs, **flags).start()

    start.__qualname__ = f"supervisor_spec({id!r}).start"
    return ChildSpec(id=id, start=start, restart=restart, shutdown=shutdown, type="supervisor", backoff=backoff)
