"""The process's one running actor system: set while it runs, read where a ref is unpickled.

An `ActorSystem` claims the slot when it starts and gives it back when it shuts down; an
`ActorRef` unpickled in this process binds to whatever system holds it. A leaf module, so that
the ref and the system do not import each other.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .errors import ActorSystemError

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["claim", "get", "release"]

_current: ActorSystem | None = None
_lock = threading.Lock()


def get() -> ActorSystem:
    """The running actor system; ActorSystemError if there is none."""
    system = _current
    if system is None:
        raise ActorSystemError("no actor system is running in this process; start one first")
    return system


def claim(system: ActorSystem) -> None:
    """Make `system` the process's one; ActorSystemError if another runs."""
    global _current
    with _lock:
        if _current is not None:
            raise ActorSystemError(
                f"an actor system ({_current.name}) is already running in this process; "
                "shut it down first (one actor system per process)"
            )
        _current = system


def release(system: ActorSystem) -> None:
    """Give the slot back if `system` holds it."""
    global _current
    with _lock:
        if _current is system:
            _current = None
