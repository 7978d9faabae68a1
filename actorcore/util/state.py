"""`actorcore.util.state`: Ray's state API (`ray.util.state`), answered by the nodes
(docs/architecture.md, "Task events and the state API").

`list_tasks` asks every node's TaskHistory at once, merges the partial records of each task
attempt (its owner's node knows it was submitted, its worker's node how it ran:
`task_records.merge_records`), then filters and cuts to `limit`. Records and field names are
Ray's `TaskState`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any

from .. import runtime
from ..protocol import ListTaskRecords
from ..task_records import merge_records

__all__ = ["DEFAULT_LIMIT", "DEFAULT_RPC_TIMEOUT", "TaskState", "list_tasks"]

DEFAULT_LIMIT = 100
DEFAULT_RPC_TIMEOUT = 30

#: What one node sends at most for one query (its newest records).
_NODE_LIMIT = 100_000


@dataclass
class TaskState:
    """One attempt of a task, as Ray's `TaskState` (the fields Ray shows without `detail`, then
    the detailed ones)."""

    task_id: str
    attempt_number: int
    name: str | None = None
    state: str | None = None
    job_id: str | None = None
    actor_id: str | None = None
    type: str | None = None
    func_or_class_name: str | None = None
    parent_task_id: str | None = None
    node_id: str | None = None
    worker_id: str | None = None
    worker_pid: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    required_resources: dict | None = None
    events: list = field(default_factory=list)
    creation_time_ms: int | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None

    def __getitem__(self, key: str) -> Any:
        """Ray's state objects are read as mappings too: ``task["state"]``."""
        return getattr(self, key)


_TASK_FIELDS = tuple(f.name for f in fields(TaskState))
_FILTERABLE = tuple(name for name in _TASK_FIELDS if name not in ("events", "required_resources"))


def list_tasks(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
               raise_on_missing_output: bool = True) -> list[TaskState]:
    """The task attempts the cluster's nodes remember, newest first, at most `limit`.

    `filters` is a list of ``(field, "=" | "!=", value)``; string values compare without case,
    as in Ray. Raises ValueError for an unknown field or predicate. Needs `init()` (the
    `address` of another cluster is not supported yet).
    """
    checked = _check_filters(filters)
    if address is not None:
        raise ValueError("list_tasks(address=...) is not supported yet: call init(address) first")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    core = runtime.require()
    histories = [record.get("uris", {}).get("task_history") for record in list(core.cluster.view.values())]
    refs = [core.system.ref_from_uri(uri) for uri in histories if uri]

    async def ask_all() -> list:
        asks = [ref.ask(ListTaskRecords((), _NODE_LIMIT), timeout=timeout) for ref in refs]
        return await asyncio.gather(*asks, return_exceptions=True)

    answers = core.system.run(ask_all(), timeout=timeout + 5)
    parts: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for answer in answers:
        if isinstance(answer, BaseException):
            if raise_on_missing_output:
                raise RuntimeError(f"a node did not answer the task query: {answer!r}")
            continue
        for record in answer[0]:
            parts[(record["task_id"], record["attempt_number"])].append(record)
    merged = [merge_records(records) for records in parts.values()]
    merged = [record for record in merged if _matches(record, checked)]
    merged.sort(key=lambda r: r.get("creation_time_ms") or r.get("start_time_ms") or 0, reverse=True)
    return [TaskState(**{k: v for k, v in record.items() if k in _TASK_FIELDS}) for record in merged[:limit]]


def _check_filters(filters: list | None) -> list[tuple[str, bool, str]]:
    checked = []
    for item in filters or ():
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise ValueError(f"a filter is (field, '=' or '!=', value); got {item!r}")
        name, predicate, value = item
        if name not in _FILTERABLE:
            raise ValueError(f"{name!r} is not a filterable field of tasks; filterable: {', '.join(_FILTERABLE)}")
        if predicate not in ("=", "!="):
            raise ValueError(f"unsupported predicate {predicate!r} in filter {item!r}: use '=' or '!='")
        checked.append((name, predicate == "=", str(value).lower()))
    return checked


def _matches(record: dict, checked: list[tuple[str, bool, str]]) -> bool:
    return all((str(record.get(name)).lower() == value) == equal for name, equal, value in checked)
