"""Fixtures for the attacker tests: real peer processes (from the kernel tests)."""

from __future__ import annotations

from tests.kernel.conftest import peers

__all__ = ["peers"]
