"""A worker process: `python -m actorcore.worker CONFIG_JSON` (DESIGN.md §2).

Started by the node's WorkerPool. It hosts an actor system with this process's CoreWorker
(so user code here can submit tasks and get objects) and an Executor, tells the Scheduler
it is ready, and ends when told to (SIGTERM) or when its node is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from .. import runtime
from .._logging import configure_from_env
from ..cluster_files import TOKEN_ENV
from ..core import CoreWorker
from ..kernel import Actor, ActorSystem, Terminated, run
from ..protocol import WorkerReady
from .executor import Executor


class NodeWatch(Actor):
    def __init__(self, stop: asyncio.Future, node) -> None:
        self.stop = stop
        self.node = node

    async def pre_start(self) -> None:
        self.context.watch(self.node)

    async def receive(self, message):
        if isinstance(message, Terminated) and not self.stop.done():
            self.stop.set_result("node gone")


async def serve(config: dict) -> None:
    # In a cluster a worker also listens on gRPC: other nodes' drivers and workers call it.
    tcp = f"{config.get('node_ip', '127.0.0.1')}:0" if config.get("cluster_mode") else None
    system = await ActorSystem.start(name="worker", spin=False, token=os.environ.get(TOKEN_ENV), tcp=tcp)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result("SIGTERM"))
    core = CoreWorker(system, config, job_id=config.get("job_id", "01"), namespace=config.get("namespace", ""),
                      is_driver=False)
    runtime.set_current(core)
    executor = system.spawn(Executor, core, name="executor")
    system.spawn(NodeWatch, stop, core.scheduler)
    core.scheduler.tell(WorkerReady(os.getpid(), executor))
    await stop
    await system.shutdown(timeout=1)


def main() -> None:
    configure_from_env()
    config = json.loads(sys.argv[1])
    sys.path[:0] = [p for p in config.get("sys_path", []) if p not in sys.path]
    run(serve(config))
    os._exit(0)


if __name__ == "__main__":
    main()
