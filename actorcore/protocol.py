"""Messages between drivers, nodes and workers, carried by the actor kernel.

Plain slotted dataclasses, pickled by the kernel's codec. Payloads of objects travel as
`Inline` (the object's serialized bytes, for objects under 100 KiB) or `InShm` (where the
node's shared-memory arena holds it), or `Failed` (the error a `get` raises).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NUM_RETURNS_DYNAMIC",
    "NUM_RETURNS_STREAMING",
    "UNRECORDED",
    "ActorStateChanged",
    "ActorWorkerExited",
    "AllocateObject",
    "AttachPool",
    "AttachScheduler",
    "BecomeActor",
    "CallsReceived",
    "CancelTask",
    "ClusterView",
    "CommitBundles",
    "CountTaskStates",
    "DescribeProcess",
    "EndIdleWorkers",
    "EtcdExited",
    "EtcdLeaseLost",
    "ExecuteTask",
    "ExitWorker",
    "ExportFunction",
    "Failed",
    "FetchObject",
    "FetchPackage",
    "ForgetActor",
    "FreeObjects",
    "GeneratorConsumed",
    "GeneratorEnd",
    "GeneratorItem",
    "GeneratorResume",
    "GetActorRecord",
    "GetClusterResources",
    "GetFunction",
    "GetGcsStats",
    "GetObject",
    "GetResources",
    "GetSchedulerStats",
    "GetStoreUsage",
    "GetTransferAddress",
    "GiveBackTasks",
    "HoldPackages",
    "HoldResources",
    "InShm",
    "Inline",
    "KillWorker",
    "LeaseBlocked",
    "LeaseGranted",
    "LeaseUnblocked",
    "ListBundleGroups",
    "ListCoreActors",
    "ListLogFiles",
    "ListNamedActors",
    "ListNodes",
    "ListPackages",
    "ListStoredObjects",
    "ListTaskRecords",
    "ListWorkerProcesses",
    "ListWorkers",
    "LocateObject",
    "LogLines",
    "LookupActor",
    "LookupGroup",
    "MetricsSnapshot",
    "NameGroup",
    "NodeLoad",
    "NotStarted",
    "Payload",
    "PrepareBundles",
    "PrepareRuntimeEnv",
    "PublishSupervisionGroup",
    "ReadLog",
    "ReadRecords",
    "RegisterActor",
    "ReleaseBundles",
    "ReleaseHeldResources",
    "RequestLease",
    "ReturnLease",
    "RuntimeEnvFailed",
    "SealObject",
    "Shutdown",
    "Spillback",
    "StartRegistration",
    "StartWorkers",
    "StoreUsage",
    "SubscribeLogs",
    "SubscribeView",
    "TaskEventBatch",
    "TaskResult",
    "TaskSpec",
    "UploadPackage",
    "UseDevices",
    "WarmRuntimeEnv",
    "WorkerDied",
    "WorkerReady",
]

# -- object payloads ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Inline:
    """An object's serialized bytes, carried in the message (objects under 100 KiB)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class InShm:
    """A large object in a node's shared-memory arena: `size` serialized bytes, the primary
    copy on node `node`, copies on `replicas`.

    `offset` is where the copy on `node` was put in that node's arena: a reader there checks
    the extent's header and reads it without asking anyone; if the store moved the object
    (spilled it, restored it elsewhere) the reader asks it (`LocateObject`). A reader on a
    node holding no copy asks its ObjectStore to pull one (`FetchObject`).
    """

    object_id: str
    size: int
    node: str = ""
    replicas: tuple = ()
    offset: int = -1


@dataclass(frozen=True, slots=True)
class Failed:
    """The error a `get` of the object raises."""

    error: BaseException


Payload = Inline | InShm | Failed


