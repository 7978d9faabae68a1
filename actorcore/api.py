"""Ray's public API (DESIGN.md §2, §9): init/shutdown, get/put/wait, cancel, kill, get_actor...

A driver's `init()` starts, for local mode, a throwaway etcd, the node process (which starts
its warm pool of workers) and this process's actor system with its CoreWorker.
`init(address="auto" | "HOST:PORT")` instead joins a cluster started with `actorcore start`:
it reads the live nodes from etcd (HOST:PORT is the cluster's etcd), attaches to a node on
this machine (the head if it runs here) and subscribes to every node's worker output. Worker
processes set their CoreWorker with `_set_runtime`, so the same functions work inside tasks.
As in Ray, the first `.remote()`, `put` or `get` without `init()` initializes with defaults.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from typing import Any

from ._logging import get_logger
from .connection import ClusterConnection, LocalCluster
from .core_worker import CoreWorker
from .env import ADDRESS_ENV
from .object_ref import ObjectRef
from .protocol import ListNodes
from .runtime_context import RuntimeContext

log = get_logger(__name__)

_core: CoreWorker | None = None
_local: LocalCluster | ClusterConnection | None = None
_init_lock = threading.RLock()

#: Ray's init() keywords that have no meaning here and are accepted as no-ops.
_IGNORED_INIT_KWARGS = {
    "include_dashboard", "dashboard_host", "dashboard_port", "configure_logging",
    "_node_ip_address", "object_store_memory", "runtime_env", "_temp_dir", "local_mode",
    "_system_config", "logging_format", "_enable_object_reconstruction",
}


async def _make_core(connection: LocalCluster | ClusterConnection, namespace: str) -> CoreWorker:
    core = CoreWorker(connection.system, connection.endpoints, job_id="01", namespace=namespace, is_driver=True,
                      view=connection.view, object_replicas=connection.object_replicas)
    core.log_sink = connection.log_sink
    return core


def _set_runtime(core: CoreWorker) -> None:
    global _core
    _core = core


def _runtime_or_none() -> CoreWorker | None:
    return _core


def _runtime() -> CoreWorker:
    if _core is None:
        init()
    return _core


def is_initialized() -> bool:
    return _core is not None


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict | None = None, namespace: str | None = None, ignore_reinit_error: bool = False,
         logging_level: int = logging.ERROR, log_to_driver: bool = True, **kwargs: Any):
    """Start (local mode) or join a cluster and make this process a driver."""
    global _core, _local
    unknown = set(kwargs) - _IGNORED_INIT_KWARGS
    if unknown:
        raise TypeError(f"init() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    with _init_lock:
        if _core is not None:
            if ignore_reinit_error:
                return RuntimeContext(_core)
            raise RuntimeError(
                "Maybe you called init() twice by accident? This error can be suppressed by passing "
                "ignore_reinit_error=True, or by calling shutdown() first."
            )
        if address is None:
            address = os.environ.get(ADDRESS_ENV)
        if address not in (None, "local"):
            if not isinstance(address, str) or (address != "auto" and ":" not in address):
                raise ValueError(f"init(address=...) takes 'auto' or 'HOST:PORT' (the cluster's etcd), got {address!r}")
            for given, what in ((num_cpus, "num_cpus"), (num_gpus, "num_gpus"), (resources, "resources")):
                if given is not None:
                    raise ValueError(f"when connecting to an existing cluster, {what} must not be given: "
                                     "set the nodes' resources with `actorcore start`")
            logging.getLogger("actorcore").setLevel(logging_level)
            connection = ClusterConnection()
            try:
                connection.start(address.removeprefix("actorcore://").removeprefix("ray://"), log_to_driver)
                _core = connection.system.run(_make_core(connection, namespace or uuid.uuid4().hex))
            except BaseException:
                connection.stop()
                raise
            _local = connection
            return RuntimeContext(_core)
        if resources is not None and not isinstance(resources, dict):
            raise TypeError(f"resources must be a dict of name -> quantity, got {resources!r}")
        for name in (resources or {}):
            if name in ("CPU", "GPU"):
                raise ValueError(f"use num_cpus/num_gpus instead of resources={{{name!r}: ...}}")
        logging.getLogger("actorcore").setLevel(logging_level)
        cluster = LocalCluster()
        try:
            cluster.start(num_cpus if num_cpus is not None else (os.cpu_count() or 1), num_gpus or 0,
                          resources or {}, log_to_driver)
            _core = cluster.system.run(_make_core(cluster, namespace or uuid.uuid4().hex))
        except BaseException:
            cluster.stop()
            raise
        _local = cluster
        return RuntimeContext(_core)


def shutdown() -> None:
    """Stop everything init() started; init() may be called again afterwards."""
    global _core, _local
    with _init_lock:
        cluster, _local = _local, None
        _core = None
        if cluster is not None:
            cluster.stop()


atexit.register(shutdown)


# -- objects ------------------------------------------------------------------------------

def put(value: Any, *, _replicas: int | None = None) -> ObjectRef:
    """Store `value` in the object store; `_replicas=k` keeps k copies on distinct nodes."""
    if _replicas is not None and (not isinstance(_replicas, int) or isinstance(_replicas, bool) or _replicas < 1):
        raise ValueError(f"_replicas must be an int >= 1, got {_replicas!r}")
    return _runtime().put(value, _replicas)


def get(object_refs, *, timeout: float | None = None):
    core = _runtime()
    if isinstance(object_refs, ObjectRef):
        return core.get([object_refs], timeout)[0]
    if isinstance(object_refs, (list, tuple)):
        for index, ref in enumerate(object_refs):
            if not isinstance(ref, ObjectRef):
                raise TypeError(
                    f"get() takes an ObjectRef or a list of ObjectRefs; item {index} is a "
                    f"{type(ref).__qualname__}"
                )
        return core.get(list(object_refs), timeout)
    raise TypeError(
        f"get() takes an ObjectRef or a list of ObjectRefs, got a {type(object_refs).__qualname__}"
    )


def wait(object_refs, *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True):
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expects a list of ObjectRefs, not a single ObjectRef: wrap it in a list")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expects a list of ObjectRefs, got a {type(object_refs).__qualname__}")
    refs = list(object_refs)
    for index, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
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
    return _runtime().wait(refs, num_returns, timeout)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef, got a {type(object_ref).__qualname__}")
    _runtime().cancel(object_ref, force)


# -- actors -------------------------------------------------------------------------------

def kill(actor, *, no_restart: bool = True) -> None:
    from .actor import ActorHandle

    if not isinstance(actor, ActorHandle):
        raise TypeError(f"kill() takes an actor handle, got a {type(actor).__qualname__}")
    _runtime().kill_actor(actor, no_restart)


def get_actor(name: str, namespace: str | None = None):
    import pickle

    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty actor name, got {name!r}")
    core = _runtime()
    found = core.lookup_actor(name, namespace or core.namespace)
    if found is None:
        where = f" in namespace {namespace!r}" if namespace else ""
        raise ValueError(f"Failed to look up actor with name '{name}'{where}: no such actor (or it was killed)")
    blob, worker = found
    handle = pickle.loads(blob)
    if handle._worker is None and worker is not None:
        handle._worker = (core.system.ref_from_uri(worker[0]), worker[1])
    return handle


# -- cluster information ------------------------------------------------------------------

def available_resources() -> dict:
    return _runtime().resources(available=True)


def cluster_resources() -> dict:
    return _runtime().resources(available=False)


def nodes() -> list[dict]:
    core = _runtime()
    infos = core.system.ask_sync(core.gcs, ListNodes(), timeout=30)
    return [
        {"NodeID": info["node_id"], "Alive": info.get("alive", True),
         "NodeManagerAddress": info.get("address", "127.0.0.1"), "Resources": info.get("resources", {}),
         "IsHead": bool(info.get("head"))}
        for info in infos
    ]


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(_runtime())


def timeline(*args, **kwargs):  # pragma: no cover - Ray compatibility
    raise NotImplementedError("timeline() is not supported")

