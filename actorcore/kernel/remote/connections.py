"""The two wire transports: gRPC bidirectional streams and framed Unix-socket streams.

Both carry the same protobuf `Frame`s (proto/actorcore/_proto/kernel.proto): a `Hello` each
way, then `EnvelopeBatch`es, on one long-lived stream per pair of actor systems.

- Between machines (between host identities): gRPC (`Transport.Stream`).
- On one machine: the same frames, length-prefixed (4 bytes, big-endian), over a Unix domain
  socket, read by an asyncio Protocol that dispatches frames straight from `data_received`
  (no reader task to wake). Measured on the 2-core dev machine with benchmarks/kernel.py
  (both ends on uvloop): a sequential ask costs 65-190 µs median this way against 400-470 µs
  over a grpcio aio stream; batched tells run at 150-230k/s either way.

The gRPC side lives in `grpc_stream.py`, imported only by processes that open a gRPC
endpoint or reach another host (importing grpc costs ~25-80 ms of start-up).

A connection is used through three calls: `start(on_frame, on_closed)` begins delivering
received frames, `send(frame)` queues a frame without waiting, `close()` ends it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

from ..._logging import get_logger
from ..._proto import kernel_pb2 as pb

log = get_logger(__name__)

_LENGTH = struct.Struct(">I")

OnFrame = Callable[[pb.Frame], None]
OnClosed = Callable[[], None]


class UdsConnection(asyncio.Protocol):
    """A framed stream over a Unix socket: 4-byte big-endian length, then a serialized `Frame`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._on_frame: OnFrame | None = None
        self._on_closed: OnClosed | None = None
        self._early: list[pb.Frame] = []
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> UdsConnection:
        # A socket of our own: uvloop rejects abstract-namespace paths given as strings.
        """Connect to the Unix socket at `path` (a leading NUL: the abstract namespace)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, path)
            _, protocol = await loop.create_unix_connection(cls, sock=sock)
        except BaseException:
            sock.close()
            raise
        return protocol

    def start(self, on_frame: OnFrame, on_closed: OnClosed) -> None:
        """Deliver frames to `on_frame` from now on (those received before first), and the end to `on_closed`."""
        self._on_frame, self._on_closed = on_frame, on_closed
        early, self._early = self._early, []
        for frame in early:
            on_frame(frame)
        if self._closed:
            on_closed()

    def send(self, frame: pb.Frame) -> None:
        """Queue `frame` for writing without waiting; dropped once the connection is closed."""
        if not self._closed:
            data = frame.SerializeToString()
            self._transport.write(_LENGTH.pack(len(data)) + data)

    def close(self) -> None:
        """Close the socket; `on_closed` is called once it is."""
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        """Keep the transport to write frames to."""
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Split the bytes received into frames and hand each complete one to `on_frame`."""
        buffer = self._buffer
        buffer += data
        end = len(buffer)
        position = 0
        while end - position >= 4:
            (size,) = _LENGTH.unpack_from(buffer, position)
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

    def connection_lost(self, exc) -> None:
        """Mark the connection closed and tell `on_closed`."""
        self._closed = True
        if self._on_closed is not None:
            self._on_closed()


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
