"""The head's collector of runtime env packages no job uses any more (docs/architecture.md,
"Runtime environments": packages are collected).

A kernel actor under the head node's supervisor. Every `interval` seconds (or when asked
`CollectPackages`) it makes a pass: it reads the packages' last announced uses
(``package_used/``, with the revision of that read), the packages the cluster holds, and what
uses packages:

- a live process's reference, ``package_refs/<sha256>/<holder>`` (under its node's lease:
  gone when the process or its node ends; `node.package_refs`),
- a submitted job that has not ended (``jobs/<id>`` not STOPPED, SUCCEEDED or FAILED): its
  record's ``runtime_env``,
- an actor that is not DEAD (``actors/<id>``): its record's ``packages``, so a detached actor's
  packages outlive its driver; but not one recorded ALIVE on a node declared dead (``dead/``):
  nothing restarts it (an owner that would holds the packages itself).

A package none of these names, whose upload and last announced use are older than `grace`
seconds, is deleted in one etcd transaction (meta, chunks and last use together) that fails if
its use was announced since the read (`PackageStore.collect`), and each deletion is logged.
Every node prunes its own extracted copies (`WorkerPool`; a job's entrypoint runs in the head
pool's). ``ACTORCORE_PACKAGE_GRACE_S`` (600) and
``ACTORCORE_PACKAGE_GC_INTERVAL_S`` (60) set the grace period and the interval (`gc_settings`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass

from .._logging import get_logger
from ..env import PACKAGE_GC_INTERVAL_ENV, PACKAGE_GRACE_ENV
from ..gcs import schema
from ..gcs.lazy_etcd import LazyEtcd
from ..kernel import Actor
from ..runtime_env.package_store import PackageStore
from ..runtime_env.packaging import package_uris, sha_of_uri

__all__ = ["DEFAULT_GC_INTERVAL", "DEFAULT_GRACE", "CollectPackages", "PackageCollector", "gc_settings"]

log = get_logger(__name__)

DEFAULT_GRACE = 600.0  # seconds a package is kept after its upload and after its last use (Ray: 10 min)
DEFAULT_GC_INTERVAL = 60.0  # seconds between passes
#: the extra age of a last use whose package never became complete (an upload that died midway)
#: before its chunks are deleted: an upload still under way is never cut short
ORPHAN_AGE = 600.0
_ENDED_JOB_STATES = ("STOPPED", "SUCCEEDED", "FAILED")


def gc_settings() -> tuple[float, float]:
    """``(grace, interval)`` in seconds, from the environment (`DEFAULT_GRACE`, `DEFAULT_GC_INTERVAL`);
    ValueError naming the variable if one is not a number >= 0 (the interval > 0)."""
    values = []
    for name, default in ((PACKAGE_GRACE_ENV, DEFAULT_GRACE), (PACKAGE_GC_INTERVAL_ENV, DEFAULT_GC_INTERVAL)):
        text = os.environ.get(name, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a number of seconds") from None
        if value < 0 or (value == 0 and name == PACKAGE_GC_INTERVAL_ENV):
            raise ValueError(f"{name}={text!r} must be {'above' if value == 0 else 'at least'} 0 seconds")
        values.append(value)
    return values[0], values[1]


@dataclass(frozen=True, slots=True)
class CollectPackages:
    """Ask the collector for a pass now; it answers the SHA-256s of the packages it deleted."""


class PackageCollector(Actor):
    """Deletes the cluster's unused packages (see the module docstring)."""

    def __init__(self, etcd: str, token: str, *, cluster: str, etcd_auth: dict | None = None) -> None:
        self.etcd_endpoints, self.token, self.etcd_auth = etcd, token, etcd_auth
        self.cluster = cluster
        self.grace, self.interval = gc_settings()
        self.etcd: LazyEtcd | None = None
        self.passes: asyncio.Task | None = None
        self.lock = asyncio.Lock()  # one pass at a time

    async def pre_start(self) -> None:
        self.etcd = LazyEtcd(self.etcd_endpoints, self.token, self.etcd_auth)
        self.passes = asyncio.get_running_loop().create_task(self._every_interval())

    async def post_stop(self) -> None:
        if self.passes is not None:
            self.passes.cancel()
        if self.etcd is not None:
            await self.etcd.close()

    async def receive(self, message):
        if isinstance(message, CollectPackages):
            return await self.collect()
        return None

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.collect()
            except Exception as error:  # noqa: BLE001 - etcd away: the next pass tries again
                log.warning("a pass of the package collector failed", error=repr(error))

    async def collect(self) -> list[str]:
        """One pass; the SHA-256s of the packages deleted."""
        async with self.lock:
            etcd = await self.etcd.sealed()
            store = PackageStore(etcd, self.cluster)
            used_items, revision = await etcd.get_prefix_with_revision(self._key("package_used", ""))
            used = {key.rsplit("/", 1)[-1]: json.loads(blob).get("time", 0.0) for key, blob in used_items}
            held = await self._in_use(etcd)
            present = await store.shas()
            now = time.time()
            deleted = []
            for sha in sorted((present | set(used)) - held):
                meta = await store.meta(sha) if sha in present else None
                last = max(used.get(sha, 0.0), meta.get("time", 0.0) if meta else 0.0)
                if now - last < self.grace + (0 if meta else ORPHAN_AGE):
                    continue
                if await store.collect(sha, revision) and meta:
                    log.info("runtime env package collected: no job uses it", package=sha, bytes=meta.get("size"),
                             idle_seconds=round(now - last, 1))
                    deleted.append(sha)
            return deleted

    async def _in_use(self, etcd) -> set[str]:
        """The SHA-256s of the packages something may still start a worker with."""
        refs = self._key("package_refs", "")
        held = {key[len(refs):].split("/", 1)[0] for key in await etcd.get_prefix_keys(refs)}
        for _, blob in await etcd.get_prefix(self._key("jobs", "")):
            record = _json(blob)
            if record.get("status") not in _ENDED_JOB_STATES:
                held.update(sha_of_uri(uri) for uri in package_uris(record.get("runtime_env") or {}))
        dead_nodes = self._key("dead", "")
        dead = {key[len(dead_nodes):] for key in await etcd.get_prefix_keys(dead_nodes)}
        for _, blob in await etcd.get_prefix(self._key("actors", "")):
            record = _json(blob)
            if record.get("state") != "DEAD" and not (record.get("state") == "ALIVE" and record.get("node_id") in dead):
                held.update(sha_of_uri(uri) for uri in package_uris({"py_modules": record.get("packages") or []}))
        return held

    def _key(self, *parts: str) -> str:
        return schema.key(self.cluster, *parts)


def _json(blob: bytes) -> dict:
    try:
        record = json.loads(blob)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}
