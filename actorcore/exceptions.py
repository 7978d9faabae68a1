"""The errors users see, with Ray's names and meanings (docs/architecture.md, "Failure semantics").

`get` raises `TaskError.as_instanceof_cause()` when a task raised: an exception that is at
once a `TaskError` and an instance of the original exception's class, whose message shows
the remote traceback. Every error here pickles with its message and fields, since errors
cross processes.
"""

from __future__ import annotations

import os
import threading
import traceback
import types
from typing import Any

__all__ = [
    "ActorAlreadyExistsError",
    "ActorDiedError",
    "ActorPlacementGroupRemoved",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "ActorcoreError",
    "AsyncioActorExit",
    "GetTimeoutError",
    "NodeDiedError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "OwnerDiedError",
    "PendingCallsLimitExceeded",
    "RayActorError",
    "RayError",
    "RayTaskError",
    "RuntimeEnvSetupError",
    "TaskCancelledError",
    "TaskError",
    "TaskPlacementGroupRemoved",
    "TaskUnschedulableError",
    "WorkerCrashedError",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _restore(cls: type, args: tuple, state: dict) -> BaseException:
    """Unpickle an error without calling its `__init__` (whose signature is its own)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class RayError(Exception):
    """Base of every actorcore error; `RayError` is the name Ray programs catch.

    `ActorcoreError` is the same class. Subclasses keep their message in `args` and their
    fields as attributes; both survive pickling whatever the subclass's `__init__` takes.
    """

    def __reduce__(self):
        return _restore, (type(self), self.args, dict(self.__dict__))


ActorcoreError = RayError


# --- a task raised --------------------------------------------------------------------------

_dual_classes: dict[type, type | None] = {}  # cause class -> TaskError(cause class)
_dual_lock = threading.Lock()


class TaskError(RayError):
    """A task (or actor method) raised `cause`; `get` raises `as_instanceof_cause()` of it.

    `str()` is a `ray::f() (pid=...)` header followed by the remote traceback, which ends with
    the original `ValueError: message` line. `args` are the cause's args. A cause that is
    itself a `TaskError` (a task re-raising what its own `get` raised) is unwrapped, so the
    innermost exception stays the cause however deep the nesting.
    """

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException, *,
                 pid: int | None = None) -> None:
        while isinstance(cause, TaskError):
            cause = cause.cause
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.args = cause.args

    @classmethod
    def from_exception(cls, function_name: str, error: BaseException, *,
                       pid: int | None = None) -> TaskError:
        """The error for `error` just caught while running `function_name`, traceback included.

        The leading frames inside actorcore (the worker calling user code) are left out.
        """
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            tb = tb.tb_next
        if tb is None:
            tb = error.__traceback__
        text = "".join(traceback.format_exception(type(error), error, tb))
        return cls(function_name, text, error, pid=pid)

    def as_instanceof_cause(self) -> TaskError:
        """This error as an instance of both `TaskError` and the cause's class.

        Falls back to `self` when the cause's class cannot be subclassed (final, layout
        conflict, a `__new__` that refuses) or is already a base of `TaskError`.
        """
        cause_cls = type(self.cause)
        if issubclass(TaskError, cause_cls) or type(self) is not TaskError:
            return self
        try:
            dual_cls = _dual_class(cause_cls)
            dual = dual_cls.__new__(dual_cls, *self.cause.args)
            TaskError.__init__(dual, self.function_name, self.traceback_str, self.cause,
                               pid=self.pid)
        except Exception:  # noqa: BLE001 - a cause that cannot be mirrored leaves the plain TaskError
            return self
        _copy_builtin_fields(self.cause, dual)
        return dual

    def __str__(self) -> str:
        header = f"ray::{self.function_name}()"
        if self.pid is not None:
            header += f" (pid={self.pid})"
        lines = self.traceback_str.strip("\n").splitlines()
        if lines and lines[0].startswith("Traceback (most recent call last)"):
            lines = lines[1:]
        if not lines:
            lines = traceback.format_exception_only(type(self.cause), self.cause)[-1:]
            lines = [line.rstrip("\n") for line in lines]
        return "\n".join([header, *lines])

    def __reduce__(self):
        dual = type(self) is not TaskError
        cause = self.cause
        if type(cause).__reduce__ is BaseException.__reduce__:
            cause = _Cause(cause)
        return _rebuild_task_error, (self.function_name, self.traceback_str, cause,
                                     self.pid, dual)


class _Cause:
    """Pickles an exception that uses BaseException's pickling as `_restore` does: without
    calling its `__init__` on the other side, whose signature need not match its `args`
    (`def __init__(self, a, b): super().__init__(f"{a}/{b}")` cannot unpickle otherwise)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self):
        error = self.error
        return _restore, (type(error), error.args, dict(error.__dict__))


