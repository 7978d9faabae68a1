"""supervisor: OTP supervision trees on asyncio (the model: docs/supervision.md).

Usable on its own (stdlib, tenacity, structlog). Layers, each in its own module:

- :mod:`supervisor.child` — the child protocol: ``Exit``, ``Child``, ``StartInfo``, ``ChildSpec``;
- :mod:`supervisor.backoff` — ``Backoff`` (exponential with jitter, via tenacity);
- :mod:`supervisor.intensity` — ``RestartIntensity`` (max_restarts in period);
- :mod:`supervisor.clock` — ``Clock``: where restarts are timed (real time by default);
- :mod:`supervisor.process` — ``ProcessChild`` / ``process_spec`` for OS processes;
- :mod:`supervisor.supervisor` — ``Supervisor`` / ``supervisor_spec`` (strategies, restarts, shutdown);
- :mod:`supervisor.events` — ``SupervisorEvent`` records for ``on_event``;
- :mod:`supervisor.errors` — the exceptions;
- :mod:`supervisor.testing` — fakes, a manual clock and an event recorder for tests (not
  imported here).

Example::

    async with Supervisor([process_spec("web", ["python", "-m", "http.server"])],
                          strategy="one_for_one", max_restarts=3, period=5.0) as sup:
        await sup.wait()
"""

from .backoff import Backoff
from .child import (
    CHILD_TYPES,
    EXIT_KINDS,
    RESTART_TYPES,
    Child,
    ChildSpec,
    ChildType,
    Exit,
    ExitKind,
    RestartType,
    ShutdownPolicy,
    StartFn,
    StartInfo,
)
from .clock import MONOTONIC, Clock, MonotonicClock
from .errors import ChildNotFoundError, ChildStartError, SupervisorError, SupervisorStoppedError
from .events import EVENT_KINDS, EventKind, SupervisorEvent
from .intensity import RestartIntensity
from .process import ProcessChild, process_spec
from .supervisor import STRATEGIES, ChildInfo, ChildState, Strategy, Supervisor, supervisor_spec

__all__ = [
    "CHILD_TYPES",
    "EVENT_KINDS",
    "EXIT_KINDS",
    "MONOTONIC",
    "RESTART_TYPES",
    "STRATEGIES",
    "Backoff",
    "Child",
    "ChildInfo",
    "ChildNotFoundError",
    "ChildSpec",
    "ChildStartError",
    "ChildState",
    "ChildType",
    "Clock",
    "EventKind",
    "Exit",
    "ExitKind",
    "MonotonicClock",
    "ProcessChild",
    "RestartIntensity",
    "RestartType",
    "ShutdownPolicy",
    "StartFn",
    "StartInfo",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorEvent",
    "SupervisorStoppedError",
    "process_spec",
    "supervisor_spec",
]
