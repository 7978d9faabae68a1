"""`get_runtime_context()`: who and where the calling code runs (Ray's RuntimeContext)."""

from __future__ import annotations

import threading

_local = threading.local()


def set_current(task_id: str | None, actor_id: str | None = None) -> None:
    _local.task_id = task_id
    if actor_id is not None:
        _local.actor_id = actor_id


class RuntimeContext:
    def __init__(self, core) -> None:
        self._core = core

    def get_job_id(self) -> str:
        return self._core.job_id

    def get_node_id(self) -> str:
        return self._core.node_id

    def get_task_id(self) -> str | None:
        return getattr(_local, "task_id", None)

    def get_actor_id(self) -> str | None:
        return getattr(_local, "actor_id", None) or self._core.hosted_actor_id

    def get_worker_id(self) -> str:
        return self._core.prefix

    @property
    def namespace(self) -> str:
        return self._core.namespace

    @property
    def node_id(self) -> str:
        return self._core.node_id

    @property
    def job_id(self) -> str:
        return self._core.job_id

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                "task_id": self.get_task_id(), "actor_id": self.get_actor_id(),
                "namespace": self.namespace}
