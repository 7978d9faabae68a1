"""Object transfer between nodes: other nodes pull a large object in chunks over a gRPC
stream, which requires a proof of the cluster secret (docs/architecture.md, "Object transfer
between nodes" and "Security model").

- `TransferServer`: a node's gRPC endpoint ``ObjectTransfer.Pull`` (proto/actorcore/_proto/
  transfer.proto). It asks ``segment_for(object_id)`` where the local copy is, maps that
  segment read-only and streams it in `CHUNK_SIZE` chunks; the last one carries the zlib
  crc32 of the whole object. An unknown object is NOT_FOUND; a call without a valid proof
  of the cluster secret (`grpc_auth.call_proof`: never the token itself) is UNAUTHENTICATED
  before anything is looked up or decoded (`grpc_auth.ProofCheck`). The server reads
  requests of at most `MAX_REQUEST` bytes, and `MAX_CONCURRENT_STREAMS` pulls per
  connection at once. Without a token it refuses to start, unless made ``insecure``.
- `pull`: the other side. It writes the chunks into a new local segment (``pwrite`` into a
  sparse segment on Linux, as `put_shared` does), checks size, order and checksum, and on
  any failure removes that segment and raises `TransferError` naming object, node and cause.
  Channels are cached per event loop and address (`close_channels` at shutdown).
- `PullMerger`: concurrent pulls of one object share one transfer.

Choices, measured on loopback (2-vCPU VM shared with other work, so ±20 %; pulls of a
100 MB object, medians of 7):

- Chunks are encoded and decoded around protobuf, not by the generated stubs: the server
  writes the ``data`` field's tag and length in front of a slice of the mapping and joins
  them with the protobuf-encoded small fields (one copy instead of three), and the client
  parses only the small fields with protobuf and writes ``data`` as a view of the received
  message (no copy instead of two). The wire format is exactly ``Chunk``, and any protobuf
  encoder's messages are understood. Server in another process: 330-430 MB/s with the
  generated stubs' (de)serializers, 510-630 MB/s this way (best runs ≈ 700); grpcio's own
  ceiling for bare 4 MiB bytes messages is ≈ 1.1 GB/s here. Both ends in one process (as
  in the tests): 320-450 MB/s.
- `CHUNK_SIZE` = 1 MiB: 0.5, 1, 2, 4 and 8 MiB were all within noise of each other (8 MiB
  a little worse); the smallest chunk that keeps up stalls the node's event loop least
  (crc and join ≈ 0.5 ms per chunk, ≈ 2 ms at 4 MiB) and holds the least memory. gRPC
  options (HTTP/2 max frame size, lookahead, TCP read chunk sizes, write buffer) changed
  nothing measurable.
- crc32 (zlib, ≈ 2.2 GB/s here) costs ≈ 45 ms per 100 MB on each side; computing it (and
  the ``pwrite``) in a worker thread overlapping the next chunk gained nothing measurable,
  so it runs inline.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import sys
import weakref
import zlib
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any

import grpc

from .._logging import get_logger
from .._proto import transfer_pb2 as pb
from ..kernel.remote.grpc_auth import add_port, call_proof, new_channel, new_server
from ..kernel.remote.grpc_tls import GrpcTls
from ..kernel.secret import ClusterSecret
from .serialization import _pwrite_all
from .shm import SharedMemoryFullError, _create_fd, create_segment, open_segment, unlink_segment

__all__ = [
    "CHUNK_SIZE",
    "PullMerger",
    "TransferError",
    "TransferServer",
    "close_channels",
    "pull",
]

log = get_logger(__name__)

CHUNK_SIZE = 1 << 20  # measured: see the module docstring
MAX_MESSAGE = 64 << 20  # a chunk and its fields, with room for peers using larger chunks
#: The largest request the server reads: a PullRequest is an object id.
MAX_REQUEST = 4096
#: Pulls one connection (one pulling process) may run at once; more wait their turn.
MAX_CONCURRENT_STREAMS = 64
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_REQUEST),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]
_SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_REQUEST),
    ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    # The server receives only small requests: no reason to widen its receive windows. With
    # them widened (bandwidth-delay probing) four unauthenticated 60 MiB requests raised its
    # peak memory by up to 75 MB before their rejection; without, by 1-2 MB.
    ("grpc.http2.bdp_probe", 0),
    ("grpc.so_reuseport", 0),
]
_SERVICE = pb.DESCRIPTOR.services_by_name["ObjectTransfer"].full_name
_PULL_METHOD = f"/{_SERVICE}/Pull"
_DATA_TAG = b"\x0a"  # Chunk.data: field 1, wire type 2 (length-delimited)
_USE_PWRITE = sys.platform.startswith("linux")

SegmentFor = Callable[[str], tuple[str, int] | None]


class TransferError(ConnectionError):
    """Pulling ``object_id`` from the node at ``address`` failed; ``reason`` says why.

    ``code`` is the gRPC status when the call failed with one (UNAUTHENTICATED, NOT_FOUND,
    UNAVAILABLE, ...), else None (checksum mismatch, short stream, local failure).
    """

    def __init__(self, object_id: str, address: str, reason: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(f"cannot pull object {object_id} from {address}: {reason}")
        self.object_id = object_id
        self.address = address
        self.reason = reason
        self.code = code

    def __reduce__(self):
        return (type(self), (self.object_id, self.address, self.reason, self.code))


# ---------------------------------------------------------------------------------------
# The wire: Chunk messages, encoded and decoded without copying the data.


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_chunk(data: memoryview, offset: int, total_size: int, last: bool, crc32: int) -> bytes:
    """A serialized `Chunk`, copying ``data`` once (protobuf would copy it three times)."""
    fields = pb.Chunk(offset=offset, total_size=total_size, last=last, crc32=crc32).SerializeToString()
    if not data:
        return fields
    return b"".join((_DATA_TAG, _varint(len(data)), data, fields))


def _decode_chunk(raw: bytes) -> tuple[memoryview | bytes, pb.Chunk]:
    """``(data, chunk)``: data as a view of ``raw`` when it comes first (as protobuf encoders
    write it), the other fields in ``chunk``; any other valid encoding is parsed fully."""
    if raw[:1] == _DATA_TAG:
        length, start = _read_varint(raw, 1)
        end = start + length
        if end <= len(raw):
            view = memoryview(raw)
            rest = pb.Chunk.FromString(view[end:])
            if not rest.data:  # else a later data field overrides this one: parse it all
                return view[start:end], rest
    chunk = pb.Chunk.FromString(raw)
    return chunk.data, chunk


# ---------------------------------------------------------------------------------------
# Serving.


class TransferServer:
    """A node's ``ObjectTransfer`` endpoint: serves its shared-memory objects to other nodes.

    ``segment_for(object_id)`` returns ``(segment name, size)`` of the local copy or None
    (the node's ObjectStore passes its table's ``get``: it runs on the store's event loop).
    Without a ``token`` it raises ValueError, unless ``insecure=True`` (it then serves anyone).
    With ``tls`` (the cluster's credentials) it serves other hosts over TLS only.
    """

    def __init__(self, bind: str, token: str | None, segment_for: SegmentFor, *, insecure: bool = False,
                 tls: GrpcTls | None = None) -> None:
        if not token and not insecure:
            raise ValueError(
                f"the object transfer endpoint {bind} would serve objects to anyone: give it the cluster token "
                "(or insecure=True to do so on purpose)"
            )
        if not token:
            log.warning("object transfer endpoint started insecure: it serves objects to anyone", bind=bind)
        self._bind = bind
        self._secret = ClusterSecret(token) if token else None
        self._tls = tls
        self._segment_for = segment_for
        self._server: grpc.aio.Server | None = None
        self._address = ""

    @property
    def address(self) -> str:
        """``host:port`` actually bound (the port chosen by the OS for port 0)."""
        if not self._address:
            raise RuntimeError("the transfer server is not started: await start() first")
        return self._address

    async def start(self) -> None:
        """Bind the endpoint and start serving pulls; raises OSError if the address cannot be bound."""
        server = new_server(_SERVER_OPTIONS, self._secret)
        handler = grpc.unary_stream_rpc_method_handler(
            self._pull, request_deserializer=pb.PullRequest.FromString,  # responses: bytes as is
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {"Pull": handler}),))
        port = add_port(server, self._bind, self._tls)
        if port == 0:
            raise OSError(f"cannot bind the object transfer endpoint to {self._bind}")
        await server.start()
        self._server = server
        self._address = f"{self._bind.rpartition(':')[0]}:{port}"
        log.debug("object transfer endpoint started", address=self._address)

    async def stop(self, grace: float = 0.2) -> None:
        """Stop serving; pulls still running after ``grace`` seconds are cancelled."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    async def _pull(self, request: pb.PullRequest, context: grpc.aio.ServicerContext):
        object_id = request.object_id
        located = self._segment_for(object_id)
        if located is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"object {object_id} has no copy on this node")
        name, size = located
        segment = None
        if size > 0:  # an empty object has no mapping (mmap cannot map 0 bytes)
            try:
                segment = open_segment(name, size)
            except FileNotFoundError:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND, f"object {object_id} was freed on this node (no segment {name})",
                )
            except (OSError, ValueError) as exc:
                await context.abort(grpc.StatusCode.INTERNAL, f"object {object_id}: cannot map {name}: {exc}")
        try:
            for message in self._chunk_messages(segment.view if segment else memoryview(b""), size):
                yield message
        finally:
            if segment is not None:
                segment.close()

    def _chunk_messages(self, view: memoryview, size: int) -> Iterator[bytes]:
        """The serialized chunks of an object (at least one); the last carries its crc32."""
        crc = 0
        offset = 0
        while True:
            data = view[offset:offset + CHUNK_SIZE]
            crc = zlib.crc32(data, crc)
            end = offset + len(data)
            last = end >= size
            yield _encode_chunk(data, offset, size, last, crc if last else 0)
            if last:
                return
            offset = end