# -- scheduler: worker leases -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RequestLease:
    """Ask the Scheduler for a worker able to hold `shape` (resource name -> quantity)."""

    shape: tuple[tuple[str, float], ...]
    owner: Any  # the requesting CoreWorker's ref: leases die with it
    for_actor: bool = False
    spillable: bool = True  # False: queue here even if another node has room now
    runtime_env: str = ""  # the canonical JSON of the runtime env its worker needs ("": none)


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    """The answer to a `RequestLease`: the leased worker's Executor, its pid and its node."""

    lease_id: int
    worker: Any  # the worker's Executor ref
    pid: int
    node_id: str = ""
    gpu_ids: tuple = ()  # the GPU device ids the lease holds (strings)


@dataclass(frozen=True, slots=True)
class Spillback:
    """The answer to a `RequestLease` this node will not grant: ask that node's Scheduler."""

    node_id: str
    scheduler: Any


@dataclass(frozen=True, slots=True)
class ReturnLease:
    """Give a leased worker back to its Scheduler (`worker_died`: its process is gone)."""

    lease_id: int
    worker_died: bool = False


@dataclass(frozen=True, slots=True)
class LeaseBlocked:
    """The leased worker waits in `get`: its CPUs are lent back until `LeaseUnblocked`."""

    lease_id: int


@dataclass(frozen=True, slots=True)
class LeaseUnblocked:
    """The leased worker is back from its `get`: it holds its CPUs again."""

    lease_id: int


@dataclass(frozen=True, slots=True)
class GetResources:
    """Ask a Scheduler for its node's resources (free ones if `available`, else the totals)."""

    available: bool


@dataclass(frozen=True, slots=True)
class AttachPool:
    """Node start-up -> Scheduler: the node's WorkerPool, and how many workers to keep warm."""

    pool: Any
    prestart: int


@dataclass(frozen=True, slots=True)
class WorkerDied:
    """WorkerPool -> Scheduler and the node's TaskHistory: a worker process ended."""

    pid: int
    how: str = "it ended"  # e.g. "it was killed by SIGKILL", "it exited with code 1"
    runtime_env: str = ""  # the runtime env it was started for


@dataclass(frozen=True, slots=True)
class WarmRuntimeEnv:
    """Driver -> its node's Scheduler (told): its job's runtime env `runtime_env` (canonical JSON)
    is to be set up now and a worker started for it, before any task asks (Ray's ``eager_install``)."""

    runtime_env: str


@dataclass(frozen=True, slots=True)
class RuntimeEnvFailed:
    """WorkerPool -> Scheduler: no worker can be started for `runtime_env`: `error` says why."""

    runtime_env: str
    error: str


@dataclass(frozen=True, slots=True)
class UploadPackage:
    """Store piece `index` (`PIECE_BYTES` each, the last shorter) of runtime env package `uri`
    (`actorcore.runtime_env`), `size` bytes in all, in the cluster (GcsLink; pieces in order,
    from one sender). Answers True once the package is whole there (at once if it was), else False."""

    uri: str
    index: int
    data: bytes
    size: int


@dataclass(frozen=True, slots=True)
class FetchPackage:
    """Ask the GcsLink for the bytes of package `uri`."""

    uri: str


@dataclass(frozen=True, slots=True)
class HoldPackages:
    """A process (`owner`: its core actor) -> its node's GcsLink (asked): `owner` uses packages
    `uris` (a runtime env of it or of what it submits): reference them in etcd until it ends.
    Answers True once the references are written (before the process checks or uploads them)."""

    owner: Any
    uris: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListPackages:
    """Ask the GcsLink for the SHA-256 of every package the cluster holds (a frozenset)."""


# -- functions ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ExportFunction:
    """Export a pickled function or class to the node's GcsLink (and so to etcd), once."""

    function_id: str
    blob: bytes


@dataclass(frozen=True, slots=True)
class GetFunction:
    """Ask the node's GcsLink for an exported function or class (waits until it is exported)."""

    function_id: str


# -- tasks and actor calls -----------------------------------------------------------------

