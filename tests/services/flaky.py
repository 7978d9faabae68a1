"""Services for the supervise tests that crash or stall on purpose (importable where workers run)."""

from __future__ import annotations

import os
import threading
import time


class Crasher:
    """Dies (exit code 3) ``after`` seconds after it starts: a service that crashes in a loop."""

    def __init__(self, after: float = 0.3) -> None:
        timer = threading.Timer(after, os._exit, args=(3,))
        timer.daemon = True
        timer.start()

    def pid(self) -> int:
        return os.getpid()


class Sleeper:
    """Busy for as long as it is told: a service in the middle of a long call."""

    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def pid(self) -> int:
        return os.getpid()
