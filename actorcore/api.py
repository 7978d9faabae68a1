"""Ray's public API: init/shutdown, get/put/wait, cancel, cluster information.

A driver's `init()` starts, for local mode, a throwaway etcd, the node process (which starts
its warm pool of workers) and this process's actor system with its CoreWorker.
`init(address="auto" | "HOST:PORT")` instead joins a cluster started with `actorcore start`:
it reads the live nodes from etcd (HOST:PORT is the cluster's etcd), attaches to a node on
this machine (the head if it runs here) and subscribes to every node's worker output. The
CoreWorker becomes the process's runtime (`actorcore.runtime`), which worker processes set too,
so the same functions work inside tasks. As in Ray, the first `.remote()`, `put` or `get`
without `init()` initializes with defaults. The functions on actor handles (`kill`,
`get_actor`) are in `actorcore.actor`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import uuid
from typing import Any

from . import runtime
from ._logging import get_logger
from .connection import ClusterConnection, LocalCluster
from .core import CoreWorker
from .core.streams import ObjectRefGenerator
from .dashboard_address import dashboard_address
from .env import ADDRESS_ENV
from .jobs.driver import announce_driver
from .node_resources import MIN_OBJECT_STORE_MEMORY, accelerator_type_resources, resolve_gpu_ids
from .object_ref import ObjectRef
from .protocol import ListNodes
from .runtime_context import RuntimeContext, current_gpu_ids
from .runtime_context import get_runtime_context as _get_runtime_context
from .runtime_env.packaging import pack_local_paths
from .runtime_env.spec import validate as validate_runtime_env

__all__ = [
    "available_resources", "cancel", "cluster_resources", "get", "get_runtime_context", "init",
    "is_initialized", "nodes", "put", "shutdown", "wait",
]

log = get_logger(__name__)

_local: LocalCluster | ClusterConnection | None = None
_init_lock = threading.RLock()

#: Ray's init() keywords that have no meaning here and are accepted as no-ops.
_IGNORED_INIT_KWARGS = {
    "configure_logging",
    "_node_ip_address", "_temp_dir", "local_mode",
    "_system_config", "logging_format", "_enable_object_reconstruction",
}


async def _make_core(connection: LocalCluster | ClusterConnection, namespace: str) -> CoreWorker:
    core = CoreWorker(connection.system, connection.endpoints, job_id="01", namespace=namespace, is_driver=True,
                      view=connection.view, object_replicas=connection.object_replicas)
    core.cluster.log_sink = connection.log_sink
    return core


#: this process's CoreWorker, started with defaults if there is none (as Ray does)
_runtime = runtime.require
#: this process's CoreWorker, or None
_runtime_or_none = runtime.current


def is_initialized() -> bool:
    """Whether `init()` has run (and `shutdown()` not since) in this process."""
    return runtime.current() is not None


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict | None = None, namespace: str | None = None, ignore_reinit_error: bool = False,
         logging_level: int = logging.ERROR, log_to_driver: bool = True, **kwargs: Any):
    """Start (local mode) or join a cluster and make this process a driver.

    ``address``: None or "local" starts a local cluster (``num_cpus``, ``num_gpus``,
    ``resources`` and ``_memory``, in bytes, give its node's resources; GPUs are detected and
    memory is 70% of what is available unless given, see `actorcore.node_resources`); "auto"
    joins the cluster started on this machine with ``actorcore start``; "HOST:PORT" joins the
    cluster whose etcd listens there (the environment variable ACTORCORE_ADDRESS is the
    default). ``namespace``: of the named actors
    this driver creates and looks up (default: one of its own). ``logging_level``: of
    actorcore's own loggers in this process. ``log_to_driver``: print the workers' output
    (stdout, stderr) on this terminal, each line prefixed with its worker's pid. Returns the
    RuntimeContext.
    Raises RuntimeError if already initialized (unless ``ignore_reinit_error``), ValueError or
    TypeError for arguments that do not fit, ConnectionError if the cluster cannot be joined.
    """
    global _local
    memory = kwargs.pop("_memory", None)
    store_memory = kwargs.pop("object_store_memory", None)
    spill_dir = kwargs.pop("object_spilling_directory", None)
    metrics_port = kwargs.pop("_metrics_export_port", None)
    include_dashboard = kwargs.pop("include_dashboard", None)
    dashboard_host = kwargs.pop("dashboard_host", None)
    dashboard_port = kwargs.pop("dashboard_port", None)
    job_env = kwargs.pop("runtime_env", None)
    unknown = set(kwargs) - _IGNORED_INIT_KWARGS
    if unknown:
        raise TypeError(f"init() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    with _init_lock:
        if runtime.current() is not None:
            if ignore_reinit_error:
                return RuntimeContext(runtime.current())
            raise RuntimeError(
                "Maybe you called init() twice by accident? This error can be suppressed by passing "
                "ignore_reinit_error=True, or by calling shutdown() first."
            )
        # Checked and packed before anything starts: a bad key or a missing directory is refused first.
        job_env, job_packages = pack_local_paths(validate_runtime_env(job_env, "init(runtime_env=...)"))
        if address is None:
            address = os.environ.get(ADDRESS_ENV)
        if address not in (None, "local"):
            if not isinstance(address, str) or (address != "auto" and ":" not in address):
                raise ValueError(f"init(address=...) takes 'auto' or 'HOST:PORT' (the cluster's etcd), got {address!r}")
            for given, what in ((num_cpus, "num_cpus"), (num_gpus, "num_gpus"), (resources, "resources"),
                                (memory, "_memory"), (store_memory, "object_store_memory"),
                                (spill_dir, "object_spilling_directory"), (metrics_port, "_metrics_export_port")):
                if given is not None:
                    raise ValueError(f"when connecting to an existing cluster, {what} must not be given: "
                                     "set the nodes' resources with `actorcore start`")
            logging.getLogger("actorcore").setLevel(logging_level)
            connection = ClusterConnection()
            try:
                connection.start(address.removeprefix("actorcore://").removeprefix("ray://"), log_to_driver)
                core = connection.system.run(_make_core(connection, namespace or uuid.uuid4().hex))
                core.runtime_envs.set_job_env(job_env, job_packages)
            except BaseException:
                connection.stop()
                raise
            _local = connection
            runtime.set_current(core)
            announce_driver(connection.system, core.job_id, core.node_id, core.prefix)  # a submitted job's driver
            return RuntimeContext(core, dashboard_url=connection.dashboard_url)
        if resources is not None and not isinstance(resources, dict):
            raise TypeError(f"resources must be a dict of name -> quantity, got {resources!r}")
        for name in (resources or {}):
            if name in ("CPU", "GPU"):
                raise ValueError(f"use num_cpus/num_gpus instead of resources={{{name!r}: ...}}")
        _check_quantity("num_gpus", num_gpus)
        _check_quantity("_memory", memory)
        _check_store_memory(store_memory)
        if spill_dir is not None and not isinstance(spill_dir, (str, os.PathLike)):
            raise TypeError(f"init(object_spilling_directory=...) takes a folder's path, got {spill_dir!r}")
        _check_port("_metrics_export_port", metrics_port)
        dashboard = _local_dashboard(include_dashboard, dashboard_host, dashboard_port)
        gpu_ids = resolve_gpu_ids(num_gpus)  # detected unless given
        logging.getLogger("actorcore").setLevel(logging_level)
        cluster = LocalCluster()
        try:
            cluster.start(num_cpus if num_cpus is not None else (os.cpu_count() or 1),
                          len(gpu_ids) if num_gpus is None else num_gpus,
                          {**accelerator_type_resources(len(gpu_ids)), **(resources or {})}, log_to_driver,
                          gpu_ids=gpu_ids, memory=memory, object_store_memory=store_memory,
                          object_spilling_directory=None if spill_dir is None else os.fspath(spill_dir),
                          metrics_export_port=metrics_port, dashboard=dashboard)
            core = cluster.system.run(_make_core(cluster, namespace or uuid.uuid4().hex))
            core.runtime_envs.set_job_env(job_env, job_packages)
        except BaseException:
            cluster.stop()
            raise
        _local = cluster
        runtime.set_current(core)
        url = cluster.endpoints.dashboard_url
        if url is not None:  # asked for: the one place a local session's token is shown
            print(f"actorcore: the dashboard is at {url} (log in: {url}/login?token={cluster.token})",
                  file=sys.stderr, flush=True)
        return RuntimeContext(core, dashboard_url=url)


def _check_quantity(what: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"init({what}=...) takes a number >= 0, got {value!r}")
    if not value >= 0:
        raise ValueError(f"init({what}=...) takes a number >= 0, got {value!r}")


def _local_dashboard(include: Any, host: Any, port: Any) -> str | None:
    """Where a local session's node serves the dashboard ("HOST:PORT"), or None: only when
    `include_dashboard=True` (Ray starts one by default; here it would slow every init())."""
    if include not in (None, True, False):
        raise TypeError(f"init(include_dashboard=...) takes True, False or None, got {include!r}")
    if host is not None and not isinstance(host, str):
        raise TypeError(f"init(dashboard_host=...) takes an IP address, got {host!r}")
    _check_port("dashboard_port", port)
    if not include:
        return None
    address, taken = dashboard_address(host, port)
    if taken:
        raise ValueError(f"init(): cannot serve the dashboard on {address}: {taken}; pass another dashboard_port")
    return address


def _check_port(what: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"init({what}=...) takes a port number 0-65535 (0: a free port), got {value!r}")


def _check_store_memory(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"init(object_store_memory=...) takes a number of bytes (an int), got {value!r}")
    if value < MIN_OBJECT_STORE_MEMORY:
        raise ValueError(f"init(object_store_memory=...) must be at least {MIN_OBJECT_STORE_MEMORY} bytes, "
                         f"got {value}")


def shutdown() -> None:
    """Stop everything init() started; init() may be called again afterwards."""
    global _local
    with _init_lock:
        cluster, _local = _local, None
        core = runtime.current()
        runtime.set_current(None)
        if core is not None:
            try:
                core.stop_events()
            except Exception:  # noqa: BLE001 - a node already gone keeps no events
                pass
        if cluster is not None:
            cluster.stop()
        if core is not None:
            core.objects.local.close()  # (values still alive keep their part of the arena mapped)


atexit.register(shutdown)
runtime.set_starter(init)


# -- objects ------------------------------------------------------------------------------

def put(value: Any, *, _replicas: int | None = None) -> ObjectRef:
    """Store `value` in the object store and return its ObjectRef (this process owns it).

    ``_replicas=k`` keeps k copies on distinct nodes (clusters). Raises TypeError if `value`
    is an ObjectRef or cannot be serialized, ValueError for a bad ``_replicas``.
    """
    if _replicas is not None and (not isinstance(_replicas, int) or isinstance(_replicas, bool) or _replicas < 1):
        raise ValueError(f"_replicas must be an int >= 1, got {_replicas!r}")
    return _runtime().objects.put(value, _replicas)


def get(object_refs, *, timeout: float | None = None):
    """The value of ``object_refs`` (an ObjectRef), or the list of values of a list of them,
    once ready.

    Waits up to ``timeout`` seconds (None: for ever), then raises GetTimeoutError. A task that
    raised re-raises its error here (a TaskError that is also an instance of the original
    exception's class); an actor that died raises ActorDiedError; an object that was lost,
    ObjectLostError. Raises TypeError for anything but refs.
    """
    objects = _runtime().objects
    if isinstance(object_refs, ObjectRef):
        return objects.get([object_refs], timeout)[0]
    if isinstance(object_refs, (list, tuple)):
        for index, ref in enumerate(object_refs):
            if not isinstance(ref, ObjectRef):
                raise TypeError(
                    f"get() takes an ObjectRef or a list of ObjectRefs; item {index} is a "
                    f"{type(ref).__qualname__}"
                )
        return objects.get(list(object_refs), timeout)
    if isinstance(object_refs, ObjectRefGenerator):
        return object_refs  # as Ray does: iterate it for the refs of its items
    raise TypeError(
        f"get() takes an ObjectRef or a list of ObjectRefs, got a {type(object_refs).__qualname__}"
    )


def wait(object_refs, *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True):
    """Wait until ``num_returns`` of ``object_refs`` (a list of unique refs) are ready, or
    ``timeout`` seconds pass (None: no limit). The list may hold ObjectRefGenerators: one is
    ready when ``next()`` on it would not block.

    Returns ``(ready, not_ready)``: two lists of the refs, in the order given. Raises TypeError
    or ValueError for arguments that do not fit. ``fetch_local`` is accepted for Ray's sake.
    """
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expects a list of ObjectRefs, not a single ObjectRef: wrap it in a list")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expects a list of ObjectRefs, got a {type(object_refs).__qualname__}")
    refs = list(object_refs)
    generators = False
    for index, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
            if isinstance(ref, ObjectRefGenerator):  # ready when next() would not block
                generators = True
                continue
            raise TypeError(f"wait() expects a list of ObjectRefs; item {index} is a {type(ref).__qualname__}")
    if not refs:
        return [], []
    if len(set(refs)) != len(refs):
        raise ValueError("wait() requires a list of unique ObjectRefs; this one has duplicates")
    if not isinstance(num_returns, int) or num_returns < 1:
        raise ValueError(f"num_returns must be a positive int, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number of refs ({len(refs)})")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout!r}")
    if generators:
        return _runtime().streams.wait(refs, num_returns, timeout)
    return _runtime().objects.wait(refs, num_returns, timeout)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task or actor call that returns ``object_ref``.

    A task still waiting for a worker never runs: `get` raises TaskCancelledError. A running
    one is interrupted (``force``: its worker process is ended): `get` raises an error that is
    both a TaskError and a TaskCancelledError, as in Ray. ``recursive``: the tasks the cancelled
    task submitted are cancelled too. An actor call queued on its actor is dropped
    (TaskCancelledError); a running call of an async actor has its coroutine cancelled; a
    running call of a sync actor is not interrupted (it finishes, as in Ray). ``object_ref``
    may also be an ObjectRefGenerator, or the ref of one of its items: its generator task is
    cancelled. Raises TypeError if ``object_ref`` is none of these, ValueError for
    ``force=True`` on an actor call.
    """
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref.completed()
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef, got a {type(object_ref).__qualname__}")
    core = _runtime()
    stream = core.streams.stream_of(object_ref.id)
    if stream is not None:  # an item of a generator task: that task is cancelled
        object_ref = ObjectRef(f"{stream.task_id}.0", object_ref.owner)
    core.tasks.cancel(object_ref, force, recursive)


# -- cluster information ------------------------------------------------------------------

def available_resources() -> dict:
    """The cluster's resources free now: name -> quantity ("CPU", "GPU", custom ones)."""
    return _runtime().resources(available=True)


def cluster_resources() -> dict:
    """The cluster's total resources: name -> quantity."""
    return _runtime().resources(available=False)


def nodes() -> list[dict]:
    """The cluster's nodes, as Ray lists them: NodeID, Alive, NodeManagerAddress, Resources, IsHead,
    MetricsExportPort (-1: the node serves no metrics)."""
    core = _runtime()
    infos = core.system.ask_sync(core.gcs, ListNodes(), timeout=30)
    return [
        {"NodeID": info["node_id"], "Alive": info.get("alive", True),
         "NodeManagerAddress": info.get("address", "127.0.0.1"), "Resources": info.get("resources", {}),
         "IsHead": bool(info.get("head")), "MetricsExportPort": info.get("metrics_export_port") or -1}
        for info in infos
    ]


def get_gpu_ids() -> list:
    """The ids of the GPUs the calling task or actor was given (its CUDA_VISIBLE_DEVICES while it
    runs): ints counting from 0, or, if CUDA_VISIBLE_DEVICES named the node's GPUs, those names
    (strings). ``[]`` in a driver and in tasks and actors without GPUs."""
    _runtime()
    return current_gpu_ids()


def get_runtime_context() -> RuntimeContext:
    """Who and where the calling code runs: job, node, task and actor ids, namespace."""
    return _get_runtime_context()

