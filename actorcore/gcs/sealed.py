"""Sealed etcd records: every value actorcore writes to etcd carries a MAC keyed by the
cluster secret, and is verified before it is used (docs/architecture.md, "Security model").

Whoever can write to etcd must not be able to make a process of the cluster unpickle their
bytes (actor handles, exported functions, service checkpoints) or connect where they say
(node records name the kernel and object-transfer endpoints). So every value is stored as

    ``MAGIC`` (4 bytes) + MAC (32 bytes) + value

where the MAC is ``ClusterSecret.mac("etcd-record", key, value)``: bound to the full etcd key
(cluster prefix included), so that a record valid at one key is refused at any other. The
MAC is deterministic, so a sealed value can be compared in a transaction (create-if-absent,
delete-if-value) as it is.

`SealedEtcd` wraps an `EtcdClient` with one `RecordSeal`: values are sealed on every write
and opened on every read; a value that fails is refused with `TamperedRecordError` (by
`get`) or left out with an error logged (by `get_prefix` and watches: one bad record does
not hide the others), and never returned. Exported functions are also content-addressed:
`check_function` refuses bytes that do not hash to their id (`function_id`).

What a seal does not prevent: deleting a record, or putting back an older value that was
valid at the same key (a replay). A replay can only bring back what the cluster itself once
wrote there (a function is the same bytes: its id is their hash); an endpoint it names is
trusted no more than the kernel's authentication of whoever answers there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._logging import get_logger
from ..kernel.secret import MAC_SIZE, ClusterSecret

if TYPE_CHECKING:
    from .etcd_client import EtcdClient
    from .etcd_lease import Lease
    from .etcd_watch import Watch, WatchEvent

__all__ = [
    "MAGIC",
    "PURPOSE",
    "RecordSeal",
    "SealedEtcd",
    "SealedWatch",
    "TamperedRecordError",
    "check_function",
    "function_id",
]

log = get_logger(__name__)

PURPOSE = "etcd-record"
MAGIC = b"acS1"  # the envelope's version: a value without it was not sealed by actorcore
_HEADER = len(MAGIC) + MAC_SIZE


class TamperedRecordError(Exception):
    """A record read from etcd that this cluster did not write (or that was altered): refused."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"etcd record {key!r} refused: {reason}; it was not written by this cluster "
                         "(someone with access to etcd altered or planted it), so it is neither loaded nor used")
        self.key, self.reason = key, reason

    def __reduce__(self):
        return type(self), (self.key, self.reason)


def function_id(blob: bytes) -> str:
    """The id of an exported function or class: the hash of its pickled bytes."""
    return hashlib.sha1(blob).hexdigest()


def check_function(key: str, expected_id: str, blob: bytes) -> bytes:
    """``blob`` if it hashes to ``expected_id``; else log and raise `TamperedRecordError`."""
    if function_id(blob) != expected_id:
        _refused(key, f"its bytes do not hash to the function id {expected_id}")
    return blob


def _refused(key: str, reason: str):
    error = TamperedRecordError(key, reason)
    log.error("etcd record refused: not written by this cluster", key=key, reason=reason)
    raise error


