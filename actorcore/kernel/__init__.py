"""The actor kernel: actors, refs, mailboxes, death watch, remote messaging
(docs/architecture.md, "The actor kernel").

It knows nothing of tasks or objects; everything else in actorcore is built on it.
"""

from .actor import Actor, ActorContext, Reply
from .errors import (
    ActorStoppedError,
    ActorSystemError,
    AskTimeoutError,
    KernelError,
    PeerLostError,
    SerializationError,
)
from .loop import run
from .messages import FAILED, NORMAL, PEER_LOST, RESTARTS_EXHAUSTED, Terminated
from .ref import ActorRef
from .system import ActorSystem

__all__ = [
    "FAILED",
    "NORMAL",
    "PEER_LOST",
    "RESTARTS_EXHAUSTED",
    "Actor",
    "ActorContext",
    "ActorRef",
    "ActorStoppedError",
    "ActorSystem",
    "ActorSystemError",
    "AskTimeoutError",
    "KernelError",
    "PeerLostError",
    "Reply",
    "SerializationError",
    "Terminated",
    "run",
]
