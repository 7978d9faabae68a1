"""The framed stream transports: Unix sockets here, TCP in `tcp_stream.py`.

Both carry the same protobuf `Frame`s (proto/actorcore/_proto/kernel.proto): a `Hello` each
way, then `EnvelopeBatch`es, on one long-lived stream per pair of actor systems, each frame
length-prefixed (4 bytes, big-endian) and read by an asyncio Protocol that dispatches frames
straight from `data_received` (no reader task to wake): `FramedConnection`.

- On one machine (one host identity): a Unix domain socket (`UdsConnection`).
- Between host identities: TCP, TLS off loopback (`tcp_stream.TcpConnection`).

Measured on the 2-core dev machine with benchmarks/kernel.py (both ends on uvloop): a
sequential ask costs 60-190 µs median over a Unix socket and 60-230 µs over TCP on loopback,
against 330-950 µs over the grpcio aio stream the TCP transport replaced (figures in
`tcp_stream.py`); batched tells run at 130-230k/s either way.

A connection is used through four calls: `start(on_frame, on_closed)` begins delivering
received frames, `send(frame)` queues a frame without waiting, `close()` ends it, and
`authenticated()` (once the handshake succeeded) lifts the frame size limit.

Memory before authentication is bounded (docs/architecture.md, "Security model"): until
the handshake succeeds a frame may be at most `HANDSHAKE_FRAME_LIMIT` bytes, after it
`MAX_FRAME_BYTES`; a length header over the limit closes the connection before its bytes
are buffered. On Unix sockets, a peer running as another user is refused before anything
is read from it, on either side (`SO_PEERCRED`): a process of another user may have bound
the abstract name of a process that died.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable

from ..._logging import get_logger
from ..._proto import kernel_pb2 as pb
from ...env import DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_ENV
from ..errors import SerializationError

__all__ = [
    "HANDSHAKE_FRAME_LIMIT",
    "MAX_FRAME_BYTES",
    "FramedConnection",
    "MessageTooLargeError",
    "UdsConnection",
    "UdsServer",
    "peer_uid",
]

log = get_logger(__name__)

_LENGTH = struct.Struct(">I")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

#: The largest frame read before the handshake succeeded (a Hello or a Proof is < 1 KiB).
HANDSHAKE_FRAME_LIMIT = 4096
_MIN_FRAME_BYTES = 2 << 20  # a full batch of small messages must fit


def _max_frame_bytes() -> int:
    raw = os.environ.get(MAX_FRAME_ENV)
    if not raw:
        return DEFAULT_MAX_FRAME_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_FRAME_ENV}={raw!r} is not a number of bytes") from None
    if value < _MIN_FRAME_BYTES:
        raise ValueError(f"{MAX_FRAME_ENV}={raw!r} is below the smallest frame limit ({_MIN_FRAME_BYTES} bytes)")
    return value


#: The largest frame read from an authenticated peer (`ACTORCORE_MAX_FRAME_BYTES`; every
#: process of a cluster should have the same).
MAX_FRAME_BYTES = _max_frame_bytes()


class MessageTooLargeError(SerializationError, ValueError):
    """A message is too large for one frame (raised where it is sent, naming it)."""


def peer_uid(sock) -> int | None:
    """The uid of the process at the other end of a connected Unix socket (None where the
    platform cannot tell)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return uid

OnFrame = Callable[[pb.Frame], None]
OnClosed = Callable[[], None]


