"""System messages the kernel delivers to actors: death watch (docs/architecture.md, "The
actor kernel")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ref import ActorRef

#: Why an actor ended; the `reason` of `Terminated` is one of these.
NORMAL = "normal"  # stopped by itself, by `stop`, or by its system's shutdown
FAILED = "failed"  # a handler raised and nobody restarted it (`error` says what)
PEER_LOST = "peer_lost"  # its process died or the connection to it was lost
RESTARTS_EXHAUSTED = "restarts_exhausted"  # its supervisor gave up restarting it
REASONS = (NORMAL, FAILED, PEER_LOST, RESTARTS_EXHAUSTED)


@dataclass(frozen=True, slots=True)
class Terminated:
    """Delivered once to each watcher when the watched actor ends for good.

    Restarts by a supervisor are not deaths and send no `Terminated`.
    """

    ref: ActorRef
    reason: str
    error: BaseException | None = None

    def __str__(self) -> str:
        suffix = f": {self.error!r}" if self.error is not None else ""
        return f"Terminated({self.ref}, {self.reason}{suffix})"
