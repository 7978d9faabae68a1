"""The one etcd client of actorcore: a small async interface over aetcd (DESIGN.md §6).

"Every etcd call goes through one client with retries (tenacity) and a clear error when
etcd is unreachable": every unary call of `EtcdClient` runs under a tenacity retry loop
(exponential backoff with jitter, each attempt bounded by ``request_timeout``, all of them
by ``retry_deadline``) and, if etcd stays unreachable, raises `EtcdUnavailableError` naming
the endpoints and what to do. With several endpoints a failed attempt moves on to the next.

Beyond plain key-value calls it provides what the GCS tables of §6 need:

- `EtcdClient.create_if_absent`: a transaction on ``create_revision == 0``, so that
  ``named/<namespace>/<name>`` keys are unique.
- `Lease` with our own keepalive task (refresh every ttl/3; transient errors are retried
  for as long as etcd still knows the lease; when etcd reports it gone, ``on_lost`` runs):
  ``nodes/<node_id>`` vanishes when its node stops renewing (§8).
- `Watch` (from `EtcdClient.watch_prefix`): an async iterator of `WatchEvent` that survives
  disconnects and etcd restarts by re-creating the watch from the last seen revision + 1,
  so no event is lost or delivered twice; if etcd compacted that revision away it raises
  `WatchCompactedError` (re-read the prefix and watch again).

The watch and the keepalive use our own loops on aetcd's gRPC stubs rather than aetcd's
watcher, which cannot resume after a broken stream. One client belongs to one event loop.

Credentials (``auth={"user", "password", "ca", "cert", "key"}``, any subset): user and
password authenticate with etcd's simple tokens, as aetcd does; etcd forgets a token when it
restarts (and after ``--auth-token-ttl`` of disuse), so a call told "invalid auth token"
authenticates again and is retried. ``ca``/``cert``/``key`` (PEM files) switch the channel to
TLS: aetcd only builds insecure channels, so `_AetcdClient` overrides its ``connect`` to build
a ``grpc.aio.secure_channel`` with ``grpc.ssl_channel_credentials(ca, key, cert)`` (no ``ca``:
the system's roots; ``cert`` and ``key`` together: client-certificate auth). Rejected
credentials raise `EtcdAuthError` at once, naming the user and what to change.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import aetcd
import aetcd.exceptions
import grpc
import tenacity
from aetcd import rpc, watcher
from aetcd.utils import prefix_range_end

from .._logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 2379

_CHANNEL_OPTIONS = {
    # gRPC's default reconnect backoff grows to 120 s; etcd restarts must be noticed fast.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 10_000,  # etcd refuses pings more often than every 5 s
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.enable_http_proxy": 0,
    "grpc.max_receive_message_length": -1,
}

_TRANSIENT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

AUTH_KEYS = ("user", "password", "ca", "cert", "key")
"""The keys of ``auth``: etcd user and password; CA bundle, client certificate and key (PEM files)."""


class EtcdUnavailableError(ConnectionError):
    """etcd could not be reached within the retry deadline."""

    def __init__(self, endpoints: list[str], what: str, seconds: float, cause: BaseException):
        self.endpoints = endpoints
        super().__init__(
            f"etcd is unreachable at {','.join(endpoints)}: {what} kept failing for "
            f"{seconds:.1f} s (last error: {_describe(cause)}). Is etcd running there? "
            "For local use let actorcore start one (init() without an address, or "
            "`python -m actorcore.gcs.etcd_server`), or pass --etcd host:port[,host:port] "
            "naming a reachable etcd cluster."
        )


class EtcdAuthError(PermissionError):
    """etcd rejected the credentials, requires some that were not given, or denies the user
    an operation."""

    def __init__(self, endpoints: list[str], user: str | None, what: str, cause: BaseException):
        self.endpoints = endpoints
        self.user = user
        where = ",".join(endpoints)
        details = _details(cause)
        if "user name is empty" in details:
            message = (f"etcd at {where} requires authentication ({details}): pass its user and "
                       "password (--etcd-user/--etcd-password, or auth={'user': ..., 'password': ...})")
        elif _code(cause) == grpc.StatusCode.PERMISSION_DENIED:
            message = (f"etcd at {where} denies user {user!r} to {what} ({details}): grant the user's "
                       "role read and write on the /actorcore/ prefix, e.g. `etcdctl role "
                       "grant-permission ROLE --prefix=true readwrite /actorcore/`")
        else:
            message = (f"etcd at {where} rejected the credentials of user {user!r} ({details}): "
                       "check --etcd-user and --etcd-password (auth['user'], auth['password'])")
        super().__init__(message)


class WatchCompactedError(RuntimeError):
    """A watch cannot resume: etcd compacted the revisions it had not seen yet."""

    def __init__(self, prefix: str, revision: int, compact_revision: int):
        self.revision = revision
        self.compact_revision = compact_revision
        super().__init__(
            f"watch on {prefix!r} cannot resume at revision {revision}: etcd compacted its "
            f"history up to revision {compact_revision}. Re-read the prefix and watch again "
            "from the revision of that read."
        )


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timed out"
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _rpc_error(error: BaseException) -> grpc.aio.AioRpcError | None:
    """The gRPC error behind ``error`` (aetcd wraps them in its own exceptions)."""
    for candidate in (error, error.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return candidate
    return None


def _code(error: BaseException) -> grpc.StatusCode | None:
    rpc_error = _rpc_error(error)
    return rpc_error.code() if rpc_error is not None else None


def _details(error: BaseException) -> str:
    rpc_error = _rpc_error(error)
    return (rpc_error.details() or "") if rpc_error is not None else str(error)


def _is_auth_failure(error: BaseException) -> bool:
    """Wrong credentials, none given where etcd needs some, or a permission denied."""
    code = _code(error)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return True
    return code == grpc.StatusCode.INVALID_ARGUMENT and any(
        text in _details(error) for text in ("authentication failed", "user name is empty"))


def _is_stale_token(error: BaseException) -> bool:
    """etcd no longer knows our auth token (it restarted, or the token timed out)."""
    return _code(error) == grpc.StatusCode.UNAUTHENTICATED and "invalid auth token" in _details(error)


def _is_retryable(error: BaseException) -> bool:
    return _is_transient(error) or _is_stale_token(error)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, (aetcd.exceptions.ConnectionFailedError,
                          aetcd.exceptions.ConnectionTimeoutError, asyncio.TimeoutError)):
        return True
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in _TRANSIENT_CODES


def _backoff(max_wait: float) -> tenacity.wait.wait_base:
    """50 ms, doubling up to ``max_wait``, plus up to 50 ms of jitter."""
    return tenacity.wait_exponential(multiplier=0.05, max=max_wait) + tenacity.wait_random(0, 0.05)


def _parse_endpoints(endpoints: str | list[str]) -> list[str]:
    """``"host:port,[v6]:port"`` (or a list; an ``http://`` prefix is fine) -> targets."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    targets = []
    for item in filter(None, (i.strip() for i in items)):
        address = item.split("://", 1)[-1].rstrip("/")
        if address.startswith("["):
            host, _, rest = address.partition("]")
            host, port = host + "]", rest[1:] if rest.startswith(":") else ""
        elif address.count(":") == 1:
            host, port = address.split(":")
        else:
            host, port = address, ""
        if not host or not (port or str(DEFAULT_PORT)).isdigit():
            raise ValueError(f"bad etcd endpoint {item!r}: expected host:port")
        targets.append(f"{host}:{port or DEFAULT_PORT}")
    if not targets:
        raise ValueError(f"no etcd endpoint given in {endpoints!r}: expected host:port[,...]")
    return targets


def _check_auth(auth: dict | None) -> dict:
    """Validate ``auth`` (see `AUTH_KEYS`); drop empty values."""
    if not auth:
        return {}
    unknown = set(auth) - set(AUTH_KEYS)
    if unknown:
        raise ValueError(f"unknown etcd auth key(s) {sorted(unknown)}: expected some of {list(AUTH_KEYS)}")
    auth = {k: v for k, v in auth.items() if v}
    if ("user" in auth) != ("password" in auth):
        raise ValueError("etcd auth needs both a user and a password (--etcd-user and --etcd-password)")
    if ("cert" in auth) != ("key" in auth):
        raise ValueError("etcd TLS client authentication needs both a certificate and its key "
                         "(--etcd-cert and --etcd-key)")
    return auth


def _tls_credentials(auth: dict) -> grpc.ChannelCredentials | None:
    """TLS channel credentials from the PEM files named in ``auth``, or None for plain text."""
    pem = {}
    for name in ("ca", "cert", "key"):
        if auth.get(name):
            try:
                with open(auth[name], "rb") as f:
                    pem[name] = f.read()
            except OSError as e:
                raise FileNotFoundError(
                    f"cannot read the etcd TLS {name} file {auth[name]!r}: {e.strerror or e}") from e
    if not pem:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=pem.get("ca"), private_key=pem.get("key"), certificate_chain=pem.get("cert"))