@dataclass(slots=True)
class TaskSpec:
    """A task or actor call: what to run, with which arguments, for which owner."""

    task_id: str
    function_id: str  # function or actor class
    name: str  # for messages: "f" or "Counter.incr"
    args: list  # each: ("v", Payload) a resolved top-level ref or value, ("r", ObjectRef) unresolved
    kwargs: dict
    num_returns: int
    owner: Any  # the CoreWorker that owns the returns
    method: str | None = None  # actor method name
    attempt: int = 0
    namespace: str = ""  # the submitter's: named actors made while it runs go there (Ray's job namespace)
    placement: Any = None  # the placement group it runs in, as `(group, capture_child_tasks)`, or None
    generator_backpressure: int = -1  # a streaming generator pauses at this many unconsumed items (-1: never)
    concurrency_group: str | None = None  # an actor call's, if given at the call (else its method's)
    max_calls: int = 0  # a task's: its worker retires after running it that many times (0: never)
    submitted_at: float = 0.0  # when its owner submitted it, for its task events (0: not recorded there)


#: `TaskSpec.submitted_at` of a task whose ``enable_task_events`` is False: no process records it.
UNRECORDED = -1.0


@dataclass(frozen=True, slots=True)
class ExecuteTask:
    """Run a task (on a leased worker, `lease_id`) or an actor call (`lease_id` None)."""

    spec: TaskSpec
    lease_id: int | None  # None for actor calls


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The answer to `ExecuteTask`: one payload per return value, and the pid that ran it."""

    returns: list  # one Payload per return
    pid: int
    retire: bool = False  # the worker ran a function its max_calls times: lease it no more tasks


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel a task: interrupt it if it runs, drop it if queued; `force` ends the process."""

    task_id: str
    force: bool
    recursive: bool = False  # also cancel the tasks it submitted


@dataclass(frozen=True, slots=True)
class BecomeActor:
    """Turn a leased worker into the host of one actor (its `__init__` runs here)."""

    spec: TaskSpec  # function_id: the class; args: the constructor's
    actor_id: str
    max_concurrency: int
    is_async: bool
    detached: bool = False  # False: the actor ends when its owner (spec.owner) does
    gpu_ids: tuple = ()  # the GPU device ids of its lease: its CUDA_VISIBLE_DEVICES for its lifetime
    concurrency_groups: dict | None = None  # group name -> its max concurrency


# -- objects ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GetObject:
    """Ask an object's owner for its payload (answered once it is ready)."""

    object_id: str


@dataclass(frozen=True, slots=True)
class GetStoreUsage:
    """Ask the node's ObjectStore what it holds; answered with a `StoreUsage`."""


@dataclass(frozen=True, slots=True)
class GetTransferAddress:
    """Ask the node's ObjectStore where its object-transfer endpoint listens (None: not a cluster)."""


@dataclass(frozen=True, slots=True)
class AllocateObject:
    """Ask the node's ObjectStore for an extent of its arena to write `object_id` into (`size`
    serialized bytes). Answered with the extent's offset (the store spills other objects to
    make room if it must), or fails with `ObjectStoreFullError`. The writer seals it with
    `SealObject` once written; until then the store frees it if `writer` dies, and after, when
    `owner` dies."""

    object_id: str
    size: int
    owner: Any = None
    writer: Any = None


@dataclass(frozen=True, slots=True)
class SealObject:
    """`object_id` is written into the extent allocated for it: readers may use it."""

    object_id: str


@dataclass(frozen=True, slots=True)
class LocateObject:
    """Ask the node's ObjectStore where `object_id` is in its arena now (restored from its
    spill file first if it was spilled); fails with LookupError if the node holds no copy."""

    object_id: str


@dataclass(frozen=True, slots=True)
class FreeObjects:
    """The owner freed these objects: remove their segments on this node."""

    names: list  # object ids


@dataclass(frozen=True, slots=True)
class FetchObject:
    """Ask a node's ObjectStore for a local copy of a large object (pulled from `sources`).

    Answered with the copy's offset in this node's arena; concurrent fetches of one object
    share one pull.
    """

    object_id: str
    size: int
    sources: tuple  # node ids holding a copy, the primary first
    owner: Any = None  # the object's owner, when known: when it dies, the copy is freed


