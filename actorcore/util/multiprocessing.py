"""`Pool`: the standard library's `multiprocessing.Pool` over actors (Ray's `ray.util.multiprocessing`).

A pool is ``processes`` actors (default: the cluster's CPUs), each running ``initializer``
once. Work goes to them in chunks, round-robin: one actor call runs a whole chunk and answers
a list with one entry per item, the item's result or the exception it raised, so one failing
item does not fail its chunk. A caller gets the exception an item raised, itself (not wrapped);
an error of the call (its actor died) stands for every item of the chunk.

- `map`/`starmap` (and their ``_async`` forms) send everything at once, in chunks of
  ``chunksize`` (default: the items over four chunks per process, rounded up); the results
  are in the order of the items, and the first failed item's exception is raised.
- `imap`/`imap_unordered` keep one chunk (default: one item) per process in flight and send
  the next as results are taken, so an endless iterator works; a failed item is yielded as
  a `PoolTaskError` (its ``underlying`` is the exception), as Ray does (the standard library
  raises it instead); ``next(timeout)`` raises the builtin TimeoutError.
- `apply_async` and the ``_async`` maps return an `AsyncResult`. Results are waited for on
  the futures of their refs, never by polling; ``callback`` and ``error_callback`` run on one
  thread of the pool's own, in the order results complete, before the result is `ready`;
  ``get(timeout)`` raises `multiprocessing.TimeoutError`, as Ray's does.
- `close` lets sent work finish and then ends each actor; `terminate` ends them now (and is
  what leaving the ``with`` block does); `join` waits for the ends of a closed pool.
  ``maxtasksperchild`` counts the chunks an actor ran and replaces it after that many.

``ray_address`` (else the environment variable ``RAY_ADDRESS``, else ``ACTORCORE_ADDRESS``)
is the cluster to join when this process is not initialized; otherwise a local cluster with
``processes`` CPUs starts. ``context`` is accepted and ignored, as in Ray.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import itertools
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import TimeoutError  # what AsyncResult.get raises, as in Ray
from typing import Any

from .. import api
from ..actor import ActorClass, kill
from ..env import ADDRESS_ENV

__all__ = ["AsyncResult", "IMapIterator", "Pool", "PoolTaskError", "TimeoutError"]

log = logging.getLogger(__name__)

RAY_ADDRESS_ENV = "RAY_ADDRESS"


class PoolTaskError(Exception):
    """An item's exception (``underlying``), in a chunk's answer: the chunk itself succeeded."""

    def __init__(self, underlying: BaseException) -> None:
        super().__init__(underlying)
        self.underlying = underlying


class _PoolProcess:
    """One process of a pool: runs ``initializer`` once, then chunks of calls."""

    def __init__(self, initializer: Callable | None, initargs: tuple) -> None:
        if initializer is not None:
            initializer(*initargs)

    def ping(self) -> None:
        return None

    def run_chunk(self, func: Callable, chunk: list) -> list:
        results = []
        for args, kwargs in chunk:
            try:
                results.append(func(*args, **kwargs) if kwargs else func(*args))
            except Exception as error:  # noqa: BLE001 - the item's result is its exception
                results.append(PoolTaskError(error))
        return results


_PoolProcessClass: ActorClass | None = None


def _process_class() -> ActorClass:
    global _PoolProcessClass
    if _PoolProcessClass is None:
        _PoolProcessClass = ActorClass(_PoolProcess, {})
    return _PoolProcessClass


def _chunk_results(future: concurrent.futures.Future) -> list:
    """The entries of a finished chunk; a failed call is one entry, its error."""
    error = future.exception()
    return [PoolTaskError(error)] if error is not None else future.result()


def _unwrap(entry: Any) -> Any:
    if isinstance(entry, PoolTaskError):
        raise entry.underlying
    return entry


class _CallbackThread:
    """The pool's thread for user callbacks (never run on the runtime's own threads).

    It starts with the first job and, once the pool `finish`-ed, ends when no job is left; a
    job that comes later (a result that fails after `terminate`) starts it again.
    """

    def __init__(self) -> None:
        self._jobs: deque = deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._finished = False

    def run(self, job: Callable[[], None]) -> None:
        with self._wakeup:
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="actorcore-pool-callbacks", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def finish(self) -> None:
        """Let the thread end once its jobs are done, and wait for that (unless called from it)."""
        with self._wakeup:
            self._finished = True
            thread = self._thread
            self._wakeup.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._jobs and not self._finished:
                    self._wakeup.wait()
                if not self._jobs:
                    self._thread = None
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:
                log.exception("a multiprocessing.Pool callback raised")


class AsyncResult:
    """The result of `Pool.apply_async` (one value) or of an ``_async`` map (a list)."""

    def __init__(self, futures: list, single: bool, callback: Callable | None,
                 error_callback: Callable | None, callbacks: _CallbackThread) -> None:
        self._futures = futures
        self._single = single
        self._callback = callback
        self._error_callback = error_callback
        self._callbacks = callbacks
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._left = len(futures)
        self._failed = False
        if not futures:
            self._finish()
        for future in futures:
            future.add_done_callback(self._chunk_done)

    def _chunk_done(self, future: concurrent.futures.Future) -> None:
        # On the runtime's thread: the user's callbacks go to the pool's thread.
        first_error = None
        with self._lock:
            if not self._failed:
                failed = next((e for e in _chunk_results(future) if isinstance(e, PoolTaskError)), None)
                if failed is not None:
                    self._failed = True
                    first_error = failed.underlying
            self._left -= 1
            last = self._left == 0
        if first_error is not None and self._error_callback is not None:
            self._callbacks.run(lambda: self._error_callback(first_error))
        if last:
            if self._callback is not None or self._error_callback is not None:
                self._callbacks.run(self._finish)
            else:
                self._finish()

    def _finish(self) -> None:
        try:
            if self._callback is not None and not self._failed:
                values = [entry for future in self._futures for entry in _chunk_results(future)]
                self._callback(values[0] if self._single else values)
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is ready, or ``timeout`` seconds; never raises TimeoutError."""
        self._ready.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result (a list for a map); raises TimeoutError if not ready within ``timeout``
        seconds, or the exception of the first failed item."""
        if not self._ready.wait(timeout):
            raise TimeoutError
        values = [_unwrap(entry) for future in self._futures for entry in _chunk_results(future)]
        return values[0] if self._single else values

    def ready(self) -> bool:
        """Whether every call finished (and the callbacks ran)."""
        return self._ready.is_set()

    def successful(self) -> bool:
        """Whether no item failed; raises ValueError if the result is not ready yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not self._failed


