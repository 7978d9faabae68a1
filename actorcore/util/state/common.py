"""The state API's records, filters and summaries (docs/architecture.md, "Task events and the
state API").

Each record is a dataclass with the field names of Ray's (`ray.util.state.common`): what a
``list_*`` or ``get_*`` call returns, every field filled as far as it is known. Fields marked
``detail`` are the columns the CLI shows only with ``--detail`` (Ray's "base columns" are the
others). Every record reads as a mapping too
(``actor["state"]``). `check_filters` turns ``[(field, "=" | "!=", value)]`` into checked
predicates and names what was wrong; `matches` applies them (strings compare without case, as
in Ray). The ``summarize_*`` dataclasses count records by function, class or call site.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ...task_records import events_of

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_RPC_TIMEOUT",
    "ActorState",
    "ActorSummaries",
    "JobState",
    "NodeState",
    "ObjectState",
    "ObjectSummaries",
    "PlacementGroupState",
    "RayStateApiException",
    "StateRecord",
    "TaskState",
    "TaskSummaries",
    "WorkerState",
    "check_filters",
    "check_limit",
    "columns",
    "filterable",
    "matches",
    "to_record",
]

DEFAULT_LIMIT = 100
DEFAULT_RPC_TIMEOUT = 30

_DETAIL = {"detail": True}


class RayStateApiException(RuntimeError):
    """A state query could not be answered in full (a node did not answer in time, with
    ``raise_on_missing_output=True``)."""


class StateRecord:
    """What every state record shares: read as a mapping, and its kind's name for messages."""

    kind = "records"

    def __getitem__(self, key: str) -> Any:
        """Ray's state records are read as mappings too: ``actor["state"]``."""
        return getattr(self, key)


@dataclass
class NodeState(StateRecord):
    """A node, alive or dead (etcd ``nodes/`` and ``dead/``)."""

    kind = "nodes"
    node_id: str
    node_ip: str | None = None
    is_head_node: bool = False
    state: str | None = None  # ALIVE | DEAD
    state_message: str | None = None
    node_name: str | None = None
    resources_total: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    start_time_ms: int | None = field(default=None, metadata=_DETAIL)
    end_time_ms: int | None = field(default=None, metadata=_DETAIL)


@dataclass
class ActorState(StateRecord):
    """An actor (etcd ``actors/``)."""

    kind = "actors"
    actor_id: str
    class_name: str | None = None
    state: str | None = None  # PENDING | ALIVE | RESTARTING | DEAD
    job_id: str | None = None
    name: str | None = None
    node_id: str | None = None
    pid: int | None = None
    ray_namespace: str | None = None
    required_resources: dict | None = field(default=None, metadata=_DETAIL)
    death_cause: Any = field(default=None, metadata=_DETAIL)
    is_detached: bool | None = field(default=None, metadata=_DETAIL)
    placement_group_id: str | None = field(default=None, metadata=_DETAIL)
    repr_name: str | None = field(default=None, metadata=_DETAIL)
    num_restarts: int | None = field(default=None, metadata=_DETAIL)


@dataclass
class TaskState(StateRecord):
    """One attempt of a task (the nodes' task histories, merged)."""

    kind = "tasks"
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
    error_message: str | None = field(default=None, metadata=_DETAIL)
    required_resources: dict | None = field(default=None, metadata=_DETAIL)
    events: list = field(default_factory=list, metadata=_DETAIL)
    creation_time_ms: int | None = field(default=None, metadata=_DETAIL)
    start_time_ms: int | None = field(default=None, metadata=_DETAIL)
    end_time_ms: int | None = field(default=None, metadata=_DETAIL)


@dataclass
class WorkerState(StateRecord):
    """A driver or worker process of a live node (asked of the node and of the process)."""

    kind = "workers"
    worker_id: str
    is_alive: bool = True
    worker_type: str | None = None  # DRIVER | WORKER
    exit_type: str | None = None
    node_id: str | None = None
    ip: str | None = None
    pid: int | None = None
    exit_detail: str | None = field(default=None, metadata=_DETAIL)
    actor_id: str | None = field(default=None, metadata=_DETAIL)
    job_id: str | None = field(default=None, metadata=_DETAIL)
    leased: bool | None = field(default=None, metadata=_DETAIL)


@dataclass
class ObjectState(StateRecord):
    """An object, as its owner (a driver or worker) counts its references."""

    kind = "objects"
    object_id: str
    object_size: int | None = None  # serialized bytes; None while its task runs
    task_status: str | None = None  # FINISHED | PENDING | FAILED
    attempt_number: int | None = None
    reference_type: str | None = None
    call_site: str | None = None
    type: str | None = None  # the owner's kind: DRIVER | WORKER
    pid: int | None = None
    ip: str | None = None
    node_id: str | None = field(default=None, metadata=_DETAIL)
    owner_worker_id: str | None = field(default=None, metadata=_DETAIL)
    owner_node_id: str | None = field(default=None, metadata=_DETAIL)
    in_shared_memory: bool | None = field(default=None, metadata=_DETAIL)
    spilled: bool | None = field(default=None, metadata=_DETAIL)  # a spill file of its node holds it
    local_refs: int | None = field(default=None, metadata=_DETAIL)
    pinned_by_tasks: int | None = field(default=None, metadata=_DETAIL)


