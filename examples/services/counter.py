"""A Counter service for ``actorcore supervise``: its count survives crashes through checkpoints.

Spec::

    [services.counter]
    class = "examples.services.counter:Counter"
    kwargs = { start = 0 }
    checkpoint_interval = 0.5
"""

from __future__ import annotations

import os


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.count = start
        self.restored = False

    def incr(self, by: int = 1) -> int:
        self.count += by
        return self.count

    def get(self) -> int:
        return self.count

    def pid(self) -> int:
        return os.getpid()

    def was_restored(self) -> bool:
        return self.restored

    def __checkpoint__(self) -> dict:
        return {"count": self.count}

    def __restore__(self, state: dict) -> None:
        self.count = state["count"]
        self.restored = True
