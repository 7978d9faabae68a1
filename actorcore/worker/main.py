"""A worker process: `python -m actorcore.worker CONFIG_JSON`, the JSON a `WorkerConfig`.

Started by the node's WorkerPool. It hosts an actor system with this process's CoreWorker
(so user code here can submit tasks and get objects) and an Executor, tells the Scheduler
it is ready, and ends when told to (SIGTERM) or when its node is gone. The cluster token comes
on an inherited pipe (`actorcore.process_secrets`), read and closed before any task runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from .. import runtime
from .._logging import configure_from_env
from ..core import CoreWorker
from ..credentials import TlsIdentity
from ..env import RUNTIME_ENV_ENV, RUNTIME_ENV_PATHS_ENV, WORKER_ID_ENV
from ..kernel import Actor, ActorSystem, Terminated, run
from ..node_config import WorkerConfig
from ..objects.shm import use_cluster_secret
from ..process_secrets import receive
from ..protocol import WorkerReady
from .executor import Executor

__all__ = ["NodeWatch", "main", "serve"]


class NodeWatch(Actor):
    """Ends the worker when its node's Scheduler (and so its node) is gone."""

    def __init__(self, stop: asyncio.Future, node) -> None:
        self.stop = stop
        self.node = node

    async def pre_start(self) -> None:
        self.context.watch(self.node)

    async def receive(self, message):
        if isinstance(message, Terminated) and not self.stop.done():
            self.stop.set_result("node gone")


async def serve(config: WorkerConfig, token: str | None, tls: TlsIdentity | None = None) -> None:
    """Run this worker until SIGTERM or until its node is gone."""
    # In a cluster a worker also listens on gRPC: other nodes' drivers and workers call it.
    tcp = f"{config.node_ip}:0" if config.node.cluster_mode else None
    # It spins after a reply, while its threads are idle: the next task is read at once (the
    # Executor stops the spin when it hands a task to a thread).
    system = await ActorSystem.start(name="worker", spin=True, token=token, tcp=tcp, tls=tls)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result("SIGTERM"))
    # The id its pool gave it (its log files are named after it); not passed on to what tasks start.
    worker_id = os.environ.pop(WORKER_ID_ENV, None)
    core = CoreWorker(system, config.node, job_id="01", namespace="", is_driver=False, worker_id=worker_id)
    runtime.set_current(core)
    executor = system.spawn(Executor, core, name="executor")
    system.spawn(NodeWatch, stop, core.scheduler)
    core.scheduler.tell(WorkerReady(os.getpid(), executor, os.environ.get(RUNTIME_ENV_ENV, "")))
    await stop
    runtime.process_ending()  # its last user metrics go to the node
    if core.task_events is not None:
        core.task_events.stop()  # and its last task events
    await system.shutdown(timeout=1)


def main() -> None:
    """The worker process's entry point: ``python -m actorcore.worker CONFIG_JSON``."""
    secrets, _ = receive()
    configure_from_env()
    config = WorkerConfig.from_json(sys.argv[1])
    sys.path[:0] = [p for p in config.sys_path if p not in sys.path]
    # Its runtime env's working_dir and py_modules come first (what tasks start does not inherit them).
    runtime_env_paths = os.environ.pop(RUNTIME_ENV_PATHS_ENV, "")
    if runtime_env_paths:
        sys.path[:0] = runtime_env_paths.split(os.pathsep)
    use_cluster_secret(secrets.get("token") or None)
    run(serve(config, secrets.get("token"), TlsIdentity.from_dict(secrets.get("tls"))))
    os._exit(0)


if __name__ == "__main__":
    main()
