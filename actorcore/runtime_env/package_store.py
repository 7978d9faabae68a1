"""Packages kept in etcd, where every node of the cluster reads them (docs/architecture.md,
"Runtime environments").

A package (`packaging`) is stored once per content under ``packages/<sha256>/``: its bytes in
chunks of `CHUNK_BYTES` (``packages/<sha256>/<index>``, each under etcd's request limit) and,
written last, ``packages/<sha256>/meta`` (JSON: size, chunks, time), so a package whose meta
is there is complete. ``package_used/<sha256>`` (JSON: time) is the package's last use
announced: its upload, a process taking a reference (``package_refs/<sha256>/<holder>``,
written by the holder's node), a reference let go; the head's `PackageCollector` keeps a
package for a grace period after it and deletes it only in a transaction that fails if it was
written since the collector looked (`collect`), so whatever announces a use before it checks
that a package exists never loses it to a collection already decided. Every value is sealed
with the cluster secret like every other record, and the reassembled bytes must hash to the
URI's SHA-256, so a node never extracts bytes the cluster did not upload.
"""

from __future__ import annotations

import hashlib
import json
import time

from ..gcs import schema
from ..gcs.sealed import SealedEtcd
from .packaging import sha_of_uri

__all__ = ["CHUNK_BYTES", "PIECE_BYTES", "PackageMissingError", "PackageStore", "PackageUpload"]

#: Bytes per etcd value (etcd refuses requests over 1.5 MiB by default).
CHUNK_BYTES = 1024 * 1024
#: Bytes per piece of an upload from another process (messages stay well under the kernel's frame limit).
PIECE_BYTES = 8 * CHUNK_BYTES


class PackageMissingError(LookupError):
    """The cluster has no (complete, intact) package of that URI."""


class PackageStore:
    """Put and get packages by URI in one cluster's etcd."""

    def __init__(self, etcd: SealedEtcd, cluster: str) -> None:
        self._etcd = etcd
        self._cluster = cluster

    def _key(self, sha: str, part: str) -> str:
        return schema.key(self._cluster, "packages", sha, part)

    def used_key(self, sha: str) -> str:
        """The key of package `sha`'s last announced use."""
        return schema.key(self._cluster, "package_used", sha)

    def ref_key(self, sha: str, holder: str) -> str:
        """The key of `holder`'s reference to package `sha`."""
        return schema.key(self._cluster, "package_refs", sha, holder)

    async def touch(self, uri: str) -> None:
        """Announce a use of package `uri` (its grace period starts again)."""
        await self._etcd.put(self.used_key(sha_of_uri(uri)), json.dumps({"time": time.time()}).encode())

    async def shas(self) -> set[str]:
        """The SHA-256 of every complete package the cluster holds (keys only: no chunk is read)."""
        prefix = schema.key(self._cluster, "packages", "")
        return {key[len(prefix):-len("/meta")] for key in await self._etcd.get_prefix_keys(prefix)
                if key.endswith("/meta")}

    async def collect(self, sha: str, revision: int) -> bool:
        """Delete package `sha` (meta, chunks and last use at once) unless a use was announced
        after etcd `revision`; True if it was deleted."""
        return await self._etcd.delete_unless_changed(
            self.used_key(sha), revision, [self._key(sha, "meta"), self.used_key(sha)], [self._key(sha, "")])

    async def meta(self, sha: str) -> dict | None:
        """Package `sha`'s meta (size, chunks, time), None if the cluster holds no such package."""
        blob = await self._etcd.get(self._key(sha, "meta"))
        return None if blob is None else json.loads(blob)

    async def exists(self, uri: str) -> bool:
        """Whether the cluster holds the complete package `uri`."""
        return await self._etcd.get(self._key(sha_of_uri(uri), "meta")) is not None

    async def put(self, uri: str, data: bytes) -> bool:
        """Store `data` as package `uri` (False: it was there already). ValueError if the bytes
        do not hash to the URI."""
        sha = sha_of_uri(uri)
        if hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"the bytes uploaded as {uri} do not hash to it")
        await self.touch(uri)  # before it looks: a collection decided before cannot delete it after
        if await self.exists(uri):
            return False
        upload = PackageUpload(self, uri, len(data))
        for start in range(0, max(len(data), 1), PIECE_BYTES):
            await upload.add(data[start:start + PIECE_BYTES])
        return True

    async def _put_chunks(self, sha: str, first: int, data: bytes) -> int:
        """Store `data` as chunks `first`, `first` + 1, ...; how many it took."""
        count = max((len(data) + CHUNK_BYTES - 1) // CHUNK_BYTES, 1)
        for index in range(count):
            chunk = data[index * CHUNK_BYTES:(index + 1) * CHUNK_BYTES]
            await self._etcd.put(self._key(sha, str(first + index)), chunk)
        return count

    async def _commit(self, sha: str, size: int, chunks: int) -> None:
        meta = {"size": size, "chunks": chunks, "time": time.time()}
        await self._etcd.put(self._key(sha, "meta"), json.dumps(meta).encode())

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


class PackageUpload:
    """One package arriving in pieces, in order: stored chunk by chunk, committed (its meta
    written) once all `size` bytes are there and hash to its URI."""

    def __init__(self, store: PackageStore, uri: str, size: int) -> None:
        self.uri = uri
        self._store = store
        self._sha = sha_of_uri(uri)
        self._size = size
        self._received = 0
        self._chunks = 0
        self._hash = hashlib.sha256()

    async def add(self, data: bytes) -> bool:
        """Store the next piece; True once the package is whole. ValueError if it would exceed
        its size or does not hash to its URI (its chunks are then deleted)."""
        if self._received + len(data) > self._size:
            await self._store.delete(self.uri)
            raise ValueError(f"package {self.uri} got more than its {self._size} bytes")
        self._chunks += await self._store._put_chunks(self._sha, self._chunks, data)
        self._hash.update(data)
        self._received += len(data)
        if self._received < self._size:
            return False
        if self._hash.hexdigest() != self._sha:
            await self._store.delete(self.uri)
            raise ValueError(f"the bytes uploaded as {self.uri} do not hash to it")
        await self._store._commit(self._sha, self._size, self._chunks)
        return True
