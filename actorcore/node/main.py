"""The node process: `python -m actorcore.node CONFIG_JSON` (docs/architecture.md,
"The actor tree of a node").

It starts the node's actors under one root supervisor (rest_for_one: [EtcdHost,] GcsLink,
ObjectStore, Scheduler, WorkerPool), writes their `NodeEndpoints` as one JSON line to the
file descriptor named in its `NodeConfig` (the node launcher waits for it), and runs until it
is told to shut down, gets SIGTERM, its driver's process dies (local mode), the process that
owns it is gone (``actorcore start --block``), or its root supervisor gives up (exit code 1).

CONFIG_JSON is a `NodeConfig` (see `actorcore.node_config`). Secrets come on an inherited pipe
(`actorcore.process_secrets`): the cluster token and, for an etcd with authentication, its
credentials; the same pipe, kept open by an owning process, tells the node when it is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from dataclasses import replace

from supervisor import Supervisor

from .._logging import configure_from_env, get_logger
from ..credentials import TlsIdentity
from ..env import DEFAULT_LEASE_TTL, HOST_ID_ENV
from ..gcs.schema import ClusterConfig
from ..kernel import Actor, ActorSystem, Terminated, address, run
from ..kernel.supervision import actor_spec
from ..node_config import NodeConfig, NodeEndpoints, WorkerConfig
from ..node_resources import default_memory, default_object_store_memory
from ..objects.shm import use_cluster_secret
from ..process_secrets import receive
from ..protocol import (
    AttachPool,
    AttachScheduler,
    GetTransferAddress,
    Shutdown,
    StartRegistration,
    SubscribeView,
)
from .etcd_host import EtcdHost
from .gcs_link import GcsLink
from .log_files import LogLimits, WorkerLogFiles
from .log_service import LogService
from .metrics_export import GetMetricsPort, MetricsExporter, SupervisionCounts
from .object_store import ObjectStore
from .scheduler import Scheduler
from .task_history import TaskHistory
from .worker_pool import WorkerPool, worker_environment

__all__ = ["NodeGuard", "main", "serve"]

log = get_logger(__name__)


class NodeGuard(Actor):
    """Watches the driver; ends the node when it is gone or when asked to."""

    def __init__(self, stop: asyncio.Future, driver_uri: str | None) -> None:
        self.stop = stop
        self.driver_uri = driver_uri

    async def pre_start(self) -> None:
        if self.driver_uri:
            self.context.watch(self.context.system.ref_from_uri(self.driver_uri))

    async def receive(self, message):
        if isinstance(message, (Shutdown, Terminated)) and not self.stop.done():
            self.stop.set_result(message)


async def serve(config: NodeConfig) -> None:
    """Run the node of `config` until it is told to stop (see the module's docstring)."""
    node_id = config.node_id or uuid.uuid4().hex[:16]  # its shared-memory segments are named after it
    cluster_mode = config.cluster_mode
    node_ip = config.node_ip
    secrets, owner_fd = receive(keep_watch=True)
    if owner_fd is not None and not secrets.get("owned"):
        os.close(owner_fd)
        owner_fd = None
    token = secrets.get("token")
    use_cluster_secret(token or None)  # the node's segments get names only the cluster can compute
    if cluster_mode:
        # The node's processes share a host identity of their own: among themselves they
        # talk over Unix sockets, with other nodes over gRPC (even on one machine).
        host = f"{address.MACHINE_ID}/{node_id}"
        address.set_host_id(host)
        os.environ[HOST_ID_ENV] = host
    tls = secrets.get("tls")  # the cluster's TLS identity: gRPC to and from other hosts is TLS
    system = await ActorSystem.start(name="node", spin=False, token=token, tls=TlsIdentity.from_dict(tls),
                                     tcp=f"{node_ip}:0" if cluster_mode else None)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result("signal"))
    if owner_fd is not None:
        _stop_when_owner_gone(loop, owner_fd, stop)
    resources = {"CPU": float(config.num_cpus), "GPU": float(config.num_gpus),
                 "memory": float(default_memory() if config.memory is None else config.memory)}
    capacity = config.object_store_memory or default_object_store_memory()
    resources["object_store_memory"] = float(capacity)  # as Ray shows it among the node's resources
    resources.update({k: float(v) for k, v in config.resources.items()})
    resources = {k: v for k, v in resources.items() if v > 0 or k == "CPU"}
    log_sink = system.ref_from_uri(config.log_sink) if config.log_sink else None
    info = {"address": node_ip, "resources": resources, "head": config.head,
            "pid": os.getpid(), "host_id": address.HOST_ID, "kernel": system.address.tcp}
    endpoints: NodeEndpoints | None = None  # set before the first worker starts

    def worker_argv(_info):
        return [sys.executable, "-m", "actorcore.worker",
                WorkerConfig(endpoints, node_ip, config.sys_path).to_json()]

    def on_down(why: str) -> None:
        # The node lost its etcd lease and may have been declared dead: it stops serving.
        if not stop.done():
            stop.set_result(RuntimeError(why))

    children = []
    etcd_auth = secrets.get("etcd_auth")
    if config.start_etcd is not None:
        etcd = config.start_etcd
        children.append(actor_spec(system, "etcd", EtcdHost, etcd.port, etcd.data_dir, etcd.host, etcd.tls))
    cluster_config = None
    if cluster_mode and config.head:
        cluster_config = ClusterConfig(object_replicas=config.object_replicas,
                                       lease_ttl=config.lease_ttl or DEFAULT_LEASE_TTL)
    children.append(
        actor_spec(system, "gcs", GcsLink, config.etcd, config.cluster, node_id, info,
                   cluster_mode=cluster_mode, lease_ttl=config.lease_ttl,
                   etcd_auth=etcd_auth, config=cluster_config, token=token, on_down=on_down))
    supervision = SupervisionCounts()

    def on_event(event) -> None:
        supervision.record(event)
        # The root gave up (a child kept failing, e.g. etcd could not start): the node ends.
        if event.kind == "supervisor_exited" and not stop.done():
            stop.set_result(RuntimeError(f"the node's supervisor gave up: {event.exit}"))

    root = Supervisor(children, strategy="rest_for_one", max_restarts=3, period=5, name="node",
                      on_event=on_event)
    await root.start()
    if stop.done():
        raise SystemExit(f"actorcore node: {stop.result()}")
    gcs = system.lookup("gcs")
    await root.start_child(actor_spec(system, "object_store", ObjectStore, node_id, capacity=capacity,
                                      spill_base=config.object_spilling_directory,
                                      transfer_bind=f"{node_ip}:0" if cluster_mode else None, token=token,
                                      gcs=gcs if cluster_mode else None))
    await root.start_child(actor_spec(system, "scheduler", Scheduler, resources, node_id=node_id,
                                      gcs=gcs if cluster_mode else None, gpu_ids=config.gpu_ids))
    await root.start_child(actor_spec(system, "task_history", TaskHistory))
    log_folder, node_log = _log_paths(node_id) if cluster_mode else (None, None)
    await root.start_child(actor_spec(system, "logs", LogService, node_id, log_folder, node_log))
    scheduler = system.lookup("scheduler")
    store = system.lookup("object_store")
    # The pool comes last: its workers need the addresses above.
    await root.start_child(actor_spec(
        system, "worker_pool", WorkerPool, scheduler, worker_argv,
        worker_environment(config.sys_path), config.cwd or os.getcwd(), log_sink, token, tls,
        WorkerLogFiles(log_folder, LogLimits.from_env()) if log_folder else None, gcs, system.lookup("task_history"),
    ))
    pool = system.lookup("worker_pool")
    metrics = metrics_port = None
    if config.metrics_export_port is not None:
        await root.start_child(actor_spec(
            system, "metrics", MetricsExporter, node_id, config.cluster, node_ip, node_ip, config.metrics_export_port,
            store=store, scheduler=scheduler, gcs=gcs, task_history=system.lookup("task_history"), events=supervision,
            write_discovery=cluster_mode and config.head))
        metrics = system.lookup("metrics")
        metrics_port = info["metrics_export_port"] = await metrics.ask(GetMetricsPort(), timeout=10)
    guard = system.spawn(NodeGuard, stop, config.driver, name="node")
    transfer = await store.ask(GetTransferAddress(), timeout=10) if cluster_mode else None
    endpoints = NodeEndpoints(
        node_id=node_id, node=guard.to_uri(), scheduler=scheduler.to_uri(), gcs=gcs.to_uri(),
        object_store=store.to_uri(), pool=pool.to_uri(), resources=resources, pid=os.getpid(),
        host_id=address.HOST_ID, cluster_mode=cluster_mode, kernel=system.address.tcp, transfer=transfer,
        etcd=config.etcd, metrics=metrics and metrics.to_uri(), metrics_export_port=metrics_port,
        task_history=system.lookup("task_history").to_uri(), logs=system.lookup("logs").to_uri())
    scheduler.tell(AttachPool(pool, int(config.num_cpus)))
    if cluster_mode:
        info["transfer"] = transfer
        gcs.tell(AttachScheduler(scheduler))
        gcs.tell(SubscribeView(scheduler))
        gcs.tell(SubscribeView(store))
    info["uris"] = endpoints.uris()
    if cluster_mode and config.head:
        await _start_package_collector(root, system, config, token, etcd_auth)
    if config.dashboard is not None:
        jobs = None
        if cluster_mode and config.head:
            jobs = await _start_job_manager(root, system, config, token, etcd_auth, log_folder)
        info["dashboard_url"] = await _start_dashboard(root, system, config, token, etcd_auth, stop, jobs)
        endpoints = replace(endpoints, dashboard_url=info["dashboard_url"])
    gcs.tell(StartRegistration())
    if stop.done():
        await system.shutdown(timeout=2)
        raise SystemExit(f"actorcore node: {stop.result()}")
    if config.ready_fd is not None:
        with os.fdopen(config.ready_fd, "w") as out:
            out.write(endpoints.to_json() + "\n")
    why = await stop
    log.debug("node stopping", why=str(why))
    await root.shutdown(timeout=10)
    await system.shutdown(timeout=2)
    if isinstance(why, BaseException):
        raise SystemExit(f"actorcore node: {why}")


