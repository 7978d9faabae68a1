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
from typing import TYPE_CHECKING

from .._logging import get_logger
from ..kernel import Actor
from ..protocol import (
    ExportFunction,
    ForgetActor,
    GetFunction,
    LookupActor,
    RegisterActor,
)

if TYPE_CHECKING:
    from ..gcs import EtcdClient

log = get_logger(__name__)

LEASE_TTL = 10
FUNCTION_WAIT = 30.0  # how long a request for a function not (yet) exported waits for it


class GcsLink(Actor):
    def __init__(self, etcd_endpoint: str, cluster: str, node_id: str, node_info: dict) -> None:
        self.endpoint = etcd_endpoint
        self.prefix = f"/actorcore/{cluster}/"
        self.node_id = node_id
        self.node_info = node_info
        self.etcd: EtcdClient | None = None
        self.lease = None
        self.functions: dict[str, bytes] = {}
        self.waiting: dict[str, list] = {}  # function id -> replies waiting for its export

    async def pre_start(self) -> None:
        self.registered: asyncio.Task | None = None

    def _start_registration(self) -> asyncio.Task:
        # Registration runs in the background, started once the node's workers are on their
        # way (importing the etcd client alone takes ~0.1 s); requests that need etcd wait.
        if self.registered is None:
            self.registered = asyncio.get_running_loop().create_task(self._register())
        return self.registered

    async def _register(self) -> None:
        from ..gcs import EtcdClient

        self.etcd = await EtcdClient.connect(self.endpoint, timeout=15)
        self.lease = await self.etcd.lease(LEASE_TTL)
        info = {**self.node_info, "node_id": self.node_id, "start_time": time.time()}
        await self.etcd.put(self._key("nodes", self.node_id), json.dumps(info).encode(), lease=self.lease)

    async def post_stop(self) -> None:
        if self.registered is not None and not self.registered.done():
            self.registered.cancel()
        if self.etcd is not None:
            try:
                if self.lease is not None:
                    await self.lease.revoke()
            finally:
                await self.etcd.close()

    async def _persist_function(self, function_id: str, blob: bytes) -> None:
        try:
            await self._start_registration()
            await self.etcd.create_if_absent(self._key("functions", function_id), blob)
        except Exception as error:
            log.warning("could not write an exported function to etcd", function=function_id, error=repr(error))

    async def _fetch_function(self, function_id: str) -> None:
        """A function this node has not seen: from etcd, or from its exporter's message, if it comes."""
        try:
            await self._start_registration()
            blob = await self.etcd.get(self._key("functions", function_id))
        except Exception as error:
            blob, failure = None, error
        else:
            failure = None
        if blob is not None:
            self.functions.setdefault(function_id, blob)
            for reply in self.waiting.pop(function_id, []):
                reply.send(blob)
            return
        await asyncio.sleep(FUNCTION_WAIT)
        for reply in self.waiting.pop(function_id, []):
            reply.fail(LookupError(f"function {function_id} was never exported"
                                   + (f" (etcd: {failure!r})" if failure else "")))

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    async def receive(self, message):
        if isinstance(message, GetFunction):
            blob = self.functions.get(message.function_id)
            if blob is not None:
                return blob
            reply = self.context.defer_reply()
            self.waiting.setdefault(message.function_id, []).append(reply)
            asyncio.get_running_loop().create_task(self._fetch_function(message.function_id))
            return None
        if isinstance(message, ExportFunction):
            # Served from here at once; written to etcd in the background (off the path of
            # the first task: an exporter does not wait for it).
            if message.function_id not in self.functions:
                self.functions[message.function_id] = message.blob
                for reply in self.waiting.pop(message.function_id, []):
                    reply.send(message.blob)
                asyncio.get_running_loop().create_task(self._persist_function(message.function_id, message.blob))
            return True
        if message == "register":
            self._start_registration()
            return None
        await self._start_registration()  # raises if etcd could not be reached
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
