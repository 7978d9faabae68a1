"""Test helpers for code built on the supervisor package.

- :class:`FakeChild`: an in-process :class:`~supervisor.child.Child` whose end the test decides
  (``crash()``, ``exit_normally()``, ``kill()``), optionally slow or deaf to shutdown requests;
- :class:`FakeStarter`: a start function that makes FakeChilds, records every
  :class:`~supervisor.child.StartInfo` it got and can be told to fail the next starts;
- :class:`EventRecorder`: an ``on_event`` callback that keeps the events and lets a test
  await one (``await recorder.wait_for("child_started", "a", count=2)``) instead of sleeping;
- :class:`ManualClock`: a :class:`~supervisor.clock.Clock` that stands still until the test
  calls ``advance(seconds)``, for testing backoff and restart intensity without sleeping;
- :func:`capture_logs`: the supervisor's log records as dicts, whether or not the
  application configured structlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import signal
from collections.abc import Callable, Iterator
from typing import Any

import structlog.testing

from .child import ChildSpec, Exit, StartInfo
from .events import SupervisorEvent

__all__ = ["EventRecorder", "FakeChild", "FakeStarter", "ManualClock", "ManualTimer", "capture_logs"]


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict]]:
    """Capture log records (``structlog.testing.capture_logs``), then restore the structlog
    configuration, including "not configured" (which keeps the supervisor quiet)."""
    was_configured = structlog.is_configured()
    try:
        with structlog.testing.capture_logs() as entries:
            yield entries
    finally:
        if not was_configured:
            structlog.reset_defaults()


class FakeChild:
    """A Child backed by an asyncio future.

    ``stop_delay``: seconds it takes to stop when asked. ``ignore_shutdown``: it does not stop
    when asked, so ``shutdown(timeout)`` kills it after the timeout (``Exit("shutdown",
    signal=SIGKILL)``), and ``shutdown(None)`` waits until the test ends it.
    """

    def __init__(self, name: str = "fake", *, stop_delay: float = 0.0, ignore_shutdown: bool = False) -> None:
        self.name = name
        self.stop_delay = stop_delay
        self.ignore_shutdown = ignore_shutdown
        self.shutdown_calls: list[tuple[float | None, bool]] = []
        self._done: asyncio.Future[Exit] = asyncio.get_running_loop().create_future()

    @property
    def exited(self) -> bool:
        """True once this incarnation has ended."""
        return self._done.done()

    @property
    def exit(self) -> Exit | None:
        """The :class:`Exit` this incarnation ended with, or None while it runs."""
        return self._done.result() if self._done.done() else None

    def end(self, exit: Exit) -> None:
        """End this incarnation with ``exit`` (no-op if it already ended)."""
        if not self._done.done():
            self._done.set_result(exit)

    def crash(self, error: BaseException | None = None) -> None:
        """End this incarnation with ``Exit("crashed")`` carrying ``error`` (a RuntimeError if none)."""
        self.end(Exit("crashed", error=error if error is not None else RuntimeError(f"{self.name} crashed")))

    def exit_normally(self) -> None:
        """End this incarnation with ``Exit("normal")``, as a child that finished its work."""
        self.end(Exit("normal"))

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """End this incarnation with ``Exit("killed")`` by ``signum``, as a signal nobody on our side sent."""
        self.end(Exit("killed", signal=signum))

    async def wait(self) -> Exit:
        """The :class:`Exit` of this incarnation once a test or a shutdown has ended it."""
        return await asyncio.shield(self._done)

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        """Record the call, stop as configured (``stop_delay``, ``ignore_shutdown``), return the exit."""
        self.shutdown_calls.append((timeout, restarting))
        if self._done.done():
            return self._done.result()
        if timeout == 0:
            self.end(Exit("shutdown", signal=signal.SIGKILL, detail="brutal_kill"))
        elif self.ignore_shutdown:
            try:
                await asyncio.wait_for(asyncio.shield(self._done), timeout)
            except asyncio.TimeoutError:
                self.end(Exit("shutdown", signal=signal.SIGKILL, detail=f"killed after {timeout} s"))
        else:
            if self.stop_delay:
                try:
                    await asyncio.wait_for(asyncio.shield(self._done), self.stop_delay)
                except asyncio.TimeoutError:
                    pass
            self.end(Exit("shutdown", detail="restarting" if restarting else ""))
        return await self.wait()

    def __repr__(self) -> str:
        return f"<FakeChild {self.name} {'exited ' + str(self.exit) if self.exited else 'running'}>"


class FakeStarter:
    """``start`` function for a ChildSpec that makes :class:`FakeChild` objects.

    ``started`` (optional shared list) gets ``name`` appended at each successful start, to
    check the start order across several starters.
    """

    def __init__(self, name: str, *, started: list | None = None, **child_kwargs: Any) -> None:
        self.name = name
        self.children: list[FakeChild] = []
        self.infos: list[StartInfo] = []
        self.started = started
        self.child_kwargs = child_kwargs
        self._fail_next = 0

    def fail_next(self, n: int = 1) -> None:
        """Make the next ``n`` starts raise RuntimeError."""
        self._fail_next = n

    @property
    def current(self) -> FakeChild:
        """The most recently started child."""
        return self.children[-1]

    def __call__(self, info: StartInfo) -> FakeChild:
        self.infos.append(info)
        if self._fail_next > 0:
            self._fail_next -= 1
            raise RuntimeError(f"{self.name} refuses to start (incarnation {info.incarnation})")
        child = FakeChild(f"{self.name}#{info.incarnation}", **self.child_kwargs)
        self.children.append(child)
        if self.started is not None:
            self.started.append(self.name)
        return child

    def spec(self, **spec_kwargs: Any) -> ChildSpec:
        """A :class:`ChildSpec` with id ``name`` started by this starter; ``spec_kwargs`` go to it."""
        return ChildSpec(id=self.name, start=self, **spec_kwargs)


class EventRecorder:
    """An ``on_event`` callback that records events and lets tests await them."""

    def __init__(self) -> None:
        self.events: list[SupervisorEvent] = []
        self._waiters: list[tuple[Callable[[], SupervisorEvent | None], asyncio.Future]] = []

    def __call__(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        for check, future in list(self._waiters):
            if not future.done():
                found = check()
                if found is not None:
                    future.set_result(found)

    def of(self, kind: str | None = None, child_id: str | None = None,
           supervisor: str | None = None) -> list[SupervisorEvent]:
        """The recorded events matching every filter given."""
        return [
            e for e in self.events
            if (kind is None or e.kind == kind)
            and (child_id is None or e.child_id == child_id)
            and (supervisor is None or e.supervisor == supervisor)
        ]

    async def wait_for(self, kind: str, child_id: str | None = None, *, count: int = 1,
                       supervisor: str | None = None, timeout: float = 5.0) -> SupervisorEvent:
        """Wait until ``count`` matching events have been recorded; return the ``count``-th."""

        def check() -> SupervisorEvent | None:
            matches = self.of(kind, child_id, supervisor)
            return matches[count - 1] if len(matches) >= count else None

        found = check()
        if found is not None:
            return found
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        entry = (check, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"no {count}x {kind!r} event (child={child_id!r}, supervisor={supervisor!r}) within "
                f"{timeout} s; events so far: {[(e.kind, e.supervisor, e.child_id) for e in self.events]}"
            ) from None
        finally:
            self._waiters.remove(entry)


class ManualTimer:
    """A timer of a :class:`ManualClock`: fires when the clock is advanced to ``when``."""

    __slots__ = ("when", "_callback", "_args", "_cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self._callback = callback
        self._args = args
        self._cancelled = False

    def cancel(self) -> None:
        """Keep the timer from firing."""
        self._cancelled = True

    def cancelled(self) -> bool:
        """True if :meth:`cancel` was called."""
        return self._cancelled

    def fire(self) -> None:
        """Call the callback (the clock does, when the timer falls due)."""
        self._callback(*self._args)

    def __repr__(self) -> str:
        return f"<ManualTimer at {self.when:g}{' cancelled' if self._cancelled else ''}>"


class ManualClock:
    """A :class:`~supervisor.clock.Clock` whose time moves only in :meth:`advance` and
    :meth:`advance_to`.

    ``now()`` starts at ``start``. ``call_later(delay, callback, *args)`` sets a timer that
    fires inside the ``advance()`` call that reaches its deadline (a ``delay`` <= 0: the next
    ``advance()``, even ``advance(0)``). Give it to a supervisor as ``clock=`` and::

        a.current.crash()
        event = await recorder.wait_for("child_restarting", "a")   # the timer is set now
        clock.advance(event.delay)                                   # it fires
        await recorder.wait_for("child_started", "a", count=2)
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The current time of this clock: ``start`` plus everything advanced so far."""
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> ManualTimer:
        """Set a timer that fires in the :meth:`advance` call reaching ``now() + delay``.

        Raises ValueError if ``delay`` is NaN.
        """
        if math.isnan(delay):
            raise ValueError("ManualClock.call_later: delay is NaN")
        timer = ManualTimer(self._now + max(delay, 0.0), callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    @property
    def deadlines(self) -> list[float]:
        """When the timers still pending will fire, soonest first (cancelled ones left out)."""
        return sorted(when for when, _, timer in self._timers if not timer.cancelled())

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds`` and fire every timer that falls due, in deadline
        order (equal deadlines: in the order they were set), each seeing ``now()`` at its own
        deadline; a timer set by a callback fires too if it falls due in this step. Returns
        how many timers fired. A callback's exception propagates, leaving time at that timer's
        deadline (the later timers wait for the next ``advance``)."""
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"ManualClock.advance: seconds={seconds!r}; time only moves forward")
        return self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> int:
        """Move time forward to exactly ``when`` (no rounding of a sum), as :meth:`advance`:
        ``clock.advance_to(clock.deadlines[0])`` fires the next timer."""
        if math.isnan(when) or when < self._now:
            raise ValueError(f"ManualClock.advance_to: {when!r} is before now ({self._now!r}); "
                             "time only moves forward")
        fired = 0
        while self._timers and self._timers[0][0] <= when:
            due, _, timer = heapq.heappop(self._timers)
            if timer.cancelled():
                continue
            self._now = max(self._now, due)
            fired += 1
            timer.fire()
        self._now = when
        return fired

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:g}, pending={len(self.deadlines)})"
