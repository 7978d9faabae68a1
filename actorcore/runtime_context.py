"""`get_runtime_context()`: who and where the calling code runs (Ray's RuntimeContext).

The current task and actor are context variables: each thread, and each asyncio task of an
async actor (which runs many calls on one thread), sees its own. The worker's executor sets
them around every call (`set_current`), and the placement group a task runs in
(`set_placement`; an actor's is its process's, `set_hosted_placement`). The GPUs of the
process's current lease are one value for the whole process (a worker holds one lease at a
time): `set_gpu_ids`.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from . import runtime

__all__ = [
    "RuntimeContext", "current_gpu_ids", "current_placement", "get_runtime_context", "mark_cancelled",
    "set_current", "set_gpu_ids", "set_hosted_placement", "set_placement", "take_cancelled",
]

_task_id: ContextVar[str | None] = ContextVar("actorcore_task_id", default=None)
_actor_id: ContextVar[str | None] = ContextVar("actorcore_actor_id", default=None)
_gpu_ids: tuple[str, ...] = ()
_gpu_ids_numbered = True  # the ids count from 0 (the worker did not inherit CUDA_VISIBLE_DEVICES)
#: (placement group, capture_child_tasks) of the running task, or None
_placement: ContextVar[tuple | None] = ContextVar("actorcore_placement", default=None)
_hosted_placement: tuple | None = None  # the placement group of the actor this process hosts
_cancelled: set[str] = set()  # running calls of this process that cancel() was called on


def set_placement(placement: tuple | None) -> None:
    """The task running now in this context runs in `placement` ((group, capture) or None)."""
    _placement.set(placement)


def set_hosted_placement(placement: tuple | None) -> None:
    """The actor this process hosts was placed in `placement` ((group, capture) or None)."""
    global _hosted_placement
    _hosted_placement = placement


def current_placement() -> tuple | None:
    """(placement group, capture_child_tasks) of the calling task or actor, or None."""
    return _placement.get() or _hosted_placement


def mark_cancelled(task_id: str) -> None:
    """cancel() was called on task `task_id`, running here: `is_canceled()` says so."""
    _cancelled.add(task_id)


def take_cancelled(task_id: str) -> bool:
    """Whether task `task_id` was cancelled while it ran (forgotten after this)."""
    if not _cancelled or task_id not in _cancelled:
        return False
    _cancelled.discard(task_id)
    return True


def set_current(task_id: str | None, actor_id: str | None = None) -> None:
    """The code running now in this context is task `task_id` (None: none), of actor
    `actor_id` if given (else the actor stays as it was)."""
    _task_id.set(task_id)
    if actor_id is not None:
        _actor_id.set(actor_id)


def set_gpu_ids(ids: tuple[str, ...], numbered: bool) -> None:
    """The GPU device ids this process's current lease holds (``()``: none); `numbered`: they
    count from 0 (no CUDA_VISIBLE_DEVICES named them)."""
    global _gpu_ids, _gpu_ids_numbered
    _gpu_ids, _gpu_ids_numbered = tuple(ids), numbered


def current_gpu_ids() -> list[int] | list[str]:
    """The GPU device ids this process's current lease holds (none in a driver), as Ray's
    `get_gpu_ids` gives them: ints, or strings if CUDA_VISIBLE_DEVICES named the node's GPUs."""
    ids = _gpu_ids
    return [int(i) for i in ids] if _gpu_ids_numbered and all(i.isdigit() for i in ids) else list(ids)


class RuntimeContext:
    """What `get_runtime_context()` returns: the ids of the job, node, task and actor of the
    calling code, and its namespace. The one `init()` returns also has the cluster's
    `dashboard_url` (None without a dashboard), as Ray's context does."""

    def __init__(self, core: Any, dashboard_url: str | None = None) -> None:
        self._core = core
        self.dashboard_url = dashboard_url

    def get_job_id(self) -> str:
        """The id of the job (the driver) this code belongs to."""
        return self._core.job_id

    def get_node_id(self) -> str:
        """The id of the node this process runs on."""
        return self._core.node_id

    def get_task_id(self) -> str | None:
        """The id of the task or actor call running now; None in a driver or outside calls."""
        return _task_id.get()

    def get_actor_id(self) -> str | None:
        """The id of the actor this code runs in; None outside actors."""
        return _actor_id.get() or self._core.hosted_actor_id

    def is_canceled(self) -> bool:
        """Whether cancel() was called on the task or sync actor method running now (a
        running sync actor call is not interrupted: it can check this and stop early).

        Raises RuntimeError in the driver and in an async actor's coroutines (cancel() cancels
        those), as Ray does.
        """
        if self._core.is_driver:
            raise RuntimeError("is_canceled() is only available in a task or an actor method, "
                               "not in the driver.")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _task_id.get() in _cancelled
        raise RuntimeError("is_canceled() is not supported in an async actor: cancel() cancels "
                           "its coroutine instead (asyncio.CancelledError).")

    def get_worker_id(self) -> str:
        """The id of this process's runtime (the prefix of the ids it makes)."""
        return self._core.prefix

    @property
    def namespace(self) -> str:
        """The namespace of the calling code."""
        return self._core.namespace

    @property
    def node_id(self) -> str:
        """The id of the node this process runs on."""
        return self._core.node_id

    @property
    def job_id(self) -> str:
        """The id of the job this code belongs to."""
        return self._core.job_id

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The accelerators this worker may use, by resource name: ``{"GPU": ["0", "1"]}`` (the
        device ids its task or actor was given, as strings; ``[]`` in a driver). Only NVIDIA
        GPUs are known to actorcore: Ray also lists its other accelerator kinds, always empty
        on machines without them."""
        return {"GPU": list(_gpu_ids)}

    def get(self) -> dict:
        """All of it as a dict: job_id, node_id, task_id, actor_id, namespace."""
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                "task_id": self.get_task_id(), "actor_id": self.get_actor_id(),
                "namespace": self.namespace}


def get_runtime_context() -> RuntimeContext:
    """Who and where the calling code runs: job, node, task and actor ids, namespace (also
    ``actorcore.get_runtime_context``, and Ray's ``ray.runtime_context.get_runtime_context``)."""
    return RuntimeContext(runtime.require())
