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

from collections.abc import Iterable
from typing import Any

__all__ = [
    "FAILED",
    "FINISHED",
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "RUNNING",
    "STATE_RANK",
    "SUBMITTED_TO_WORKER",
    "TaskEvent",
    "apply_event",
    "merge_records",
    "new_record",
]

PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
SUBMITTED_TO_WORKER = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"

#: A task's state only moves up this order; FINISHED and FAILED are both final.
STATE_RANK = {PENDING_ARGS_AVAIL: 0, PENDING_NODE_ASSIGNMENT: 1, SUBMITTED_TO_WORKER: 2, RUNNING: 3,
              FINISHED: 4, FAILED: 4}

#: Which time field a state sets (milliseconds since the epoch, as Ray's).
_TIME_OF_STATE = {PENDING_ARGS_AVAIL: "creation_time_ms", PENDING_NODE_ASSIGNMENT: "creation_time_ms",
                  RUNNING: "start_time_ms", FINISHED: "end_time_ms", FAILED: "end_time_ms"}

#: One event: (time in seconds since the epoch, task id, attempt, state, other fields or None).
TaskEvent = tuple[float, str, int, str, "dict[str, Any] | None"]


def new_record(task_id: str, attempt: int) -> dict[str, Any]:
    """An empty record of attempt `attempt` of task `task_id`."""
    return {"task_id": task_id, "attempt_number": attempt, "state": None, "events": []}


def apply_event(record: dict[str, Any], event: TaskEvent) -> None:
    """Merge one event into `record` (its task's and attempt's)."""
    when, _, _, state, fields = event
    millis = int(when * 1000)
    if fields:
        for key, value in fields.items():
            if value is not None and record.get(key) is None:
                record[key] = value
    current = record["state"]
    if current is None or STATE_RANK[state] > STATE_RANK[current]:
        record["state"] = state
    time_field = _TIME_OF_STATE.get(state)
    if time_field is not None and record.get(time_field) is None:
        record[time_field] = millis
    record["events"].append({"state": state, "created_ms": millis})


def merge_records(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One record from partial records of the same attempt (each node's): known fields win over
    missing ones, the furthest state wins, and the events are put in time order."""
    merged: dict[str, Any] | None = None
    for record in records:
        if merged is None:
            merged = {**record, "events": list(record["events"])}
            continue
        for key, value in record.items():
            if key == "events":
                merged["events"].extend(value)
            elif key == "state":
                if value is not None and (merged["state"] is None
                                          or STATE_RANK[value] > STATE_RANK[merged["state"]]):
                    merged["state"] = value
            elif value is not None and merged.get(key) is None:
                merged[key] = value
    if merged is None:
        raise ValueError("merge_records() needs at least one record")
    merged["events"].sort(key=lambda event: event["created_ms"])
    return merged
