"""The one etcd client of actorcore: a small async interface over aetcd.

Every etcd call in actorcore goes through an `EtcdClient`, and every unary call it makes
runs in its connection's retry loop: transient failures are retried with backoff (moving on
to the next endpoint, if there are several) and, if etcd stays unreachable, the call raises
`EtcdUnavailableError` naming the endpoints and what to do; rejected credentials raise
`EtcdAuthError`. One client belongs to one event loop.

Beyond plain key-value calls it provides what the GCS tables need:

- `EtcdClient.create_if_absent`: a transaction on ``create_revision == 0``, so that
  ``named/<namespace>/<name>`` keys are unique;
- `EtcdClient.lease`: a `Lease` with its own keepalive task, whose keys vanish when its
  holder stops renewing it;
- `EtcdClient.watch_prefix`: a `Watch`, an async iterator of `WatchEvent` that resumes
  across disconnects and etcd restarts without losing or repeating an event.

The parts, one module each: :mod:`.etcd_connection` (endpoints, credentials, TLS, the retry
loop), :mod:`.etcd_errors` (the errors and how failures are classified),
:mod:`.etcd_lease` and :mod:`.etcd_watch`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import aetcd
import aetcd.exceptions
from aetcd.utils import prefix_range_end

from .._logging import get_logger
from .etcd_connection import AUTH_KEYS, DEFAULT_PORT, EtcdConnection, probe
from .etcd_errors import EtcdAuthError, EtcdUnavailableError, WatchCompactedError
from .etcd_lease import Lease
from .etcd_watch import Watch, WatchEvent

__all__ = [
    "AUTH_KEYS",
    "DEFAULT_PORT",
    "EtcdAuthError",
    "EtcdClient",
    "EtcdUnavailableError",
    "Lease",
    "Watch",
    "WatchCompactedError",
    "WatchEvent",
]

log = get_logger(__name__)


class EtcdClient:
    """Async etcd client; create it with ``await EtcdClient.connect("host:port[,...]")``."""

    def __init__(
        self,
        endpoints: str | list[str],
        *,
        retry_deadline: float = 5.0,
        request_timeout: float = 5.0,
        auth: dict | None = None,
    ):
        """``auth``: any of user, password (etcd authentication), ca, cert, key (paths of
        PEM files: TLS) and server_name (the name to check in etcd's certificate); see
        :mod:`.etcd_connection`."""
        self._connection = EtcdConnection(endpoints, retry_deadline=retry_deadline,
                                          request_timeout=request_timeout, auth=auth)
        self._leases: weakref.WeakSet[Lease] = weakref.WeakSet()
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

    @property
    def endpoints(self) -> list[str]:
        """The etcd endpoints, as ``host:port`` targets."""
        return self._connection.endpoints

    @property
    def retry_deadline(self) -> float:
        """How long (seconds) a call retries before it raises `EtcdUnavailableError`."""
        return self._connection.retry_deadline

    @property
    def request_timeout(self) -> float:
        """How long (seconds) one attempt of a call may take."""
        return self._connection.request_timeout

    @property
    def user(self) -> str | None:
        """The etcd user the client authenticates as, None without authentication."""
        return self._connection.user

    @property
    def tls(self) -> bool:
        """True when the channel is TLS (``ca``, ``cert`` or ``key`` given in ``auth``)."""
        return self._connection.tls

    @classmethod
    async def connect(
        cls,
        endpoints: str | list[str],
        *,
        timeout: float = 5.0,
        retry_deadline: float = 5.0,
        request_timeout: float = 5.0,
        auth: dict | None = None,
    ) -> EtcdClient:
        """Connect and check that etcd answers within ``timeout`` seconds, else raise
        `EtcdUnavailableError` (or `EtcdAuthError` if it rejects ``auth``). Later calls
        retry for up to ``retry_deadline`` seconds."""
        client = cls(endpoints, retry_deadline=retry_deadline, request_timeout=request_timeout, auth=auth)
        try:
            await client._connection.call("connecting", probe, deadline=timeout)
        except BaseException:
            await client.close()
            raise
        log.debug("etcd connected", endpoints=client.endpoints)
        return client

    async def close(self) -> None:
        """Stop keepalives (the leases then expire unless revoked) and watches; close."""
        if self._connection.closed:
            return
        self._connection.closed = True  # calls made from now on raise
        for lease in list(self._leases):
            await lease.stop_keepalive()
        for watch in list(self._watches):
            await watch.aclose()
        await self._connection.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # -- key-value ------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, None if it does not exist."""
        result = await self._connection.call(f"get {key!r}", lambda c: c.get(key.encode()))
        return None if result is None else result.value

    async def put(self, key: str, value: bytes, *, lease: Lease | None = None) -> None:
        """Set ``key`` to ``value``; with ``lease``, the key is deleted when the lease ends."""
        lease_id = lease.id if lease is not None else 0
        await self._connection.call(f"put {key!r}", lambda c: c.put(key.encode(), value, lease=lease_id))

    async def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed (a retried call may report False)."""
        result = await self._connection.call(f"delete {key!r}", lambda c: c.delete(key.encode()))
        return result is not None

    async def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """All ``(key, value)`` pairs under ``prefix``, sorted by key."""
        items, _ = await self.get_prefix_with_revision(prefix)
        return items

    async def get_prefix_with_revision(
        self, prefix: str
    ) -> tuple[list[tuple[str, bytes]], int]:
        """Like `get_prefix`, plus the revision of the read: watch from revision + 1 to
        see every later change without a gap."""
        result = await self._connection.call(
            f"get prefix {prefix!r}",
            lambda c: c.get_prefix(prefix.encode(), sort_order="ascend", sort_target="key"))
        items = [(kv.key.decode(), kv.value) for kv in result.kvs]
        return items, result.header.revision

    async def get_prefix_keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` without their values, sorted."""
        result = await self._connection.call(
            f"get keys {prefix!r}",
            lambda c: c.get_prefix(prefix.encode(), sort_order="ascend", sort_target="key", keys_only=True))
        return [kv.key.decode() for kv in result.kvs]

    async def delete_unless_changed(self, guard: str, revision: int, keys: list[str], prefixes: list[str]) -> bool:
        """Delete ``keys`` and every key under ``prefixes`` in one transaction, only if ``guard``
        was not written after ``revision`` (absent counts as unchanged); True if it deleted."""
        async def txn(c: aetcd.Client) -> bool:
            deletes = [c.transactions.delete(key.encode()) for key in keys]
            deletes += [c.transactions.delete(p.encode(), range_end=prefix_range_end(p.encode())) for p in prefixes]
            succeeded, _ = await c.transaction(compare=[c.transactions.mod(guard.encode()) < revision + 1],
                                               success=deletes, failure=[])
            return succeeded

        return await self._connection.call(f"delete unless {guard!r} changed", txn)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; return how many there were."""
        result = await self._connection.call(
            f"delete prefix {prefix!r}", lambda c: c.delete_prefix(prefix.encode()))
        return result.deleted

    async def create_if_absent(
        self, key: str, value: bytes, *, lease: Lease | None = None
    ) -> bool:
        """Create ``key`` only if it does not exist; True if this call created it.

        If an attempt's reply was lost and the retry finds the key holding exactly our
        value and lease, the key is taken to be ours, so use values unique to the caller
        (e.g. an actor id)."""
        raw_key = key.encode()
        lease_id = lease.id if lease is not None else 0
        attempts = 0

        async def txn(c: aetcd.Client) -> bool:
            nonlocal attempts
            attempts += 1
            created, responses = await c.transaction(
                compare=[c.transactions.create(raw_key) == 0],
                success=[c.transactions.put(raw_key, value, lease=lease_id)],
                failure=[c.transactions.get(raw_key)],
            )
            if created or attempts == 1 or not responses or not responses[0]:
                return created
            existing_value, existing = responses[0][0]
            return existing_value == value and existing.lease == lease_id

        return await self._connection.call(f"create {key!r}", txn)

    async def delete_if_value(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds exactly ``value``; True if this call deleted it."""
        raw_key = key.encode()

        async def txn(c: aetcd.Client) -> bool:
            deleted, _ = await c.transaction(compare=[c.transactions.value(raw_key) == value],
                                             success=[c.transactions.delete(raw_key)], failure=[])
            return deleted

        return await self._connection.call(f"delete {key!r} if unchanged", txn)

    # -- fencing: writes that hold only while another key says so --------------------

    async def get_with_revision(self, key: str) -> tuple[bytes | None, int]:
        """The value of ``key`` and its mod revision; ``(None, 0)`` if it does not exist."""
        result = await self._connection.call(f"get {key!r}", lambda c: c.get(key.encode()))
        return (None, 0) if result is None else (result.value, result.mod_revision)

    async def put_if_revision(self, key: str, value: bytes, revision: int) -> bool:
        """Set ``key`` to ``value`` only if its mod revision is still ``revision`` (0: only if
        it does not exist); True if this call wrote it."""
        raw_key = key.encode()

        async def txn(c: aetcd.Client) -> bool:
            compare = c.transactions.create(raw_key) == 0 if revision == 0 else c.transactions.mod(raw_key) == revision
            written, _ = await c.transaction(compare=[compare], success=[c.transactions.put(raw_key, value)],
                                             failure=[])
            return written

        return await self._connection.call(f"put {key!r} if unchanged", txn)

    async def put_unless_exists(self, key: str, value: bytes, *, unless: str, lease: Lease | None = None) -> bool:
        """Set ``key`` to ``value`` only while the key ``unless`` does not exist; True if
        this call wrote it. (Registration and death are decided this way: a node registers
        only if it was not declared dead, and is declared dead only if it is not registered.)"""
        raw_key, raw_unless = key.encode(), unless.encode()
        lease_id = lease.id if lease is not None else 0

        async def txn(c: aetcd.Client) -> bool:
            written, _ = await c.transaction(compare=[c.transactions.create(raw_unless) == 0],
                                             success=[c.transactions.put(raw_key, value, lease=lease_id)],
                                             failure=[])
            return written

        return await self._connection.call(f"put {key!r} unless {unless!r} exists", txn)

    async def revoke_lease(self, lease_id: int) -> None:
        """End the lease ``lease_id`` (another process's: its keys are deleted, and its
        keepalive learns the lease is gone). A lease already gone is fine."""

        async def revoke(c: aetcd.Client) -> None:
            try:
                await c.revoke_lease(lease_id)
            except aetcd.exceptions.ClientError as e:
                if "lease not found" not in str(e):
                    raise

        await self._connection.call(f"revoke lease {lease_id:x}", revoke)

    # -- leases and watches ---------------------------------------------------------

    async def lease(
        self,
        ttl: int,
        *,
        keepalive: bool = True,
        on_lost: Callable[[Lease], Any] | None = None,
        expire_locally: bool = False,
    ) -> Lease:
        """Grant a lease of ``ttl`` seconds and (unless ``keepalive=False``) keep it alive
        until `Lease.revoke`, `Lease.stop_keepalive` or `close`. ``on_lost(lease)`` (sync
        or async) runs if etcd reports the lease expired, or, with ``expire_locally``, once
        it could not be renewed for ``ttl`` seconds while etcd may be up (see `Lease`)."""
        granted = await self._connection.call(f"grant a {ttl} s lease", lambda c: c.lease(ttl))
        lease = Lease(self._connection, granted.id, granted.ttl, on_lost, expire_locally=expire_locally)
        self._leases.add(lease)
        if keepalive:
            lease.start_keepalive()
        log.debug("lease granted", lease=f"{lease.id:x}", ttl=lease.ttl)
        return lease

    def watch_prefix(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Watch every change under ``prefix`` from ``start_revision`` (inclusive) or, by
        default, from when the watch is established (``async with`` or `Watch.start`
        waits for that; the first ``async for`` step does it otherwise)."""
        watch = Watch(self._connection, prefix, start_revision, on_close=self._watches.discard)
        self._watches.add(watch)
        return watch
