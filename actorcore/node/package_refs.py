"""The node's references to runtime env packages on behalf of its processes (docs/architecture.md,
"Runtime environments": which packages are in use).

Owned by the node's GcsLink, on its loop. A process (a driver, or a worker that submits with a
runtime env of its own) asks `HoldPackages` with its core actor before it checks or uploads the
packages its envs name; `PackageRefs.hold` writes ``package_refs/<sha256>/<holder>`` under the
node's etcd lease, then announces the use (``package_used/<sha256>``, `PackageStore.touch`), in
that order: the head's collector either sees the reference or fails to delete. The GcsLink
watches each holder's core actor; when it terminates, `owner_gone` deletes its references and
announces the use once more, so the grace period counts from the end of the last use. A node
that ends takes its references with its lease; one that registers again under a new lease
writes them again (`rewrite`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from .._logging import get_logger
from ..runtime_env.packaging import sha_of_uri

__all__ = ["PackageRefs"]

log = get_logger(__name__)


def holder_id(owner: Any) -> str:
    """The name of `owner`'s references in etcd (its core actor's URI, hashed: a key part)."""
    return hashlib.sha256(owner.to_uri().encode()).hexdigest()[:20]


class PackageRefs:
    """The references of one node's processes (see the module docstring). `link` is the
    GcsLink: its ``etcd``, ``lease``, ``node_id``, ``_packages``, ``_spawn`` and ``_start_registration``."""

    def __init__(self, link: Any) -> None:
        self._link = link
        self._held: dict[Any, set[str]] = {}  # a holder's core actor -> the package URIs it holds

    async def hold(self, owner: Any, uris: tuple[str, ...], watch: Callable[[Any], None]) -> None:
        """Reference `uris` for `owner` until it ends (watched the first time)."""
        held = self._held.get(owner)
        if held is None:
            held = self._held[owner] = set()
            watch(owner)
        link = self._link
        await link._start_registration()
        store = link._packages()
        for uri in uris:
            if uri in held:
                continue
            key = store.ref_key(sha_of_uri(uri), holder_id(owner))
            await link.etcd.put(key, self._record(owner), lease=link.lease)
            if self._held.get(owner) is not held:  # it ended meanwhile
                await link.etcd.delete(key)
                return
            held.add(uri)
            await store.touch(uri)

    def owner_gone(self, owner: Any) -> None:
        """`owner`'s process ended: delete its references."""
        uris = self._held.pop(owner, None)
        if uris:
            self._link._spawn(self._release(owner, uris))

    async def _release(self, owner: Any, uris: set[str]) -> None:
        store = self._link._packages()
        try:
            for uri in uris:
                await self._link.etcd.delete(store.ref_key(sha_of_uri(uri), holder_id(owner)))
                await store.touch(uri)
        except Exception as error:  # noqa: BLE001 - they go with the node's lease at the latest
            log.warning("could not delete a process's package references", error=repr(error))

    async def rewrite(self) -> None:
        """Write every reference again (the node registered under a new lease)."""
        store = self._link._packages()
        for owner, uris in list(self._held.items()):
            for uri in list(uris):
                await self._link.etcd.put(store.ref_key(sha_of_uri(uri), holder_id(owner)), self._record(owner),
                                          lease=self._link.lease)

    def _record(self, owner: Any) -> bytes:
        return json.dumps({"holder": owner.to_uri(), "node_id": self._link.node_id, "time": time.time()}).encode()
