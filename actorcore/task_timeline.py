"""`actorcore.timeline()`: task execution per worker as a Chrome trace (docs/architecture.md,
"Task events and the state API").

The trace is the JSON array of the Trace Event Format that ``chrome://tracing`` and Perfetto
(ui.perfetto.dev) open, in the shape Ray's ``ray.timeline()`` gives it: one complete event
(``"ph": "X"``) per task attempt that ran, on the row of the worker that ran it. A trace's
``pid``/``tid`` must be integers, so each node gets a number (its row group, named
``Node <node id>`` by a ``process_name`` metadata event) and each of its workers a number (its
row, named ``worker:<worker id> (pid <pid>)`` by a ``thread_name`` event). Times are
microseconds since the epoch.

The records come from the state API (`actorcore.util.state.list_tasks` with ``detail=True``):
the nodes' task histories, so the trace covers what they still remember. An attempt still
running when asked ends at the time of the query, with state ``RUNNING`` in its args.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import api
from .util.state import list_tasks

__all__ = ["TIMELINE_LIMIT", "chrome_trace", "timeline"]

#: The most task attempts one timeline asks the state API for (the newest ones).
TIMELINE_LIMIT = 1_000_000

#: The task fields copied into each event's ``args``.
_ARG_FIELDS = ("task_id", "attempt_number", "state", "job_id", "actor_id", "func_or_class_name", "type",
               "node_id", "worker_id", "worker_pid", "error_type", "error_message")

#: Colour names of the trace viewers (their reserved palette) by final state.
_COLOURS = {"FINISHED": "thread_state_running", "FAILED": "terrible", "RUNNING": "thread_state_runnable"}


def _field(task: Any, name: str) -> Any:
    return task.get(name) if isinstance(task, Mapping) else getattr(task, name, None)


def chrome_trace(tasks: Iterable[Any], *, now_ms: float | None = None) -> list[dict]:
    """The trace events of `tasks` (`TaskState` records or dicts with their fields): a complete
    event per attempt with a start time, ordered by start, then the metadata events naming the
    nodes and workers. `now_ms` ends the attempts still running (default: now)."""
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    nodes: dict[str, int] = {}
    workers: dict[tuple[int, str], tuple[int, Any]] = {}
    events = []
    for task in tasks:
        start = _field(task, "start_time_ms")
        if start is None:
            continue  # it never ran (pending, cancelled, or its worker's events are lost)
        end = _field(task, "end_time_ms")
        if end is None:
            end = max(start, now_ms)
        node = str(_field(task, "node_id") or "unknown")
        worker = str(_field(task, "worker_id") or f"pid-{_field(task, 'worker_pid')}")
        pid = nodes.setdefault(node, len(nodes))
        tid, _ = workers.setdefault((pid, worker), (len(workers), _field(task, "worker_pid")))
        name = _field(task, "name") or _field(task, "func_or_class_name") or "task"
        state = _field(task, "state")
        events.append({
            "cat": "task", "name": name, "ph": "X", "pid": pid, "tid": tid,
            "ts": int(start * 1000), "dur": max(0, int((end - start) * 1000)),
            "cname": _COLOURS.get(state, "generic_work"),
            "args": {key: _field(task, key) for key in _ARG_FIELDS if _field(task, key) is not None},
        })
    events.sort(key=lambda event: (event["ts"], event["pid"], event["tid"]))
    for node, pid in nodes.items():
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"Node {node}"}})
    for (pid, worker), (tid, worker_pid) in workers.items():
        label = f"worker:{worker}" + (f" (pid {worker_pid})" if worker_pid is not None else "")
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": label}})
    return events


def timeline(filename: str | os.PathLike | None = None) -> list[dict] | None:
    """The cluster's task execution as Chrome trace events (see the module docstring).

    Without `filename`, returns the list of events; with one, writes them there as JSON (open
    it in ui.perfetto.dev or chrome://tracing) and returns None, as Ray does. Raises
    RuntimeError before `init()`.
    """
    if not api.is_initialized():
        raise RuntimeError("timeline() needs a running cluster: call actorcore.init() first")
    if filename is not None and not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"timeline(filename={filename!r}): give a path (str or os.PathLike) or None")
    events = chrome_trace(list_tasks(detail=True, limit=TIMELINE_LIMIT))
    if filename is None:
        return events
    with open(filename, "w", encoding="utf-8") as file:
        json.dump(events, file)
    return None
