"""`Queue`: a first-in, first-out queue held by an actor (Ray's `ray.util.queue`).

The items live in an async actor, in an `asyncio.Queue` on its event loop: a blocking `get` or
`put` is one actor call that awaits the queue there (with `asyncio.wait_for` for a timeout),
so a waiting caller sends nothing until an item or room comes, and many callers can wait at
once. Every method of the actor is a coroutine, so every one runs on that loop (an
`asyncio.Queue` is not thread-safe). The actor answers "empty" or "full" as a value, and the
caller raises `Empty` or `Full` (subclasses of the standard library's `queue.Empty` and
`queue.Full`), as Ray's queue does.

A `Queue` pickles as its size bound and its actor handle, so it can be passed to tasks and
actors, which then use the same queue. `shutdown` ends the actor; a queue that was shut down
refuses every call with a RuntimeError.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

from .. import api
from ..actor import ActorClass, kill

__all__ = ["Empty", "Full", "Queue"]


class Empty(_stdlib_queue.Empty):
    """The queue had no item (non-blocking get, or a blocking get that timed out)."""


class Full(_stdlib_queue.Full):
    """The queue had no room (non-blocking put, or a blocking put that timed out)."""


# What the actor answers instead of raising (an error would cost a traceback per call).
_OK = 0
_EMPTY = 1
_FULL = 2


class _QueueActor:
    """The actor that holds the items. Coroutines only: they all run on the actor's loop."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.items.qsize()

    async def empty(self) -> bool:
        return self.items.empty()

    async def full(self) -> bool:
        return self.items.full()

    async def put(self, item: Any, timeout: float | None) -> int:
        if timeout is None:
            await self.items.put(item)
            return _OK
        try:
            await asyncio.wait_for(self.items.put(item), timeout)
        except asyncio.TimeoutError:
            return _FULL
        return _OK

    async def get(self, timeout: float | None) -> tuple[int, Any]:
        if timeout is None:
            return _OK, await self.items.get()
        try:
            return _OK, await asyncio.wait_for(self.items.get(), timeout)
        except asyncio.TimeoutError:
            return _EMPTY, None

    async def put_nowait(self, item: Any) -> int:
        try:
            self.items.put_nowait(item)
        except asyncio.QueueFull:
            return _FULL
        return _OK

    async def get_nowait(self) -> tuple[int, Any]:
        try:
            return _OK, self.items.get_nowait()
        except asyncio.QueueEmpty:
            return _EMPTY, None

    async def put_nowait_batch(self, items: list) -> tuple[int, int]:
        """All of ``items``, or none if they do not all fit: (_OK or _FULL, the size before)."""
        size = self.items.qsize()
        if self.maxsize > 0 and size + len(items) > self.maxsize:
            return _FULL, size
        for item in items:
            self.items.put_nowait(item)
        return _OK, size

    async def get_nowait_batch(self, count: int) -> tuple[int, Any]:
        """``count`` items in order, or none if there are fewer: (_OK, items) or (_EMPTY, the size)."""
        size = self.items.qsize()
        if count > size:
            return _EMPTY, size
        return _OK, [self.items.get_nowait() for _ in range(count)]


_QueueActorClass: ActorClass | None = None


def _actor_class() -> ActorClass:
    global _QueueActorClass
    if _QueueActorClass is None:
        _QueueActorClass = ActorClass(_QueueActor, {})
    return _QueueActorClass


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A FIFO queue of at most ``maxsize`` items (0: no bound), held by an actor created with
    ``actor_options`` (those of ``.options()``, e.g. ``{"num_cpus": 1}``)."""

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"Queue(maxsize=...) takes an int, got {type(maxsize).__qualname__}")
        self.maxsize = maxsize
        self.actor = _actor_class().options(**(actor_options or {})).remote(maxsize)

    # -- sizes -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """How many items the queue holds now."""
        return api.get(self._actor().qsize.remote())

    def qsize(self) -> int:
        """How many items the queue holds now (as `size`)."""
        return self.size()

    def empty(self) -> bool:
        """Whether the queue holds no item now."""
        return api.get(self._actor().empty.remote())

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` items now (never, for an unbounded queue)."""
        return api.get(self._actor().full.remote())

    # -- put ---------------------------------------------------------------------------------

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; if the queue is full, wait up to ``timeout`` seconds (None: no limit) for
        room, or with ``block=False`` do not wait. Raises Full if there was no room, ValueError
        for a negative timeout. Producers waiting on a full queue are served in no set order."""
        if not block:
            status = api.get(self._actor().put_nowait.remote(item))
        else:
            _check_timeout(timeout)
            status = api.get(self._actor().put.remote(item, timeout))
        if status == _FULL:
            raise Full

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """`put` for async code: awaits the actor's answer instead of blocking the thread."""
        if not block:
            status = await self._actor().put_nowait.remote(item)
        else:
            _check_timeout(timeout)
            status = await self._actor().put.remote(item, timeout)
        if status == _FULL:
            raise Full

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Add all of ``items`` in order, or none: raises Full if they do not all fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        items = list(items)
        status, size = api.get(self._actor().put_nowait_batch.remote(items))
        if status == _FULL:
            raise Full(f"Cannot add {len(items)} items to queue of size {size} and maxsize {self.maxsize}.")

    # -- get ---------------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the first item; if the queue is empty, wait up to ``timeout``
        seconds (None: no limit), or with ``block=False`` do not wait. Raises Empty if no item
        came, ValueError for a negative timeout. Consumers waiting on an empty queue are served
        in no set order."""
        if not block:
            status, item = api.get(self._actor().get_nowait.remote())
        else:
            _check_timeout(timeout)
            status, item = api.get(self._actor().get.remote(timeout))
        if status == _EMPTY:
            raise Empty
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """`get` for async code: awaits the actor's answer instead of blocking the thread."""
        if not block:
            status, item = await self._actor().get_nowait.remote()
        else:
            _check_timeout(timeout)
            status, item = await self._actor().get.remote(timeout)
        if status == _EMPTY:
            raise Empty
        return item

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list:
        """Remove and return the first ``num_items`` items in order; raises Empty (and removes
        none) if the queue holds fewer."""
        if not isinstance(num_items, int) or isinstance(num_items, bool):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        status, result = api.get(self._actor().get_nowait_batch.remote(num_items))
        if status == _EMPTY:
            raise Empty(f"Cannot get {num_items} items from queue of size {result}.")
        return result

    # -- the actor ---------------------------------------------------------------------------

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """End the queue's actor, which frees what it holds. Without ``force``, the calls this
        caller sent before are answered first (up to ``grace_period_s`` seconds); with it, the
        actor ends at once. Calls still waiting fail with ActorDiedError."""
        if self.actor is None:
            return
        actor, self.actor = self.actor, None
        if not force:
            api.wait([actor.qsize.remote()], timeout=grace_period_s)  # ordered after this caller's calls
        kill(actor, no_restart=True)

    def _actor(self):
        actor = self.actor
        if actor is None:
            raise RuntimeError("this Queue was shut down: its actor is gone")
        return actor
