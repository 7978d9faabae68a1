"""The clock a supervisor reads and sets its restart timers on (docs/supervision.md, "Time").

A supervisor does three things with time, all of them about restarts:

- it delays a restart by the child's :class:`~supervisor.backoff.Backoff` (a timer);
- it measures how long an incarnation ran, to start the backoff over after a stable run
  (``Backoff.reset_after``);
- it counts restarts in a sliding window of ``period`` seconds
  (:class:`~supervisor.intensity.RestartIntensity`).

Each goes through a :class:`Clock`: ``now()`` for readings, ``call_later(delay, callback)``
for timers. The default, :data:`MONOTONIC`, is ``time.monotonic()`` and the running event
loop's ``call_later``. Tests give a supervisor ``supervisor.testing.ManualClock`` instead and
move time with ``advance(seconds)``, so backoff and intensity are tested without sleeping.

Shutdown timeouts are not on this clock: they bound real work (a process that takes its time
to stop), so children and ``Supervisor.shutdown(timeout)`` measure them in real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["MONOTONIC", "Clock", "MonotonicClock", "TimerHandle"]


@runtime_checkable
class TimerHandle(Protocol):
    """A timer set with :meth:`Clock.call_later`; ``cancel()`` keeps it from firing."""

    def cancel(self) -> None:
        """Keep the timer from firing (no-op if it already fired or was cancelled)."""


@runtime_checkable
class Clock(Protocol):
    """Where a supervisor reads the time and sets timers.

    ``now()`` returns seconds on a monotonic scale (only differences between readings mean
    anything). ``call_later(delay, callback, *args)`` calls ``callback(*args)`` once
    ``delay`` seconds have passed on this clock, in the event loop's thread, and returns a
    handle whose ``cancel()`` keeps it from being called.
    """

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences between readings mean anything."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Call ``callback(*args)`` once ``delay`` seconds have passed on this clock; return its handle."""


class MonotonicClock:
    """Real time: ``time.monotonic()`` and the running event loop's ``call_later``."""

    __slots__ = ()

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Set a timer on the running event loop (raises RuntimeError outside one)."""
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def __repr__(self) -> str:
        return "MonotonicClock()"


MONOTONIC = MonotonicClock()
"""The default clock of supervisors and restart intensities."""