class FramedConnection(asyncio.Protocol):
    """A framed byte stream: 4-byte big-endian length, then a serialized `Frame` (the Unix-socket
    and the TCP transports both)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._on_frame: OnFrame | None = None
        self._on_closed: OnClosed | None = None
        self._early: list[pb.Frame] = []
        self._closed = False  # no more frames are read or sent
        self._lost = False  # the socket is gone
        self._close_on_made = False
        self._max_frame = HANDSHAKE_FRAME_LIMIT

    def start(self, on_frame: OnFrame, on_closed: OnClosed) -> None:
        """Deliver frames to `on_frame` from now on (those received before first), and the end to `on_closed`."""
        self._on_frame, self._on_closed = on_frame, on_closed
        early, self._early = self._early, []
        for frame in early:
            on_frame(frame)
        if self._lost:
            on_closed()

    def send(self, frame: pb.Frame) -> None:
        """Queue `frame` for writing without waiting; dropped once the connection is closed."""
        if not self._closed:
            data = frame.SerializeToString()
            self._transport.write(_LENGTH.pack(len(data)) + data)

    def close(self) -> None:
        """Close the socket; `on_closed` is called once it is."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        else:
            self._close_on_made = True

    def authenticated(self) -> None:
        """The handshake succeeded: read frames up to `MAX_FRAME_BYTES` from now on."""
        self._max_frame = MAX_FRAME_BYTES

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        """Keep the transport to write frames to; close at once if refused already."""
        self._transport = transport
        if self._close_on_made:
            self._closed = True
            transport.abort()

    def data_received(self, data: bytes) -> None:
        """Split the bytes received into frames and hand each complete one to `on_frame`."""
        buffer = self._buffer
        buffer += data
        end = len(buffer)
        position = 0
        while end - position >= 4:
            if self._closed:  # closed by a handler (a failed handshake): read no further
                self._buffer = bytearray()
                return
            (size,) = _LENGTH.unpack_from(buffer, position)
            if size > self._max_frame:
                self._too_large(size)
                return
            start = position + 4
            if end - start < size:
                break
            frame = pb.Frame.FromString(bytes(buffer[start:start + size]))
            position = start + size
            if self._on_frame is None:
                self._early.append(frame)
                continue
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("handling a frame failed")
        if position:
            del buffer[:position]

    def _refuse_other_user(self, transport, peer_uid: Callable[[socket.socket], int | None], what: str) -> bool:
        """Abort the connection if its peer runs as another user (`peer_uid` of the socket; None:
        not known, let through); True if it was refused."""
        try:
            uid = peer_uid(transport.get_extra_info("socket"))
        except OSError:  # gone already
            uid = -1
        if uid is None or uid == os.getuid():
            return False
        log.warning("refused a connection from another user", transport=what, uid=uid)
        self._closed = True
        transport.abort()
        return True

    def _too_large(self, size: int) -> None:
        if self._max_frame == HANDSHAKE_FRAME_LIMIT:
            log.warning("closed a connection whose handshake frame is too large", size=size,
                        limit=HANDSHAKE_FRAME_LIMIT)
        else:
            log.error("closed a connection: the peer sent a frame over the limit", size=size,
                      limit=self._max_frame, setting=MAX_FRAME_ENV)
        self._buffer = bytearray()
        self._closed = True
        self._transport.abort()

    def connection_lost(self, exc) -> None:
        """Mark the connection closed and tell `on_closed`."""
        self._closed = self._lost = True
        if self._on_closed is not None:
            self._on_closed()


class UdsConnection(FramedConnection):
    """A framed stream over a Unix socket, refused at once if the peer runs as another user."""

    @classmethod
    async def open(cls, path: str) -> UdsConnection:
        # A socket of our own: uvloop rejects abstract-namespace paths given as strings.
        """Connect to the Unix socket at `path` (a leading NUL: the abstract namespace)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, path)
            uid = peer_uid(sock)
            if uid is not None and uid != os.getuid():
                raise ConnectionRefusedError(
                    f"the process listening there runs as uid {uid}, not as this process's uid {os.getuid()} "
                    "(the actor system that listened there is gone, and another user took its socket name)"
                )
            _, protocol = await loop.create_unix_connection(cls, sock=sock)
        except BaseException:
            sock.close()
            raise
        return protocol

    def connection_made(self, transport) -> None:
        """As `FramedConnection`'s, and close at once if the peer runs as another user."""
        super().connection_made(transport)
        if not self._closed:
            self._refuse_other_user(transport, peer_uid, "Unix-socket")


class UdsServer:
    """Accepts framed connections on a Unix socket and hands each to `on_connection`."""

    def __init__(self, path: str, on_connection: Callable[[object], None]) -> None:
        self.path = path
        self._on_connection = on_connection
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket at `path` and start accepting connections."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            sock.setblocking(False)
            self._server = await loop.create_unix_server(self._make_protocol, sock=sock)
        except BaseException:
            sock.close()
            raise

    def _make_protocol(self) -> UdsConnection:
        connection = UdsConnection()
        self._on_connection(connection)
        return connection

    async def stop(self) -> None:
        """Stop accepting connections (those accepted stay open)."""
        if self._server is not None:
            self._server.close()
            self._server = None
