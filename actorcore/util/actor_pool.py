"""`ActorPool`: a fixed set of actors fed work one item per actor at a time (Ray's `ray.util.ActorPool`).

The pool is a driver-side object built on the public API only. Work is a function
``fn(actor, value)`` that starts a call on ``actor`` and returns its ObjectRef (or a list of
refs); an actor is busy from that call until its result is taken out of the pool, and work
submitted while every actor is busy waits, in order, for the next one to be freed.

Results come back in submission order (`get_next`, `map`) or as they finish
(`get_next_unordered`, `map_unordered`). As in Ray: taking a result from an empty pool raises
``StopIteration("No more results to get")``; a timeout raises `TimeoutError`, leaving the
result in the pool unless ``ignore_if_timedout`` drops it (its actor is freed, the work is
forgotten); an actor whose call failed with `ActorDiedError` is not returned to the pool; and
`get_next` after `get_next_unordered` has passed the next index raises ValueError.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import api
from ..exceptions import ActorDiedError

__all__ = ["ActorPool"]

_TIMEOUT_MESSAGE = "Timed out waiting for result"


def _key(future) -> Any:
    """A hashable key for what ``fn`` returned: the ref, or the tuple of its refs."""
    return tuple(future) if isinstance(future, list) else future


def _first_ref(future):
    """The ref to wait on for ``future`` (its first ref if it is a list)."""
    return future[0] if isinstance(future, list) and future else future


class ActorPool:
    """A pool over the actor handles ``actors``: ``map``/``submit`` work, take results in order or as they finish."""

    def __init__(self, actors: Iterable) -> None:
        self._idle_actors: list = list(actors)
        # index of a submission -> (its future, the actor running it)
        self._in_flight: dict[int, tuple[Any, Any]] = {}
        self._index_of: dict[Any, int] = {}  # future key -> index
        self._waiting: deque = deque()  # (fn, value) submitted while no actor was idle
        self._next_task_index = 0
        self._next_return_index = 0

    # -- submitting ------------------------------------------------------------------------

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable) -> Iterator:
        """Apply ``fn(actor, value)`` to every value over the pool's actors; an iterator of the
        results in the order of ``values``. Results still in the pool are dropped first, as in Ray."""
        self._drop_results(ordered=True)
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable) -> Iterator:
        """As `map`, but the iterator yields each result as soon as it is ready."""
        self._drop_results(ordered=False)
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run ``fn(actor, value)`` on an idle actor now, or on the next one freed; take its
        result with `get_next` or `get_next_unordered`."""
        if not self._idle_actors:
            self._waiting.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        index = self._next_task_index
        self._in_flight[index] = (future, actor)
        self._index_of[_key(future)] = index
        self._next_task_index += 1

    # -- taking results --------------------------------------------------------------------

    def has_next(self) -> bool:
        """Whether a submitted result has not been taken yet."""
        return bool(self._in_flight)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order, waiting up to ``timeout`` seconds (None: no limit).

        Raises StopIteration if nothing is pending, TimeoutError on timeout (the result is then
        dropped and its actor freed if ``ignore_if_timedout``), ValueError if `get_next_unordered`
        already returned a later result, and the call's own error if it failed.
        """
        if not self._in_flight:
            raise StopIteration("No more results to get")
        index = self._next_return_index
        if index >= self._next_task_index or index not in self._in_flight:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future, _ = self._in_flight[index]
        if timeout is not None:
            ready, _ = api.wait([_first_ref(future)], num_returns=1, timeout=timeout)
            if not ready:
                if not ignore_if_timedout:
                    raise TimeoutError(_TIMEOUT_MESSAGE)
                self._next_return_index += 1
                self._forget(index, free_actor=True)
                raise TimeoutError(f"{_TIMEOUT_MESSAGE}. The task {future} has been ignored.")
        self._next_return_index += 1
        return self._take(index)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Any finished result (the first to finish), waiting up to ``timeout`` seconds.

        Raises as `get_next`; with ``ignore_if_timedout`` a timeout drops the oldest pending result.
        """
        if not self._in_flight:
            raise StopIteration("No more results to get")
        refs = [_first_ref(future) for future, _ in self._in_flight.values()]
        ready, _ = api.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            index = self._index_of_ref(ready[0])
        else:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMEOUT_MESSAGE)
            # Ray names no result to drop here (its own code fails with UnboundLocalError): the
            # oldest one is dropped, as get_next would.
            index = min(self._in_flight)
            future, _ = self._in_flight[index]
            self._next_return_index = max(self._next_return_index, index + 1)
            self._forget(index, free_actor=True)
            raise TimeoutError(f"{_TIMEOUT_MESSAGE}. The task {future} has been ignored.")
        self._next_return_index = max(self._next_return_index, index + 1)
        return self._take(index)

    # -- the actors ------------------------------------------------------------------------

    def has_free(self) -> bool:
        """Whether an actor is idle and no submitted work waits for one."""
        return bool(self._idle_actors) and not self._waiting

    def pop_idle(self):
        """Remove an idle actor from the pool and return it; None if none is free (`has_free`)."""
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor) -> None:
        """Add ``actor`` to the pool (it takes waiting work at once, if any).

        Raises ValueError if it is already in the pool, idle or busy.
        """
        busy = [owner for _, owner in self._in_flight.values()]
        if any(actor == member for member in self._idle_actors + busy):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    # -- inside ----------------------------------------------------------------------------

    def _results(self, take: Callable[[], Any]) -> Iterator:
        while self.has_next():
            yield take()

    def _drop_results(self, *, ordered: bool) -> None:
        """Drop every result still in the pool, finished or not, waiting for none (as Ray's map
        does: an unfinished call's actor is taken as free again)."""
        take = self.get_next if ordered else self.get_next_unordered
        while self.has_next():
            try:
                take(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    def _index_of_ref(self, ref) -> int:
        index = self._index_of.get(ref)
        if index is not None:
            return index
        for index, (future, _) in self._in_flight.items():  # a list future: its first ref is ready
            if _first_ref(future) == ref:
                return index
        raise KeyError(ref)

    def _forget(self, index: int, *, free_actor: bool):
        future, actor = self._in_flight.pop(index)
        del self._index_of[_key(future)]
        if free_actor:
            self._return_actor(actor)
        return future, actor

    def _take(self, index: int) -> Any:
        future, actor = self._forget(index, free_actor=False)
        alive = True
        try:
            return api.get(future)
        except ActorDiedError:
            alive = False
            raise
        finally:
            if alive:
                self._return_actor(actor)
            elif self._waiting and self._idle_actors:
                self.submit(*self._waiting.popleft())

    def _return_actor(self, actor) -> None:
        self._idle_actors.append(actor)
        if self._waiting:
            self.submit(*self._waiting.popleft())