# -- cluster membership -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoreUsage:
    """What a node's ObjectStore holds (ObjectStore -> GcsLink, published with the node's load):
    objects and bytes in its arena, its capacity, and what is spilled to disk; and the objects
    (and their bytes) it pulled from other nodes and lent to them since it started."""

    objects: int
    bytes: int
    capacity: int = 0
    spilled_objects: int = 0
    spilled_bytes: int = 0
    pulled_objects: int = 0
    pulled_bytes: int = 0
    sent_objects: int = 0
    sent_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The live nodes (node id -> node record, see gcs/schema.py), sent to subscribers on change."""

    nodes: dict
    dead: tuple = ()  # node ids that died since the previous view
    object_replicas: int = 1  # the cluster's setting (gcs/schema.py ClusterConfig)


@dataclass(frozen=True, slots=True)
class SubscribeView:
    """Send `subscriber` a `ClusterView` now and whenever the live nodes change."""

    subscriber: Any


@dataclass(frozen=True, slots=True)
class AttachScheduler:
    """Node start-up -> GcsLink: the node's Scheduler, told the other nodes' loads from now on."""

    scheduler: Any


@dataclass(frozen=True, slots=True)
class StartRegistration:
    """Node start-up -> GcsLink: register the node in etcd now (its workers are on their way)."""


@dataclass(frozen=True, slots=True)
class EtcdLeaseLost:
    """GcsLink -> itself: etcd forgot the node's lease; the node registers again."""


@dataclass(frozen=True, slots=True)
class EtcdExited:
    """EtcdHost -> itself: the etcd it runs exited and could not be started again."""


@dataclass(frozen=True, slots=True)
class ListNodes:
    """Ask the GcsLink for every node's record, each with ``alive`` set (live ones, then dead ones)."""


@dataclass(frozen=True, slots=True)
class GetClusterResources:
    """Ask the GcsLink for the resources summed over the live nodes (free ones if `available`)."""

    available: bool


@dataclass(frozen=True, slots=True)
class GetActorRecord:
    """Ask the GcsLink for the record ``actors/<actor_id>`` (None if there is none)."""

    actor_id: str


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """A node's available resources (Scheduler -> GcsLink, published throttled; GcsLink -> Scheduler)."""

    node_id: str
    available: dict


# -- named actors, logs, lifecycle --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RegisterActor:
    """Record an actor (and reserve its name, if it has one; answered False if taken)."""

    actor_id: str
    namespace: str
    name: str | None
    record: bytes  # the pickled handle, for get_actor


@dataclass(frozen=True, slots=True)
class LookupActor:
    """Find a named actor: answered with its pickled handle and where it runs, or None."""

    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class ForgetActor:
    """Remove an actor's record and free its name."""

    actor_id: str
    namespace: str
    name: str | None


@dataclass(frozen=True, slots=True)
class ActorStateChanged:
    """An actor's record changed (written to `actors/<actor_id>` by the node's GcsLink; an ask
    is answered once the change is over)."""

    actor_id: str
    record: dict


@dataclass(frozen=True, slots=True)
class ActorWorkerExited:
    """Scheduler -> an actor's owner: how the process of the actor it leased for ended."""

    lease_id: int
    pid: int
    how: str


@dataclass(frozen=True, slots=True)
class SubscribeLogs:
    """A driver's log sink wants the output of this node's workers."""

    sink: Any


@dataclass(frozen=True, slots=True)
class EndIdleWorkers:
    """WorkerPool -> Scheduler: end the idle workers started for one of `runtime_envs` (their
    packages were collected: the pool removes its copies once no worker uses them)."""

    runtime_envs: frozenset[str]


@dataclass(frozen=True, slots=True)
class KillWorker:
    """Ask the WorkerPool to SIGKILL one of its worker processes."""

    pid: int


