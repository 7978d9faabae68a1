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
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

from . import exceptions as exc
from ._logging import get_logger
from .cluster_files import TOKEN_ENV, new_token
from .core_worker import CoreWorker
from .kernel import Actor, ActorSystem
from .object_ref import ObjectRef
from .protocol import ListNodes, LogLines, Shutdown
from .runtime_context import RuntimeContext

log = get_logger(__name__)

_core: CoreWorker | None = None
_local: _LocalCluster | _ClusterConnection | None = None
_init_lock = threading.RLock()

#: Ray's init() keywords that have no meaning here and are accepted as no-ops.
_IGNORED_INIT_KWARGS = {
    "include_dashboard", "dashboard_host", "dashboard_port", "configure_logging",
    "_node_ip_address", "object_store_memory", "runtime_env", "_temp_dir", "local_mode",
    "_system_config", "logging_format", "_enable_object_reconstruction",
}


class LogSink(Actor):
    """Prints worker output on the driver's terminal, prefixed with the worker's pid as Ray does."""

    async def receive(self, message):
        if isinstance(message, LogLines):
            target = sys.stdout if message.stream == "stdout" else sys.stderr
            target.write("".join(f"(pid={message.pid}) {text}\n" for text in message.lines))
            target.flush()


class _ClusterConnection:
    """A driver's link to a cluster started with `actorcore start` (nothing to stop but itself)."""

    def __init__(self) -> None:
        self.system: ActorSystem | None = None
        self.node_info: dict | None = None

    def start(self, address: str, log_to_driver: bool) -> None:
        import asyncio

        from . import cluster_files
        from .kernel import address as kernel_address

        info = cluster_files.read_cluster_info() or {}
        if address == "auto":
            if not info.get("address"):
                raise ConnectionError(
                    "init(address='auto'): no actorcore cluster was started on this machine "
                    f"(no {cluster_files.home() / 'cluster.json'}); start one with `actorcore start --head`, "
                    "or pass address='HOST:PORT'"
                )
            address = info["address"]
        cluster, auth = cluster_files.cluster_at(address)
        token = cluster_files.read_token()
        nodes, config = asyncio.run(_read_cluster(address, cluster, auth))
        if not nodes:
            raise ConnectionError(f"the actorcore cluster at {address} has no live node; start one with "
                                  "`actorcore start --head` (or `--address` to join)")
        here = [n for n in nodes if n.get("host_id", "").startswith(kernel_address.MACHINE_ID + "/")]
        if not here:
            raise ConnectionError(
                f"no node of the cluster at {address} runs on this machine; start one here with "
                f"`actorcore start --address {address}` and call init() again"
            )
        node = sorted(here, key=lambda n: (not n.get("head"), n.get("start_time", 0)))[0]
        kernel_address.set_host_id(node["host_id"])
        self.system = ActorSystem.start_in_thread(name="driver", token=token, tcp=f"{node['address']}:0")
        sink = self.system.run(_spawn(self.system, LogSink, "log_sink")) if log_to_driver else None
        self.node_info = {**node["uris"], "node_id": node["node_id"], "session": node["node_id"],
                          "resources": node["resources"], "cluster_mode": True,
                          "object_replicas": config.object_replicas, "log_sink": sink,
                          "view": {n["node_id"]: n for n in nodes}}

    def stop(self) -> None:
        from .kernel import address as kernel_address

        if self.system is not None:
            self.system.shutdown_sync()
        kernel_address.set_host_id(None)


async def _read_cluster(address: str, cluster: str, auth: dict | None):
    from .gcs import EtcdClient
    from .gcs.schema import ClusterConfig, key

    client = await EtcdClient.connect(address, timeout=10, **({"auth": auth} if auth else {}))
    try:
        nodes = [json.loads(value) for _, value in await client.get_prefix(key(cluster, "nodes", ""))]
        config = ClusterConfig.from_json(await client.get(key(cluster, "config")))
    finally:
        await client.close()
    return nodes, config


