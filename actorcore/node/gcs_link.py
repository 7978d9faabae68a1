"""The GcsLink actor (DESIGN.md §4, §6): the node's etcd session.

It registers the node under a lease (`nodes/<node_id>`, kept alive by our keepalive), keeps
exported functions (`functions/<hash>`, written once, cached here so workers ask the node
rather than etcd), and named actors (`named/<namespace>/<name>`, unique through a
create-if-absent transaction) with their records (`actors/<actor_id>`).
"""

from __future__ import annotations

import asyncio
import json
import time

from .._logging import get_logger
from ..gcs import EtcdClient
from ..kernel import Actor
from ..protocol import ExportFunction, ForgetActor, GetFunction, LookupActor, RegisterActor

log = get_logger(__name__)

LEASE_TTL = 10


class GcsLink(Actor):
    def __init__(self, etcd_endpoint: str, cluster: str, node_id: str, node_info: dict) -> None:
        self.endpoint = etcd_endpoint
        self.prefix = f"/actorcore/{cluster}/"
        self.node_id = node_id
        self.node_info = node_info
        self.etcd: EtcdClient | None = None
        self.lease = None
        self.functions: dict[str, bytes] = {}

    async def pre_start(self) -> None:
        # Registration runs in the background, so the rest of the node (and its workers)
        # starts while etcd comes up; requests that need etcd wait for it.
        self.registered = asyncio.get_running_loop().create_task(self._register())

    async def _register(self) -> None:
        self.etcd = await EtcdClient.connect(self.endpoint, timeout=15)
        self.lease = await self.etcd.lease(LEASE_TTL)
        info = {**self.node_info, "node_id": self.node_id, "start_time": time.time()}
        await self.etcd.put(self._key("nodes", self.node_id), json.dumps(info).encode(), lease=self.lease)

    async def post_stop(self) -> None:
        if not self.registered.done():
            self.registered.cancel()
        if self.etcd is not None:
            try:
                if self.lease is not None:
                    await self.lease.revoke()
            finally:
                await self.etcd.close()

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    async def receive(self, message):
        if isinstance(message, GetFunction) and message.function_id in self.functions:
            return self.functions[message.function_id]
        await self.registered  # raises if etcd could not be reached: the supervisor decides
        if isinstance(message, GetFunction):
            blob = self.functions.get(message.function_id)
            if blob is None:
                blob = await self.etcd.get(self._key("functions", message.function_id))
                if blob is None:
                    raise LookupError(f"function {message.function_id} was never exported")
                self.functions[message.function_id] = blob
            return blob
        if isinstance(message, ExportFunction):
            if message.function_id not in self.functions:
                self.functions[message.function_id] = message.blob
                await self.etcd.create_if_absent(self._key("functions", message.function_id), message.blob)
            return True
        if isinstance(message, RegisterActor):
            if message.name is not None:
                key = self._key("named", message.namespace, message.name)
                if not await self.etcd.create_if_absent(key, message.actor_id.encode()):
                    return False
            await self.etcd.put(self._key("actors", message.actor_id), message.record)
            return True
        if isinstance(message, LookupActor):
            actor_id = await self.etcd.get(self._key("named", message.namespace, message.name))
            if actor_id is None:
                return None
            return await self.etcd.get(self._key("actors", actor_id.decode()))
        if isinstance(message, ForgetActor):
            if message.name is not None:
                key = self._key("named", message.namespace, message.name)
                if await self.etcd.get(key) == message.actor_id.encode():
                    await self.etcd.delete(key)
            await self.etcd.delete(self._key("actors", message.actor_id))
            return True
        if message == "nodes":
            return [json.loads(value) for _, value in await self.etcd.get_prefix(self._key("nodes", ""))]
        return None
