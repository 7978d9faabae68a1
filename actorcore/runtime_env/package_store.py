"""Packages kept in etcd, where every node of the cluster reads them (docs/architecture.md,
"Runtime environments").

A package (`packaging`) is stored once per content under ``packages/<sha256>/``: its bytes in
chunks of `CHUNK_BYTES` (``packages/<sha256>/<index>``, each under etcd's request limit) and,
written last, ``packages/<sha256>/meta`` (JSON: size, chunks, time), so a package whose meta
is there is complete. Every value is sealed with the cluster secret like every other record,
and the reassembled bytes must hash to the URI's SHA-256, so a node never extracts bytes the
cluster did not upload.
"""

from __future__ import annotations

import hashlib
import json
import time

from ..gcs import schema
from ..gcs.sealed import SealedEtcd
from .packaging import sha_of_uri

__all__ = ["CHUNK_BYTES", "PackageMissingError", "PackageStore"]

#: Bytes per etcd value (etcd refuses requests over 1.5 MiB by default).
CHUNK_BYTES = 1024 * 1024


class PackageMissingError(LookupError):
    """The cluster has no (complete, intact) package of that URI."""


class PackageStore:
    """Put and get packages by URI in one cluster's etcd."""

    def __init__(self, etcd: SealedEtcd, cluster: str) -> None:
        self._etcd = etcd
        self._cluster = cluster

    def _key(self, sha: str, part: str) -> str:
        return schema.key(self._cluster, "packages", sha, part)

    async def exists(self, uri: str) -> bool:
        """Whether the cluster holds the complete package `uri`."""
        return await self._etcd.get(self._key(sha_of_uri(uri), "meta")) is not None

    async def put(self, uri: str, data: bytes) -> bool:
        """Store `data` as package `uri` (False: it was there already). ValueError if the bytes
        do not hash to the URI."""
        sha = sha_of_uri(uri)
        if hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"the bytes uploaded as {uri} do not hash to it")
        if await self.exists(uri):
            return False
        chunks = max((len(data) + CHUNK_BYTES - 1) // CHUNK_BYTES, 1)
        for index in range(chunks):
            await self._etcd.put(self._key(sha, str(index)), data[index * CHUNK_BYTES:(index + 1) * CHUNK_BYTES])
        meta = {"size": len(data), "chunks": chunks, "time": time.time()}
        await self._etcd.put(self._key(sha, "meta"), json.dumps(meta).encode())
        return True

    async def get(self, uri: str) -> bytes:
        """The bytes of package `uri`; PackageMissingError if the cluster has no intact copy."""
        sha = sha_of_uri(uri)
        meta = await self._etcd.get(self._key(sha, "meta"))
        if meta is None:
            raise PackageMissingError(f"the cluster holds no package {uri} (was it uploaded, or deleted since?)")
        chunks = []
        for index in range(json.loads(meta)["chunks"]):
            chunk = await self._etcd.get(self._key(sha, str(index)))
            if chunk is None:
                raise PackageMissingError(f"package {uri} lost its chunk {index}")
            chunks.append(chunk)
        data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != sha:
            raise PackageMissingError(f"package {uri} in etcd does not hash to its name")
        return data

    async def delete(self, uri: str) -> None:
        """Forget package `uri` (its meta first: a half-deleted package is missing, not corrupt)."""
        sha = sha_of_uri(uri)
        await self._etcd.delete(self._key(sha, "meta"))
        await self._etcd.delete_prefix(self._key(sha, ""))
