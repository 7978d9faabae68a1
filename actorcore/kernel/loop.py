"""The event loop actorcore's processes run on: uvloop where it is installed.

Measured on the 2-core dev machine: a bare Unix-socket echo round trip costs ~115 µs on the
stock asyncio loop and ~13 µs on uvloop; the kernel's cross-process ask went from ~245 µs to
~80-180 µs median.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
    uvloop = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's where it is installed, else asyncio's."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Awaitable[Any]) -> Any:
    """`asyncio.run` on the fastest available loop."""
    if uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)
