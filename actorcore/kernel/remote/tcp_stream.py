"""The kernel's transport between hosts: framed TCP streams, TLS off loopback.

The same frames, framing and connection interface as the Unix-socket transport
(`connections.FramedConnection`: a 4-byte big-endian length, then a serialized `Frame`; the
handshake of `handshake.py` first on every stream, frames of at most `HANDSHAKE_FRAME_LIMIT`
bytes until it succeeded). Between hosts (`tls.wants_tls`) both ends speak TLS with the
cluster's certificate: the server requires a client certificate of the cluster's CA, the
client checks the server's against that CA and the cluster's certificate name. A TLS handshake
that has not finished within `HANDSHAKE_TIMEOUT` seconds closes the connection; only once it
succeeded does the kernel see the connection, which then counts among the pending handshakes
of the kernel's own handshake (`peers.MAX_PENDING_HANDSHAKES`), as a gRPC stream did once
its call proof had been checked. On loopback (no TLS) an accepted connection from a process of
another user is refused before anything is read, as on Unix sockets: its uid is read from the
kernel's socket table (`loopback_peer_uid`), so that no other user of the machine can take
the kernel's handshake slots.

Chosen by measurement over the gRPC bidirectional stream (`Transport.Stream` of grpc.aio) it
replaced, on the 2-core dev machine (shared, so figures vary by ~±50%), both ends on uvloop,
medians of a sequential ask of a trivial actor from another process:

| where                                              | gRPC stream | TCP stream |
|----------------------------------------------------|-------------|------------|
| loopback, both ends polling (benchmarks/kernel.py) | 947 µs      | 35-62 µs   |
| loopback, no polling (as drivers and workers)      | 334-345 µs  | 108-165 µs |
| across a non-loopback address, TLS, no polling     | 360-391 µs  | 245-264 µs |
| `get(ping.remote())` to another node (benchmarks/cluster.py) | 0.83-0.93 ms | 0.39-0.66 ms |

The cluster row spans 9 runs at load averages of 3-7, median 0.52 ms (Ray 2.60 in the same
runs: 2.3-5.3 ms). grpc.aio hands every message between its own poller thread and the event
loop; a stream read by an asyncio Protocol dispatches frames straight from `data_received`, as
on Unix sockets (echoing an 8 MiB message costs the same either way). Python's `ssl` adds
~100 µs per round trip; the object transfers stay on gRPC. What remains of a cross-node task
round trip is the task path itself (a same-node task, over a Unix socket, costs about as
much): ~145 µs on the worker from the task's arrival to its reply; on the driver ~80 µs from
`remote()` to the request on the wire and ~110 µs from the reply to `get` returning. Raw
loopback TCP costs ~25 µs more per round trip than a Unix socket on this machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Callable

from ..._logging import get_logger
from .connections import FramedConnection
from .tls import StreamTls, wants_tls

__all__ = ["HANDSHAKE_TIMEOUT", "TcpConnection", "TcpServer", "loopback_peer_uid"]

log = get_logger(__name__)

#: Seconds a TLS handshake may take (the kernel's own handshake has the same bound).
HANDSHAKE_TIMEOUT = 10.0


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r} is not a \"host:port\" address")
    return host.strip("[]"), int(port)


def _proc_net_address(host: str, port: int) -> str:
    """`host`:`port` as /proc/net/tcp{,6} writes it (address words in host byte order)."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    words = struct.unpack(f"<{len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def loopback_peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a loopback TCP connection, read from the
    kernel's socket table (Linux); None where it cannot be told (not loopback, no table)."""
    local, remote = sock.getsockname()[:2], sock.getpeername()[:2]
    if not ipaddress.ip_address(remote[0]).is_loopback:
        return None
    # The peer's socket is the entry whose local end is our remote end and the other way round.
    theirs, ours = _proc_net_address(*remote), _proc_net_address(*local)
    table = "/proc/net/tcp6" if sock.family == socket.AF_INET6 else "/proc/net/tcp"
    try:
        with open(table) as f:
            for line in f:
                fields = line.split()
                if len(fields) > 7 and fields[1] == theirs and fields[2] == ours:
                    return int(fields[7])
    except OSError:
        return None
    return None


class TcpConnection(FramedConnection):
    """A framed stream over TCP (TLS between hosts); `on_made` (accepted connections) is told
    once the connection is up, its TLS handshake done. An accepted loopback connection from a
    process of another user is refused at once, before anything is read (as on Unix sockets)."""

    def __init__(self, on_made: Callable[[TcpConnection], None] | None = None) -> None:
        super().__init__()
        self._on_made = on_made

    def connection_made(self, transport) -> None:
        """As `FramedConnection`'s, then hand the connection to `on_made`."""
        super().connection_made(transport)
        if self._on_made is None or self._closed:
            return
        if not self._refuse_other_user(transport, loopback_peer_uid, "loopback TCP"):
            self._on_made(self)

    @classmethod
    async def open(cls, target: str, tls: StreamTls | None, timeout: float = HANDSHAKE_TIMEOUT) -> TcpConnection:
        """Connect to `target` ("host:port"), over TLS if `wants_tls`; wait up to `timeout` s."""
        host, port = _split(target)
        loop = asyncio.get_running_loop()
        if wants_tls(target, tls):
            secure = {"ssl": tls.ssl_client_context(), "server_hostname": tls.server_name,
                      "ssl_handshake_timeout": timeout}
        else:
            secure = {}
        _, protocol = await asyncio.wait_for(loop.create_connection(cls, host, port, **secure), timeout)
        return protocol


class TcpServer:
    """Accepts framed TCP connections on `bind` ("host:port"; TLS between hosts) and hands
    each to `on_connection` once it is up: with TLS, once the client showed a certificate of
    the cluster's CA (a client without one never reaches the kernel, nor its limit of pending
    handshakes; its TLS handshake is cut after `HANDSHAKE_TIMEOUT` seconds)."""

    def __init__(self, bind: str, on_connection: Callable[[object], None], tls: StreamTls | None = None) -> None:
        self._bind = bind
        self._on_connection = on_connection
        self._tls = tls
        self._server: asyncio.AbstractServer | None = None
        self.address = ""

    async def start(self) -> None:
        """Bind the endpoint and start serving; `address` is then the "host:port" it listens on.

        Raises OSError if the address cannot be bound.
        """
        host, port = _split(self._bind)
        secure = {}
        if wants_tls(self._bind, self._tls):
            secure = {"ssl": self._tls.ssl_server_context(), "ssl_handshake_timeout": HANDSHAKE_TIMEOUT}
        loop = asyncio.get_running_loop()
        # One socket, at the first address the host resolves to (a name may resolve to several,
        # and port 0 would then give each a port of its own).
        family, kind, proto, _, where = (await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(where)
            sock.setblocking(False)
            self._server = await loop.create_server(self._make_protocol, sock=sock, **secure)
        except BaseException:
            sock.close()
            raise
        bound_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.address = f"{shown}:{bound_port}"

    def _make_protocol(self) -> TcpConnection:
        return TcpConnection(self._on_connection)

    async def stop(self) -> None:
        """Stop accepting connections (those accepted stay open)."""
        if self._server is not None:
            self._server.close()
            self._server = None
