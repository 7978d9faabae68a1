"""Restart backoff for supervised children (docs/supervision.md, "Backoff").

The delay before restart number ``n`` (0-based, counted since the child last ran stably) is

    min(max, min * 2**n) * (1 + jitter * U(0, 1))

computed with tenacity's wait strategies: ``wait_exponential`` gives the capped exponential
part and ``wait_random`` the multiplicative jitter. The supervisor resets ``n`` to 0 once an
incarnation has run for at least ``reset_after`` seconds before it ended.

A ``Backoff`` only computes delays; the supervisor measures run times and waits out the
delays on its :class:`~supervisor.clock.Clock`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tenacity

__all__ = ["Backoff"]


def _retry_state(attempt_number: int) -> tenacity.RetryCallState:
    # tenacity's wait strategies only read ``attempt_number`` from the state they are given.
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt_number
    return state


@dataclass(frozen=True)
class Backoff:
    """Exponential restart backoff with jitter: ``Backoff(min=0.1, max=10.0, jitter=0.2, reset_after=10.0)``.

    ``min``/``max`` are seconds; ``jitter`` is the largest extra fraction added at random
    (0.2 → up to +20 %); ``reset_after`` is how long (seconds) an incarnation must run before
    the next restart starts again from ``min``.
    """

    min: float = 0.1
    max: float = 10.0
    jitter: float = 0.2
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        for name in ("min", "max", "jitter", "reset_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise TypeError(f"Backoff: {name}={value!r} is not a number; give seconds as a float")
            if value < 0:
                raise ValueError(f"Backoff: {name}={value!r} is negative; use a value >= 0")
        if self.max < self.min:
            raise ValueError(
                f"Backoff: max={self.max!r} is smaller than min={self.min!r}; use max >= min"
            )
        if math.isinf(self.min):
            raise ValueError("Backoff: min=inf would never restart; use a finite min")

    def base_delay(self, n: int) -> float:
        """The delay for restart ``n`` without jitter: ``min(max, min * 2**n)``."""
        if n < 0:
            raise ValueError(f"Backoff.base_delay: n={n!r} must be >= 0")
        wait = tenacity.wait_exponential(multiplier=self.min, max=self.max, exp_base=2)
        return float(wait(_retry_state(n + 1)))

    def delay(self, n: int) -> float:
        """The delay (seconds) before restart ``n``, jitter included."""
        base = self.base_delay(n)
        if self.jitter == 0 or base == 0:
            return base
        return base + float(tenacity.wait_random(0, base * self.jitter)(_retry_state(n + 1)))