@dataclass
class PlacementGroupState(StateRecord):
    """A placement group, as the process that created it knows it."""

    kind = "placement groups"
    placement_group_id: str
    name: str | None = None
    creator_job_id: str | None = None
    state: str | None = None
    bundles: list | None = field(default=None, metadata=_DETAIL)
    is_detached: bool | None = field(default=None, metadata=_DETAIL)
    stats: dict | None = field(default=None, metadata=_DETAIL)
    strategy: str | None = field(default=None, metadata=_DETAIL)


@dataclass
class JobState(StateRecord):
    """A submitted job (`actorcore.job_submission`), as its etcd record says (Ray's JobDetails
    fields; ``job_id`` is None: a submission's driver is not linked to it)."""

    kind = "jobs"
    submission_id: str
    job_id: str | None = None
    type: str | None = None
    status: str | None = None
    entrypoint: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    message: str | None = field(default=None, metadata=_DETAIL)
    error_type: str | None = field(default=None, metadata=_DETAIL)
    driver_exit_code: int | None = field(default=None, metadata=_DETAIL)
    metadata: dict | None = field(default=None, metadata=_DETAIL)
    runtime_env: dict | None = field(default=None, metadata=_DETAIL)


@dataclass
class TaskSummaries:
    """Task attempts counted by function (or actor class and method) and state."""

    summary: dict
    total_tasks: int
    total_actor_tasks: int
    total_actor_scheduled: int
    summary_by: str = "func_name"


@dataclass
class ActorSummaries:
    """Actors counted by class and state."""

    summary: dict
    total_actors: int
    summary_by: str = "class"


@dataclass
class ObjectSummaries:
    """Objects counted by call site (always "disabled": call sites are not recorded)."""

    summary: dict
    total_objects: int
    total_size_mb: float
    callsite_enabled: bool = False
    summary_by: str = "callsite"


def filterable(record_type: type) -> tuple[str, ...]:
    """The fields of `record_type` a filter may name (those holding a plain value)."""
    return tuple(f.name for f in fields(record_type)
                 if not str(f.type).startswith(("dict", "list")) and f.name != "death_cause")


def check_filters(record_type: type, filters: list | tuple | None) -> list[tuple[str, bool, str]]:
    """``[(field, "=" | "!=", value)]`` checked against `record_type`'s fields: ``[(field, equal,
    lowercase value)]``. Raises ValueError naming the wrong filter."""
    allowed = filterable(record_type)
    checked = []
    for item in filters or ():
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise ValueError(f"a filter is (field, '=' or '!=', value); got {item!r}")
        name, predicate, value = item
        if name not in allowed:
            raise ValueError(f"{name!r} is not a filterable field of {record_type.kind}; "
                             f"filterable: {', '.join(allowed)}")
        if predicate not in ("=", "!="):
            raise ValueError(f"unsupported predicate {predicate!r} in filter {tuple(item)!r}: use '=' or '!='")
        checked.append((name, predicate == "=", str(value).lower()))
    return checked


def check_limit(limit: Any) -> int:
    """`limit` if it is an int >= 1; else ValueError."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    return limit


def matches(row: dict, checked: list[tuple[str, bool, str]]) -> bool:
    """Whether `row` passes every checked filter (values compare as strings, without case)."""
    return all((str(row.get(name)).lower() == value) == equal for name, equal, value in checked)


def columns(record_type: type, detail: bool) -> tuple[str, ...]:
    """The fields of `record_type` a table shows: without `detail`, those not marked detail."""
    return tuple(f.name for f in fields(record_type) if detail or not f.metadata.get("detail"))


def to_record(record_type: type, row: dict) -> Any:
    """`row` as a `record_type` (keys that are not its fields are left out)."""
    if record_type is TaskState:
        return _task_state(row)
    names = _FIELDS.get(record_type)
    if names is None:
        names = _FIELDS[record_type] = frozenset(f.name for f in fields(record_type))
    if row.keys() <= names:
        return record_type(**row)
    return record_type(**{k: v for k, v in row.items() if k in names})


_FIELDS: dict[type, frozenset] = {}


def _task_state(row: dict) -> TaskState:
    """A task's row as its TaskState, its ``events`` made from its times if the row has none;
    the row is not changed (it may be a node's own record). This runs for every listed task:
    it fills the dataclass's fields directly instead of through its ``__init__``."""
    task = TaskState.__new__(TaskState)
    values = task.__dict__
    values.update(_TASK_DEFAULTS)
    for name in _TASK_FIELDS.intersection(row):
        values[name] = row[name]
    if "events" not in row:
        values["events"] = events_of(row)
    return task


_TASK_FIELDS = frozenset(f.name for f in fields(TaskState))
_TASK_DEFAULTS = {f.name: f.default for f in fields(TaskState) if f.default is not MISSING}