# ---------------------------------------------------------------------------------------
# Pulling.

# Channels of each event loop by address: a grpc.aio channel belongs to the loop it was
# made on (tests run a loop per test; a process may run several loops over its life).
_channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, grpc.aio.Channel]] = (
    weakref.WeakKeyDictionary()
)


def _channel(address: str, tls: GrpcTls | None) -> grpc.aio.Channel:
    channels = _channels.setdefault(asyncio.get_running_loop(), {})
    channel = channels.get(address)
    if channel is None:
        channel = channels[address] = new_channel(address, _CHANNEL_OPTIONS, tls)
    return channel


def _forget_channel(address: str, channel: grpc.aio.Channel) -> None:
    """Drop a channel that failed to connect: the next pull connects afresh instead of
    waiting out gRPC's reconnect backoff (the node may be back at the same address). Not
    closed here: pulls still using it hold it, and grpc closes it when it is collected."""
    channels = _channels.get(asyncio.get_running_loop(), {})
    if channels.get(address) is channel:
        del channels[address]


async def close_channels() -> None:
    """Close the cached channels of the running event loop (at node or driver shutdown)."""
    channels = _channels.pop(asyncio.get_running_loop(), {})
    for channel in channels.values():
        await channel.close()


class _Destination:
    """The new local segment of a pulled object, written piece by piece: ``pwrite`` into a
    sparse segment on Linux (as `put_shared`), through a writable mapping elsewhere."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._fd = -1
        self._segment = None
        if _USE_PWRITE or size == 0:
            self._fd = _create_fd(name, size, reserve=False)
        else:
            self._segment = create_segment(name, size)

    def write(self, data: memoryview | bytes, offset: int) -> None:
        if self._segment is not None:
            self._segment.view[offset:offset + len(data)] = data
            return
        try:
            _pwrite_all(self._fd, memoryview(data), offset)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                raise SharedMemoryFullError(self.name, self.size) from exc
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._segment is not None:
            self._segment.close()
            self._segment = None


class _Failed(Exception):
    """A transfer check failed (internal: becomes a `TransferError`)."""


def _reason(exc: grpc.aio.AioRpcError, timeout: float) -> str:
    code, details = exc.code(), exc.details()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (f"the node rejected this process's proof of the cluster token (UNAUTHENTICATED: {details}); "
                "every node of a cluster must be started with the same token, on clocks within "
                "a few minutes of each other")
    if code == grpc.StatusCode.NOT_FOUND:
        return f"the node has no copy of it (NOT_FOUND: {details}); ask its owner where else it is"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"the node is unreachable (UNAVAILABLE: {details}); it may have stopped or died"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the transfer did not finish within {timeout:g} s (DEADLINE_EXCEEDED)"
    return f"{code.name}: {details}"


@functools.lru_cache(maxsize=4)
def _secret(token: str | None) -> ClusterSecret | None:
    return ClusterSecret(token) if token else None


async def pull(address: str, token: str | None, object_id: str, dest_name: str, size: int, *,
               timeout: float = 60.0, tls: GrpcTls | None = None) -> int:
    """Pull ``object_id`` (``size`` bytes) from the node at ``address`` into a new local
    segment ``dest_name``; returns the number of bytes written (``size``). With ``tls`` (the
    cluster's credentials) a pull from another host is over TLS.

    Raises `TransferError` on any failure (the node refuses the token, has no copy, is
    unreachable or dies mid-stream; size or checksum mismatch; no room in /dev/shm, the
    original error chained) and then leaves no ``dest_name`` behind. If ``dest_name``
    already exists it is left alone and the error says so.
    """
    channel = _channel(address, tls)
    call = channel.unary_stream(
        _PULL_METHOD, request_serializer=pb.PullRequest.SerializeToString, response_deserializer=_decode_chunk,
    )(pb.PullRequest(object_id=object_id), metadata=call_proof(_secret(token), _PULL_METHOD), timeout=timeout)
    dest: _Destination | None = None
    written = 0
    crc = 0
    complete = False
    try:
        try:
            async for data, chunk in call:
                if complete:
                    raise _Failed("the node sent data after the last chunk")
                if chunk.total_size != size:
                    raise _Failed(f"the node has {chunk.total_size} bytes of it, {size} were expected")
                if chunk.offset != written or written + len(data) > size:
                    raise _Failed(f"chunk of {len(data)} bytes at offset {chunk.offset} after {written} bytes")
                if dest is None:  # created on the first chunk: a refused call creates nothing
                    dest = _Destination(dest_name, size)
                dest.write(data, written)
                crc = zlib.crc32(data, crc)
                written += len(data)
                if chunk.last:
                    if written != size:
                        raise _Failed(f"the stream ended after {written} of {size} bytes")
                    if chunk.crc32 != crc:
                        raise _Failed(f"checksum mismatch: the node sent crc32 {chunk.crc32:#010x}, the "
                                      f"received bytes have {crc:#010x} (corrupted in transit)")
                    complete = True
            if not complete:
                raise _Failed(f"the stream ended after {written} of {size} bytes")
        finally:
            if dest is not None:
                dest.close()
    except BaseException as exc:
        call.cancel()
        if dest is not None:
            unlink_segment(dest_name)
        if isinstance(exc, grpc.aio.AioRpcError):
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                _forget_channel(address, channel)
            raise TransferError(object_id, address, _reason(exc, timeout), exc.code()) from exc
        if isinstance(exc, _Failed):
            raise TransferError(object_id, address, str(exc)) from None
        if isinstance(exc, FileExistsError):
            raise TransferError(object_id, address, f"the local segment {dest_name} already exists") from exc
        if isinstance(exc, Exception):
            raise TransferError(object_id, address, f"{type(exc).__name__}: {exc}") from exc
        raise  # cancelled: not a transfer failure
    return written


# ---------------------------------------------------------------------------------------
# Merging concurrent pulls.


class _InFlight:
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.waiters = 0


class PullMerger:
    """Concurrent fetches of one key share one transfer.

    `fetch` starts ``coro_factory()`` unless a fetch of the same ``key`` (e.g. the object
    id) is in flight; every caller gets its result or its exception. A caller that is
    cancelled leaves the transfer to the others; when the last one is cancelled, the
    transfer is cancelled too.
    """

    def __init__(self) -> None:
        self._in_flight: dict[Hashable, _InFlight] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._in_flight

    async def fetch(self, key: Hashable, coro_factory: Callable[[], Awaitable[Any]]) -> Any:
        """The result of ``coro_factory()`` for ``key``, joining a transfer of that key already in flight."""
        entry = self._in_flight.get(key)
        if entry is None:
            entry = self._in_flight[key] = _InFlight(asyncio.ensure_future(coro_factory()))
            entry.task.add_done_callback(functools.partial(self._done, key, entry))
        entry.waiters += 1
        try:
            return await asyncio.shield(entry.task)
        except asyncio.CancelledError:
            if entry.waiters == 1 and not entry.task.done():
                entry.task.cancel()
            raise
        finally:
            entry.waiters -= 1

    def _done(self, key: Hashable, entry: _InFlight, task: asyncio.Task) -> None:
        if self._in_flight.get(key) is entry:
            del self._in_flight[key]

    async def close(self) -> None:
        """Cancel every fetch in flight and wait for them to end."""
        tasks = [entry.task for entry in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
