"""The node process: `python -m actorcore.node CONFIG_JSON` (DESIGN.md §2, §4).

It starts the node's actors under one root supervisor (rest_for_one: [EtcdHost,] GcsLink,
ObjectStore, Scheduler, WorkerPool), writes their addresses as one JSON line to the file
descriptor named in the config (`init()` or `actorcore start` waits for it), and runs until it
is told to shut down, gets SIGTERM, its driver's process dies (local mode), or its root
supervisor gives up (exit code 1).

CONFIG_JSON: ``etcd`` (endpoints), ``num_cpus``, ``num_gpus``, ``resources``, ``node_id``,
``ready_fd``, ``cwd``, ``sys_path``; local mode adds ``session``, ``driver`` and ``log_sink``
(the driver's refs); a cluster node (``cluster_mode``) adds ``cluster``, ``node_ip`` (where
its gRPC endpoints bind), ``head``, ``start_etcd`` (``{port, data_dir, host}``: the head runs
the cluster's etcd), and, for a head, ``lease_ttl`` and ``object_replicas``. Secrets come in
the environment: ``ACTORCORE_TOKEN``, ``ACTORCORE_ETCD_AUTH`` (JSON).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid

from supervisor import Supervisor

from .._logging import configure_from_env, get_logger
from ..cluster_files import TOKEN_ENV
from ..gcs.schema import ClusterConfig
from ..kernel import Actor, ActorSystem, Terminated, address, run
from ..kernel.supervision import actor_spec
from ..protocol import (
    AttachPool,
    AttachScheduler,
    GetTransferAddress,
    Shutdown,
    StartRegistration,
    SubscribeView,
)
from .etcd_host import EtcdHost
from .gcs_link import LEASE_TTL, GcsLink
from .object_store import ObjectStore
from .scheduler import Scheduler
from .worker_pool import WorkerPool, worker_environment

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
        if isinstance(message, (Shutdown, Terminated)):
            if not self.stop.done():
                self.stop.set_result(message)


async def serve(config: dict) -> None:
    cluster_mode = bool(config.get("cluster_mode"))
    node_id = config.get("node_id") or config.get("session") or uuid.uuid4().hex[:16]
    session = node_id  # the node's shared-memory segments are named after it
    node_ip = config.get("node_ip", "127.0.0.1")
    token = os.environ.get(TOKEN_ENV)
    if cluster_mode:
        # The node's processes share a host identity of their own: among themselves they
        # talk over Unix sockets, with other nodes over gRPC (even on one machine).
        host = f"{address.MACHINE_ID}/{node_id}"
        address.set_host_id(host)
        os.environ["ACTORCORE_HOST_ID"] = host
    system = await ActorSystem.start(name="node", spin=False, token=token,
                                     tcp=f"{node_ip}:0" if cluster_mode else None)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result("signal"))
    resources = {"CPU": float(config["num_cpus"]), "GPU": float(config.get("num_gpus", 0))}
    resources.update({k: float(v) for k, v in config.get("resources", {}).items()})
    resources = {k: v for k, v in resources.items() if v > 0 or k == "CPU"}
    log_sink = system.ref_from_uri(config["log_sink"]) if config.get("log_sink") else None
    info = {"address": node_ip, "resources": resources, "session": session, "head": bool(config.get("head")),
            "pid": os.getpid(), "host_id": address.HOST_ID, "kernel": system.address.tcp}
    addresses: dict = {}

    def pool_argv(_info):
        return [sys.executable, "-m", "actorcore.worker", json.dumps({
            "node_id": node_id, "session": session, "resources": resources, "node_ip": node_ip,
            "cluster_mode": cluster_mode, "sys_path": config.get("sys_path", []), **addresses,
        })]

    children = []
    etcd_endpoint = config["etcd"]
    # etcd credentials come in the environment (never in argv, which other users can read).
    etcd_auth = json.loads(os.environ.pop("ACTORCORE_ETCD_AUTH", "null")) or config.get("etcd_auth")
    if config.get("start_etcd"):
        etcd = config["start_etcd"]
        children.append(actor_spec(system, "etcd", EtcdHost, int(etcd["port"]), etcd["data_dir"],
                                   etcd.get("host", node_ip)))
    cluster_config = None
    if cluster_mode and config.get("head"):
        cluster_config = ClusterConfig(object_replicas=int(config.get("object_replicas", 1)),
                                       lease_ttl=float(config.get("lease_ttl", LEASE_TTL)))
    children.append(
        actor_spec(system, "gcs", GcsLink, etcd_endpoint, config.get("cluster", "local"), node_id, info,
                   cluster_mode=cluster_mode, lease_ttl=config.get("lease_ttl"),
                   etcd_auth=etcd_auth, config=cluster_config))
    def on_event(event) -> None:
        # The root gave up (a child kept failing, e.g. etcd could not start): the node ends.
        if event.kind == "supervisor_exited" and not stop.done():
            stop.set_result(RuntimeError(f"the node's supervisor gave up: {event.exit}"))

    root = Supervisor(children, strategy="rest_for_one", max_restarts=3, period=5, name="node",
                      on_event=on_event)
    await root.start()
    if stop.done():
        raise SystemExit(f"actorcore node: {stop.result()}")
    gcs = system.lookup("gcs")
    await root.start_child(actor_spec(system, "object_store", ObjectStore, session,
                                      transfer_bind=f"{node_ip}:0" if cluster_mode else None, token=token,
                                      gcs=gcs if cluster_mode else None))
    await root.start_child(actor_spec(system, "scheduler", Scheduler, resources, node_id=node_id,
                                      gcs=gcs if cluster_mode else None))
    scheduler = system.lookup("scheduler")
    store = system.lookup("object_store")
    addresses.update({"scheduler": scheduler.to_uri(), "gcs": gcs.to_uri(), "object_store": store.to_uri()})
    # The pool comes last: its workers need the addresses above.
    await root.start_child(actor_spec(
        system, "worker_pool", WorkerPool, scheduler, pool_argv,
        worker_environment(config.get("sys_path", [])), config.get("cwd") or os.getcwd(), log_sink,
    ))
    pool = system.lookup("worker_pool")
    addresses["pool"] = pool.to_uri()
    scheduler.tell(AttachPool(pool, int(config.get("prestart_workers", config["num_cpus"]))))
    guard = system.spawn(NodeGuard, stop, config.get("driver"), name="node")
    if cluster_mode:
        info["transfer"] = await store.ask(GetTransferAddress(), timeout=10)
        gcs.tell(AttachScheduler(scheduler))
        gcs.tell(SubscribeView(scheduler))
        gcs.tell(SubscribeView(store))
    info["uris"] = {"node": guard.to_uri(), **addresses}
    gcs.tell(StartRegistration())
    ready = {"node_id": node_id, "node": guard.to_uri(), "session": session, **addresses,
             "resources": resources, "pid": os.getpid(), "kernel": system.address.tcp,
             "transfer": info.get("transfer"), "host_id": address.HOST_ID, "cluster_mode": cluster_mode,
             "etcd": etcd_endpoint}
    if stop.done():
        await system.shutdown(timeout=2)
        raise SystemExit(f"actorcore node: {stop.result()}")
    if config.get("ready_fd") is not None:
        with os.fdopen(config["ready_fd"], "w") as out:
            out.write(json.dumps(ready) + "\n")
    why = await stop
    log.debug("node stopping", why=str(why))
    await root.shutdown(timeout=10)
    await system.shutdown(timeout=2)
    if isinstance(why, BaseException):
        raise SystemExit(f"actorcore node: {why}")


def main() -> None:
    configure_from_env()
    run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
