"""Helpers for testing code built on actorcore (STYLE.md: a testing module ships with the library)."""

from ._logging import capture_logs

__all__ = ["capture_logs"]
