"""`LazyEtcd`: the cluster's etcd for an actor of the head node that must not fail when etcd is
away (the dashboard, the job manager): connected on first use, with a short timeout, so that a
call raises `OSError`/`TimeoutError` (the caller answers 503) instead of the actor failing to
start and counting against the node's restart intensity.
"""

from __future__ import annotations

import asyncio

from .sealed import SealedEtcd

__all__ = ["ETCD_CONNECT_TIMEOUT", "LazyEtcd"]

ETCD_CONNECT_TIMEOUT = 5.0  # seconds a call waits for etcd to connect


class LazyEtcd:
    """The `SealedEtcd` at `endpoints` (comma-separated), sealed with the cluster `token`."""

    def __init__(self, endpoints: str, token: str, auth: dict | None) -> None:
        self.endpoints = endpoints.split(",")
        self._token, self._auth = token, auth
        self._client: SealedEtcd | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> SealedEtcd:
        async with self._lock:
            if self._client is None:
                self._client = await SealedEtcd.connect(self.endpoints, secret=self._token, auth=self._auth,
                                                        timeout=ETCD_CONNECT_TIMEOUT)
            return self._client

    async def sealed(self) -> SealedEtcd:
        """The connected client (for what the methods below do not cover)."""
        return await self._connected()

    async def get(self, key: str) -> bytes | None:
        return await (await self._connected()).get(key)

    async def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        return await (await self._connected()).get_prefix(prefix)

    async def put(self, key: str, value: bytes) -> None:
        await (await self._connected()).put(key, value)

    async def create_if_absent(self, key: str, value: bytes) -> bool:
        return await (await self._connected()).create_if_absent(key, value)

    async def delete(self, key: str) -> bool:
        return await (await self._connected()).delete(key)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.raw.close()
            self._client = None
