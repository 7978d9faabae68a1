"""TLS on the cluster's gRPC endpoints (docs/architecture.md, "Security model").

Between hosts the kernel's streams and object transfers are encrypted and both ends show a
certificate of the cluster's own CA; on loopback they are not (nothing leaves the machine,
and TLS would cost every call on one machine). Both ends apply the same rule to the address
the server binds and the client dials (`wants_tls`), so they always agree.

`GrpcTls` is what the kernel needs of the cluster's credentials
(`actorcore.credentials.Credentials` is one): server and channel credentials, and the channel
options that make a client check the cluster's certificate name instead of the address it
dials (every process presents the same certificate).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Protocol

import grpc

__all__ = ["GrpcTls", "add_port", "open_channel", "wants_tls"]


class GrpcTls(Protocol):
    """The cluster's TLS material, as gRPC takes it."""

    def grpc_server_credentials(self) -> grpc.ServerCredentials: ...

    def grpc_channel_credentials(self) -> grpc.ChannelCredentials: ...

    def grpc_channel_options(self) -> Sequence[tuple[str, str]]: ...


def wants_tls(address: str, tls: GrpcTls | None) -> bool:
    """Whether a connection to (or an endpoint bound at) "host:port" `address` uses TLS: when
    there is TLS material and the host is not a loopback address."""
    if tls is None:
        return False
    host = address.rpartition(":")[0].strip("[]")
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def add_port(server: grpc.aio.Server, bind: str, tls: GrpcTls | None) -> int:
    """Bind `server` to `bind` ("host:port"), with TLS if `wants_tls`; the port bound, 0 if none."""
    if wants_tls(bind, tls):
        return server.add_secure_port(bind, tls.grpc_server_credentials())
    return server.add_insecure_port(bind)


def open_channel(target: str, options: Sequence[tuple[str, object]], tls: GrpcTls | None) -> grpc.aio.Channel:
    """A channel to `target` ("host:port"), with TLS if `wants_tls`."""
    if wants_tls(target, tls):
        return grpc.aio.secure_channel(target, tls.grpc_channel_credentials(),
                                       options=[*options, *tls.grpc_channel_options()])
    return grpc.aio.insecure_channel(target, options=list(options))
