"""The task manager: every submitted task and actor call until its returns are resolved.

Both submitters hand it their tasks (`track`) and their outcome (`finish`): it resolves the
returns in the object table, keeps a finished task as the lineage of its large returns in a
cluster (so they can be made again), and unpins the task's arguments otherwise. `cancel()`
finds a task here by any of its return ids. It also records the owner's side of the task
events (docs/architecture.md, "Task events and the state API"): a task submitted, an attempt
that failed without its worker saying so (the worker died, the call was cancelled before it
ran), and the next attempt of a retried task.
"""

from __future__ import annotations

import time

from ..exceptions import TaskError
from ..protocol import UNRECORDED, Failed, InShm, TaskSpec
from ..task_records import failure_fields
from .object_table import ObjectTable
from .pending import PendingTask
from .task_events import TaskEvents

__all__ = ["TaskManager"]



class TaskManager:
    """Pending tasks by return object id, and their completion."""

    def __init__(self, objects: ObjectTable, cluster_mode: bool) -> None:
        self._objects = objects
        self._cluster_mode = cluster_mode
        self._pending: dict[str, PendingTask] = {}  # by return object id
        self.events: TaskEvents | None = None  # the process's task events, if they are on

    def track(self, task: PendingTask) -> None:
        """`task` was submitted (or is run again): its returns are pending."""
        pending = self._pending
        for object_id in task.return_ids:
            pending[object_id] = task

    def task_of(self, object_id: str) -> PendingTask | None:
        """The pending task that returns `object_id`, if any."""
        return self._pending.get(object_id)

    def pending_tasks(self) -> list[PendingTask]:
        """Every pending task and actor call, once each, in submission order."""
        return list({id(task): task for task in self._pending.values()}.values())

    def is_pending(self, task: PendingTask) -> bool:
        """Whether `task` runs (again) now: one of its returns is still pending."""
        return any(self._pending.get(object_id) is task for object_id in task.return_ids)

    def submitted(self, spec: TaskSpec, kind: str, actor_id: str | None = None, record: bool = True) -> None:
        """Record that `spec` (of Ray's task type `kind`) was submitted now (its worker tells the
        rest, with the time stamped on the spec); with `record` False (its ``enable_task_events``
        option), mark it so that neither side records it."""
        if not record:
            spec.submitted_at = UNRECORDED
            return
        events = self.events
        if events is not None:
            spec.submitted_at = now = time.time()
            events.submitted(spec.task_id, spec.attempt, now, spec.name, kind, actor_id)

    def constructor_ran(self, task: PendingTask) -> None:
        """Actor constructor `task` ran on a worker, which recorded how: its owner's side of the
        attempt is over, though its arguments stay pinned for restarts until the actor is dead."""
        if self.events is not None and task.spec.submitted_at != UNRECORDED:
            self.events.done(task.spec.task_id)

    def constructor_again(self, task: PendingTask, actor_id: str) -> None:
        """The actor of constructor `task` restarts: the constructor's next attempt is submitted."""
        spec = task.spec
        spec.attempt += 1
        if spec.submitted_at != UNRECORDED:
            self.submitted(spec, "ACTOR_CREATION_TASK", actor_id)

    def next_attempt(self, task: PendingTask, error_type: str | None = None, message: str = "") -> None:
        """`task` runs again; its attempt failed with Ray's `error_type` (None: its worker recorded how)."""
        spec = task.spec
        events = self.events if task.spec.submitted_at != UNRECORDED else None
        if events is not None:
            if error_type is None:
                events.done(spec.task_id)
            else:
                events.failed(spec.task_id, spec.attempt, {"error_type": error_type, "error_message": message})
        spec.attempt += 1
        if events is not None:
            self.submitted(spec, "NORMAL_TASK" if spec.method is None else "ACTOR_TASK")

    def finish(self, task: PendingTask, returns: list) -> None:
        """`task` ended with the payloads `returns` (one per return id): resolve them."""
        events = self.events
        if events is not None and task.spec.submitted_at != UNRECORDED:
            spec = task.spec
            if returns and type(returns[0]) is Failed and not isinstance(returns[0].error, TaskError):
                events.failed(spec.task_id, spec.attempt, failure_fields(returns[0].error))
            else:
                events.done(spec.task_id)
        keep_args = False
        objects = self._objects
        for object_id, payload in zip(task.return_ids, returns, strict=False):
            self._pending.pop(object_id, None)
            if type(payload) is InShm and self._cluster_mode and task.spec.method is None:
                # Lineage: how to make it again if every node holding a copy dies (its
                # arguments stay pinned meanwhile: they may have to be made again too).
                objects.keep_lineage(object_id, task)
                keep_args = True
            objects.resolve(object_id, payload)
        if not keep_args:
            objects.unpin(task)