@dataclass(frozen=True, slots=True)
class StartWorkers:
    """Scheduler -> WorkerPool: start `count` more worker processes (for runtime env `runtime_env`)."""

    count: int
    runtime_env: str = ""


@dataclass(frozen=True, slots=True)
class PrepareRuntimeEnv:
    """Ask the WorkerPool to set runtime env `runtime_env` (canonical JSON) up on its node, as
    for its workers (the head's job manager, for an entrypoint): answered with its
    `WorkerSetup`, or the `RuntimeEnvSetupError` saying why it cannot be."""

    runtime_env: str


@dataclass(frozen=True, slots=True)
class ListWorkers:
    """Ask the WorkerPool for the pids of its live worker processes (sorted)."""


@dataclass(frozen=True, slots=True)
class ExitWorker:
    """Ask an Executor's process to exit at once (`kill()`; the caller records the actor's death)."""


@dataclass(frozen=True, slots=True)
class LogLines:
    """Lines a worker printed, for a driver's log sink."""

    pid: int
    stream: str  # "stdout" | "stderr"
    lines: list = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """A worker process started: its Executor can be leased out (for tasks of `runtime_env`)."""

    pid: int
    executor: Any
    runtime_env: str = ""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Ask a node's guard to stop the node."""


# -- placement groups: bundle reservations on a node's Scheduler ----------------------------

@dataclass(frozen=True, slots=True)
class PrepareBundles:
    """Phase one of a placement group's reservation on one node: set aside the resources of
    `bundles` ((index, {resource: quantity}) pairs) for group `group_id`; answered True if
    they fit now, else False (nothing is set aside). `commit`: the group has no other node,
    so the reservation is committed at once (one phase)."""

    group_id: str
    bundles: tuple
    commit: bool = False
    owner: Any = None  # the creator's CoreWorker: the group is released when it ends (None: detached)


@dataclass(frozen=True, slots=True)
class CommitBundles:
    """Phase two: the prepared bundles of `group_id` become the node's resources of the group
    (named per group and bundle), which leases of the group's tasks and actors take."""

    group_id: str


@dataclass(frozen=True, slots=True)
class ReleaseBundles:
    """Give back what `group_id` holds on this node, prepared or committed; the workers of its
    tasks and actors are killed (`removed`: the group is gone for good, and lease requests for
    its resources fail from now on)."""

    group_id: str
    removed: bool = True
    prepared_only: bool = False  # only what is prepared and not committed (a failed phase one)


@dataclass(frozen=True, slots=True)
class HoldResources:
    """Ask a Scheduler to hold `shape` (resource name -> quantity pairs) with no worker, under
    `hold_id`, until `ReleaseHeldResources(hold_id)` or until `owner` ends (a submitted job's
    entrypoint, docs/architecture.md "Jobs"). Answered once held, with the ids of the GPU
    devices held (a list); while the node is busy the answer waits; ValueError, naming the
    resource, at once if the node's totals can never hold it."""

    hold_id: str
    shape: tuple[tuple[str, float], ...]
    owner: Any


@dataclass(frozen=True, slots=True)
class ReleaseHeldResources:
    """Give back what `HoldResources(hold_id)` holds, or stop waiting for it."""

    hold_id: str


@dataclass(frozen=True, slots=True)
class ListBundleGroups:
    """Ask a Scheduler which placement groups hold bundles on its node: answered with
    ``[(group id, its owner's core actor or None for a detached group)]``."""


@dataclass(frozen=True, slots=True)
class NameGroup:
    """Record placement group `name` in `namespace` (etcd ``groups/<namespace>/<name>``) as
    `handle`, the group's pickled handle (a later group of the same name replaces it);
    `forget`: delete it, if it is still this handle."""

    namespace: str
    name: str
    handle: bytes
    forget: bool = False


@dataclass(frozen=True, slots=True)
class LookupGroup:
    """Find placement group `name` of `namespace`: answered with its pickled handle, or None."""

    namespace: str
    name: str
