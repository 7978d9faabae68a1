"""The gRPC transport of the kernel: `Transport.Stream` bidirectional streams.

Same frames and the same connection interface as the Unix-socket transport in
`connections.py`: `start(on_frame, on_closed)`, `send(frame)`, `close()`, `authenticated()`.

Each stream is a call that proves the cluster secret (`grpc_auth`), checked before any frame
is read; the handshake inside the stream then authenticates both ends as on a Unix socket.
The server reads messages of up to `MAX_FRAME_BYTES` and allows few streams per HTTP/2
connection (one actor system opens one stream per connection).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import grpc

from ..._logging import get_logger
from ..._proto import kernel_pb2 as pb
from ..._proto import kernel_pb2_grpc as pb_grpc
from ..secret import ClusterSecret
from .connections import HANDSHAKE_FRAME_LIMIT, MAX_FRAME_BYTES, OnClosed, OnFrame
from .grpc_auth import PROOF_WINDOW, add_port, call_proof, new_channel, new_server
from .grpc_tls import GrpcTls

__all__ = ["GrpcClientConnection", "GrpcServer"]

log = get_logger(__name__)

_STREAM_METHOD = "/actorcore.kernel.Transport/Stream"
#: Streams one HTTP/2 connection may have open at once (a kernel connection uses one).
MAX_CONCURRENT_STREAMS = 16
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_FRAME_BYTES),
    ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
    ("grpc.so_reuseport", 0),
]
SERVER_OPTIONS = [*GRPC_OPTIONS, ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS)]


class _GrpcConnection:
    """A gRPC stream end: a task reads, another drains the queue of frames to send."""

    def __init__(self, stream) -> None:
        self._stream = stream  # the client call or the server context: both read() and write()
        self._outbox: deque[pb.Frame] = deque()
        self._wakeup: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self._on_closed: OnClosed | None = None
        self._authenticated = False
        #: why the other side ended the stream, when it said (read by the handshake's error)
        self.failure: str | None = None
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def start(self, on_frame: OnFrame, on_closed: OnClosed) -> None:
        self._on_closed = on_closed
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read(on_frame)), loop.create_task(self._write())]

    def authenticated(self) -> None:
        self._authenticated = True

    def send(self, frame: pb.Frame) -> None:
        if self._closed:
            return
        self._outbox.append(frame)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set_result(None)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                if not self._outbox:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                await self._stream.write(self._outbox.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failed write ends the stream
            log.debug("gRPC stream write failed", error=repr(exc))
            await self._note_status()
            self._finish()

    async def _read(self, on_frame: OnFrame) -> None:
        try:
            while True:
                frame = await self._stream.read()
                if frame is grpc.aio.EOF:
                    break
                if not self._authenticated and frame.ByteSize() > HANDSHAKE_FRAME_LIMIT:
                    log.warning("closed a stream whose handshake frame is too large", limit=HANDSHAKE_FRAME_LIMIT)
                    break
                try:
                    on_frame(frame)
                except Exception:
                    log.exception("handling a frame failed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failed read ends the stream
            log.debug("gRPC stream read ended", error=repr(exc))
        await self._note_status()
        self._finish()

    async def _note_status(self) -> None:
        """On the calling side, note a refusal of our proof as the reason the stream ended."""
        if not isinstance(self._stream, grpc.aio.Call) or self._closed:
            return
        try:
            code = await asyncio.wait_for(self._stream.code(), 1.0)
        except (asyncio.TimeoutError, grpc.aio.AioRpcError):
            return
        if code == grpc.StatusCode.UNAUTHENTICATED:
            self.failure = (f"its endpoint refused this process's proof of the cluster token (UNAUTHENTICATED): "
                            f"another token, or clocks more than {PROOF_WINDOW:g} s apart")

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if not self.done.done():
            self.done.set_result(None)
        if self._on_closed is not None:
            self._on_closed()

    def close(self) -> None:
        self._finish()


class GrpcClientConnection(_GrpcConnection):
    """The connecting side of a `Transport.Stream`: it owns the channel and closes it with the stream."""

    @classmethod
    async def open(cls, target: str, secret: ClusterSecret | None, tls: GrpcTls | None = None,
                   timeout: float = 10.0) -> GrpcClientConnection:
        """Open a stream to `target` ("host:port") proving `secret`, over TLS between hosts if
        `tls`; wait up to `timeout` s for the channel."""
        channel = new_channel(target, GRPC_OPTIONS, tls)
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except BaseException:
            await channel.close()
            raise
        connection = cls(pb_grpc.TransportStub(channel).Stream(metadata=call_proof(secret, _STREAM_METHOD)))
        connection._channel = channel
        return connection

    def _finish(self) -> None:
        if not self._closed:
            self._stream.cancel()
            self._channel_closing = asyncio.ensure_future(self._channel.close())  # held: asyncio keeps tasks weakly
        super()._finish()


class GrpcServer(pb_grpc.TransportServicer):
    """The gRPC endpoint: each `Stream` call becomes a connection handed to `on_connection`."""

    def __init__(self, bind: str, on_connection: Callable[[object], None], secret: ClusterSecret | None,
                 tls: GrpcTls | None = None) -> None:
        self._bind = bind
        self._secret = secret
        self._tls = tls
        self._on_connection = on_connection
        self._server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        """Bind the endpoint and start serving; `address` is then the "host:port" it listens on.

        Raises OSError if the address cannot be bound.
        """
        self._server = new_server(SERVER_OPTIONS, self._secret)
        pb_grpc.add_TransportServicer_to_server(self, self._server)
        host, _, _ = self._bind.rpartition(":")
        port = add_port(self._server, self._bind, self._tls)
        if port == 0:
            raise OSError(f"cannot bind the gRPC endpoint to {self._bind}")
        await self._server.start()
        self.address = f"{host}:{port}"

    async def Stream(self, request_iterator, context):
        """One inbound stream: hand it to `on_connection` as a connection and keep the call open until it ends."""
        connection = _GrpcConnection(context)
        self._on_connection(connection)
        await connection.done

    async def stop(self, grace: float = 0.2) -> None:
        """Stop serving, giving open calls `grace` seconds to end."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