async def _start_job_manager(root, system, config: NodeConfig, token, etcd_auth, log_folder: str):
    """The head's JobManager (docs/architecture.md, "Jobs"), started under the root supervisor
    before the dashboard that asks it; its ref."""
    from ..cluster_files import read_cluster_info
    from ..jobs.manager import STOP_GRACE, JobManager

    info = read_cluster_info() or {}
    # init() in an entrypoint finds the cluster's name and etcd credentials by this address
    address = info["address"] if info.get("cluster") == config.cluster and info.get("address") else config.etcd
    await root.start_child(actor_spec(system, "jobs", JobManager, config.etcd, token or "", cluster=config.cluster,
                                      address=address, log_folder=log_folder, cwd=config.cwd or os.getcwd(),
                                      etcd_auth=etcd_auth, scheduler=system.lookup("scheduler"),
                                      pool=system.lookup("worker_pool"), shutdown=STOP_GRACE + 5))
    return system.lookup("jobs")


async def _start_package_collector(root, system, config: NodeConfig, token, etcd_auth) -> None:
    """The head's collector of unused runtime env packages (docs/architecture.md, "Runtime
    environments"), under the root supervisor."""
    from .package_collector import PackageCollector

    await root.start_child(actor_spec(system, "package_collector", PackageCollector, config.etcd, token or "",
                                      cluster=config.cluster, etcd_auth=etcd_auth))