def _rebuild_task_error(function_name, traceback_str, cause, pid, dual):
    error = TaskError(function_name, traceback_str, cause, pid=pid)
    return error.as_instanceof_cause() if dual else error


def _dual_getattr(self, name: str) -> Any:
    # The cause's own attributes (errno, a custom `.code`, ...) read through the dual error.
    cause = self.__dict__.get("cause")
    if cause is None or name.startswith("__"):
        raise AttributeError(name)
    return getattr(cause, name)


def _copy_builtin_fields(cause: BaseException, dual: BaseException) -> None:
    # C-level fields (OSError.errno, StopIteration.value, ...) exist on the dual too, as None,
    # so `__getattr__` never reaches the cause's: copy them.
    for klass in type(cause).__mro__:
        if klass in (BaseException, object):
            break
        for name, attr in vars(klass).items():
            if isinstance(attr, (types.MemberDescriptorType, types.GetSetDescriptorType)) \
                    and not name.startswith("__"):
                try:
                    setattr(dual, name, getattr(cause, name))
                except Exception:  # noqa: BLE001 - a field that cannot be copied stays unset
                    pass


def _dual_class(cause_cls: type) -> type:
    """The cached class `TaskError(<cause class>)`; raises TypeError if it cannot be made."""
    with _dual_lock:
        if cause_cls not in _dual_classes:
            name = f"TaskError({cause_cls.__name__})"
            try:
                _dual_classes[cause_cls] = type(name, (TaskError, cause_cls), {
                    "__getattr__": _dual_getattr,
                    "__module__": __name__,
                    "__qualname__": name,
                })
            except Exception:  # noqa: BLE001 - a class that cannot be subclassed gets no dual
                _dual_classes[cause_cls] = None  # remembered: not tried again
        dual = _dual_classes[cause_cls]
    if dual is None:
        raise TypeError(f"{cause_cls.__qualname__} cannot be subclassed")
    return dual


RayTaskError = TaskError


# --- timeouts and system failures -----------------------------------------------------------


class GetTimeoutError(RayError, TimeoutError):
    """`get` (or `wait`) gave up after its timeout; the objects may still arrive later."""

    def __init__(self, message: str = "Get timed out: some object(s) not ready.") -> None:
        super().__init__(message)