class RecordSeal:
    """Seals and opens the values of etcd records with one cluster secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: ClusterSecret | str) -> None:
        self._secret = secret if isinstance(secret, ClusterSecret) else ClusterSecret(secret)

    def seal(self, key: str, value: bytes) -> bytes:
        """``value`` as stored at ``key``: the envelope header, then the value."""
        return MAGIC + self._secret.mac(PURPOSE, key.encode(), value) + value

    def open(self, key: str, sealed: bytes) -> bytes:
        """The value sealed in ``sealed`` at ``key``; raise `TamperedRecordError` (and log) if
        it was not sealed, or not for this key, by a holder of the cluster secret."""
        sealed = bytes(sealed)
        if len(sealed) < _HEADER or not sealed.startswith(MAGIC):
            _refused(key, "it carries no seal of the cluster")
        value = sealed[_HEADER:]
        if not self._secret.verify(PURPOSE, sealed[len(MAGIC):_HEADER], key.encode(), value):
            _refused(key, "its seal does not match its key and value under the cluster secret")
        return value

    def open_items(self, items: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """The ``(key, value)`` pairs whose seal holds, opened; the others are logged and left out."""
        opened = []
        for key, sealed in items:
            try:
                opened.append((key, self.open(key, sealed)))
            except TamperedRecordError:
                continue
        return opened


class SealedWatch:
    """A `Watch` whose put events carry opened values; a put that fails its seal is logged and
    skipped (the record it would have replaced stays as it was for the watcher)."""

    def __init__(self, watch: Watch, seal: RecordSeal) -> None:
        self._watch, self._seal = watch, seal

    @property
    def prefix(self) -> str:
        return self._watch.prefix

    @property
    def next_revision(self) -> int | None:
        return self._watch.next_revision

    async def start(self) -> SealedWatch:
        await self._watch.start()
        return self

    async def aclose(self) -> None:
        await self._watch.aclose()

    async def __aenter__(self) -> SealedWatch:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    def __aiter__(self) -> SealedWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            event = await self._watch.__anext__()
            if event.type != "put" or event.value is None:
                return event
            try:
                value = self._seal.open(event.key, event.value)
            except TamperedRecordError:
                continue
            return dataclasses.replace(event, value=value)


class SealedEtcd:
    """An `EtcdClient` whose values are sealed with the cluster secret (see the module's
    docstring): the same calls, with the values in clear on this side only.

    It offers only the calls that are sealed (or carry no value): a value-carrying call of
    `EtcdClient` that is not here is not available through it, rather than left unsealed."""

    def __init__(self, client: EtcdClient, secret: ClusterSecret | str) -> None:
        self.raw = client  # the client underneath: what it reads and writes is not checked
        self.seal = RecordSeal(secret)

    @classmethod
    async def connect(cls, endpoints: str | list[str], *, secret: ClusterSecret | str, **options: Any) -> SealedEtcd:
        """`EtcdClient.connect` (same ``options``), sealed with ``secret``."""
        from .etcd_client import EtcdClient

        return cls(await EtcdClient.connect(endpoints, **options), secret)

    # -- what carries values: sealed and opened --------------------------------------

    async def get(self, key: str) -> bytes | None:
        sealed = await self.raw.get(key)
        return None if sealed is None else self.seal.open(key, sealed)

    async def put(self, key: str, value: bytes, *, lease: Lease | None = None) -> None:
        await self.raw.put(key, self.seal.seal(key, value), lease=lease)

    async def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        return self.seal.open_items(await self.raw.get_prefix(prefix))

    async def get_prefix_with_revision(self, prefix: str) -> tuple[list[tuple[str, bytes]], int]:
        items, revision = await self.raw.get_prefix_with_revision(prefix)
        return self.seal.open_items(items), revision

    async def create_if_absent(self, key: str, value: bytes, *, lease: Lease | None = None) -> bool:
        return await self.raw.create_if_absent(key, self.seal.seal(key, value), lease=lease)

    async def delete_if_value(self, key: str, value: bytes) -> bool:
        return await self.raw.delete_if_value(key, self.seal.seal(key, value))

    async def get_with_revision(self, key: str) -> tuple[bytes | None, int]:
        sealed, revision = await self.raw.get_with_revision(key)
        return (None if sealed is None else self.seal.open(key, sealed)), revision

    async def put_if_revision(self, key: str, value: bytes, revision: int) -> bool:
        return await self.raw.put_if_revision(key, self.seal.seal(key, value), revision)

    async def put_unless_exists(self, key: str, value: bytes, *, unless: str, lease: Lease | None = None) -> bool:
        return await self.raw.put_unless_exists(key, self.seal.seal(key, value), unless=unless, lease=lease)

    def watch_prefix(self, prefix: str, *, start_revision: int | None = None) -> SealedWatch:
        return SealedWatch(self.raw.watch_prefix(prefix, start_revision=start_revision), self.seal)

    # -- what carries none: passed through ----------------------------------------------

    async def delete(self, key: str) -> bool:
        return await self.raw.delete(key)

    async def delete_prefix(self, prefix: str) -> int:
        return await self.raw.delete_prefix(prefix)

    async def get_prefix_keys(self, prefix: str) -> list[str]:
        return await self.raw.get_prefix_keys(prefix)

    async def delete_unless_changed(self, guard: str, revision: int, keys: list[str], prefixes: list[str]) -> bool:
        return await self.raw.delete_unless_changed(guard, revision, keys, prefixes)

    async def lease(self, ttl: int, *, keepalive: bool = True,
                    on_lost: Callable[[Lease], Any] | None = None, expire_locally: bool = False) -> Lease:
        return await self.raw.lease(ttl, keepalive=keepalive, on_lost=on_lost, expire_locally=expire_locally)

    async def revoke_lease(self, lease_id: int) -> None:
        await self.raw.revoke_lease(lease_id)

    async def close(self) -> None:
        await self.raw.close()

    async def __aenter__(self) -> SealedEtcd:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @property
    def endpoints(self) -> list[str]:
        return self.raw.endpoints

    @property
    def retry_deadline(self) -> float:
        return self.raw.retry_deadline

    @property
    def request_timeout(self) -> float:
        return self.raw.request_timeout

    @property
    def user(self) -> str | None:
        return self.raw.user

    @property
    def tls(self) -> bool:
        return self.raw.tls
