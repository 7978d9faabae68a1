"""The connection under `EtcdClient`: endpoints, credentials, TLS, and the retry loop every
call runs in.

`EtcdConnection.call` runs one operation on aetcd under a tenacity retry loop (exponential
backoff with jitter, each attempt bounded by ``request_timeout``, all of them by
``retry_deadline``); with several endpoints a failed attempt moves on to the next one. If
etcd stays unreachable it raises `EtcdUnavailableError` naming the endpoints and what to do.

Credentials (``auth={"user", "password", "ca", "cert", "key", "server_name"}``, any subset): user and
password authenticate with etcd's simple tokens, as aetcd does; etcd forgets a token when it
restarts (and after ``--auth-token-ttl`` of disuse), so a call told "invalid auth token"
authenticates again and is retried. ``ca``/``cert``/``key`` (PEM files) switch the channel to
TLS: aetcd only builds insecure channels, so `EndpointClient` overrides its ``connect`` to
build a ``grpc.aio.secure_channel`` with ``grpc.ssl_channel_credentials(ca, key, cert)`` (no
``ca``: the system's roots; ``cert`` and ``key`` together: client-certificate auth). With
``server_name`` the client checks that name in etcd's certificate instead of the host it dials
(``grpc.ssl_target_name_override``): the etcd a head runs presents the cluster's certificate,
which names the cluster (`credentials.TLS_SERVER_NAME`), not every address it is reached at (a
Kubernetes pod's IP, a Service's name). Rejected credentials raise `EtcdAuthError` at once,
naming the user and what to change.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aetcd
import aetcd.exceptions
import grpc
import tenacity
from aetcd import rpc, watcher

from .._logging import get_logger
from .etcd_errors import (
    as_client_error,
    describe,
    is_retryable,
    is_stale_token,
    is_transient,
    retry_backoff,
    status_code,
)

__all__ = ["AUTH_KEYS", "DEFAULT_PORT", "EndpointClient", "EtcdConnection", "parse_endpoints", "probe", "within"]

log = get_logger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 2379

AUTH_KEYS = ("user", "password", "ca", "cert", "key", "server_name")
"""The keys of ``auth``: etcd user and password; CA bundle, client certificate and key (PEM files);
the name to check in etcd's certificate (default: the host dialed)."""


if sys.version_info >= (3, 11):
    async def within(seconds: float, awaitable: Awaitable[T]) -> T:
        """``await awaitable``, raising TimeoutError after ``seconds``. Unlike ``asyncio.wait_for``
        before Python 3.12 (which runs it as a task of its own), a cancellation of the caller that
        arrives as the awaitable completes is not lost: stopping a keepalive or a watch relies on it."""
        async with asyncio.timeout(seconds):
            return await awaitable
else:
    async def within(seconds: float, awaitable: Awaitable[T]) -> T:
        """``await awaitable``, raising TimeoutError after ``seconds`` (Python 3.10 has no
        ``asyncio.timeout``: a cancellation can be lost here, so the callers that are stopped by
        one also check their own stop state)."""
        return await asyncio.wait_for(awaitable, seconds)


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


def parse_endpoints(endpoints: str | list[str]) -> list[str]:
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
    if "server_name" in auth and "ca" not in auth:
        raise ValueError("etcd auth: server_name (the name in etcd's certificate) needs the CA that signed it (ca)")
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


class EndpointClient(aetcd.Client):
    """aetcd's client for one endpoint, with a TLS channel when ``credentials`` are given,
    and `reauthenticate`.

    `connect` replaces aetcd's (1.0), which always builds an insecure channel; the rest is
    as there. It also closes the channel when authentication fails (aetcd keeps it open), and
    treats "authentication is not enabled" as success, as etcd's Go client does."""

    def __init__(self, host: str, port: int, *, username: str | None, password: str | None,
                 credentials: grpc.ChannelCredentials | None, options: dict):
        super().__init__(host=host, port=port, username=username, password=password, options=options)
        self._credentials = credentials

    async def connect(self) -> None:
        """Open the channel (TLS when credentials were given), authenticate, and make the service stubs."""
        if self._connected.is_set():
            return
        if self._is_connecting:
            await within(self._connect_wait_timeout, self._connected.wait())
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


async def probe(client: EndpointClient) -> None:
    """A read that shows etcd answers and accepts our credentials. A user allowed only
    under some prefix may be denied this key: that still proves both."""
    try:
        await client.get(b"\0")
    except aetcd.exceptions.ClientError as e:
        if status_code(e) != grpc.StatusCode.PERMISSION_DENIED:
            raise


class EtcdConnection:
    """One aetcd client per endpoint, the current endpoint, and the retry loop of `call`.

    ``closed`` is set when the client starts closing (or by `close`): calls then raise
    RuntimeError."""

    def __init__(self, endpoints: str | list[str], *, retry_deadline: float, request_timeout: float,
                 auth: dict | None):
        self.endpoints = parse_endpoints(endpoints)
        self.retry_deadline = retry_deadline
        self.request_timeout = request_timeout
        auth = _check_auth(auth)
        self.user: str | None = auth.get("user")
        credentials = _tls_credentials(auth)
        self.tls = credentials is not None
        options = _CHANNEL_OPTIONS
        if "server_name" in auth:
            options = {**options, "grpc.ssl_target_name_override": auth["server_name"]}
        self._clients = [
            EndpointClient(host, int(port), username=self.user, password=auth.get("password"),
                           credentials=credentials, options=options)
            for host, port in (e.rsplit(":", 1) for e in self.endpoints)]
        self._index = 0
        self.closed = False

    def current(self) -> tuple[int, EndpointClient]:
        """The endpoint to use now: its index (for `failed`) and its client."""
        if self.closed:
            raise RuntimeError("the etcd client is closed")
        return self._index, self._clients[self._index]

    def failed(self, index: int) -> None:
        """Endpoint ``index`` failed: move on to the next, unless another call did already."""
        if index == self._index and len(self._clients) > 1:
            self._index = (index + 1) % len(self._clients)
            log.debug("etcd endpoint failed, trying the next", endpoint=self.endpoints[index])

    async def call(
        self,
        what: str,
        op: Callable[[aetcd.Client], Awaitable[T]],
        *,
        deadline: float | None = None,
    ) -> T:
        """Run ``op`` on an endpoint, retrying transient failures for up to ``deadline``
        seconds (default: ``retry_deadline``); ``what`` names the call in errors."""
        deadline = self.retry_deadline if deadline is None else deadline
        loop = asyncio.get_running_loop()
        started = loop.time()
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_before_delay(deadline),
            wait=retry_backoff(max_wait=1.0),
            retry=tenacity.retry_if_exception(is_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    index, client = self.current()
                    remaining = started + deadline - loop.time()
                    try:
                        return await within(max(min(self.request_timeout, remaining), 0.05), op(client))
                    except Exception as e:
                        if is_transient(e):
                            self.failed(index)
                            log.debug("etcd call failed, retrying", what=what, error=describe(e))
                        elif is_stale_token(e):
                            log.debug("etcd auth token expired, authenticating again", what=what)
                            await client.reauthenticate()
                        raise
        except Exception as e:
            error = as_client_error(e, self.endpoints, self.user, what, loop.time() - started)
            if error is e:
                raise
            raise error from e
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close every endpoint's channel; calls after this raise RuntimeError."""
        self.closed = True
        for client in self._clients:
            await client.close()