class _AetcdClient(aetcd.Client):
    """aetcd's client with a TLS channel when ``credentials`` are given, and `reauthenticate`.

    `connect` replaces aetcd's (1.0), which always builds an insecure channel; the rest is
    as there. It also closes the channel when authentication fails (aetcd keeps it open), and
    treats "authentication is not enabled" as success, as etcd's Go client does."""

    def __init__(self, host: str, port: int, *, username: str | None, password: str | None,
                 credentials: grpc.ChannelCredentials | None, options: dict):
        super().__init__(host=host, port=port, username=username, password=password, options=options)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        self._is_connecting = True
        try:
            target = f"{self._host}:{self._port}"
            options = list(self._options.items())
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(target, options=options)
            else:
                channel = grpc.aio.secure_channel(target, self._credentials, options=options)
            self.channel = channel
            try:
                await self._authenticate()
            except BaseException:
                self._init_channel_attrs()
                await channel.close()
                raise
            self.kvstub = rpc.KVStub(channel)
            self.clusterstub = rpc.ClusterStub(channel)
            self.leasestub = rpc.LeaseStub(channel)
            self.maintenancestub = rpc.MaintenanceStub(channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(channel), timeout=self._timeout,
                                            metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False

    async def _authenticate(self) -> None:
        if self._username is None:
            return
        self.auth_stub = rpc.AuthStub(self.channel)
        try:
            reply = await self.auth_stub.Authenticate(
                rpc.AuthenticateRequest(name=self._username, password=self._password),
                timeout=self._timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.FAILED_PRECONDITION and "not enabled" in (e.details() or ""):
                self.metadata = None
                return
            raise
        self.metadata = (("token", reply.token),)

    async def reauthenticate(self) -> None:
        """Get a new auth token (etcd forgot ours); calls made after this one use it."""
        if self._connected.is_set():
            await self._authenticate()


async def _probe(client: _AetcdClient) -> None:
    """A read that shows etcd answers and accepts our credentials. A user allowed only
    under some prefix may be denied this key: that still proves both."""
    try:
        await client.get(b"\0")
    except aetcd.exceptions.ClientError as e:
        if _code(e) != grpc.StatusCode.PERMISSION_DENIED:
            raise


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: Literal["put", "delete"]
    key: str
    value: bytes | None
    revision: int


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
        """``auth``: any of user, password (etcd authentication) and ca, cert, key (paths of
        PEM files: TLS); see the module docstring."""
        self.endpoints = _parse_endpoints(endpoints)
        self.retry_deadline = retry_deadline
        self.request_timeout = request_timeout
        auth = _check_auth(auth)
        self.user: str | None = auth.get("user")
        credentials = _tls_credentials(auth)
        self.tls = credentials is not None
        self._clients = [
            _AetcdClient(host, int(port), username=self.user, password=auth.get("password"),
                         credentials=credentials, options=_CHANNEL_OPTIONS)
            for host, port in (e.rsplit(":", 1) for e in self.endpoints)]
        self._index = 0
        self._closed = False
        self._leases: weakref.WeakSet[Lease] = weakref.WeakSet()
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

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
            await client._call("connecting", _probe, deadline=timeout)
        except BaseException:
            await client.close()
            raise
        log.debug("etcd connected", endpoints=client.endpoints)
        return client

    async def close(self) -> None:
        """Stop keepalives (the leases then expire unless revoked) and watches; close."""
        if self._closed:
            return
        self._closed = True
        for lease in list(self._leases):
            await lease.stop_keepalive()
        for watch in list(self._watches):
            await watch.aclose()
        for client in self._clients:
            await client.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # -- the retry machinery --------------------------------------------------------

    def _client(self) -> tuple[int, _AetcdClient]:
        if self._closed:
            raise RuntimeError("the etcd client is closed")
        return self._index, self._clients[self._index]

    def _failed(self, index: int) -> None:
        """Move on to the next endpoint, unless another call did already."""
        if index == self._index and len(self._clients) > 1:
            self._index = (index + 1) % len(self._clients)
            log.debug("etcd endpoint failed, trying the next", endpoint=self.endpoints[index])

    async def _call(
        self,
        what: str,
        op: Callable[[aetcd.Client], Awaitable[T]],
        *,
        deadline: float | None = None,
    ) -> T:
        """Run ``op`` on an endpoint, retrying transient failures for up to ``deadline``."""
        deadline = self.retry_deadline if deadline is None else deadline
        loop = asyncio.get_running_loop()
        started = loop.time()
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_before_delay(deadline),
            wait=_backoff(max_wait=1.0),
            retry=tenacity.retry_if_exception(_is_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    index, client = self._client()
                    remaining = started + deadline - loop.time()
                    try:
                        return await asyncio.wait_for(
                            op(client), max(min(self.request_timeout, remaining), 0.05))
                    except Exception as e:
                        if _is_transient(e):
                            self._failed(index)
                            log.debug("etcd call failed, retrying", what=what, error=_describe(e))
                        elif _is_stale_token(e):
                            log.debug("etcd auth token expired, authenticating again", what=what)
                            await client.reauthenticate()
                        raise
        except Exception as e:
            if _is_transient(e):
                raise EtcdUnavailableError(
                    self.endpoints, what, loop.time() - started, e) from e
            if _is_auth_failure(e):
                raise EtcdAuthError(self.endpoints, self.user, what, e) from e
            raise
        raise AssertionError("unreachable")

    # -- key-value ------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        result = await self._call(f"get {key!r}", lambda c: c.get(key.encode()))
        return None if result is None else result.value

    async def put(self, key: str, value: bytes, *, lease: Lease | None = None) -> None:
        lease_id = lease.id if lease is not None else 0
        await self._call(f"put {key!r}", lambda c: c.put(key.encode(), value, lease=lease_id))

    async def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed (a retried call may report False)."""
        result = await self._call(f"delete {key!r}", lambda c: c.delete(key.encode()))
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
        result = await self._call(
            f"get prefix {prefix!r}",
            lambda c: c.get_prefix(prefix.encode(), sort_order="ascend", sort_target="key"))
        items = [(kv.key.decode(), kv.value) for kv in result.kvs]
        return items, result.header.revision

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; return how many there were."""
        result = await self._call(
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

        return await self._call(f"create {key!r}", txn)

    async def delete_if_value(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds exactly ``value``; True if this call deleted it."""
        raw_key = key.encode()

        async def txn(c: aetcd.Client) -> bool:
            deleted, _ = await c.transaction(compare=[c.transactions.value(raw_key) == value],
                                             success=[c.transactions.delete(raw_key)], failure=[])
            return deleted

        return await self._call(f"delete {key!r} if unchanged", txn)

    # -- leases ---------------------------------------------------------------------

    async def lease(
        self,
        ttl: int,
        *,
        keepalive: bool = True,
        on_lost: Callable[[Lease], Any] | None = None,
    ) -> Lease:
        """Grant a lease of ``ttl`` seconds and (unless ``keepalive=False``) keep it alive
        until `Lease.revoke`, `Lease.stop_keepalive` or `close`. ``on_lost(lease)`` (sync
        or async) runs if etcd reports the lease expired."""
        granted = await self._call(f"grant a {ttl} s lease", lambda c: c.lease(ttl))
        lease = Lease(self, granted.id, granted.ttl, on_lost)
        self._leases.add(lease)
        if keepalive:
            lease._start_keepalive()
        log.debug("lease granted", lease=f"{lease.id:x}", ttl=lease.ttl)
        return lease

    # -- watches --------------------------------------------------------------------

    def watch_prefix(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Watch every change under ``prefix`` from ``start_revision`` (inclusive) or, by
        default, from when the watch is established (``async with`` or `Watch.start`
        waits for that; the first ``async for`` step does it otherwise)."""
        watch = Watch(self, prefix, start_revision)
        self._watches.add(watch)
        return watch


class Lease:
    """An etcd lease kept alive by an asyncio task; keys put with it vanish when it ends."""

    def __init__(self, client: EtcdClient, lease_id: int, ttl: int,
                 on_lost: Callable[[Lease], Any] | None):
        self.id = lease_id
        self.ttl = ttl
        self._client = client
        self._on_lost = on_lost
        self._task: asyncio.Task | None = None
        self.lost = False
        """True once etcd reported the lease expired or it was revoked."""

    def __repr__(self) -> str:
        return f"<Lease {self.id:x} ttl={self.ttl}{' lost' if self.lost else ''}>"

    def _start_keepalive(self) -> None:
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
        info = await self._client._call(f"ask the TTL of lease {self.id:x}",
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

        await self._client._call(f"revoke lease {self.id:x}", revoke)
        self.lost = True
        log.debug("lease revoked", lease=f"{self.id:x}")

    async def _keepalive(self) -> None:
        interval = max(self.ttl / 3, 0.1)
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                reply = await self._client._call(
                    f"refresh lease {self.id:x}", lambda c: c.refresh_lease(self.id))
            except (EtcdUnavailableError, EtcdAuthError, aetcd.exceptions.ClientError) as e:
                # Keep trying for as long as etcd may still hold the lease.
                log.warning("lease keepalive failed, retrying", lease=f"{self.id:x}",
                            error=_describe(e))
                delay = min(interval, 0.5)
                continue
            if reply is None:
                delay = min(interval, 0.5)
                continue
            if reply.TTL <= 0:
                break
            delay = interval
        self.lost = True
        self._task = None
        log.warning("etcd lease lost", lease=f"{self.id:x}", ttl=self.ttl)
        if self._on_lost is not None:
            try:
                result = self._on_lost(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("lease on_lost callback failed", lease=f"{self.id:x}")


class Watch:
    """Async iterator of `WatchEvent` under a prefix that resumes across reconnects."""

    def __init__(self, client: EtcdClient, prefix: str, start_revision: int | None):
        self._client = client
        self.prefix = prefix
        self._next_revision = start_revision
        self._call: grpc.aio.StreamStreamCall | None = None
        self._buffer: collections.deque[WatchEvent] = collections.deque()
        self._established_once = False
        self._closed = False

    @property
    def next_revision(self) -> int | None:
        """The revision the watch resumes from (None until first established)."""
        return self._next_revision

    async def start(self) -> Watch:
        """Establish the watch; raise `EtcdUnavailableError` if etcd cannot be reached."""
        if self._call is None and not self._closed:
            await self._open()
        return self

    async def aclose(self) -> None:
        self._closed = True
        self._drop_call()
        self._client._watches.discard(self)

    async def __aenter__(self) -> Watch:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            if self._call is None:
                await self._open()
            call = self._call
            try:
                response = await call.read()
            except asyncio.CancelledError:
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            except grpc.aio.AioRpcError as e:
                self._lost_stream(call, _describe(e))
                continue
            if response is grpc.aio.EOF:
                self._lost_stream(call, "stream ended")
                continue
            self._handle(response)
        return self._buffer.popleft()

    def _handle(self, response) -> None:
        if response.compact_revision:
            self._closed = True
            self._drop_call()
            raise WatchCompactedError(self.prefix, self._next_revision or 0,
                                      response.compact_revision)
        if response.canceled:
            self._closed = True
            self._drop_call()
            raise RuntimeError(f"etcd cancelled the watch on {self.prefix!r}: "
                               f"{response.cancel_reason or 'no reason given'}")
        # A revision's events always arrive in one response, so skip what we have seen
        # (a resumed watch replays from the revision we asked for) and move on as a block.
        next_revision = self._next_revision or 0
        last = None
        for event in response.events:
            revision = event.kv.mod_revision
            if revision < next_revision:
                continue
            last = revision
            is_put = event.type == rpc.Event.PUT
            self._buffer.append(WatchEvent(
                type="put" if is_put else "delete",
                key=event.kv.key.decode(),
                value=event.kv.value if is_put else None,
                revision=revision,
            ))
        if last is not None:
            self._next_revision = last + 1

    async def _open(self) -> None:
        """(Re-)create the watch stream. The first time, give up with EtcdUnavailableError
        after the client's retry deadline; after that, retry for as long as it takes."""
        deadline = None if self._established_once else self._client.retry_deadline
        retrying = tenacity.AsyncRetrying(
            stop=(tenacity.stop_never if deadline is None
                  else tenacity.stop_before_delay(deadline)),
            wait=_backoff(max_wait=2.0),
            retry=tenacity.retry_if_exception(_is_retryable),
            reraise=True,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        what = f"watch {self.prefix!r}"
        try:
            async for attempt in retrying:
                with attempt:
                    await self._open_once()
        except Exception as e:
            if _is_transient(e):
                raise EtcdUnavailableError(self._client.endpoints, what,
                                           loop.time() - started, e) from e
            if _is_auth_failure(e):
                raise EtcdAuthError(self._client.endpoints, self._client.user, what, e) from e
            raise
        if self._established_once:
            log.info("etcd watch resumed", prefix=self.prefix, revision=self._next_revision)
        self._established_once = True

    async def _open_once(self) -> None:
        index, client = self._client._client()
        await client.connect()
        call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
        request = rpc.WatchCreateRequest(
            key=self.prefix.encode(),
            range_end=prefix_range_end(self.prefix.encode()),
            start_revision=self._next_revision or 0,
        )
        try:
            await call.write(rpc.WatchRequest(create_request=request))
            response = await asyncio.wait_for(call.read(), self._client.request_timeout)
        except Exception as e:
            call.cancel()
            if _is_transient(e):
                self._client._failed(index)
            elif _is_stale_token(e):
                await client.reauthenticate()
            raise
        if response is grpc.aio.EOF or not response.created:
            call.cancel()
            raise aetcd.exceptions.ConnectionFailedError("watch stream ended while opening")
        if self._next_revision is None:
            self._next_revision = response.header.revision + 1
        self._call = call
        self._handle(response)

    def _lost_stream(self, call, reason: str) -> None:
        if call is self._call:
            self._drop_call()
        log.warning("etcd watch stream lost, resuming", prefix=self.prefix,
                    revision=self._next_revision, reason=reason)

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
