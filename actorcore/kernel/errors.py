"""Errors the actor kernel raises: each names the actor and what to do."""

from __future__ import annotations


class KernelError(Exception):
    """Base of the actor kernel's errors."""


class ActorStoppedError(KernelError):
    """The target actor is stopped (or stopped while the call was pending)."""


class AskTimeoutError(KernelError, TimeoutError):
    """No reply to an `ask` within its timeout."""


class PeerLostError(ActorStoppedError):
    """The process hosting the target actor died or cannot be reached."""


class SerializationError(KernelError, TypeError):
    """A message (or reply) could not be pickled or unpickled."""


class ActorSystemError(KernelError, RuntimeError):
    """The actor system is not running, or is used the wrong way."""