class _LocalCluster:
    """What init() started in local mode, stopped in reverse order by shutdown()."""

    def __init__(self) -> None:
        self.etcd = None
        self.system: ActorSystem | None = None
        self.node: subprocess.Popen | None = None
        self.node_info: dict | None = None
        self.session = uuid.uuid4().hex[:12]

    def start(self, num_cpus: float, num_gpus: float, resources: dict, log_to_driver: bool) -> None:
        from .gcs import EtcdServer
        from .gcs.etcd_server import _free_port

        # The node process imports for ~0.2 s before it needs etcd: start it first and the
        # etcd server meanwhile (the node's GcsLink connects with retries).
        etcd_port = _free_port()
        # A fresh cluster token (DESIGN.md §10): the node and its workers get it through their
        # environment (not their argv, which other users can read), and every connection
        # between them must present it.
        token = new_token()
        self.system = ActorSystem.start_in_thread(name="driver", token=token)
        sink = self.system.run(_spawn(self.system, LogSink, "log_sink"))
        read_fd, write_fd = os.pipe()
        config = {
            "etcd": f"127.0.0.1:{etcd_port}", "session": self.session, "num_cpus": num_cpus,
            "num_gpus": num_gpus, "resources": resources, "driver": sink.to_uri(),
            "log_sink": sink.to_uri() if log_to_driver else None, "ready_fd": write_fd,
            "cwd": os.getcwd(), "sys_path": [p or os.getcwd() for p in sys.path],
        }
        # Our own processes cache their bytecode even where PYTHONDONTWRITEBYTECODE is set:
        # compiling actorcore on every worker start costs ~40-80 ms of each start-up.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env[TOKEN_ENV] = token
        self.node = subprocess.Popen(
            [sys.executable, "-m", "actorcore.node", json.dumps(config)],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, env=env,
        )
        os.close(write_fd)
        self.etcd = EtcdServer(client_port=etcd_port).start()
        with os.fdopen(read_fd) as ready:
            line = ready.readline()
        if not line:
            code = self.node.wait(10)
            raise exc.RayError(f"the node process exited with code {code} before it was ready (see its output above)")
        self.node_info = json.loads(line)

    def stop(self) -> None:
        if self.node is not None and self.node.poll() is None:
            try:
                node = self.system.ref_from_uri(self.node_info["node"]) if self.node_info else None
                if node is not None:
                    node.tell(Shutdown())
                self.node.wait(15)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait(5)
            except Exception:
                self.node.terminate()
                self.node.wait(15)
        if self.system is not None:
            self.system.shutdown_sync()
        if self.etcd is not None:
            self.etcd.stop()
        from .objects import cleanup_session

        cleanup_session(self.session)


async def _spawn(system: ActorSystem, factory, name: str, *args):
    return system.spawn(factory, *args, name=name)


async def _make_core(system: ActorSystem, node: dict, namespace: str) -> CoreWorker:
    core = CoreWorker(system, node, job_id="01", namespace=namespace, is_driver=True)
    if node.get("cluster_mode"):
        core.log_sink = node.get("log_sink")
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
            address = os.environ.get("ACTORCORE_ADDRESS")
        if address not in (None, "local"):
            if not isinstance(address, str) or (address != "auto" and ":" not in address):
                raise ValueError(f"init(address=...) takes 'auto' or 'HOST:PORT' (the cluster's etcd), got {address!r}")
            for given, what in ((num_cpus, "num_cpus"), (num_gpus, "num_gpus"), (resources, "resources")):
                if given is not None:
                    raise ValueError(f"when connecting to an existing cluster, {what} must not be given: "
                                     "set the nodes' resources with `actorcore start`")
            logging.getLogger("actorcore").setLevel(logging_level)
            connection = _ClusterConnection()
            try:
                connection.start(address.removeprefix("actorcore://").removeprefix("ray://"), log_to_driver)
                _core = connection.system.run(_make_core(connection.system, connection.node_info,
                                                         namespace or uuid.uuid4().hex))
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
        cluster = _LocalCluster()
        try:
            cluster.start(num_cpus if num_cpus is not None else (os.cpu_count() or 1), num_gpus or 0,
                          resources or {}, log_to_driver)
            _core = cluster.system.run(_make_core(cluster.system, cluster.node_info, namespace or uuid.uuid4().hex))
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

