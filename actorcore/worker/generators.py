"""Generator tasks, the Executor's side: run a task's generator and send its items to the caller.

A streaming generator task (num_returns="streaming", the default for generator functions)
sends each item to the task's owner as soon as it is produced (`GeneratorItem`: inline under
100 KiB, else in shared memory like any result), then `GeneratorEnd`; its own return is None.
An exception the generator raises is sent as the item of that step and ends it. Under
backpressure (``_generator_backpressure_num_objects``) the generator is not resumed while that
many of its items are produced and not yet taken by the caller (`GeneratorConsumed`). A task
run again (its worker died) asks the owner how many items it has and sends only the rest.

A num_returns="dynamic" task sends its items the same way (asked, so the owner holds them all
before the task's result) and returns a `DynamicObjectRefGenerator` of their refs; a generator
task with an int num_returns returns its first items as those returns, as Ray does. See
docs/architecture.md, "Streaming generators".
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import NoReturn

from .. import exceptions as exc
from ..core import CoreWorker, to_payload
from ..core.streams import DynamicObjectRefGenerator, item_id
from ..kernel import ActorRef, PeerLostError
from ..object_ref import ObjectRef
from ..objects import serialize
from ..protocol import (
    NUM_RETURNS_DYNAMIC,
    Failed,
    GeneratorConsumed,
    GeneratorEnd,
    GeneratorItem,
    GeneratorResume,
    Inline,
)

__all__ = ["GENERATOR_TYPES", "GeneratorRunner", "end_with_node"]

#: What a call returns when its function is a generator function or an async one.
GENERATOR_TYPES = (types.GeneratorType, types.AsyncGeneratorType)

#: How often a generator paused by backpressure checks whether it was cancelled meanwhile.
_PAUSE_POLL_SECONDS = 0.2


def end_with_node() -> NoReturn:
    """End this worker at once: its node's store or control store is unreachable, so its node
    is gone (as the node watch would find). The caller sees the worker die and retries the task
    elsewhere; a reply with an error would make a node's death the task's failure."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream has nothing to flush
            pass
    os._exit(1)

class _Flow:
    """How many items of one streaming task the caller has taken (for backpressure)."""

    __slots__ = ("consumed", "lock", "waiters")

    def __init__(self, consumed: int) -> None:
        self.lock = threading.Condition(threading.Lock())
        self.consumed = consumed
        self.waiters: list = []  # futures of an async generator paused on its actor's loop


class _StreamRun:
    """One run of a streaming generator: the items it sent, and its task's return."""

    __slots__ = ("bound", "completion", "error", "flow", "index", "producer", "runner", "skip", "spec")

    def __init__(self, runner: GeneratorRunner, spec, resumed: tuple[int, int]) -> None:
        self.runner = runner
        self.spec = spec
        self.skip = resumed[0]  # items the owner already has (a task run again)
        self.index = 0
        self.bound = spec.generator_backpressure
        self.flow = runner._flows[spec.task_id] = _Flow(resumed[1]) if self.bound > 0 else None
        self.producer = runner.self_ref if self.flow is not None else None
        self.completion = Inline(serialize(None).to_bytes())
        self.error = None  # the Failed payload of the generator's exception, if it raised

    def send(self, item) -> bool:
        """Send the next item; True if that ends the stream (it could not be serialized)."""
        index = self.index
        self.index += 1
        if index < self.skip:
            return False
        spec = self.spec
        payload = self.runner._payload(spec, index, item)
        spec.owner.tell(GeneratorItem(spec.task_id, index, payload, self.producer))
        return type(payload) is Failed

    def fail(self, error: BaseException) -> None:
        """The generator raised `error`: it ends the stream (see `end`)."""
        if isinstance(error, (exc.TaskCancelledError, asyncio.CancelledError)):
            self.completion = Failed(exc.TaskCancelledError(self.spec.task_id))
        else:
            self.error = Failed(self.runner._error(self.spec, error))

    def end(self, retry: bool | None) -> list:
        """The task's returns, once the owner answered `GeneratorEnd` (`retry`): the generator's
        error fails the task if it runs again for it; else the owner made it the last item."""
        if retry and self.error is not None:
            return [self.error]
        return [self.completion]