class IMapIterator:
    """The iterator `imap` and `imap_unordered` return; ``next(timeout)`` raises TimeoutError."""

    def __init__(self, pool: Pool, func: Callable, iterable: Iterable, chunksize: int, ordered: bool) -> None:
        self._pool = pool
        self._func = func
        self._items = iter(iterable)
        self._chunksize = chunksize
        self._ordered = ordered
        self._exhausted = False
        self._chunks: dict[int, concurrent.futures.Future] = {}
        self._submitted = 0
        self._next_chunk = 0  # ordered: the chunk whose results come next
        self._finished: queue.SimpleQueue = queue.SimpleQueue()  # unordered: chunk indices as they finish
        self._buffer: deque = deque()
        self._fill()

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        while not self._buffer:
            self._fill()
            if not self._chunks:
                raise StopIteration
            if self._ordered:
                index = self._next_chunk
                try:
                    self._chunks[index].exception(timeout)
                except concurrent.futures.TimeoutError:
                    raise builtins.TimeoutError from None
                self._next_chunk += 1
            else:
                try:
                    index = self._finished.get(timeout=timeout)
                except queue.Empty:
                    raise builtins.TimeoutError from None
            self._buffer.extend(_chunk_results(self._chunks.pop(index)))
            self._fill()
        # As in Ray (unlike the standard library), a failed item is yielded, not raised: its
        # PoolTaskError, whose ``underlying`` is the item's exception.
        return self._buffer.popleft()

    def _fill(self) -> None:
        """Send chunks until one per process is running (or the items are used up)."""
        running = sum(not future.done() for future in self._chunks.values())
        while not self._exhausted and running < len(self._pool._processes):
            chunk = [((item,), None) for item in itertools.islice(self._items, self._chunksize)]
            if len(chunk) < self._chunksize:
                self._exhausted = True
            if not chunk:
                return
            index = self._submitted
            self._submitted += 1
            future = self._pool._run_chunk(index, self._func, chunk).future()
            self._chunks[index] = future
            if not self._ordered:
                future.add_done_callback(lambda _, index=index: self._finished.put(index))
            running += 1


