"""TLS on the cluster's gRPC endpoints (the object transfers; docs/architecture.md, "Security
model"): between hosts only, by the rule of `tls.wants_tls` on both ends.

`GrpcTls` is what the object transfers need of the cluster's credentials
(`actorcore.credentials.Credentials` is one): server and channel credentials, and the channel
options that make a client check the cluster's certificate name instead of the address it
dials (every process presents the same certificate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from .tls import wants_tls

__all__ = ["GrpcTls", "add_port", "open_channel", "wants_tls"]


class GrpcTls(Protocol):
    """The cluster's TLS material, as gRPC takes it."""

    def grpc_server_credentials(self) -> grpc.ServerCredentials: ...

    def grpc_channel_credentials(self) -> grpc.ChannelCredentials: ...

    def grpc_channel_options(self) -> Sequence[tuple[str, str]]: ...


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
