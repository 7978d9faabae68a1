"""The node process: `python -m actorcore.node CONFIG_JSON` (DESIGN.md §2, §4).

It starts the node's actors under one root supervisor (rest_for_one: GcsLink, ObjectStore,
Scheduler, WorkerPool), writes their addresses as one JSON line to the file descriptor named
in the config (the driver waits for it), and runs until it is told to shut down, gets SIGTERM,
or its driver's process dies.
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
from ..kernel import Actor, ActorSystem, Terminated, run
from ..kernel.supervision import actor_spec
from ..protocol import Shutdown
from .gcs_link import GcsLink
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
        return None


async def serve(config: dict) -> None:
    system = await ActorSystem.start(name="node", spin=False, token=os.environ.get("ACTORCORE_TOKEN"))
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result("signal"))
    node_id = config.get("node_id") or uuid.uuid4().hex[:16]
    session = config["session"]
    resources = {"CPU": float(config["num_cpus"]), "GPU": float(config.get("num_gpus", 0))}
    resources.update({k: float(v) for k, v in config.get("resources", {}).items()})
    resources = {k: v for k, v in resources.items() if v > 0 or k == "CPU"}
    log_sink = system.ref_from_uri(config["log_sink"]) if config.get("log_sink") else None
    info = {"address": "127.0.0.1", "resources": resources, "session": session}
    addresses: dict = {}

    def pool_argv(_info):
        return [sys.executable, "-m", "actorcore.worker", json.dumps({
            "node_id": node_id, "session": session, "resources": resources,
            "sys_path": config.get("sys_path", []), **addresses,
        })]

    root = Supervisor(
        [
            actor_spec(system, "gcs", GcsLink, config["etcd"], config.get("cluster", "local"), node_id, info),
            actor_spec(system, "object_store", ObjectStore, session),
            actor_spec(system, "scheduler", Scheduler, resources),
        ],
        strategy="rest_for_one", max_restarts=3, period=5, name="node",
    )
    await root.start()
    scheduler = system.lookup("scheduler")
    addresses.update({
        "scheduler": scheduler.to_uri(), "gcs": system.lookup("gcs").to_uri(),
        "object_store": system.lookup("object_store").to_uri(),
    })
    # The pool comes last: its workers need the addresses above.
    await root.start_child(actor_spec(
        system, "worker_pool", WorkerPool, scheduler, pool_argv,
        worker_environment(config.get("sys_path", [])), config.get("cwd") or os.getcwd(), log_sink,
    ))
    pool = system.lookup("worker_pool")
    addresses["pool"] = pool.to_uri()
    scheduler.tell(("pool", pool, int(config.get("prestart_workers", config["num_cpus"]))))
    system.lookup("gcs").tell("register")
    guard = system.spawn(NodeGuard, stop, config.get("driver"), name="node")
    ready = {"node_id": node_id, "node": guard.to_uri(), "session": session, **addresses,
             "resources": resources, "pid": os.getpid()}
    with os.fdopen(config["ready_fd"], "w") as out:
        out.write(json.dumps(ready) + "\n")
    why = await stop
    log.debug("node stopping", why=str(why))
    await root.shutdown(timeout=10)
    await system.shutdown(timeout=2)


def main() -> None:
    configure_from_env()
    run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
