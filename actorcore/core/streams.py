"""Generator tasks, the caller's side: `ObjectRefGenerator` and the streams it reads.

A generator task's Executor sends each item to the task's owner as it is produced
(`GeneratorItem`), then `GeneratorEnd` (asked, so every item is recorded before the task's
result is); see docs/architecture.md, "Streaming generators". The owner records each item as
an object it owns (``<task id>.<index + 1>``; ``<task id>.0`` is the task's own return, which
`ObjectRefGenerator.completed` gives) and wakes whoever waits for it. Items of a task that runs
again after its worker died are recorded once: the new attempt asks how many there are
(`GeneratorResume`) and sends only the rest.

Under backpressure (``_generator_backpressure_num_objects``) the owner tells the producing
Executor how many items the caller has taken (`GeneratorConsumed`); the Executor pauses while
that many are produced and not yet taken.

Items are recorded on the actor-system loop; `next()` runs on the user's thread and takes
the stream's lock, so it returns at once when its item is there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from ..kernel import ActorRef, ActorSystem
from ..object_ref import ObjectRef
from ..protocol import Failed, GeneratorConsumed, GeneratorEnd, GeneratorItem, GeneratorResume
from .object_table import ObjectTable

__all__ = ["NIL_ID", "DynamicObjectRefGenerator", "ObjectRefGenerator", "Stream", "StreamTable", "item_id"]

#: The id of the ref `_next_sync` returns when no item came within its timeout (Ray's nil ref).
NIL_ID = "nil"


def item_id(task_id: str, index: int) -> str:
    """The object id of item `index` (from 0) of generator task `task_id`."""
    return f"{task_id}.{index + 1}"


class Stream:
    """What the owner knows of one generator task's items (guarded by `lock`)."""

    __slots__ = ("closed", "consumed", "done", "dynamic", "failed", "holds", "lock", "producer", "received",
                 "task_id", "waiters")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.lock = threading.Condition(threading.Lock())
        self.received = 0  # items recorded, in order
        self.consumed = 0  # items the caller has taken
        self.done = False  # the task's own return is there (it comes after GeneratorEnd)
        self.failed = False  # ... and it is an error (e.g. cancelled): no more items will come
        self.closed = False  # its ObjectRefGenerator is gone: items are dropped
        self.dynamic = False
        self.producer: ActorRef | None = None  # the Executor to tell GeneratorConsumed
        self.holds: list = []  # refs of a dynamic task's items, until its return is freed
        self.waiters: list = []  # (event loop, future) of `async` readers and of `wait`

    def finished(self) -> bool:
        """Every item has been taken and no more will come (call with `lock` held)."""
        return self.done and self.consumed >= self.received

    def ready(self) -> bool:
        """`next()` would return at once: an item is there, or the stream is finished."""
        return self.consumed < self.received or self.finished()

    def notify(self) -> None:
        """Wake every reader (call with `lock` held)."""
        self.lock.notify_all()
        waiters, self.waiters = self.waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)