class Pool:
    """A pool of ``processes`` actors running functions, with `multiprocessing.Pool`'s methods.

    ``initializer(*initargs)`` runs once in each; ``maxtasksperchild`` chunks later an actor is
    replaced; ``ray_remote_args`` are the actors' options (as ``.options()`` takes them).
    Raises ValueError if ``processes`` is not positive or exceeds the cluster's CPUs, and the
    initializer's error if it failed.
    """

    def __init__(self, processes: int | None = None, initializer: Callable | None = None,
                 initargs: Iterable | None = None, maxtasksperchild: int | None = None,
                 context: Any = None, ray_address: str | None = None,
                 ray_remote_args: dict | None = None) -> None:
        if processes is not None and (not isinstance(processes, int) or isinstance(processes, bool)):
            raise TypeError(f"Pool(processes=...) takes an int, got {type(processes).__qualname__}")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError(f"maxtasksperchild must be a positive int, got {maxtasksperchild!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if context is not None:
            log.warning("multiprocessing.Pool(context=...) is ignored: the pool's processes are actors")
        self._closed = False
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._maxtasksperchild = maxtasksperchild
        self._callbacks = _CallbackThread()
        self._stopping: list[threading.Event] = []  # set when a stopped process was ended
        self._next_process = 0
        processes = self._connect(processes, ray_address)
        self._actor_class = _process_class().options(**(ray_remote_args or {}))
        self._processes: list[list] = [[self._start_process(), 0] for _ in range(processes)]
        api.get([actor.ping.remote() for actor, _ in self._processes])

    @staticmethod
    def _connect(processes: int | None, ray_address: str | None) -> int:
        if not api.is_initialized():
            address = ray_address or os.environ.get(RAY_ADDRESS_ENV) or os.environ.get(ADDRESS_ENV)
            if address in (None, "local"):
                api.init(address=address, num_cpus=processes)
            else:
                api.init(address=address)
        cpus = int(api.cluster_resources().get("CPU", 0))
        if processes is None:
            processes = cpus
        if processes <= 0:
            raise ValueError("Processes in the pool must be >0.")
        if cpus < processes:
            raise ValueError(f"Tried to start a pool with {processes} processes on an existing cluster, "
                             f"but there are only {cpus} CPUs in the cluster.")
        return processes

    def _start_process(self):
        return self._actor_class.remote(self._initializer, self._initargs)

    def _stop_process(self, actor) -> None:
        """End ``actor`` once the calls sent to it so far have finished."""
        ended = threading.Event()

        def end() -> None:
            try:
                kill(actor, no_restart=True)
            finally:
                ended.set()

        self._stopping.append(ended)
        actor.ping.remote().future().add_done_callback(lambda _: self._callbacks.run(end))

    def _run_chunk(self, index: int, func: Callable, chunk: list):
        slot = self._processes[index % len(self._processes)]
        actor = slot[0]
        ref = actor.run_chunk.remote(func, chunk)
        slot[1] += 1
        if self._maxtasksperchild is not None and slot[1] >= self._maxtasksperchild:
            self._stop_process(actor)
            slot[0], slot[1] = self._start_process(), 0
        return ref

    # -- the calls ----------------------------------------------------------------------------

    def apply(self, func: Callable, args: tuple | None = None, kwargs: dict | None = None) -> Any:
        """``func(*args, **kwargs)`` on one of the pool's processes; its result."""
        return self.apply_async(func, args, kwargs).get()

    def apply_async(self, func: Callable, args: tuple | None = None, kwargs: dict | None = None,
                    callback: Callable | None = None, error_callback: Callable | None = None) -> AsyncResult:
        """`apply` without waiting: an `AsyncResult` of the one value."""
        self._check_running()
        index, self._next_process = self._next_process, self._next_process + 1
        ref = self._run_chunk(index, func, [(tuple(args or ()), dict(kwargs or {}))])
        return AsyncResult([ref.future()], True, callback, error_callback, self._callbacks)

    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """``[func(x) for x in iterable]``, run in chunks over the processes."""
        return self._map_async(func, iterable, chunksize, False, None, None).get()

    def map_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                  callback: Callable | None = None, error_callback: Callable | None = None) -> AsyncResult:
        """`map` without waiting: an `AsyncResult` of the list."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """``[func(*args) for args in iterable]``, run in chunks over the processes."""
        return self._map_async(func, iterable, chunksize, True, None, None).get()

    def starmap_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                      callback: Callable | None = None, error_callback: Callable | None = None) -> AsyncResult:
        """`starmap` without waiting: an `AsyncResult` of the list."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """An iterator of ``func(x)`` for each item, in order, sent a chunk per process at a time."""
        self._check_running()
        return IMapIterator(self, func, iterable, self._check_chunksize(chunksize) or 1, ordered=True)

    def imap_unordered(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """As `imap`, but each result comes as soon as its chunk finished."""
        self._check_running()
        return IMapIterator(self, func, iterable, self._check_chunksize(chunksize) or 1, ordered=False)

    def _map_async(self, func, iterable, chunksize, unpack, callback, error_callback) -> AsyncResult:
        self._check_running()
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        chunksize = self._check_chunksize(chunksize) or -(-len(items) // (len(self._processes) * 4)) or 1
        calls = [(tuple(item), None) if unpack else ((item,), None) for item in items]
        refs = [self._run_chunk(index, func, calls[start:start + chunksize])
                for index, start in enumerate(range(0, len(calls), chunksize))]
        return AsyncResult([ref.future() for ref in refs], False, callback, error_callback, self._callbacks)

    @staticmethod
    def _check_chunksize(chunksize: int | None) -> int | None:
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize <= 0):
            raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")
        return chunksize

    # -- the pool's life ----------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.terminate()

    def close(self) -> None:
        """Take no more work; each process ends once the work sent to it has finished."""
        if self._closed:
            return
        self._closed = True
        for actor, _ in self._processes:
            self._stop_process(actor)

    def terminate(self) -> None:
        """Take no more work and end every process now (work still running fails)."""
        self._closed = True
        for actor, _ in self._processes:
            kill(actor, no_restart=True)
        self._callbacks.finish()

    def join(self) -> None:
        """Wait until the processes of a closed pool have ended; raises ValueError if it is not closed."""
        if not self._closed:
            raise ValueError("Pool is still running")
        for ended in self._stopping:
            ended.wait()
        self._callbacks.finish()
