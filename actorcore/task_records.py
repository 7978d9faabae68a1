"""Task records: what the state API says about a task, built from its events (docs/architecture.md,
"Task events and the state API").

A task's events come from two processes: its owner records it submitted and waiting for a
worker, and the worker that runs it records it running and finished or failed. They reach
the nodes' histories in batches, in no particular order between the two, and the state API
merges the partial records of several nodes. So a record is merged, never overwritten: a
field once known is kept, and the state moves only forward (`STATE_RANK`), whatever order the
events arrive in. Field names and states are Ray's (`ray.util.state.common.TaskState`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACTOR_CREATION_TASK",
    "ACTOR_TASK",
    "FAILED",
    "FINISHED",
    "NORMAL_TASK",
    "OWNER_SAW_END",
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "RUNNING",
    "RUN_FIELDS",
    "STATE_RANK",
    "SUBMITTED_TO_WORKER",
    "TIME_OF_STATE",
    "WORKER_FIELDS",
    "WORKER_GONE",
    "TaskEvent",
    "apply_event",
    "error_type_of",
    "events_of",
    "failure_fields",
    "merge_records",
    "new_record",
    "run_event",
    "run_fields",
]

PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
SUBMITTED_TO_WORKER = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"

#: Ray's task types.
NORMAL_TASK = "NORMAL_TASK"
ACTOR_TASK = "ACTOR_TASK"
ACTOR_CREATION_TASK = "ACTOR_CREATION_TASK"

#: A task's state only moves up this order; FINISHED and FAILED are both final.
STATE_RANK = {PENDING_ARGS_AVAIL: 0, PENDING_NODE_ASSIGNMENT: 1, SUBMITTED_TO_WORKER: 2, RUNNING: 3,
              FINISHED: 4, FAILED: 4}

#: Which time field a state sets (milliseconds since the epoch, as Ray's).
TIME_OF_STATE = {PENDING_ARGS_AVAIL: "creation_time_ms", PENDING_NODE_ASSIGNMENT: "creation_time_ms",
                  RUNNING: "start_time_ms", FINISHED: "end_time_ms", FAILED: "end_time_ms"}

#: One event: (time in seconds since the epoch, task id, attempt, state, other fields or None,
#: start time or None). An event with a start time comes from the worker that ran the task: its
#: batch's source names that worker (`WORKER_FIELDS`), so the event itself stays a few atoms.
#: The fields of an owner's submission are the tuple ``(name, type, actor id or None)``; a
#: worker's event adds the submission time (or None) and, for a failure, the error's fields
#: (a dict); others are a dict.
TaskEvent = tuple[float, str, int, str, "dict[str, Any] | None", "float | None"]

#: A run that finished, as a worker's batch carries most of its events: these many atoms in a flat
#: list, run after run: (end time, task id, attempt, name, actor id or None, submission time or
#: 0, start time). Its type is the actor id's (`NORMAL_TASK` without one, else `ACTOR_TASK`); any
#: other run (an actor's creation, a failure) is a `TaskEvent`.
RUN_FIELDS = 7

#: The field by which an owner closes its side of a task that ran on another node (not a field
#: of Ray's TaskState: the state API drops it).
OWNER_SAW_END = "owner_saw_end"

#: The field by which a node closes the record of a task its worker was running when the worker
#: died: the record says FAILED (WORKER_DIED) and no longer counts there, as the owner counts
#: its own FAILED of it (not a field of Ray's TaskState either).
WORKER_GONE = "worker_gone"

#: What the source of a batch says about the worker that ran the tasks of its started events.
WORKER_FIELDS = ("node_id", "worker_id", "worker_pid")


def error_type_of(error: BaseException) -> str:
    """Ray's ``error_type`` of a task that failed with `error`."""
    from . import exceptions as exc

    if isinstance(error, exc.TaskError):
        return "TASK_EXECUTION_EXCEPTION"
    for kind, name in ((exc.TaskCancelledError, "TASK_CANCELLED"), (exc.WorkerCrashedError, "WORKER_DIED"),
                       (exc.RayActorError, "ACTOR_DIED"), (exc.NodeDiedError, "NODE_DIED"),
                       (exc.OwnerDiedError, "OWNER_DIED"), (exc.ObjectLostError, "OBJECT_LOST")):
        if isinstance(error, kind):
            return name
    return type(error).__name__