@dataclass(frozen=True, slots=True)
class ListNamedActors:
    """Ask the GcsLink for the named actors that are not dead: ``(namespace, name)`` pairs, sorted,
    of ``namespace`` only, or of every namespace if it is None (`list_named_actors`)."""

    namespace: str | None


# -- devices ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UseDevices:
    """Submitter -> a worker it leased, before the lease's first task: the GPU device ids the
    lease holds (its tasks run with CUDA_VISIBLE_DEVICES set to them)."""

    lease_id: int
    gpu_ids: tuple


# -- generator tasks (docs/architecture.md, "Streaming generators") ----------------------

#: `TaskSpec.num_returns` of a generator task whose items stream to its caller one by one
#: (num_returns="streaming"), and of one whose single return lists its items (num_returns="dynamic").
NUM_RETURNS_STREAMING = -2
NUM_RETURNS_DYNAMIC = -1


@dataclass(frozen=True, slots=True)
class GeneratorItem:
    """Executor -> the task's owner: item `index` (from 0) of generator task `task_id`.

    `producer` is the Executor to tell `GeneratorConsumed` (set only under backpressure);
    `dynamic`: an item of a num_returns="dynamic" task (asked: answered once recorded).
    """

    task_id: str
    index: int
    payload: Any
    producer: Any = None
    dynamic: bool = False


@dataclass(frozen=True, slots=True)
class GeneratorEnd:
    """Executor -> owner (asked, before the task's result): the generator made `count` items,
    then raised `error` (a `Failed` payload) if not None. Answered True if the task is to run
    again for that error (`retry_exceptions`), else the error becomes the stream's last item."""

    task_id: str
    count: int
    error: Any = None


@dataclass(frozen=True, slots=True)
class GeneratorConsumed:
    """Owner -> the producing Executor: the caller has taken `count` items of `task_id`."""

    task_id: str
    count: int


@dataclass(frozen=True, slots=True)
class GeneratorResume:
    """Executor -> owner, when a generator task runs again: answered with how many items the
    owner has and how many the caller took; `producer` (under backpressure) is told from now on."""

    task_id: str
    producer: Any = None


# -- giving back queued tasks, and the order of a task's actor calls ---------------------

@dataclass(frozen=True, slots=True)
class GiveBackTasks:
    """Ask an Executor to give back up to `count` of the tasks queued on it that have not
    started, the last queued first: each is answered with `NotStarted` instead of its result
    (never both). Answered with how many were given back."""

    count: int


@dataclass(frozen=True, slots=True)
class NotStarted:
    """The answer to an `ExecuteTask` given back unstarted (`GiveBackTasks`): run it elsewhere."""

    task_id: str


@dataclass(frozen=True, slots=True)
class CallsReceived:
    """Answered by an Executor once it has accepted every message sent before this one by the
    same sender: the actor calls a task made are in the actor's mailbox."""


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """A process -> its node's MetricsExporter, every few seconds: the process's user metrics,
    (kind, name) -> {"description", "tag_keys", "boundaries", "series"} (see util/metrics.py)."""

    process_id: str
    metrics: dict


@dataclass(frozen=True, slots=True)
class GetSchedulerStats:
    """Ask a Scheduler for its worker and lease counts: {"idle_workers", "busy_workers",
    "active_leases", "leases_granted", "pending_leases"}."""


@dataclass(frozen=True, slots=True)
class GetGcsStats:
    """Ask a GcsLink for {"etcd_roundtrip_seconds": its last timed etcd round trip (None: not
    timed yet; the first ask starts the timing), "actor_restarts": restarts recorded through it}."""


# -- task events (docs/architecture.md, "Task events and the state API") ------------------

@dataclass(frozen=True, slots=True)
class TaskEventBatch:
    """A process's task events since its last batch, to its node's TaskHistory (told).
    `events` are `task_records.TaskEvent` tuples; `runs` the `run_count` runs that finished
    here, as one pickled flat list (`task_records.RUN_FIELDS` atoms each), read only when the
    history is asked; `dropped` counts the events its full buffer lost meanwhile; `source` names
    the process (node_id, worker_id, worker_pid, job_id)."""

    events: list
    dropped: int
    source: dict
    runs: bytes = b""
    run_count: int = 0


