"""The Executor actor: runs tasks and actor calls in a worker process (docs/architecture.md,
"Hot paths").

Messages arrive from the submitter that holds this worker's lease (or from an actor's
callers) and are answered with a `TaskResult`. User code runs on an execution thread, never
on the actor-system loop, so it can itself call `get`, `.remote()` or `put`: the loop stays
free to serve them. Async actors run their coroutines on a loop of their own, up to
`max_concurrency` at once; threaded actors use that many threads; all others run one call at
a time, in arrival order. An actor with `concurrency_groups` runs each group's calls under
the group's own limit (a thread pool of its own, or for an async actor a semaphore of its
own); calls of no group go to the default group, bounded by `max_concurrency`.

Ending (docs/architecture.md, "Ending and cancelling"): `sys.exit()` in user code ends the
worker process with its code (callers see the process die: a task is retried, an actor
restarted as after a crash), except `sys.exit(0)` in an actor, which Ray 2.60 takes as an
intended exit, as `exit_actor()`; `exit_actor()` ends the actor on purpose: the call that made it,
the calls queued behind it and later calls fail with ActorDiedError, the owner is told before
the process ends so it does not restart the actor, and calls already running finish first.

The GPU devices of a lease (`UseDevices`, before its first task; an actor's in `BecomeActor`)
are its CUDA_VISIBLE_DEVICES while its tasks run, and for an actor's lifetime.

A task queued here and not started yet may be given back (`GiveBackTasks`, answered
`NotStarted`) to run on a worker that is free. A task's result leaves only once the actor calls
it made are in their actors' mailboxes (each actor's executor answered `CallsReceived`).
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import os
import pickle
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import cloudpickle

from .. import exceptions as exc
from .. import runtime, runtime_context
from .._logging import get_logger
from ..core import CoreWorker, from_payload, to_payload
from ..core.messages import ActorExited
from ..gcs.schema import ONLY_IF_WORKER
from ..kernel import Actor, PeerLostError, Terminated
from ..node_resources import CUDA_VISIBLE_DEVICES
from ..objects import serialize
from ..protocol import (
    NUM_RETURNS_STREAMING,
    UNRECORDED,
    ActorStateChanged,
    BecomeActor,
    CallsReceived,
    CancelTask,
    ExecuteTask,
    ExitWorker,
    Failed,
    GeneratorConsumed,
    GetFunction,
    GiveBackTasks,
    Inline,
    NotStarted,
    TaskResult,
    UseDevices,
)
from ..task_records import ACTOR_CREATION_TASK, FAILED, FINISHED, failure_fields
from .generators import GENERATOR_TYPES, GeneratorRunner, end_with_node

__all__ = ["DEFAULT_GROUP", "Executor"]

#: the concurrency group of an actor's calls that name none
DEFAULT_GROUP = "_default"
#: how long an ending worker lets its loop write the replies already sent
_EXIT_FLUSH_SECONDS = 0.2
#: how long a detached actor's construction waits for its record to be in etcd
DETACHED_RECORD_TIMEOUT = 10.0

log = get_logger(__name__)


class _EndProcess(Exception):
    """User code raised SystemExit: the worker process ends with `code`, replying to nothing."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Group:
    """One concurrency group of an actor: its queue of calls, its limit, its threads."""

    __slots__ = ("name", "pool", "queue", "runner", "slots")

    def __init__(self, name: str, limit: int, pool: ThreadPoolExecutor | None) -> None:
        self.name = name
        self.queue: asyncio.Queue = asyncio.Queue()
        self.slots = asyncio.Semaphore(limit)
        self.pool = pool  # threaded actors: its own threads; async actors: None
        self.runner: asyncio.Task | None = None