async def _start_dashboard(root, system, config: NodeConfig, token, etcd_auth, stop, jobs=None) -> str | None:
    """Serve the web dashboard under the root supervisor; its URL, or None if it cannot (the node stops)."""
    from ..dashboard.host import DashboardStartError, start_dashboard
    from ..dashboard.sources import ClusterStateSource

    host, _, port = config.dashboard.rpartition(":")
    try:
        return await start_dashboard(root, system, host.strip("[]"), int(port), config.etcd, token or "",
                                     cluster=config.cluster, etcd_auth=etcd_auth,
                                     source=ClusterStateSource(system, system.lookup("gcs")), jobs=jobs)
    except DashboardStartError as error:
        if not stop.done():
            stop.set_result(error)
        return None


def _log_paths(node_id: str) -> tuple[str, str]:
    """A cluster node's log folder (its workers' files) and its own log, as `actorcore start` names it."""
    from ..cluster_files import logs_dir

    logs = logs_dir()
    return str(logs / node_id), str(logs / f"node-{node_id}.log")


def _stop_when_owner_gone(loop: asyncio.AbstractEventLoop, owner_fd: int, stop: asyncio.Future) -> None:
    """Set `stop` once the owning process lets go of its end of `owner_fd` (it wrote everything
    before starting us, so the next event is end-of-file: it exited or was killed)."""

    def owner_gone() -> None:
        if os.read(owner_fd, 4096):
            return
        loop.remove_reader(owner_fd)
        os.close(owner_fd)
        if not stop.done():
            log.warning("the process that started this node (start --block) is gone; the node stops")
            stop.set_result("owner gone")

    loop.add_reader(owner_fd, owner_gone)


def main() -> None:
    """The node process's entry point: ``python -m actorcore.node CONFIG_JSON``."""
    configure_from_env()
    code = 0
    try:
        run(serve(NodeConfig.from_json(sys.argv[1])))
    except SystemExit as ending:
        if isinstance(ending.code, str):
            print(ending.code, file=sys.stderr)
            code = 1
        else:
            code = ending.code or 0
    # The node's last line stays the last line of its log (`actorcore start` shows its tail):
    # nothing of the interpreter's teardown (a closed loop's late callbacks) follows it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