class StreamTable:
    """The streams of the generator tasks this process owns."""

    def __init__(self, system: ActorSystem, owner: ActorRef, objects: ObjectTable) -> None:
        self._system = system
        self._loop = system.loop
        self._owner = owner
        self._objects = objects
        self._streams: dict[str, Stream] = {}
        self._dynamic: list[Stream] = []

    def open(self, completion: ObjectRef) -> ObjectRefGenerator:
        """The generator of the streaming task whose return is `completion` (user thread)."""
        task_id = completion.id.rpartition(".")[0]
        stream = self._streams.setdefault(task_id, Stream(task_id))
        self._loop.call_soon_threadsafe(self._watch_completion, stream, ObjectRef(completion.id, self._owner))
        return ObjectRefGenerator(completion, stream, self)

    def stream_of(self, object_id: str) -> Stream | None:
        """The stream whose item or return `object_id` is, if this process owns it."""
        return self._streams.get(object_id.rpartition(".")[0])

    # -- the loop ----------------------------------------------------------------------------

    def _watch_completion(self, stream: Stream, completion: ObjectRef) -> None:
        future = self._objects.payload_future(completion)

        def done(future: asyncio.Future) -> None:
            failed = future.cancelled() or type(future.result()) is Failed
            with stream.lock:
                stream.done = True
                stream.failed = failed
                stream.notify()
            self._forget_if_done(stream)

        future.add_done_callback(done)

    def on_item(self, item: GeneratorItem) -> None:
        """Record item `item.index` of its task (a copy already recorded is dropped)."""
        stream = self._streams.get(item.task_id)
        if stream is None:
            if not item.dynamic and f"{item.task_id}.0" not in self._objects:
                return  # a late copy, from an attempt that died, of a stream already gone
            stream = self._streams.setdefault(item.task_id, Stream(item.task_id))
            if item.dynamic:
                stream.dynamic = True
                self._sweep_dynamic()
                self._dynamic.append(stream)
        if item.producer is not None:
            stream.producer = item.producer
        if item.index != stream.received or stream.failed:
            if item.producer is not None:  # a new attempt catching up: it may not pause for these
                item.producer.tell(GeneratorConsumed(item.task_id, stream.consumed))
            return
        object_id = item_id(item.task_id, item.index)
        objects = self._objects
        objects.expect([object_id])
        objects.resolve(object_id, item.payload)
        if stream.closed:
            objects.release(object_id)
        elif stream.dynamic:
            stream.holds.append(ObjectRef(object_id, self._owner, objects))  # takes over the count
        with stream.lock:
            stream.received += 1
            stream.notify()

    def on_end(self, end: GeneratorEnd, retry: bool) -> None:
        """The generator of `end.task_id` made `end.count` items, then raised `end.error` (if
        not None): the last item, unless the task runs again for it (`retry`)."""
        stream = self._streams.get(end.task_id)
        if stream is None or retry:
            return
        if end.error is not None and not stream.failed:
            self.on_item(GeneratorItem(end.task_id, stream.received, end.error))

    def resume(self, resume: GeneratorResume) -> tuple[int, int]:
        """A new attempt of a generator task starts: how many items are recorded (it skips
        them) and how many the caller took (for its backpressure); it is the producer now."""
        stream = self._streams.get(resume.task_id)
        if stream is None:
            return 0, 0
        with stream.lock:
            if resume.producer is not None:
                stream.producer = resume.producer
            return stream.received, stream.consumed

    def close(self, stream: Stream) -> None:
        """Its ObjectRefGenerator is gone: free the items not taken (on the loop)."""
        with stream.lock:
            stream.closed = True
            untaken = range(stream.consumed, stream.received)
            stream.consumed = stream.received
        for index in untaken:
            self._objects.release(item_id(stream.task_id, index))
        self._forget_if_done(stream)

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.closed and stream.done:
            self._streams.pop(stream.task_id, None)

    def _sweep_dynamic(self) -> None:
        """Drop the holds on the items of dynamic tasks whose return has been freed."""
        keep = []
        for stream in self._dynamic:
            if f"{stream.task_id}.0" in self._objects:
                keep.append(stream)
            else:
                stream.holds = []
                self._streams.pop(stream.task_id, None)
        self._dynamic = keep

    # -- wait() ------------------------------------------------------------------------------

    def wait(self, waitables: list, num_returns: int, timeout: float | None) -> tuple[list, list]:
        """`wait()` over refs and generators (a generator is ready when `next()` would not block)."""
        future = asyncio.run_coroutine_threadsafe(self._wait(waitables, num_returns, timeout), self._loop)
        ready_indexes = future.result()
        ready = [w for i, w in enumerate(waitables) if i in ready_indexes]
        not_ready = [w for i, w in enumerate(waitables) if i not in ready_indexes]
        return ready, not_ready

    async def _wait(self, waitables: list, num_returns: int, timeout: float | None) -> set:
        futures = []
        for waitable in waitables:
            if isinstance(waitable, ObjectRefGenerator):
                futures.append(self._ready_future(waitable._stream))
            else:
                futures.append(self._objects.payload_future(waitable))
        pending = {future for future in futures if not future.done()}
        if len(futures) - len(pending) < num_returns and pending:
            deadline = None if timeout is None else self._loop.time() + timeout
            while len(futures) - len(pending) < num_returns and pending:
                remaining = None if deadline is None else deadline - self._loop.time()
                if remaining is not None and remaining <= 0:
                    break
                _, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
        ready: set[int] = set()
        for index, future in enumerate(futures):
            if future.done() and not future.cancelled():
                ready.add(index)
                if len(ready) == num_returns:
                    break
        return ready

    def _ready_future(self, stream: Stream) -> asyncio.Future:
        future = self._loop.create_future()
        with stream.lock:
            if stream.ready():
                future.set_result(None)
            else:
                stream.waiters.append((self._loop, future))
        return future


