"""`Lease`: an etcd lease kept alive by our own keepalive task.

The task refreshes the lease every ttl/3. Transient errors are retried for as long as etcd
may still hold the lease; when etcd reports it gone, ``on_lost`` runs. That is how a node's
``nodes/<node_id>`` key vanishes when the node stops renewing it. The keepalive is a loop on
aetcd's unary calls, not aetcd's keepalive stream, so it shares the connection's retries.

A lease made with ``expire_locally`` also counts as lost once it could not be renewed for its
TTL (measured from when the last successful refresh was sent, so never later than etcd's own
expiry) unless etcd is known to be down or hung: its port refuses connections or accepts them
without answering, and then etcd cannot expire the lease (an etcd that starts again gives
every lease a fresh TTL). That is how a node cut off from etcd knows, before anyone can act on
its death, that it may no longer serve (docs/architecture.md, "Failure semantics").
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import aetcd
import aetcd.exceptions

from .._logging import get_logger
from .etcd_connection import EtcdConnection
from .etcd_errors import EtcdAuthError, EtcdUnavailableError, describe
from .reachability import Reachability, reachability

__all__ = ["GONE", "NOT_RENEWED", "Lease"]

GONE = "etcd reports the lease expired or revoked"
NOT_RENEWED = "the lease could not be renewed for its TTL, and etcd may be up"

log = get_logger(__name__)


class Lease:
    """An etcd lease kept alive by an asyncio task; keys put with it vanish when it ends.

    Made by `EtcdClient.lease`, not directly."""

    def __init__(self, connection: EtcdConnection, lease_id: int, ttl: int,
                 on_lost: Callable[[Lease], Any] | None, *, expire_locally: bool = False):
        self.id = lease_id
        self.ttl = ttl
        self._connection = connection
        self._on_lost = on_lost
        self._task: asyncio.Task | None = None
        self._expire_locally = expire_locally
        self.lost = False
        """True once etcd reported the lease expired or it was revoked (or it expired locally)."""
        self.lost_because: str | None = None
        """Why the keepalive gave the lease up: `GONE` (etcd said so) or `NOT_RENEWED`."""

    def __repr__(self) -> str:
        return f"<Lease {self.id:x} ttl={self.ttl}{' lost' if self.lost else ''}>"

    def start_keepalive(self) -> None:
        """Refresh the lease every ttl/3 from now on (until `stop_keepalive` or `revoke`)."""
        self._task = asyncio.get_running_loop().create_task(
            self._keepalive(), name=f"etcd-lease-keepalive-{self.id:x}")

    async def stop_keepalive(self) -> None:
        """Stop refreshing; the lease then expires after its TTL."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def time_to_live(self) -> int:
        """Seconds etcd still gives this lease; <= 0 once it has expired."""
        info = await self._connection.call(f"ask the TTL of lease {self.id:x}",
                                           lambda c: c.get_lease_info(self.id, keys=False))
        return int(info.TTL)

    async def revoke(self) -> None:
        """End the lease now, deleting its keys. Revoking a lost lease is fine."""
        await self.stop_keepalive()

        async def revoke(c: aetcd.Client) -> None:
            try:
                await c.revoke_lease(self.id)
            except aetcd.exceptions.ClientError as e:
                if "lease not found" not in str(e):
                    raise

        await self._connection.call(f"revoke lease {self.id:x}", revoke)
        self.lost = True
        log.debug("lease revoked", lease=f"{self.id:x}")

    async def _keepalive(self) -> None:
        this = asyncio.current_task()
        loop = asyncio.get_running_loop()
        interval = max(self.ttl / 3, 0.1)
        delay = interval
        renewed = loop.time()  # when the last successful refresh was sent (the grant: just now)
        while True:
            await asyncio.sleep(delay)
            sent = loop.time()
            try:
                reply = await self._refresh(renewed)
            except _NotRenewed:
                if self._task is not this:
                    return
                self.lost_because = NOT_RENEWED
                break
            except (EtcdUnavailableError, EtcdAuthError, aetcd.exceptions.ClientError) as e:
                if self._task is not this:
                    return
                if self._expire_locally and loop.time() >= renewed + self.ttl and not await self._etcd_is_stuck():
                    self.lost_because = NOT_RENEWED
                    break
                # Keep trying for as long as etcd may still hold the lease.
                log.warning("lease keepalive failed, retrying", lease=f"{self.id:x}", error=describe(e))
                delay = min(interval, 0.5)
                continue
            if self._task is not this:  # stopped while refreshing (its cancellation may have been lost)
                return
            if reply is None:
                delay = min(interval, 0.5)
                continue
            if reply.TTL <= 0:
                self.lost_because = GONE
                break
            renewed = sent
            delay = interval
        self.lost = True
        self._task = None
        log.warning("etcd lease lost", lease=f"{self.id:x}", ttl=self.ttl, why=self.lost_because)
        if self._on_lost is not None:
            try:
                result = self._on_lost(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("lease on_lost callback failed", lease=f"{self.id:x}")

    async def _refresh(self, renewed: float):
        """One refresh. With ``expire_locally``, a refresh still unanswered at the local
        deadline (``renewed`` + TTL) is left running (it may yet arrive in time) unless etcd
        may be up: then `_NotRenewed` is raised."""
        call = self._connection.call(f"refresh lease {self.id:x}", lambda c: c.refresh_lease(self.id))
        if not self._expire_locally:
            return await call
        loop = asyncio.get_running_loop()
        refresh = loop.create_task(call)
        deadline = renewed + self.ttl
        try:
            while True:
                done, _ = await asyncio.wait({refresh}, timeout=max(deadline - loop.time(), 0.0))
                if done:
                    return refresh.result()
                if not await self._etcd_is_stuck():
                    raise _NotRenewed
                deadline = loop.time() + 1.0  # etcd is down or hung: look again in a second
        finally:
            refresh.cancel()

    async def _etcd_is_stuck(self) -> bool:
        """Whether every etcd endpoint is down (refuses connections) or hung (accepts them):
        then etcd expires nothing, unlike when it is out of reach (a partition)."""
        for endpoint in self._connection.endpoints:
            if await reachability(endpoint, timeout=1.0) is Reachability.UNKNOWN:
                return False
        return True


class _NotRenewed(Exception):
    """The lease was not renewed by its local deadline while etcd may be up."""