class Executor(Actor):
    """Runs tasks and actor calls in this worker (see the module's docstring)."""

    def __init__(self, core: CoreWorker) -> None:
        self.core = core
        self.functions: dict[str, Any] = {}
        # Tasks and sync actor calls go to one execution thread through `inbox`, which it
        # drains back to back: a queued call starts without a loop-to-thread hand-off
        # (measured: ~2x async task throughput against one run_in_executor per call).
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.exec_thread = threading.Thread(target=self._exec_loop, name="actorcore-exec", daemon=True)
        self.pool: ThreadPoolExecutor | None = None  # async and threaded actors
        self.instance: Any = None
        self.actor_id: str | None = None
        self.is_async = False
        self.user_loop: asyncio.AbstractEventLoop | None = None
        self.slots: asyncio.Semaphore | None = None  # set for a concurrent actor (its default group's)
        self.groups: dict[str, _Group] = {}
        self.method_groups: dict[str, str] = {}  # method name -> the group its decorator names
        self.running: dict[str, int] = {}  # task id -> thread ident, for cancel
        self.coroutines: dict[str, asyncio.Task] = {}  # task id -> running async call (user loop), for cancel
        self.cancelled: set[str] = set()
        #: reply -> task id, for tasks queued on the execution thread and not started yet:
        #: whichever thread pops a task's entry first either runs it or gives it back (keyed by
        #: reply: a task given back may be queued here again before its first job is dropped)
        self.unstarted: dict[Any, str] = {}
        self.pid = os.getpid()
        self.lease_gpus: dict[int, tuple] = {}  # the next lease's GPU ids (`UseDevices`), until its first task
        self.devices_lease: int | None = None  # the lease whose GPUs CUDA_VISIBLE_DEVICES shows now
        self.inherited_cuda_devices = os.environ.get(CUDA_VISIBLE_DEVICES)
        self.generators = GeneratorRunner(core, self.pid, _task_error)  # generator tasks (generators.py)
        self.class_name = ""
        self.owner = None  # the actor's owner (told when it ends itself)
        self.exiting: BaseException | None = None  # exit_actor() was called: the error of later calls
        self.exit_started = False
        self.ending = False  # SystemExit: the process is ending, nothing more runs
        self.active = 0  # concurrent calls running now
        self.calls: dict[str, int] = {}  # function id -> times run here, for functions with max_calls

    async def pre_start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.core.actors.confirm_receipts()  # a task's actor calls are in their mailboxes before its result
        self.exec_thread.start()
        self.generators.self_ref = self.context.self_ref

    async def post_stop(self) -> None:
        for group in self.groups.values():
            group.runner.cancel()
        self.inbox.put(None)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        for group in self.groups.values():
            if group.pool is not None:
                group.pool.shutdown(wait=False, cancel_futures=True)
        if self.user_loop is not None:
            self.user_loop.call_soon_threadsafe(self.user_loop.stop)

    async def receive(self, message):
        if isinstance(message, ExecuteTask):
            reply = self.context.defer_reply()
            spec = message.spec
            if self.core.cluster_mode:
                await self.core.objects.localize_args(spec)  # arguments held on other nodes are pulled first
            if self.exiting is not None:
                reply.send(self._failed(spec, self.exiting))
                return None
            if self.ending:  # SystemExit: its caller sees the process end
                return None
            if self.slots is not None:
                group = self._group_of(spec)
                if group is None:
                    error = ValueError(f"{spec.name}: no concurrency group {spec.concurrency_group!r}; "
                                       f"the actor's groups are {sorted(self.groups)}")
                    reply.send(self._failed(spec, _task_error(spec.name, error, self.pid)))
                    return None
                group.queue.put_nowait((message, reply))
                return None
            try:
                call = await self._callable(spec)
            except Exception as error:  # noqa: BLE001 - user code: its error is the task's result
                reply.send(self._failed(spec, _task_error(spec.name, error, self.pid)))
                return None
            if spec.method is None:
                self.unstarted[reply] = spec.task_id
            self._hand_off(partial(self._job, call, message, reply))
            return None
        if isinstance(message, CallsReceived):
            return True
        if isinstance(message, GiveBackTasks):
            return self._give_back(message.count)
        if isinstance(message, BecomeActor):
            return await self._become_actor(message)
        if isinstance(message, CancelTask):
            self._cancel(message)
            return None
        if isinstance(message, UseDevices):
            self.lease_gpus = {message.lease_id: message.gpu_ids}
            return None
        if isinstance(message, GeneratorConsumed):
            self.generators.on_consumed(message)
            return None
        if isinstance(message, ExitWorker):  # kill() or max_calls: the caller records the actor's death
            # Its last user metrics and task events leave first: their sends are queued before the exit.
            runtime.process_ending()
            if self.core.task_events is not None:
                self.core.task_events.flush()
            self.loop.call_soon(os._exit, 0)
            return None
        if isinstance(message, Terminated) and self.actor_id is not None:
            # Its owner is gone: the actor's process ends, after recording why; calls that
            # arrive meanwhile fail as calls on a dead actor (as in Ray).
            self.exiting = exc.ActorDiedError(self.class_name, "its owner (the process that created it) died")
            self.core.gcs.tell(ActorStateChanged(self.actor_id, {
                "actor_id": self.actor_id, "state": "DEAD", "death_cause": "its owner died",
                ONLY_IF_WORKER: self.context.self_ref.to_uri()}))  # never about a newer incarnation
            self.loop.call_later(0.2, os._exit, 0)
        return None

    def _actor_of(self, spec) -> str | None:
        """The actor a task's events name: this worker's for an actor call, None for a task."""
        return None if spec.method is None else self.actor_id

    def _failed(self, spec, error: BaseException) -> TaskResult:
        return TaskResult([Failed(error)] * max(spec.num_returns, 1), self.pid)

    async def _callable(self, spec) -> Any:
        if spec.method is None:
            return await self._function(spec.function_id)
        if self.instance is None:
            raise exc.RayActorError(f"this worker hosts no actor; cannot run {spec.name}")
        return getattr(self.instance, spec.method)

    # -- the execution thread -------------------------------------------------------------

    def _hand_off(self, job) -> None:
        """Queue `job` for the execution thread, which needs the GIL: the loop stops spinning."""
        self.context.system.stop_spinning()
        self.inbox.put(job)

    def _exec_loop(self) -> None:
        while True:
            job = self.inbox.get()
            if job is None:
                return
            job()

    def _job(self, call, message: ExecuteTask, reply) -> None:
        spec = message.spec
        if spec.method is None and self.unstarted.pop(reply, None) is None:
            return  # given back (GiveBackTasks): answered with NotStarted already
        if self.ending:
            return
        if spec.task_id in self.cancelled:
            self.cancelled.discard(spec.task_id)
            result = self._failed(spec, exc.TaskCancelledError(spec.task_id))
        elif self.exiting is not None:
            result = self._failed(spec, self.exiting)
        else:
            if self.actor_id is None:  # a task runs in its submitter's namespace
                self.core.namespace = spec.namespace
                if message.lease_id != self.devices_lease:
                    self._use_lease_devices(message.lease_id)
            events = self.core.task_events if spec.submitted_at != UNRECORDED else None
            if events is not None:
                events.running(spec.task_id, spec.attempt, spec.name, self._actor_of(spec), spec.submitted_at)
            try:
                result = TaskResult(self._run_sync(call, spec, message.lease_id), self.pid,
                                    spec.max_calls > 0 and self._count_call(spec))
                if events is not None:
                    events.ended(spec.task_id, *_outcome(result.returns))
            except _EndProcess as ending:
                self.ending = True
                self.loop.call_soon_threadsafe(self._end_process, ending.code)
                return
        self.loop.call_soon_threadsafe(self.core.actors.when_sent, partial(reply.send, result))
        if self.exiting is not None and not self.exit_started:
            self.loop.call_soon_threadsafe(self._exit_when_idle)

    def _count_call(self, spec) -> bool:
        """Count a run of a function with `max_calls`; True once this worker must retire."""
        calls = self.calls[spec.function_id] = self.calls.get(spec.function_id, 0) + 1
        return calls >= spec.max_calls

    def _use_lease_devices(self, lease_id: int | None) -> None:
        self.devices_lease = lease_id
        self._show_devices(self.lease_gpus.pop(lease_id, ()))

    def _show_devices(self, gpu_ids: tuple) -> None:
        """Make `gpu_ids` the GPUs user code sees; none: the environment the worker started with
        (as Ray does, a task without GPUs does not get CUDA_VISIBLE_DEVICES="")."""
        if gpu_ids:
            os.environ[CUDA_VISIBLE_DEVICES] = ",".join(gpu_ids)
        elif self.inherited_cuda_devices is None:
            os.environ.pop(CUDA_VISIBLE_DEVICES, None)
        else:
            os.environ[CUDA_VISIBLE_DEVICES] = self.inherited_cuda_devices
        runtime_context.set_gpu_ids(gpu_ids, numbered=self.inherited_cuda_devices is None)

    def _in_exec_thread(self, function) -> asyncio.Future:
        future = self.loop.create_future()

        def job() -> None:
            try:
                value = function()
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                self.loop.call_soon_threadsafe(_set_exception, future, error)
            else:
                self.loop.call_soon_threadsafe(_set_result, future, value)

        self._hand_off(job)
        return future

    # -- async and threaded actors ----------------------------------------------------------

    async def _run_group(self, group: _Group) -> None:
        while True:
            message, reply = await group.queue.get()
            await group.slots.acquire()
            if self.exiting is not None:
                group.slots.release()
                reply.send(self._failed(message.spec, self.exiting))
                continue
            self.active += 1
            self.context.system.stop_spinning()  # its call runs on a thread or the user loop
            task = self.loop.create_task(self._execute_concurrent(message, group.pool))
            task.add_done_callback(partial(self._concurrent_done, reply, group.slots))

    def _group_of(self, spec) -> _Group | None:
        name = spec.concurrency_group or self.method_groups.get(spec.method) or DEFAULT_GROUP
        return self.groups.get(name)

    def _concurrent_done(self, reply, slots, task: asyncio.Task) -> None:
        slots.release()
        self.active -= 1
        if task.cancelled():
            reply.fail(exc.RayActorError("the actor stopped before this call finished"))
        elif isinstance(task.exception(), _EndProcess):
            if not self.ending:
                self.ending = True
                self._end_process(task.exception().code)
        elif task.exception() is not None:
            reply.fail(task.exception())
        else:
            self.core.actors.when_sent(partial(reply.send, task.result()))
        if self.exiting is not None:
            self._exit_when_idle()

    # -- ending ----------------------------------------------------------------------------

    def _exit_when_idle(self) -> None:
        """exit_actor() was called: once no call runs, fail the queued ones, tell the owner
        (so it does not restart the actor) and end the process."""
        if self.exit_started or self.active:
            return
        self.exit_started = True
        for group in self.groups.values():
            while not group.queue.empty():
                message, reply = group.queue.get_nowait()
                reply.send(self._failed(message.spec, self.exiting))
        self.loop.create_task(self._end_actor())

    async def _end_actor(self) -> None:
        if self.owner is not None:
            try:
                await self.owner.ask(ActorExited(self.actor_id, _cause_of(self.exiting)), timeout=10)
            except Exception:  # noqa: BLE001 - an owner that is gone needs no telling
                pass
        await self._end_process_async(0)

    def _end_process(self, code: Any) -> None:
        self.loop.create_task(self._end_process_async(code))

    async def _end_process_async(self, code: Any) -> None:
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream has nothing to flush
                pass
        await asyncio.sleep(_EXIT_FLUSH_SECONDS)  # replies already sent leave before the process ends
        os._exit(code)

    async def _function(self, function_id: str) -> Any:
        function = self.functions.get(function_id)
        if function is None:
            try:
                blob = await self.core.gcs.ask(GetFunction(function_id), timeout=60)
            except PeerLostError:
                end_with_node()
            function = self.functions[function_id] = cloudpickle.loads(blob)
        return function

    async def _execute_concurrent(self, message: ExecuteTask, pool: ThreadPoolExecutor | None = None) -> TaskResult:
        events = self.core.task_events
        spec = message.spec
        if events is None or spec.submitted_at == UNRECORDED:
            return await self._run_concurrent(message, pool)
        events.running(spec.task_id, spec.attempt, spec.name, self._actor_of(spec), spec.submitted_at)
        try:
            result = await self._run_concurrent(message, pool)
        except BaseException as error:
            events.ended(spec.task_id, FAILED, failure_fields(error))
            raise
        events.ended(spec.task_id, *_outcome(result.returns))
        return result

    async def _run_concurrent(self, message: ExecuteTask, pool: ThreadPoolExecutor | None) -> TaskResult:
        spec = message.spec
        if spec.task_id in self.cancelled:  # cancelled while it waited for its turn
            self.cancelled.discard(spec.task_id)
            return self._failed(spec, exc.TaskCancelledError(spec.task_id))
        try:
            call = await self._callable(spec)
        except Exception as error:  # noqa: BLE001 - user code: its error is the task's result
            return self._failed(spec, _task_error(spec.name, error, self.pid))
        if self.is_async and spec.num_returns == NUM_RETURNS_STREAMING and inspect.isasyncgenfunction(call):
            return await self._stream_on_user_loop(call, spec)
        if self.is_async and inspect.iscoroutinefunction(call):
            args, kwargs, failed = await self.loop.run_in_executor(self.pool, self._load_args, spec)
            if failed is not None:
                return TaskResult([failed] * max(spec.num_returns, 1), self.pid)
            future = asyncio.run_coroutine_threadsafe(self._async_call(call, args, kwargs, spec), self.user_loop)
            try:
                value, error = await asyncio.wrap_future(future)
            finally:
                self.coroutines.pop(spec.task_id, None)
            returns = await self.loop.run_in_executor(self.pool, self._make_returns, spec, value, error)
            return TaskResult(returns, self.pid)
        returns = await self.loop.run_in_executor(pool or self.pool, self._run_sync, call, spec, message.lease_id)
        return TaskResult(returns, self.pid)

    async def _stream_on_user_loop(self, call, spec) -> TaskResult:
        """A streaming async generator method of an async actor: it runs on the actor's loop."""
        args, kwargs, failed = await self.loop.run_in_executor(self.pool, self._load_args, spec)
        if failed is not None:
            return TaskResult([failed], self.pid)
        future = asyncio.run_coroutine_threadsafe(self._async_stream(call, args, kwargs, spec), self.user_loop)
        return TaskResult(await asyncio.wrap_future(future), self.pid)

    async def _async_stream(self, call, args, kwargs, spec) -> list:
        runtime_context.set_current(spec.task_id, self.actor_id)
        return await self.generators.stream_async(spec, call, args, kwargs)

    async def _async_call(self, call, args, kwargs, spec):
        runtime_context.set_current(spec.task_id, self.actor_id)
        self.coroutines[spec.task_id] = asyncio.current_task()
        try:
            return await call(*args, **kwargs), None
        except asyncio.CancelledError as cancelled:  # cancel(): Ray's error is TaskCancelledError
            error = exc.TaskCancelledError(spec.task_id)
            error.__traceback__ = cancelled.__traceback__
            return None, error
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller
            return None, error

    def _load_args(self, spec) -> tuple[list, dict, Failed | None]:
        local = self.core.objects.local
        try:
            args = [from_payload(a, local) for a in spec.args]
            kwargs = {k: from_payload(v, local) for k, v in spec.kwargs.items()}
            return args, kwargs, None
        except exc.RayError as error:
            return [], {}, Failed(error)
        except Exception as error:  # noqa: BLE001 - user code: its error is the task's result
            return [], {}, Failed(_task_error(spec.name, error, self.pid))

    def _run_sync(self, call, spec, lease_id) -> list:
        core = self.core
        core.objects.current_lease = lease_id
        runtime_context.set_current(spec.task_id, self.actor_id)
        runtime_context.set_placement(spec.placement)
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
            core.objects.current_lease = None
            runtime_context.set_current(None)

    def _make_returns(self, spec, value, error) -> list:
        count = max(spec.num_returns, 1)
        if self.core.actor_exit_requested and self.actor_id is not None and (
                self.exiting is None or _is_exit_actor(error)):  # exit_actor() (even if caught)
            if self.exiting is None:
                self.exiting = exc.ActorDiedError.exited(self.class_name, f"exit_actor() was called in {spec.name}")
            return [Failed(self.exiting)] * count
        if runtime_context.take_cancelled(spec.task_id) and self.actor_id is not None:
            # Cancelled while it ran, its caller gets TaskCancelledError whatever it returned (as
            # Ray 2.60): plain for a sync call (it ran to its end), the dual TaskError for a
            # coroutine (even one that caught its CancelledError).
            if not self.is_async:
                return [Failed(exc.TaskCancelledError(spec.task_id))] * count
            if not isinstance(error, exc.TaskCancelledError):
                error = exc.TaskCancelledError(spec.task_id)
        if error is not None:
            if isinstance(error, exc.TaskCancelledError):
                # Interrupted while it ran: Ray's error is both a TaskError and TaskCancelledError.
                cancelled = exc.TaskCancelledError(spec.task_id)
                cancelled.__traceback__ = error.__traceback__
                error = cancelled
            elif isinstance(error, SystemExit):
                if self.actor_id is not None and type(error.code) is int and error.code == 0:
                    # Ray 2.60: sys.exit(0) in an actor is an intended exit (not restarted), as
                    # exit_actor(); sys.exit() with no code, or another code, is a crash.
                    self.exiting = exc.ActorDiedError.exited(self.class_name, f"sys.exit(0) was called in {spec.name}")
                    return [Failed(self.exiting)] * count
                raise _EndProcess(error.code)
            elif isinstance(error, KeyboardInterrupt):
                error = RuntimeError(f"{type(error).__name__} raised in {spec.name}")
            return [Failed(_task_error(spec.name, error, self.pid))] * count
        if spec.num_returns < 0 or (isinstance(value, GENERATOR_TYPES) and spec.num_returns):
            return self.generators.returns(spec, value)
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
                return [Failed(_task_error(spec.name, error, self.pid))] * count
        returns = []
        for index, item in enumerate(values):
            object_id = f"{spec.task_id}.{index}"
            try:
                returns.append(to_payload(item, object_id, self.core.objects.local,
                                          f"return value {index} of {spec.name} ({type(item).__qualname__})",
                                          spec.owner))
            except PeerLostError:
                end_with_node()
            except Exception as caught:  # noqa: BLE001 - an unpicklable result, or __reduce__ raised
                returns.append(Failed(_task_error(spec.name, caught, self.pid)))
        return returns

    # -- actors ---------------------------------------------------------------------------

    async def _become_actor(self, message: BecomeActor):
        spec = message.spec
        cls = await self._function(spec.function_id)
        if self.core.cluster_mode:
            await self.core.objects.localize_args(spec)
        self.actor_id = message.actor_id
        self.core.hosted_actor_id = message.actor_id
        runtime_context.set_hosted_placement(spec.placement)
        self.class_name = spec.name.removesuffix(".__init__")
        self.owner = spec.owner
        self.core.namespace = spec.namespace  # its creator's, as in Ray
        self.is_async = message.is_async
        self._show_devices(message.gpu_ids)  # for the actor's lifetime
        if not message.detached and spec.owner is not None:
            self.context.watch(spec.owner)  # a non-detached actor ends with its owner
        if message.is_async:
            self.user_loop = asyncio.new_event_loop()
            threading.Thread(target=self.user_loop.run_forever, name="actorcore-async-actor", daemon=True).start()
            self.generators.user_loop = self.user_loop
        if message.is_async or message.max_concurrency > 1 or message.concurrency_groups:
            self._make_groups(cls, message)

        def construct():
            runtime_context.set_current(None, message.actor_id)
            args, kwargs, failed = self._load_args(spec)
            if failed is not None:
                return failed
            try:
                self.instance = cls(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001
                return Failed(_task_error(spec.name, error, self.pid))
            return None

        events = self.core.task_events if spec.submitted_at != UNRECORDED else None
        if events is not None:
            events.running(spec.task_id, spec.attempt, spec.name, message.actor_id, spec.submitted_at,
                           ACTOR_CREATION_TASK)
        failed = await self._in_exec_thread(construct)
        if events is not None:
            events.ended(spec.task_id, *_outcome([failed] if failed is not None else []))
        if failed is None and message.detached:
            # A detached actor outlives its owner: its own record says where it lives, so that a
            # borrower whose owner is gone (even before the owner published it) still reaches it.
            # Written before the owner hears that the actor is made, and so before whoever the
            # owner hands it to can find the owner gone and read the record.
            try:
                await self.core.gcs.ask(ActorStateChanged(self.actor_id, {
                    "actor_id": self.actor_id, "state": "ALIVE", "detached": True, "pid": self.pid,
                    "node_id": self.core.node_id, "worker": self.context.self_ref.to_uri()}),
                    timeout=DETACHED_RECORD_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - etcd out of reach: its owner publishes it too
                log.warning("a detached actor's record could not be written", actor=self.actor_id, error=repr(error))
        return failed

    def _give_back(self, count: int) -> int:
        """Give back up to `count` queued tasks that have not started, the last queued first."""
        given = []
        for reply in reversed(list(self.unstarted)):
            if len(given) == count:
                break
            task_id = self.unstarted.pop(reply, None)  # atomic against the execution thread's pop
            if task_id is not None:
                given.append((task_id, reply))
        for task_id, reply in reversed(given):  # in the order they were queued
            reply.send(NotStarted(task_id))
        return len(given)

    def _make_groups(self, cls, message: BecomeActor) -> None:
        """Each concurrency group (and the default one, of `max_concurrency`) gets its limit;
        in a threaded actor also threads of its own."""
        limits = {DEFAULT_GROUP: message.max_concurrency, **(message.concurrency_groups or {})}
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="actorcore-exec")  # argument loading
        for name, limit in limits.items():
            pool = None if message.is_async else ThreadPoolExecutor(limit, thread_name_prefix=f"actorcore-{name}")
            group = self.groups[name] = _Group(name, limit, pool)
            group.runner = self.loop.create_task(self._run_group(group))
        self.slots = self.groups[DEFAULT_GROUP].slots
        for name, member in inspect.getmembers(cls, callable):
            declared = getattr(member, "__actorcore_concurrency_group__", None)
            if declared is not None:
                self.method_groups[name] = declared

    def _cancel(self, message: CancelTask) -> None:
        if message.force:
            os._exit(1)
        coroutine = self.coroutines.get(message.task_id)
        thread_id = self.running.get(message.task_id)
        if message.recursive and (coroutine is not None or thread_id is not None):
            self.core.tasks.cancel_submitted(message.task_id)  # it runs: what it submitted goes too
        if coroutine is not None:  # an async actor's call: its coroutine is cancelled
            runtime_context.mark_cancelled(message.task_id)
            self.user_loop.call_soon_threadsafe(coroutine.cancel)
            return
        if thread_id is None:
            self.cancelled.add(message.task_id)  # still queued here: it will not run
        else:
            runtime_context.mark_cancelled(message.task_id)  # is_canceled() now says so
            if self.actor_id is None:  # a running actor call is not interrupted, as in Ray
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread_id), ctypes.py_object(exc.TaskCancelledError))


def _task_error(name: str, error: BaseException, pid: int) -> exc.TaskError:
    """The TaskError for `error`; one whose cause cannot be pickled carries its text instead."""
    task_error = exc.TaskError.from_exception(name, error, pid=pid)
    try:
        pickle.dumps(task_error)
    except Exception:  # noqa: BLE001 - any exception that does not pickle
        try:
            cloudpickle.dumps(task_error)
        except Exception:  # noqa: BLE001 - nor with cloudpickle: a stand-in is sent
            stand_in = RuntimeError(f"{type(error).__qualname__}: {error} (the exception could not be pickled)")
            task_error = exc.TaskError(name, task_error.traceback_str, stand_in, pid=pid)
    return task_error


def _is_exit_actor(error: BaseException | None) -> bool:
    return isinstance(error, exc.AsyncioActorExit) or getattr(error, "actorcore_exit_actor", False)


def _cause_of(error: BaseException) -> str:
    return getattr(error, "cause", None) or str(error)


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _outcome(returns: list) -> tuple[str, dict | None]:
    """A run's final state and error fields for its task event: FAILED with the first error."""
    for payload in returns:
        if type(payload) is Failed:
            return FAILED, failure_fields(payload.error)
    return FINISHED, None