@dataclass(frozen=True, slots=True)
class CountTaskStates:
    """Ask a TaskHistory for its node's tasks by state (``{"RUNNING": 2, ...}``): the attempts that
    ran on the node by their state, and those its processes submitted that no worker has
    started yet (or that failed before one did)."""


@dataclass(frozen=True, slots=True)
class ListTaskRecords:
    """Ask a TaskHistory for up to `limit` of its task records matching `filters` (each
    ``(field, "=" | "!=", value)``, string values compared without case), the newest first;
    answered with ``(records, total matching, events dropped so far)``. A record is partial (its
    owner's side or its worker's) and has no ``events``: `task_records.merge_records` makes them."""

    filters: tuple = ()
    limit: int = 100


# -- user supervision groups (docs/supervision.md, "Supervision groups: supervise()") -------

@dataclass(frozen=True, slots=True)
class PublishSupervisionGroup:
    """A group's owner -> its node's GcsLink (told): write `record` (a dict, `actorcore.supervision_records`)
    under ``supervision/<group_id>``, or delete it (`record` None). The node removes the
    records of an `owner` (its core actor) when that process ends."""

    group_id: str
    owner: Any
    record: dict | None


# -- logs (docs/architecture.md, "Logs") --------------------------------------------------

@dataclass(frozen=True, slots=True)
class ListLogFiles:
    """Ask a node's LogService for its log files whose names match the shell pattern `glob`:
    ``{"node_id", "files": [{"name", "size", "mtime"}]}``, names relative to its log folder."""

    glob: str = "*"


@dataclass(frozen=True, slots=True)
class ReadLog:
    """Ask a node's LogService for part of one log file, named by `name` (as `ListLogFiles`
    lists it), or the `stream` ("stdout" or "stderr") of the worker with `pid` or `worker_id`.
    `tail` >= 0: its last `tail` lines; else from byte `offset` on (of the file an earlier answer's
    `file_id` named: a file rotated since is read from its start); at most `max_bytes` bytes.
    Answered ``{"name", "data": bytes, "offset": where the next read starts, "size", "file_id"}``,
    or ``{"error": message}``."""

    name: str | None = None
    pid: int | None = None
    worker_id: str | None = None
    stream: str = "stdout"
    tail: int = -1
    offset: int = 0
    max_bytes: int = 1 << 20
    file_id: int | None = None


# -- the state API (docs/architecture.md, "Task events and the state API") -----------------

@dataclass(frozen=True, slots=True)
class ListCoreActors:
    """Ask a GcsLink for the core actors of the processes of its node that follow the cluster's
    view (its drivers and workers, in a cluster): answered with their kernel URIs."""


@dataclass(frozen=True, slots=True)
class ListWorkerProcesses:
    """Ask a Scheduler for its node's ready worker processes: answered with
    ``[(pid, executor URI, leased, leased for an actor)]``."""


@dataclass(frozen=True, slots=True)
class DescribeProcess:
    """Ask a process's core actor what it is (``worker_id``, ``pid``, ``node_id``, ``job_id``,
    ``is_driver``, ``actor_id``) and, with `objects`, the objects it owns (``objects``: one
    dict per object, Ray's ObjectState fields) and its placement groups (``placement_groups``:
    group id -> `placement_group_table` record)."""

    objects: bool = True


@dataclass(frozen=True, slots=True)
class ReadRecords:
    """Ask a GcsLink for the records under ``<kind>/`` in etcd (``nodes``, ``dead``,
    ``resources``, ``actors``, ``groups``): answered with ``[(key, value bytes)]``."""

    kind: str


@dataclass(frozen=True, slots=True)
class ListStoredObjects:
    """Ask an ObjectStore what it holds: ``{object id: (size, in its arena, a spill file holds it)}``
    for its sealed objects."""
