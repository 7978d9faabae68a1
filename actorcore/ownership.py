"""Object ownership in the CoreWorker (DESIGN.md §5: ownership, small and large objects).

The process that creates an object owns it: its table holds the payload (inline bytes for
objects under 100 KiB, a shared-memory segment's name for larger ones) and counts the
references to it (live `ObjectRef`s here, pending tasks that take it as an argument). When
both counts reach zero and the ref never left the process, the object is freed. `put`, `get`
and `wait` run on the user's thread and reach the loop only when they must wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from . import exceptions as exc
from ._logging import get_logger
from .kernel import ActorRef, PeerLostError
from .object_ref import ObjectRef
from .objects import INLINE_THRESHOLD, deserialize, get_shared, put_shared, serialize
from .protocol import (
    Failed,
    FreeObjects,
    GetObject,
    Inline,
    InShm,
    LeaseBlocked,
    LeaseUnblocked,
    RegisterSegment,
)

log = get_logger(__name__)


class Entry:
    __slots__ = ("payload", "waiters", "refs", "pins", "escaped")

    def __init__(self, payload=None, refs: int = 1) -> None:
        self.payload = payload  # Inline | InShm | Failed, None while pending
        self.waiters: list[asyncio.Future] | None = None
        self.refs = refs
        self.pins = 0
        self.escaped = False


def to_payload(value: Any, object_id: str, session: str, store: ActorRef | None, what: str):
    """Serialize a value into an Inline payload, or into shared memory (registered with the store)."""
    try:
        serialized = serialize(value)
    except TypeError as error:
        raise TypeError(f"{what} cannot be serialized: {error}") from None
    if serialized.total_size < INLINE_THRESHOLD or store is None:
        return Inline(serialized.to_bytes())
    name, size = put_shared(session, object_id, serialized)
    store.tell(RegisterSegment(object_id, name, size))
    return InShm(name, size)


def from_payload(payload) -> Any:
    """The value of a payload (raises the error of a Failed one, as `get` does)."""
    if type(payload) is Inline:
        return deserialize(memoryview(payload.data))
    if type(payload) is InShm:
        return get_shared(payload.name, payload.size)
    error = payload.error
    if isinstance(error, exc.TaskError):
        raise error.as_instanceof_cause()
    raise error


# -- submission state ----------------------------------------------------------------------


class ObjectOwnership:
    """The owner's table and put/get/wait; mixed into `CoreWorker`."""

    def local_ref(self, object_id: str) -> ObjectRef:
        entry = self.objects.get(object_id)
        if entry is None:
            return ObjectRef(object_id, self.actor)
        self.loop.call_soon_threadsafe(self._add_ref, object_id)
        return ObjectRef(object_id, self.actor, self)

    def _add_ref(self, object_id: str) -> None:
        entry = self.objects.get(object_id)
        if entry is not None:
            entry.refs += 1

    def mark_escaped(self, object_id: str) -> None:
        entry = self.objects.get(object_id)
        if entry is not None:
            entry.escaped = True

    def release(self, object_id: str) -> None:
        if threading.get_ident() == self.system._thread_id:
            self._release(object_id)
        elif not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._release, object_id)
            except RuntimeError:
                pass

    def _release(self, object_id: str) -> None:
        entry = self.objects.get(object_id)
        if entry is None:
            return
        entry.refs -= 1
        self._maybe_free(object_id, entry)

    def _maybe_free(self, object_id: str, entry: Entry) -> None:
        if entry.refs > 0 or entry.pins > 0 or entry.escaped or entry.payload is None:
            return
        del self.objects[object_id]
        if type(entry.payload) is InShm:
            self.store.tell(FreeObjects([object_id]))

    # -- put / get / wait (user thread) ------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "put() of an ObjectRef is not allowed: the value is already in the object store; "
                "pass the ref itself, or put a list containing it"
            )
        object_id = self.new_id("p")
        payload = to_payload(value, object_id, self.session, self.store, "the value passed to put()")
        self.objects[object_id] = Entry(payload)
        return ObjectRef(object_id, self.actor, self)

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list:
        payloads = self._ready_payloads(refs)
        if payloads is None:
            blocked = self.current_lease is not None
            if blocked:
                self.scheduler.tell(LeaseBlocked(self.current_lease))
            try:
                future = asyncio.run_coroutine_threadsafe(self._gather(refs, timeout), self.loop)
                payloads = future.result()
            finally:
                if blocked:
                    self.scheduler.tell(LeaseUnblocked(self.current_lease))
        return [from_payload(p) for p in payloads]

    def _ready_payloads(self, refs: list[ObjectRef]) -> list | None:
        payloads = []
        objects = self.objects
        for ref in refs:
            entry = objects.get(ref.id)
            if entry is None or entry.payload is None:
                return None
            payloads.append(entry.payload)
        return payloads

    async def _gather(self, refs: list[ObjectRef], timeout: float | None) -> list:
        futures = [self._payload_future(ref) for ref in refs]
        if timeout is not None:
            done, pending = await asyncio.wait(futures, timeout=timeout)
            if pending:
                for future in pending:
                    future.cancel()
                raise exc.GetTimeoutError(
                    f"get timed out after {timeout:g} s: {len(pending)} of {len(refs)} object(s) not ready"
                )
        else:
            await asyncio.wait(futures)
        return [future.result() for future in futures]

    def _payload_future(self, ref: ObjectRef) -> asyncio.Future:
        entry = self.objects.get(ref.id)
        future = self.loop.create_future()
        if entry is not None:
            if entry.payload is not None:
                future.set_result(entry.payload)
            else:
                if entry.waiters is None:
                    entry.waiters = []
                entry.waiters.append(future)
            return future
        if ref.owner == self.actor:
            future.set_result(Failed(exc.ObjectLostError(ref.id, "it was freed: no reference to it was left")))
            return future
        ask = ref.owner.ask(GetObject(ref.id), timeout=None)

        def done(ask_future: asyncio.Future) -> None:
            if future.done():
                return
            if ask_future.cancelled():
                future.cancel()
            elif ask_future.exception() is not None:
                error = ask_future.exception()
                if isinstance(error, PeerLostError):
                    error = exc.OwnerDiedError(ref.id, "its owner's process died")
                future.set_result(Failed(error))
            else:
                future.set_result(ask_future.result())

        ask.add_done_callback(done)
        return future

    async def _payload_for_remote(self, object_id: str):
        entry = self.objects.get(object_id)
        if entry is None:
            return Failed(exc.ObjectLostError(object_id, "its owner has freed it"))
        if entry.payload is None:
            future = self.loop.create_future()
            if entry.waiters is None:
                entry.waiters = []
            entry.waiters.append(future)
            return await future
        return entry.payload

    def _resolve(self, object_id: str, payload) -> None:
        entry = self.objects.get(object_id)
        if entry is None:
            return
        entry.payload = payload
        waiters, entry.waiters = entry.waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(payload)
        self._maybe_free(object_id, entry)

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        result: concurrent.futures.Future = concurrent.futures.Future()

        def on_loop() -> None:
            future = self._payload_future(ref)

            def done(f: asyncio.Future) -> None:
                try:
                    result.set_result(from_payload(f.result()))
                except BaseException as error:  # the error get() would raise
                    result.set_exception(error)

            future.add_done_callback(done)

        self.loop.call_soon_threadsafe(on_loop)
        return result

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> tuple[list, list]:
        ready_ids = self._ready_now(refs, num_returns)
        if ready_ids is None:
            future = asyncio.run_coroutine_threadsafe(self._wait(refs, num_returns, timeout), self.loop)
            ready_ids = future.result()
        ready = [ref for ref in refs if ref.id in ready_ids]
        not_ready = [ref for ref in refs if ref.id not in ready_ids]
        return ready, not_ready

    def _ready_now(self, refs: list[ObjectRef], num_returns: int) -> set | None:
        """The first `num_returns` refs that are ready, if that many are (no trip to the loop)."""
        objects = self.objects
        ready = set()
        for ref in refs:
            entry = objects.get(ref.id)
            if entry is not None and entry.payload is not None:
                ready.add(ref.id)
                if len(ready) == num_returns:
                    return ready
        return None

    async def _wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> set:
        futures = [self._payload_future(ref) for ref in refs]
        ready_count = sum(1 for future in futures if future.done())
        pending = {future for future in futures if not future.done()}
        deadline = None if timeout is None else self.loop.time() + timeout
        while ready_count < num_returns and pending:
            remaining = None if deadline is None else deadline - self.loop.time()
            if remaining is not None and remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            ready_count += len(done)
        for future in pending:
            future.cancel()
        ready: set[str] = set()
        for ref, future in zip(refs, futures):
            if future.done() and not future.cancelled():
                ready.add(ref.id)
                if len(ready) == num_returns:
                    break
        return ready