class ObjectRefGenerator:
    """The refs of a streaming generator task's items, in order, as they are produced.

    ``next(gen)`` blocks until the next item exists and returns its ObjectRef; ``async for``
    works too. An exception raised by the generator comes as the ref of the step that raised
    it (`get` raises it), and iteration stops after it; a task that failed otherwise (its worker
    died past `max_retries`, it was cancelled) ends with the ref of its return, `completed()`.
    `wait()` accepts it: ready when ``next()`` would not block. It cannot be pickled (passed to
    a task or returned), as in Ray.
    """

    def __init__(self, completion: ObjectRef, stream: Stream, table: StreamTable) -> None:
        self._completion = completion
        self._stream = stream
        self._table = table
        self._raised = False  # the failed return has been handed out as the last item

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._next_sync()

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        return await self._next_async()

    def completed(self) -> ObjectRef:
        """The ref of the task's own return: ready when the task is done; `get` returns None,
        or raises the error that ended the task (other than its generator's own exception)."""
        return self._completion

    def next_ready(self) -> bool:
        """Whether ``next()`` would return an item at once (False once finished)."""
        stream = self._stream
        with stream.lock:
            return stream.consumed < stream.received or (stream.failed and not self._raised)

    def is_finished(self) -> bool:
        """Whether every item has been taken: ``next()`` would raise StopIteration."""
        stream = self._stream
        with stream.lock:
            return stream.finished() and (self._raised or not stream.failed)

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """The next item's ref, waiting up to `timeout_s` seconds (None or < 0: no limit);
        a nil ref (``ref.is_nil()``) if none came in time. Raises StopIteration at the end."""
        stream = self._stream
        with stream.lock:
            if not stream.ready():
                if timeout_s is None or timeout_s < 0:
                    stream.lock.wait_for(stream.ready)
                elif not stream.lock.wait_for(stream.ready, timeout_s):
                    return ObjectRef(NIL_ID, None)
            ref = self._take()
        if ref is None:
            raise StopIteration
        return ref

    async def _next_async(self, timeout_s: float | None = None) -> ObjectRef:
        """`_next_sync` for async code: waits without blocking the event loop."""
        stream = self._stream
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None or timeout_s < 0 else loop.time() + timeout_s
        while True:
            with stream.lock:
                if stream.ready():
                    ref = self._take()
                    break
                future = loop.create_future()
                stream.waiters.append((loop, future))
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait_for(future, remaining)
            except asyncio.TimeoutError:
                return ObjectRef(NIL_ID, None)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _take(self) -> ObjectRef | None:
        """The next item (call with the lock held, when ready): its ref, the failed return's
        ref once, or None at the end."""
        stream = self._stream
        if stream.consumed < stream.received:
            index = stream.consumed
            stream.consumed += 1
            if stream.producer is not None:
                stream.producer.tell(GeneratorConsumed(stream.task_id, stream.consumed))
            table = self._table
            return ObjectRef(item_id(stream.task_id, index), table._owner, table._objects)
        if stream.failed and not self._raised:
            self._raised = True
            return self._completion
        return None

    def __del__(self) -> None:
        table = getattr(self, "_table", None)
        if table is None:
            return
        try:
            table._loop.call_soon_threadsafe(table.close, self._stream)
        except RuntimeError:  # the runtime has shut down
            pass

    def __reduce__(self):
        raise TypeError("an ObjectRefGenerator cannot be pickled: it cannot be passed to a task or an "
                        "actor, nor returned by one (iterate it here and pass its ObjectRefs instead)")

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._stream.task_id})"


class DynamicObjectRefGenerator:
    """The value of a num_returns="dynamic" task: the refs of the items its generator made
    (the last one holds the generator's exception, if it raised). Iterating it takes them."""

    def __init__(self, refs: list) -> None:
        self._refs = list(refs)

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