class GeneratorRunner:
    """Runs the generators of one Executor's tasks (see the module's docstring)."""

    def __init__(self, core: CoreWorker, pid: int, task_error: Callable) -> None:
        self.core = core
        self.pid = pid
        self.task_error = task_error  # (name, error, pid) -> the TaskError sent for `error`
        self.self_ref: ActorRef | None = None  # the Executor's ref: where GeneratorConsumed comes
        self.user_loop: asyncio.AbstractEventLoop | None = None  # an async actor's loop
        self._flows: dict[str, _Flow] = {}

    def on_consumed(self, message: GeneratorConsumed) -> None:
        """The caller took items of a task running here (on the loop)."""
        flow = self._flows.get(message.task_id)
        if flow is not None:
            with flow.lock:
                if message.count > flow.consumed:
                    flow.consumed = message.count
                    flow.lock.notify_all()
                    waiters, flow.waiters = flow.waiters, []
                    for future in waiters:
                        future.get_loop().call_soon_threadsafe(_wake, future)

    def returns(self, spec, generator) -> list:
        """Run `generator` (what calling the task's function returned) to the end and send its
        items; the task's return payloads. Runs on an execution thread."""
        items = self._iterate(generator)
        if spec.num_returns >= 0:
            return self._fixed_returns(spec, items)
        if spec.num_returns == NUM_RETURNS_DYNAMIC:
            return self._dynamic_returns(spec, items)
        return self._stream(spec, items)

    # -- the kinds of generator tasks ------------------------------------------------------

    def _stream(self, spec, items: Iterator) -> list:
        resumed = self._resume(spec) if spec.attempt > 0 else (0, 0)
        try:
            run = _StreamRun(self, spec, resumed)
            try:
                for item in items:
                    if run.send(item):
                        break
                    if run.flow is not None:
                        self._pause(run.flow, run.index - run.bound)
            except BaseException as error:  # noqa: BLE001 - the generator's error ends its stream
                run.fail(error)
            retry = _result_or_none(self._ask_later(spec.owner, GeneratorEnd(spec.task_id, run.index, run.error)))
        finally:
            self._flows.pop(spec.task_id, None)
        return run.end(retry)

    async def stream_async(self, spec, call, args: list, kwargs: dict) -> list:
        """`_stream` for an async generator method of an async actor, on the actor's loop, so
        that any number of them run at once (the return payloads)."""
        if spec.attempt > 0:
            resumed = await asyncio.wrap_future(self._ask_later(spec.owner, GeneratorResume(spec.task_id,
                                                                                           self.self_ref)))
        else:
            resumed = (0, 0)
        try:
            run = _StreamRun(self, spec, resumed or (0, 0))
            try:
                async for item in call(*args, **kwargs):
                    if run.send(item):
                        break
                    if run.flow is not None:
                        await self._pause_async(run.flow, run.index - run.bound)
            except BaseException as error:  # noqa: BLE001 - the generator's error ends its stream
                run.fail(error)
            try:
                retry = await asyncio.wrap_future(
                    self._ask_later(spec.owner, GeneratorEnd(spec.task_id, run.index, run.error)))
            except Exception:  # noqa: BLE001 - its owner died: nobody reads these items
                retry = None
        finally:
            self._flows.pop(spec.task_id, None)
        return run.end(retry)

    def _dynamic_returns(self, spec, items: Iterator) -> list:
        owner, task_id = spec.owner, spec.task_id
        skip = self._resume(spec)[0] if spec.attempt > 0 else 0
        sent = []
        count = 0

        def send(payload) -> None:
            if count >= skip:
                sent.append(self._ask_later(owner, GeneratorItem(task_id, count, payload, dynamic=True)))

        try:
            for item in items:
                payload = self._payload(spec, count, item) if count >= skip else None
                send(payload)
                count += 1
                if type(payload) is Failed:
                    break
        except exc.TaskCancelledError:
            return [Failed(exc.TaskCancelledError(task_id))]
        except BaseException as error:  # noqa: BLE001 - kept as the last item, as Ray does
            send(Failed(self._error(spec, error)))
            count += 1
        for future in sent:
            _result_or_none(future)
        refs = [ObjectRef(item_id(task_id, index), owner) for index in range(count)]
        return [to_payload(DynamicObjectRefGenerator(refs), f"{task_id}.0", self.core.objects.local,
                           f"the return value of {spec.name}", owner)]

    def _fixed_returns(self, spec, items: Iterator) -> list:
        count = max(spec.num_returns, 1)
        returns: list = []
        try:
            for item in items:
                returns.append(self._payload(spec, len(returns), item, f"{spec.task_id}.{len(returns)}"))
                if len(returns) == count:
                    break
        except exc.TaskCancelledError:
            return [Failed(exc.TaskCancelledError(spec.task_id))] * count
        except BaseException as error:  # noqa: BLE001 - the returns not made hold its error
            returns += [Failed(self._error(spec, error))] * (count - len(returns))
        if len(returns) < count:
            error = ValueError(f"{spec.name} has num_returns={spec.num_returns} but its generator "
                               f"yielded {len(returns)} value(s)")
            returns += [Failed(self._error(spec, error))] * (count - len(returns))
        return returns

    # -- helpers -----------------------------------------------------------------------------

    def _iterate(self, generator) -> Iterator:
        """The items of a generator, or of an async generator driven step by step on the
        actor's loop (async actors) or on a loop of this thread's own (tasks)."""
        if type(generator) is not types.AsyncGeneratorType:
            return generator
        return self._iterate_async(generator)

    def _iterate_async(self, generator) -> Iterator:
        user_loop = self.user_loop
        own_loop = None
        if user_loop is None:
            own_loop = asyncio.new_event_loop()

        def step(awaitable):
            if own_loop is not None:
                return own_loop.run_until_complete(awaitable)
            return asyncio.run_coroutine_threadsafe(_await(awaitable), user_loop).result()

        try:
            while True:
                try:
                    item = step(generator.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            try:
                step(generator.aclose())
            finally:
                if own_loop is not None:
                    own_loop.close()

    def _payload(self, spec, index: int, item, object_id: str | None = None):
        object_id = object_id or item_id(spec.task_id, index)
        try:
            return to_payload(item, object_id, self.core.objects.local,
                              f"item {index} of generator {spec.name} ({type(item).__qualname__})", spec.owner)
        except PeerLostError:
            end_with_node()
        except Exception as error:  # noqa: BLE001 - an item that cannot be serialized fails its step
            return Failed(self._error(spec, error))

    def _error(self, spec, error: BaseException):
        if isinstance(error, (KeyboardInterrupt, SystemExit)) and not isinstance(error, Exception):
            error = RuntimeError(f"{type(error).__name__} raised in {spec.name}")
        return self.task_error(spec.name, error, self.pid)

    def _pause(self, flow: _Flow, until: int) -> None:
        """Wait until the caller has taken more than `until` items (backpressure)."""
        with flow.lock:
            while flow.consumed <= until:
                flow.lock.wait(_PAUSE_POLL_SECONDS)  # (a cancel is raised between two waits)

    async def _pause_async(self, flow: _Flow, until: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with flow.lock:
                if flow.consumed > until:
                    return
                future = loop.create_future()
                flow.waiters.append(future)
            await future

    def _resume(self, spec) -> tuple[int, int]:
        """The task runs again: how many items the owner has (skipped) and the caller took."""
        producer = self.self_ref if spec.generator_backpressure > 0 else None
        return _result_or_none(self._ask_later(spec.owner, GeneratorResume(spec.task_id, producer))) or (0, 0)

    def _ask_later(self, ref: ActorRef, message):
        system = self.core.system

        async def ask():
            return await ref.ask(message, timeout=None)

        return asyncio.run_coroutine_threadsafe(ask(), system.loop)


def _result_or_none(future):
    """The result of a concurrent future, or None if it failed (the owner is gone)."""
    try:
        return future.result()
    except Exception:  # noqa: BLE001 - its owner died: nobody reads these items
        return None


async def _await(awaitable):
    return await awaitable


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
