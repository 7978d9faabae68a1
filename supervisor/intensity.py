"""Restart intensity: at most ``max_restarts`` restarts in ``period`` seconds
(docs/supervision.md, "Restart intensity").

OTP's rule: if *more than* ``max_restarts`` restarts happen within ``period`` seconds, the
supervisor gives up. ``max_restarts=-1`` means unlimited; ``period=math.inf`` counts every
restart ever (Ray's ``max_restarts=N``). Restarts are timed on a
:class:`~supervisor.clock.Clock` (real time unless one is given).
"""

from __future__ import annotations

import math
from collections import deque

from .clock import MONOTONIC, Clock

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """Sliding-window restart counter: ``RestartIntensity(max_restarts, period, clock=...)``."""

    __slots__ = ("max_restarts", "period", "clock", "_times")

    def __init__(self, max_restarts: int, period: float, *, clock: Clock = MONOTONIC) -> None:
        self.max_restarts = max_restarts
        self.period = period
        self.clock = clock
        self._times: deque[float] = deque()

    def record(self, now: float | None = None) -> bool:
        """Count one restart at ``now`` (default: the clock's reading); False when that
        exceeds the intensity (give up)."""
        if self.max_restarts < 0:
            return True
        now = self.clock.now() if now is None else now
        self._times.append(now)
        if not math.isinf(self.period):
            while self._times and now - self._times[0] >= self.period:
                self._times.popleft()
        elif len(self._times) > self.max_restarts + 1:
            self._times.popleft()  # only the count matters; keep the deque bounded
        return len(self._times) <= self.max_restarts

    @property
    def recent(self) -> int:
        """How many restarts are currently inside the window."""
        return len(self._times)

    def __repr__(self) -> str:
        return f"RestartIntensity(max_restarts={self.max_restarts}, period={self.period})"
