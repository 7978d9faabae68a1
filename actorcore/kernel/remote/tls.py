"""When a connection between actor systems is TLS, and what the kernel needs of the cluster's
TLS material (docs/architecture.md, "Security model").

Between hosts every kernel stream and object transfer is encrypted and both ends show a
certificate of the cluster's own CA; on loopback they are not (nothing leaves the machine,
and TLS would cost every message on one machine). Both ends apply the same rule to the address
the server binds and the client dials (`wants_tls`), so they always agree.

`StreamTls` is what the kernel's TCP streams need (`actorcore.credentials.TlsIdentity` is one);
`grpc_tls.GrpcTls` what the gRPC object transfers need.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Protocol

__all__ = ["StreamTls", "wants_tls"]


class StreamTls(Protocol):
    """The cluster's TLS material, as Python's `ssl` takes it."""

    #: the name a client checks in the server's certificate, whatever address it dials
    server_name: str

    def ssl_server_context(self) -> ssl.SSLContext: ...

    def ssl_client_context(self) -> ssl.SSLContext: ...


def wants_tls(address: str, tls: object | None) -> bool:
    """Whether a connection to (or an endpoint bound at) "host:port" `address` uses TLS: when
    there is TLS material and the host is not a loopback address."""
    if tls is None:
        return False
    host = address.rpartition(":")[0].strip("[]")
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"
