"""The EtcdHost actor: the etcd a head node started, under supervision.

A head started without `--etcd` runs the cluster's etcd itself, with a persistent data dir,
as the first child of the node's root supervisor. The actor is etcd's supervisor: it checks
every `CHECK_INTERVAL` that etcd runs and, when it does not, starts it again on the same port
and data dir (the node's other actors ride the outage through: their etcd client retries, the
GcsLink registers again if its lease was lost). Only if etcd cannot be started again does the
actor fail, and its supervisor's intensity decide. etcd's keeper process stops etcd when the
node process dies, even of SIGKILL (see gcs/etcd_server.py).
"""

from __future__ import annotations

import asyncio

from .._logging import get_logger
from ..kernel import Actor
from ..protocol import EtcdExited

__all__ = ["CHECK_INTERVAL", "EtcdDied", "EtcdHost"]

log = get_logger(__name__)

CHECK_INTERVAL = 1.0


class EtcdDied(RuntimeError):
    """The etcd this actor runs exited and could not be started again."""


class EtcdHost(Actor):
    """Runs the cluster's etcd on a head node and starts it again when it exits."""

    def __init__(self, port: int, data_dir: str, host: str = "127.0.0.1", tls: dict[str, str] | None = None) -> None:
        self.port = port
        self.data_dir = data_dir
        self.host = host
        self.tls = tls
        self.server = None
        self.checker: asyncio.Task | None = None

    async def pre_start(self) -> None:
        from ..gcs import EtcdServer

        self.server = EtcdServer(data_dir=self.data_dir, client_port=self.port, host=self.host, tls=self.tls)
        await asyncio.get_running_loop().run_in_executor(None, self.server.start)
        log.info("etcd started", endpoint=self.server.endpoint, data_dir=self.data_dir)
        self.checker = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            if self.server.running:
                continue
            log.warning("etcd exited; starting it again", endpoint=self.server.endpoint)
            try:
                await loop.run_in_executor(None, self._start_again)
            except Exception as error:  # noqa: BLE001 - reported; the actor stops with EtcdExited
                log.error("etcd could not be started again", error=repr(error))
                self.context.self_ref.tell(EtcdExited())
                return

    def _start_again(self) -> None:
        self.server.stop()  # (its keeper may still be there)
        self.server.start()

    async def receive(self, message):
        if isinstance(message, EtcdExited):
            raise EtcdDied(f"etcd on {self.host}:{self.port} exited")
        return

    async def post_stop(self) -> None:
        if self.checker is not None:
            self.checker.cancel()
        if self.server is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.server.stop)