def failure_fields(error: BaseException) -> dict[str, Any]:
    """The fields of a FAILED event: Ray's error type and the error's message."""
    return {"error_type": error_type_of(error), "error_message": str(error)}


def new_record(task_id: str, attempt: int) -> dict[str, Any]:
    """An empty record of attempt `attempt` of task `task_id`.

    A record holds only strings, numbers and None (its events are its times: `events_of`), so
    the garbage collector does not track it: a node's 100k records cost its collections nothing.
    """
    return {"task_id": task_id, "attempt_number": attempt, "state": None}


def apply_event(record: dict[str, Any], event: TaskEvent, worker: tuple = ()) -> None:
    """Merge one event into `record` (its task's and attempt's); `worker`: the ``(field, value)``
    pairs of its batch's `WORKER_FIELDS`, given to an event with a start time."""
    when, _, _, state, fields, started = event
    current = record["state"]
    if current is None or STATE_RANK[state] > STATE_RANK[current]:
        record["state"] = state
    if fields:
        if type(fields) is tuple:
            if record.get("name") is None:
                record["name"] = record["func_or_class_name"] = fields[0]
                record["type"] = fields[1]
                if fields[2] is not None:
                    record["actor_id"] = fields[2]
            if len(fields) > 3:  # the worker's: the submission time, then the error's fields if any
                if fields[3] and "creation_time_ms" not in record:
                    record["creation_time_ms"] = int(fields[3] * 1000)
                if len(fields) > 4:
                    for name, value in fields[4].items():
                        if value is not None and record.get(name) is None:
                            record[name] = value
        else:
            for name, value in fields.items():
                if value is not None and record.get(name) is None:
                    record[name] = value
    if started is not None:
        if "start_time_ms" not in record:
            record["start_time_ms"] = int(started * 1000)
        for name, value in worker:
            if record.get(name) is None:
                record[name] = value
    time_field = TIME_OF_STATE.get(state)
    if time_field is not None and time_field not in record:
        record[time_field] = int(when * 1000)


def run_fields(name: str, actor_id: str | None, submitted: float, kind: str | None = None) -> tuple:
    """A worker's event fields of a run: ``(name, type, actor id, submission time or None)``; the
    type is `kind`, or else the actor id's (`NORMAL_TASK` without one, else `ACTOR_TASK`)."""
    if kind is None:
        kind = NORMAL_TASK if actor_id is None else ACTOR_TASK
    return name, kind, actor_id, submitted or None


def run_event(run: tuple) -> TaskEvent:
    """The `TaskEvent` of a finished run, from its `RUN_FIELDS` atoms (more after them are ignored)."""
    when, task_id, attempt, name, actor_id, submitted, started = run[:RUN_FIELDS]
    return when, task_id, attempt, FINISHED, run_fields(name, actor_id, submitted), started


def events_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The state changes of `record` in time order, as Ray lists them (``{"state", "created_ms"}``):
    created, running, then finished or failed, each as far as its time is known."""
    events = []
    created = record.get("creation_time_ms")
    if created is not None:
        events.append({"state": PENDING_NODE_ASSIGNMENT, "created_ms": created})
    started = record.get("start_time_ms")
    if started is not None:
        events.append({"state": RUNNING, "created_ms": started})
    ended = record.get("end_time_ms")
    if ended is not None:
        events.append({"state": record["state"], "created_ms": ended})
    return events


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from partial records of the same attempt (each node's): known fields win over
    missing ones, and the furthest state wins; its ``events`` are made from the merged times."""
    if not records:
        raise ValueError("merge_records() needs at least one record")
    merged = dict(records[0])
    for record in records[1:]:
        for key, value in record.items():
            if key == "state":
                if value is not None and (merged["state"] is None
                                          or STATE_RANK[value] > STATE_RANK[merged["state"]]):
                    merged["state"] = value
            elif value is not None and merged.get(key) is None:
                merged[key] = value
    merged["events"] = events_of(merged)
    return merged
