"""The Executor actor: runs tasks and actor calls in a worker process (DESIGN.md §2, §5).

Messages arrive from the submitter that holds this worker's lease (or from an actor's
callers) and are answered with a `TaskResult`. User code runs on an execution thread, never
on the actor-system loop, so it can itself call `get`, `.remote()` or `put`: the loop stays
free to serve them. Async actors run their coroutines on a loop of their own, up to
`max_concurrency` at once; threaded actors use that many threads; all others run one call at
a time, in arrival order.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle

from .. import exceptions as exc
from .. import runtime_context
from ..core_worker import CoreWorker, from_payload, to_payload
from ..kernel import Actor
from ..objects import serialize
from ..protocol import BecomeActor, CancelTask, ExecuteTask, Failed, GetFunction, Inline, TaskResult

_NONE = None


class Executor(Actor):
    def __init__(self, core: CoreWorker) -> None:
        self.core = core
        self.functions: dict[str, Any] = {}
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="actorcore-exec")
        self.queue: asyncio.Queue = asyncio.Queue()
        self.instance: Any = None
        self.actor_id: str | None = None
        self.is_async = False
        self.user_loop: asyncio.AbstractEventLoop | None = None
        self.slots: asyncio.Semaphore | None = None
        self.running: dict[str, int] = {}  # task id -> thread ident, for cancel
        self.pid = os.getpid()

    async def pre_start(self) -> None:
        self.runner = asyncio.get_running_loop().create_task(self._run_queue())

    async def post_stop(self) -> None:
        self.runner.cancel()
        self.thread.shutdown(wait=False, cancel_futures=True)
        if self.user_loop is not None:
            self.user_loop.call_soon_threadsafe(self.user_loop.stop)

    async def receive(self, message):
        if isinstance(message, ExecuteTask):
            self.queue.put_nowait((message, self.context.defer_reply()))
            return None
        if isinstance(message, BecomeActor):
            return await self._become_actor(message)
        if isinstance(message, CancelTask):
            self._cancel(message)
            return None
        return None

    # -- the run queue --------------------------------------------------------------------

    async def _run_queue(self) -> None:
        while True:
            message, reply = await self.queue.get()
            if self.slots is None:
                reply.send(await self._execute(message))
            else:
                await self.slots.acquire()
                task = asyncio.get_running_loop().create_task(self._execute(message))
                task.add_done_callback(lambda t, r=reply: (self.slots.release(), r.send(t.result())))

    async def _function(self, function_id: str) -> Any:
        function = self.functions.get(function_id)
        if function is None:
            blob = await self.core.gcs.ask(GetFunction(function_id), timeout=60)
            function = self.functions[function_id] = cloudpickle.loads(blob)
        return function

    async def _execute(self, message: ExecuteTask) -> TaskResult:
        spec = message.spec
        try:
            if spec.method is not None:
                if self.instance is None:
                    raise exc.RayActorError(f"this worker hosts no actor; cannot run {spec.name}")
                call = getattr(self.instance, spec.method)
            else:
                call = await self._function(spec.function_id)
        except Exception as error:
            return TaskResult([Failed(exc.TaskError.from_exception(spec.name, error, pid=self.pid))]
                              * max(spec.num_returns, 1), self.pid)
        if self.is_async and spec.method is not None and inspect.iscoroutinefunction(call):
            args, kwargs, failed = await asyncio.get_running_loop().run_in_executor(
                self.thread, self._load_args, spec)
            if failed is not None:
                return TaskResult([failed] * max(spec.num_returns, 1), self.pid)
            future = asyncio.run_coroutine_threadsafe(self._async_call(call, args, kwargs, spec), self.user_loop)
            value, error = await asyncio.wrap_future(future)
            returns = await asyncio.get_running_loop().run_in_executor(
                self.thread, self._make_returns, spec, value, error)
            return TaskResult(returns, self.pid)
        returns = await asyncio.get_running_loop().run_in_executor(
            self.thread, self._run_sync, call, spec, message.lease_id)
        return TaskResult(returns, self.pid)

    async def _async_call(self, call, args, kwargs, spec):
        runtime_context.set_current(spec.task_id, self.actor_id)
        try:
            return await call(*args, **kwargs), None
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller
            return None, error

    def _load_args(self, spec) -> tuple[list, dict, Failed | None]:
        try:
            args = [from_payload(a) for a in spec.args]
            kwargs = {k: from_payload(v) for k, v in spec.kwargs.items()}
            return args, kwargs, None
        except exc.RayError as error:
            return [], {}, Failed(error)
        except Exception as error:
            return [], {}, Failed(exc.TaskError.from_exception(spec.name, error, pid=self.pid))

    def _run_sync(self, call, spec, lease_id) -> list:
        core = self.core
        core.current_lease = lease_id
        runtime_context.set_current(spec.task_id, self.actor_id)
        self.running[spec.task_id] = threading.get_ident()
        try:
            args, kwargs, failed = self._load_args(spec)
            if failed is not None:
                return [failed] * max(spec.num_returns, 1)
            try:
                value, error = call(*args, **kwargs), None
            except BaseException as caught:  # noqa: BLE001
                value, error = None, caught
            return self._make_returns(spec, value, error)
        finally:
            self.running.pop(spec.task_id, None)
            core.current_lease = None
            runtime_context.set_current(None)

    def _make_returns(self, spec, value, error) -> list:
        count = max(spec.num_returns, 1)
        if error is not None:
            if isinstance(error, exc.TaskCancelledError):
                return [Failed(exc.TaskCancelledError(spec.task_id))] * count
            if isinstance(error, (KeyboardInterrupt, SystemExit)) and not isinstance(error, Exception):
                error = RuntimeError(f"{type(error).__name__} raised in {spec.name}")
            return [Failed(exc.TaskError.from_exception(spec.name, error, pid=self.pid))] * count
        if spec.num_returns == 0:
            return [Inline(serialize(None).to_bytes())]
        if spec.num_returns == 1:
            values = [value]
        else:
            try:
                values = list(value)
            except TypeError:
                values = None
            if values is None or len(values) != spec.num_returns:
                got = "a non-iterable" if values is None else f"{len(values)} values"
                error = ValueError(f"{spec.name} has num_returns={spec.num_returns} but returned {got}")
                return [Failed(exc.TaskError.from_exception(spec.name, error, pid=self.pid))] * count
        returns = []
        for index, item in enumerate(values):
            object_id = f"{spec.task_id}.{index}"
            try:
                returns.append(to_payload(item, object_id, self.core.session, self.core.store,
                                          f"return value {index} of {spec.name} ({type(item).__qualname__})"))
            except Exception as caught:  # an unpicklable result, or __reduce__ raised
                returns.append(Failed(exc.TaskError.from_exception(spec.name, caught, pid=self.pid)))
        return returns

    # -- actors ---------------------------------------------------------------------------

    async def _become_actor(self, message: BecomeActor):
        spec = message.spec
        cls = await self._function(spec.function_id)
        self.actor_id = message.actor_id
        self.core.hosted_actor_id = message.actor_id
        self.is_async = message.is_async
        if message.is_async:
            self.user_loop = asyncio.new_event_loop()
            threading.Thread(target=self.user_loop.run_forever, name="actorcore-async-actor", daemon=True).start()
        if message.is_async or message.max_concurrency > 1:
            self.slots = asyncio.Semaphore(message.max_concurrency)
            if not message.is_async:
                self.thread = ThreadPoolExecutor(message.max_concurrency, thread_name_prefix="actorcore-exec")

        def construct():
            runtime_context.set_current(None, message.actor_id)
            args, kwargs, failed = self._load_args(spec)
            if failed is not None:
                return failed
            try:
                self.instance = cls(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001
                return Failed(exc.TaskError.from_exception(spec.name, error, pid=self.pid))
            return None

        return await asyncio.get_running_loop().run_in_executor(self.thread, construct)

    def _cancel(self, message: CancelTask) -> None:
        if message.force:
            os._exit(1)
        thread_id = self.running.get(message.task_id)
        if thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(exc.TaskCancelledError))


def format_remote_traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
