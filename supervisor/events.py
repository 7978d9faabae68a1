"""Event records a supervisor reports to its ``on_event`` callback (docs/supervision.md, "Events").

Small frozen records for tests, the status command and metrics. Kinds:

- ``child_started``: an incarnation is running (``incarnation``, ``child``);
- ``child_exited``: an incarnation ended, on its own or stopped by the supervisor (``exit``);
- ``child_start_failed``: the start factory raised (``error``); counted as a failed restart;
- ``child_restarting``: a restart is scheduled (``delay``: the backoff, 0 without one;
  ``exit``: the failure that caused it);
- ``intensity_exceeded``: more than ``max_restarts`` restarts in ``period``; the supervisor
  gives up (``exit``: the last failure);
- ``supervisor_exited``: the supervisor itself ended (``exit``).

``time`` is the supervisor's clock reading when the event happened: ``time.monotonic()``
unless the supervisor was given another :class:`~supervisor.clock.Clock`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .child import Exit

__all__ = ["EVENT_KINDS", "EventKind", "SupervisorEvent"]

EventKind = Literal[
    "child_started",
    "child_exited",
    "child_start_failed",
    "child_restarting",
    "intensity_exceeded",
    "supervisor_exited",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


@dataclass(frozen=True)
class SupervisorEvent:
    """One thing that happened in a supervisor (see the module docstring for the kinds)."""

    kind: EventKind
    supervisor: str
    child_id: str | None = None
    incarnation: int | None = None
    exit: Exit | None = None
    delay: float | None = None
    error: BaseException | None = None
    child: Any = field(default=None, repr=False, compare=False)
    time: float = field(default_factory=time.monotonic, compare=False)
