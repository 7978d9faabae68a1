"""Exceptions raised by the supervisor package."""

from __future__ import annotations

__all__ = ["ChildNotFoundError", "ChildStartError", "SupervisorError", "SupervisorStoppedError"]


class SupervisorError(Exception):
    """Base class of the supervisor package's errors."""


class ChildStartError(SupervisorError):
    """A child's start factory raised (or returned something that is not a Child).

    ``supervisor`` and ``child_id`` name who failed; the factory's exception is ``__cause__``.
    """

    def __init__(self, message: str, *, supervisor: str, child_id: str) -> None:
        super().__init__(message)
        self.supervisor = supervisor
        self.child_id = child_id


class ChildNotFoundError(SupervisorError, KeyError):
    """No child with that id under this supervisor."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class SupervisorStoppedError(SupervisorError):
    """The supervisor is not running (never started, or already stopped)."""