class RayActorError(RayError):
    """An actor call cannot complete because of the actor (base of the actor errors)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "The actor died unexpectedly before finishing this task.")


class ActorDiedError(RayActorError):
    """The actor is dead for good: killed, crashed past its restarts, lost with its node, or
    its constructor raised (`actor_init_failed`). Every later call raises this too."""

    def __init__(self, actor: str | None = None, cause: str | None = None, *,
                 actor_init_failed: bool = False) -> None:
        self.actor = actor
        self.cause = cause
        self.actor_init_failed = actor_init_failed
        who = f"The actor {actor}" if actor else "The actor"
        message = f"{who} died: {cause}" if cause else f"{who} died unexpectedly before finishing this task."
        RayError.__init__(self, message)

    @classmethod
    def killed(cls, actor: str) -> ActorDiedError:
        """The error of an actor ended with ``kill()``."""
        return cls(actor, "it was killed with kill().")

    @classmethod
    def crashed(cls, actor: str, exit_code: int | None, restarts: int = 0) -> ActorDiedError:
        """The error of an actor whose process crashed or exited and has no restarts left."""
        how = "its process crashed" if exit_code is None else (
            f"its process exited with code {exit_code}")
        after = f" after {restarts} restart(s); no restarts are left" if restarts else ""
        return cls(actor, f"{how}{after}.")

    @classmethod
    def node_lost(cls, actor: str, node: str) -> ActorDiedError:
        """The error of an actor whose node died."""
        return cls(actor, f"its node {node} died.")

    @classmethod
    def exited(cls, actor: str, how: str = "exit_actor() was called") -> ActorDiedError:
        """The error of an actor that ended itself on purpose (it is not restarted)."""
        return cls(actor, f"it exited intentionally: {how}.")

    @classmethod
    def constructor_raised(cls, actor: str, error: BaseException) -> ActorDiedError:
        """The error of an actor whose constructor raised ``error`` (``actor_init_failed`` is True)."""
        return cls(actor, f"its constructor raised:\n{error}", actor_init_failed=True)


class ActorUnavailableError(RayActorError):
    """The actor's process died while this call was in flight and the actor is restarting;
    the call may or may not have run. Later calls can succeed."""

    def __init__(self, actor: str | None = None, detail: str | None = None) -> None:
        self.actor = actor
        who = f"The actor {actor}" if actor else "The actor"
        message = (f"{who} is unavailable: its process died while this call was in flight "
                   "and it is being restarted; the call may or may not have run.")
        if detail:
            message += f" {detail}"
        RayError.__init__(self, message)


class AsyncioActorExit(RayError):
    """Raised by ``exit_actor()`` in an async actor to end it (a SystemExit would stop the
    actor's event loop instead); it reaches no caller: they see ActorDiedError."""


class PendingCallsLimitExceeded(RayError):
    """A call was made on an actor handle that already has ``max_pending_calls`` calls
    whose results are not ready yet (the actor's ``max_pending_calls`` option)."""


class WorkerCrashedError(RayError):
    """The worker process died while running the task, and its retries are used up."""

    def __init__(self, task: str | None = None, detail: str | None = None) -> None:
        self.task = task
        what = f"task {task}" if task else "this task"
        message = f"The worker died unexpectedly while executing {what}."
        if detail:
            message += f" {detail}"
        super().__init__(message)


class ObjectLostError(RayError):
    """Every copy of the object is lost and it could not be rebuilt from its lineage."""

    _default_reason = "all copies were lost and it could not be rebuilt"

    def __init__(self, object_id: str, reason: str | None = None) -> None:
        self.object_id = object_id
        self.reason = reason or self._default_reason
        super().__init__(f"Failed to retrieve object {object_id}: {self.reason}.")


class OwnerDiedError(ObjectLostError):
    """The object's owner (the worker that made it with `.remote()` or `put`) died."""

    _default_reason = ("its owner, the worker that created it with .remote() or put(), "
                       "has died")


class TaskCancelledError(RayError):
    """The task, or one it depended on, was cancelled."""

    def __init__(self, task_id: str | None = None) -> None:
        self.task_id = task_id
        if task_id is None:
            message = "This task or one of its dependencies was cancelled."
        else:
            message = f"Task {task_id} was cancelled."
        super().__init__(message)


class NodeDiedError(RayError):
    """The node running the task or actor died (stopped renewing its lease)."""

    def __init__(self, node_id: str | None = None, detail: str | None = None) -> None:
        self.node_id = node_id
        message = f"The node {node_id} died." if node_id else "The node died."
        if detail:
            message += f" {detail}"
        super().__init__(message)


class ActorAlreadyExistsError(RayError, ValueError):
    """A named actor was created with a name already taken in its namespace."""

    def __init__(self, name: str, namespace: str | None = None) -> None:
        self.name = name
        self.namespace = namespace
        where = f" in namespace {namespace!r}" if namespace else ""
        super().__init__(
            f"An actor named {name!r} already exists{where}: pick another name, get it with "
            f"get_actor({name!r}), or pass get_if_exists=True to reuse it.")


class ObjectStoreFullError(RayError):
    """The object store has no room left for the object, even after spilling/evicting."""

    def __init__(self, message: str | None = None) -> None:
        message = message or (
            "The object store is full of objects that are still referenced; release "
            "ObjectRefs you no longer need (del them) or give the node more memory.")
        super().__init__(message)


class TaskUnschedulableError(RayError):
    """The task can never be scheduled (e.g. its node affinity names a dead or unknown node)."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"The task is not schedulable: {self.error_message}"


class ActorUnschedulableError(RayError):
    """The actor can never be scheduled (e.g. its node affinity names a dead or unknown node)."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"The actor is not schedulable: {self.error_message}"


class TaskPlacementGroupRemoved(RayError):
    """The placement group the task (or `ready()`) was waiting for was removed."""

    def __init__(self, message: str = "The placement group corresponding to this task has been removed.") -> None:
        super().__init__(message)


class ActorPlacementGroupRemoved(RayError):
    """The placement group the actor was to be placed in was removed."""

    def __init__(self, message: str = "The placement group corresponding to this Actor has been removed.") -> None:
        super().__init__(message)


class RuntimeEnvSetupError(RayError):
    """A task's or actor's runtime env could not be set up on its node (its message says why:
    the package missing, the installer's error, the setup timeout)."""

    def __init__(self, error_message: str = "") -> None:
        super().__init__(error_message)
        self.error_message = error_message

    def __str__(self) -> str:
        return f"Failed to set up runtime environment.\n{self.error_message}"
