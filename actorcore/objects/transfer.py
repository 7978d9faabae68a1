"""Object transfer between nodes: other nodes pull a large object in ranges, each call with a
proof of the cluster secret; the bytes of objects of `DATA_MIN_SIZE` or more come over TCP
data connections, smaller ones in gRPC streams (docs/architecture.md, "Object transfer between
nodes" and "Security model").

- `TransferServer`: a node's gRPC endpoint ``ObjectTransfer`` (proto/actorcore/_proto/
  transfer.proto) and its data endpoint (`data_connections.DataEndpoint`). Each call asks for
  one range of an object; the server gets the object's bytes from ``source_for(object_id)``
  (a `Source`: a read-only view, released exactly once when the range is done, failed or
  cancelled). ``Pull`` streams the range in `CHUNK_SIZE` chunks, then a closing chunk with the
  CRC-32C of the stream's messages; ``Lend`` pins the range for one data connection and
  answers with its one-time ticket and the data endpoint's port (see `data_connections`). An
  unknown object is NOT_FOUND, a range past its end OUT_OF_RANGE; a call without a valid
  proof of the cluster secret (`grpc_auth.call_proof`: never the token itself) is
  UNAUTHENTICATED before anything is looked up or decoded (`grpc_auth.ProofCheck`). The server
  reads requests of at most `MAX_REQUEST` bytes, and `MAX_CONCURRENT_STREAMS` streams per
  connection at once. Without a token it refuses to start, unless made ``insecure``. Between
  hosts both endpoints are TLS only when given the cluster's credentials (`grpc_tls`).
- `pull`: the other side. It splits the object into ranges (`_ranges`): `DATA_STREAMS` data
  connections, each received straight into the caller's destination (a writable view of
  memory reserved for the object); for a smaller object, or a node without a data endpoint,
  up to `STREAMS` gRPC streams over `CONNECTIONS` connections, every chunk written at its
  offset. It checks sizes, places and checksums; on any failure (or nothing received for
  ``timeout`` seconds) it ends every range and raises `TransferError` naming object, node and
  cause.
- `PullMerger`: concurrent pulls of one object share one transfer.

Data connections, measured as below (``python -m benchmarks.transfer``, 100 MiB, medians of
9-15 alternating pulls, the server in another process; three runs, load average 1-4.5 from
other work on the 2 cores). "With CRC-32C" is what a pull between hosts without TLS costs; on
loopback and over TLS there is none (see below):

| path                                      | run 1     | run 2     | run 3     |
|-------------------------------------------|-----------|-----------|-----------|
| gRPC, 4 streams over 2 connections (main) | 1.57 GB/s | 1.05 GB/s | 0.86 GB/s |
| data connections, 1                       | 2.79 GB/s | 1.84 GB/s | 1.92 GB/s |
| data connections, 2 (`DATA_STREAMS`)      | 3.64 GB/s | 2.25 GB/s | 2.10 GB/s |
| data connections, 4                       | 3.50 GB/s | 3.17 GB/s | 2.16 GB/s |
| data connections, 2, with CRC-32C         | 2.59 GB/s | 1.98 GB/s | 1.51 GB/s |

The bytes are copied twice, both times by the kernel (into the socket from the source's
view, out of it into the destination); the gRPC path copies each chunk four times more in
user space (see Copies). Two connections keep both cores busy (a sending and a receiving
thread each); four were not clearly faster than two (within the runs' noise). The CRC-32C costs
~12 ms per 100 MiB per side (≈ 8.5 GB/s from memory), 20-30 % of a loopback pull at these
speeds: hence none on loopback, where no wire can corrupt the bytes, nor over TLS; between
hosts without TLS it is on.

Smaller objects (same benchmark, ``--size``; gRPC 4 streams over 2 connections against 2 data
connections, medians of 15): 1 MiB 0.39 against 0.45 GB/s, 4 MiB 0.62 against 0.85, 16 MiB
1.02 against 1.54: data connections from `DATA_MIN_SIZE` = 1 MiB (smaller objects, down to
the arena's threshold, were not measured: they keep the gRPC stream, one round trip).

Over TLS (between hosts with the cluster's credentials) the data connections measured no
faster than gRPC's TLS: 100 MiB, server in another process, TLS forced on loopback, medians
of 6 alternating pulls: 0.48 GB/s against 0.49 (both bound by encryption on these 2 cores);
across the namespaced hosts of ``benchmarks.cluster --hosts`` the pull measured 0.34-0.39
GB/s against gRPC's 0.56. So `DATA_OVER_TLS` is off: where TLS is wanted the bytes stay in
gRPC streams and no data endpoint listens.

In a cluster (``python -m benchmarks.cluster``, cross_node_100mb_gbps: a task on node C gets
a 100 MB array made by a task on node A, timed from submission to result, so a pull into
the arena plus a task round trip): main 0.54 and 0.72 GB/s in two runs; with data
connections 1.64, 1.17, 1.11, 1.77, 1.48, 1.12 and 1.52 GB/s in seven runs, the last one
beside Ray 2.60's 0.43 GB/s (3.5x). Inside the node, the pull itself took 45-53 ms per 100
MiB and populating the extent's page tables 5-6 ms; the rest is the task's.

The gRPC path, for objects under `DATA_MIN_SIZE` and over TLS. Copies: grpcio takes and
gives ``bytes`` only, so each chunk is copied from the source into a message (the server
writes the ``data`` field's tag and length in front of a slice of the view, one ``join``),
by grpcio into and out of its buffers, and from the received message into the destination
(its ``data`` is a view of the message, parsed around protobuf). The wire format is exactly
``Chunk``; any protobuf encoder's messages are understood.

The checksum is over the serialized messages rather than the data alone: google-crc32c
takes only ``bytes``, and the messages are the ``bytes`` both ends already hold, so it
costs no copy (and it also covers offsets and sizes).

Choices, measured on loopback with ``python -m benchmarks.transfer`` (pull alone: the server
in another process, the destination a pre-faulted mapping; 100 MiB, medians of 9-15 pulls,
configurations taking turns). The machine: 2 vCPUs shared with other work (load average 3-7
throughout), so figures move by ±30 % between runs and only large differences count.

- Where the time goes (perf): a pull costs ≈ 90-100 ms of CPU per 100 MiB in the puller and
  ≈ 60-80 ms in the server: four user-space copies (two each side, see Copies) and two in the
  kernel, the rest Python and gRPC per chunk. With two cores for both processes this bounds a
  pull near 1.3 GB/s here; the previous design (one stream, crc32 of the whole object, a
  sparse segment written with ``pwrite``) measured 0.51-0.63 GB/s on this machine.
- Fresh pages per chunk were a quarter of all CPU samples (``clear_page``, page faults): each
  chunk is a new ``bytes`` of a MiB, and glibc's malloc maps and unmaps such sizes.
  `_keep_chunk_memory` keeps them in the heap: 0.86-0.91 GB/s before, 1.32-1.33 GB/s after
  (same run, alternating). It is process-wide, done once in a node's process.
- Streams and connections: 1, 2 or 4 streams over 1, 2 or 4 connections all measured
  0.8-1.3 GB/s, none apart from the others beyond noise (two cores are busy with one stream
  already). `STREAMS` = 4 over `CONNECTIONS` = 2: on hosts with more cores two connections
  let two gRPC threads do the socket (and TLS) work, and two streams per connection keep it
  busy while one waits for its flow-control window. In a 3-node cluster on this machine
  (``python -m benchmarks.cluster``), the node's pull of 100 MiB took 85-310 ms (median
  ≈ 150 ms) whatever the shape.
- `CHUNK_SIZE` = 1 MiB: 0.25 MiB was slower (0.61-0.73 against 0.81-1.0 GB/s in the same
  run), 0.5, 1, 2 and 4 MiB within noise of each other; the smallest of those that keeps up
  stalls the node's event loop least and holds the least memory per stream.
- Checksum: CRC-32C with google-crc32c (SSE4.2) runs at ≈ 23 GB/s on a chunk in cache
  (4.5 ms per 100 MiB; zlib's crc32, used before, 30-45 ms). In a pull it took 5.6-7.7 ms
  per 100 MiB on the puller's side, 4.5-8 % of the pull's time on this loaded machine; pulls
  with the checksum off on both sides were not measurably faster (within noise, both ways).
  It is computed per range over the messages as sent (see above), so each side reads every
  byte once more, in cache.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import sys
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol

import google_crc32c
import grpc

from .._logging import get_logger
from .._proto import transfer_pb2 as pb
from ..kernel.remote.grpc_auth import add_port, call_proof, new_channel, new_server
from ..kernel.remote.grpc_tls import GrpcTls, wants_tls
from ..kernel.secret import ClusterSecret
from .data_connections import TICKET_BYTES, DataEndpoint, RangeFailed, RangeReceiver

__all__ = [
    "CHUNK_SIZE",
    "CONNECTIONS",
    "DATA_CONNECTIONS",
    "DATA_MIN_SIZE",
    "DATA_OVER_TLS",
    "DATA_STREAMS",
    "MIN_RANGE",
    "STREAMS",
    "PullMerger",
    "Source",
    "SourceFor",
    "TransferError",
    "TransferServer",
    "close_channels",
    "pull",
]

log = get_logger(__name__)

# Measured: see the module docstring.
CHUNK_SIZE = 1 << 20
#: Streams one pull runs at once, each over one range of the object ...
STREAMS = 4
#: ... over this many connections to the node (HTTP/2 connections, one channel each).
CONNECTIONS = 2
#: The smallest range worth a stream of its own: smaller objects go over fewer streams.
MIN_RANGE = 8 << 20
#: Objects of at least `DATA_MIN_SIZE` bytes come over data connections
#: (`data_connections`), over `DATA_STREAMS` of them at once; smaller ones in gRPC streams.
DATA_CONNECTIONS = True
DATA_MIN_SIZE = 1 << 20
DATA_STREAMS = 2
#: Whether data connections are used where the bytes must be encrypted (between hosts with the
#: cluster's TLS material). Off: measured no faster than gRPC's TLS (see the module docstring).
DATA_OVER_TLS = False
#: Seconds a pull waits for the next byte before it fails (the node stalled).
STALL_TIMEOUT = 60.0
MAX_MESSAGE = 64 << 20  # a chunk and its fields, with room for peers using larger chunks
#: The largest request the server reads: a PullRequest is an object id and a range.
MAX_REQUEST = 4096
#: Streams one connection may run at once; more wait their turn.
MAX_CONCURRENT_STREAMS = 64
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_REQUEST),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
    # Each channel its own connection: channels with equal options would otherwise share one.
    ("grpc.use_local_subchannel_pool", 1),
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
_LEND_METHOD = f"/{_SERVICE}/Lend"
_DATA_TAG = b"\x0a"  # Chunk.data: field 1, wire type 2 (length-delimited)
_PAGE = 4096
_crc32c = google_crc32c.extend  # (crc, bytes) -> crc; bytes only, and it releases the GIL from 1 MiB
# glibc's mallopt parameters, and what the process keeps: see `_keep_chunk_memory`.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED = 64 << 20
_HEAP_ALLOCATION_LIMIT = 32 << 20  # glibc's largest mmap threshold on 64-bit


@functools.cache
def _keep_chunk_memory() -> None:
    """Let this process reuse the memory of its chunk messages instead of getting fresh pages.

    Every chunk is a new ``bytes`` on the Python side and new gRPC slices in gRPC's threads,
    each of a MiB or more. glibc's malloc serves such sizes with fresh ``mmap`` or returns
    them to the kernel at ``free``, so that every chunk faulted in and zeroed new pages (a
    quarter of both processes' time in a pull). With these two settings they come from the
    heap and up to `_KEEP_FREED` bytes freed at its top stay there. Once per process (a
    node's), glibc only (elsewhere: nothing done).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, _HEAP_ALLOCATION_LIMIT)
    mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED)


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


def _encode_chunk(data: memoryview, offset: int, total_size: int) -> bytes:
    """A serialized data `Chunk`, copying ``data`` once (protobuf would copy it three times)."""
    fields = pb.Chunk(offset=offset, total_size=total_size).SerializeToString()
    return b"".join((_DATA_TAG, _varint(len(data)), data, fields))


def _encode_closing(end: int, total_size: int, crc32c: int) -> bytes:
    """The serialized closing `Chunk` of a range's stream."""
    return pb.Chunk(offset=end, total_size=total_size, last=True, crc32c=crc32c).SerializeToString()


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


class Source(Protocol):
    """A local copy of an object being served: ``view`` (a read-only 1-D byte memoryview of
    its bytes) stays valid until ``release()``, which the server calls exactly once."""

    view: memoryview

    def release(self) -> None: ...


SourceFor = Callable[[str], Source | None]


class TransferServer:
    """A node's ``ObjectTransfer`` endpoint: serves its objects to other nodes.

    ``source_for(object_id)`` returns None (no copy here) or a `Source`; it runs on the
    server's event loop, once per range pulled, and the server releases each source it got
    once that range's stream is done, failed or cancelled. Without a ``token`` it raises
    ValueError, unless ``insecure=True`` (it then serves anyone). With ``tls`` (the
    cluster's credentials) it serves other hosts over TLS only.
    """

    def __init__(self, bind: str, token: str | None, source_for: SourceFor, *, tls: GrpcTls | None = None,
                 insecure: bool = False) -> None:
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
        self._source_for = source_for
        self._server: grpc.aio.Server | None = None
        self._data: DataEndpoint | None = None
        self._address = ""

    @property
    def address(self) -> str:
        """``host:port`` actually bound (the port chosen by the OS for port 0)."""
        if not self._address:
            raise RuntimeError("the transfer server is not started: await start() first")
        return self._address

    async def start(self) -> None:
        """Bind the endpoint and start serving pulls; raises OSError if the address cannot be bound."""
        _keep_chunk_memory()
        server = new_server(_SERVER_OPTIONS, self._secret)
        handler = grpc.unary_stream_rpc_method_handler(
            self._pull, request_deserializer=pb.PullRequest.FromString,  # responses: bytes as is
        )
        handlers = {"Pull": handler}
        data = self._data_endpoint()
        if data is not None:
            await data.start()
            handlers["Lend"] = grpc.unary_unary_rpc_method_handler(
                self._lend, request_deserializer=pb.PullRequest.FromString,
                response_serializer=pb.Loan.SerializeToString)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        port = add_port(server, self._bind, self._tls)
        if port == 0:
            if data is not None:
                await data.stop()
            raise OSError(f"cannot bind the object transfer endpoint to {self._bind}")
        await server.start()
        self._data = data
        self._server = server
        self._address = f"{self._bind.rpartition(':')[0]}:{port}"
        log.debug("object transfer endpoint started", address=self._address)

    async def stop(self, grace: float = 0.2) -> None:
        """Stop serving; pulls still running after ``grace`` seconds are cancelled."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        data, self._data = self._data, None
        if data is not None:
            await data.stop()

    def _data_endpoint(self) -> DataEndpoint | None:
        """The data endpoint to lend ranges on: on the gRPC endpoint's host, TLS where it is;
        None where that is TLS and `DATA_OVER_TLS` is off, or the cluster's TLS material cannot
        make plain TLS sockets (pulls then stream the bytes over gRPC)."""
        tls = self._tls if wants_tls(self._bind, self._tls) else None
        if tls is not None and (not DATA_OVER_TLS or not hasattr(tls, "ssl_server_context")):
            return None
        return DataEndpoint(self._bind.rpartition(":")[0], tls)

    async def _lookup(self, request: pb.PullRequest, context: grpc.aio.ServicerContext) -> Source:
        """The source of the requested object, its range checked (else the call is aborted)."""
        object_id = request.object_id
        try:
            source = self._source_for(object_id)
        except Exception as exc:  # noqa: BLE001 - the caller is told, the node goes on
            log.warning("cannot read an object's local copy", object_id=object_id, error=repr(exc))
            await context.abort(grpc.StatusCode.INTERNAL, f"object {object_id}: its copy on this node cannot be "
                                                          f"read: {type(exc).__name__}: {exc}")
        if source is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"object {object_id} has no copy on this node")
        size = source.view.nbytes
        start, end = request.offset, request.offset + request.length
        if end > size:
            source.release()
            await context.abort(grpc.StatusCode.OUT_OF_RANGE,
                                f"object {object_id} has {size} bytes: there is no range [{start}, {end})")
        return source

    async def _pull(self, request: pb.PullRequest, context: grpc.aio.ServicerContext) -> None:
        # A coroutine writing its messages (not an async generator): a cancelled call raises
        # here at once, so the source is released at once.
        source = await self._lookup(request, context)
        try:
            view = source.view
            await self._send_range(context, view, view.nbytes, request.offset, request.offset + request.length)
        finally:
            source.release()

    async def _lend(self, request: pb.PullRequest, context: grpc.aio.ServicerContext) -> pb.Loan:
        source = await self._lookup(request, context)
        try:
            ticket = self._data.lend(source, request.offset, request.offset + request.length)
        except BaseException:
            source.release()
            raise
        return pb.Loan(ticket=ticket, port=self._data.port, total_size=source.view.nbytes)

    async def _send_range(self, context: grpc.aio.ServicerContext, view: memoryview, size: int,
                          start: int, end: int) -> None:
        """Bytes [start, end) of ``view`` in data chunks, then the closing chunk with their CRC-32C."""
        crc = 0
        chunk_size = CHUNK_SIZE
        for offset in range(start, end, chunk_size):
            message = _encode_chunk(view[offset:min(offset + chunk_size, end)], offset, size)
            crc = _crc32c(crc, message)
            await context.write(message)
        await context.write(_encode_closing(end, size, crc))


# ---------------------------------------------------------------------------------------
# Pulling.

# Channels of each event loop by address: a grpc.aio channel belongs to the loop it was
# made on (tests run a loop per test; a process may run several loops over its life).
_channels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, list[grpc.aio.Channel]]] = (
    weakref.WeakKeyDictionary()
)


def _channels_to(address: str, tls: GrpcTls | None) -> list[grpc.aio.Channel]:
    """`CONNECTIONS` channels to ``address``, each its own connection (its own subchannel pool)."""
    by_address = _channels.setdefault(asyncio.get_running_loop(), {})
    channels = by_address.get(address)
    if channels is None:
        channels = by_address[address] = [new_channel(address, _CHANNEL_OPTIONS, tls) for _ in range(CONNECTIONS)]
    return channels


def _forget_channels(address: str, channels: list[grpc.aio.Channel]) -> None:
    """Drop channels that failed to connect: the next pull connects afresh instead of
    waiting out gRPC's reconnect backoff (the node may be back at the same address). Not
    closed here: pulls still using them hold them, and grpc closes them when collected."""
    by_address = _channels.get(asyncio.get_running_loop(), {})
    if by_address.get(address) is channels:
        del by_address[address]


async def close_channels() -> None:
    """Close the cached channels of the running event loop (at node or driver shutdown)."""
    by_address = _channels.pop(asyncio.get_running_loop(), {})
    for channels in by_address.values():
        for channel in channels:
            await channel.close()


class _Failed(Exception):
    """A transfer check failed (internal: becomes a `TransferError`)."""


def _reason(exc: grpc.aio.AioRpcError) -> str:
    code, details = exc.code(), exc.details()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (f"the node rejected this process's proof of the cluster token (UNAUTHENTICATED: {details}); "
                "every node of a cluster must be started with the same token, on clocks within "
                "a few minutes of each other")
    if code == grpc.StatusCode.NOT_FOUND:
        return f"the node has no copy of it (NOT_FOUND: {details}); ask its owner where else it is"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"the node is unreachable (UNAVAILABLE: {details}); it may have stopped or died"
    return f"{code.name}: {details}"


@functools.lru_cache(maxsize=4)
def _secret(token: str | None) -> ClusterSecret | None:
    return ClusterSecret(token) if token else None


def _ranges(size: int, streams: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` of each stream: up to ``streams`` (`STREAMS`) ranges of at least
    `MIN_RANGE` bytes (one for a smaller object, one empty range for an empty one), starting
    on page bounds."""
    count = max(1, min(STREAMS if streams is None else streams, size // max(MIN_RANGE, 1)))
    bounds = [0, *((size * i // count) & ~(_PAGE - 1) for i in range(1, count)), size]
    return [(bounds[i], bounds[i + 1]) for i in range(count) if bounds[i] < bounds[i + 1] or size == 0]


class _Progress:
    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received = 0


async def _pull_range(channel: grpc.aio.Channel, secret: ClusterSecret | None, object_id: str,
                      destination: memoryview, start: int, end: int, progress: _Progress) -> None:
    """Pull bytes [start, end) of the object into ``destination`` at their offsets, checking
    every chunk's place and the range's checksum; raises `_Failed` or `grpc.aio.AioRpcError`."""
    size = destination.nbytes
    request = pb.PullRequest(object_id=object_id, offset=start, length=end - start)
    call = channel.unary_stream(_PULL_METHOD, request_serializer=pb.PullRequest.SerializeToString)(
        request, metadata=call_proof(secret, _PULL_METHOD))
    position = start
    crc = 0
    closed = False
    try:
        async for raw in call:
            data, chunk = _decode_chunk(raw)
            if closed:
                raise _Failed("the node sent data after the closing chunk")
            if chunk.total_size != size:
                raise _Failed(f"the node has {chunk.total_size} bytes of it, {size} were expected")
            if chunk.last:
                if data or chunk.offset != position or position != end:
                    raise _Failed(f"the stream of bytes [{start}, {end}) closed at offset {chunk.offset} "
                                  f"after {position - start} bytes")
                if chunk.crc32c != crc:
                    raise _Failed(f"checksum mismatch in bytes [{start}, {end}): the node sent CRC-32C "
                                  f"{chunk.crc32c:#010x}, the received messages have {crc:#010x} "
                                  "(corrupted in transit)")
                closed = True
                continue
            length = len(data)
            if chunk.offset != position or length == 0 or position + length > end:
                raise _Failed(f"chunk of {length} bytes at offset {chunk.offset}, expected one at offset "
                              f"{position} within [{start}, {end})")
            destination[position:position + length] = data
            crc = _crc32c(crc, raw)
            position += length
            progress.received += length
        if not closed:
            raise _Failed(f"the stream of bytes [{start}, {end}) ended after {position - start} bytes")
    finally:
        call.cancel()  # a no-op once the call has ended


async def _lend_range(channel: grpc.aio.Channel, secret: ClusterSecret | None, object_id: str,
                      destination: memoryview, start: int, end: int, address: str, tls: GrpcTls | None,
                      timeout: float) -> None:
    """Pull bytes [start, end) of the object into ``destination`` over a data connection: a
    ``Lend`` call for its ticket, then the bytes (`data_connections`); raises `_Failed`,
    `RangeFailed` or `grpc.aio.AioRpcError`."""
    size = destination.nbytes
    lend = channel.unary_unary(_LEND_METHOD, request_serializer=pb.PullRequest.SerializeToString,
                               response_deserializer=pb.Loan.FromString)
    loan = await lend(pb.PullRequest(object_id=object_id, offset=start, length=end - start),
                      metadata=call_proof(secret, _LEND_METHOD), timeout=timeout)
    if loan.total_size != size:
        raise _Failed(f"the node has {loan.total_size} bytes of it, {size} were expected")
    if len(loan.ticket) != TICKET_BYTES or not 0 < loan.port < 65536:
        raise _Failed(f"the node answered with a malformed loan (port {loan.port}, {len(loan.ticket)}-byte ticket)")
    await RangeReceiver(address, loan.port, loan.ticket, destination, start, end, tls=tls,
                        timeout=timeout).receive()


async def pull(address: str, token: str | None, object_id: str, destination: memoryview, *,
               tls: GrpcTls | None = None, timeout: float = STALL_TIMEOUT) -> None:
    """Pull ``object_id`` from the node at ``address`` into ``destination``, a writable 1-D
    byte memoryview of exactly the object's size, over up to `STREAMS` streams in parallel.
    With ``tls`` (the cluster's credentials) a pull from another host is over TLS.

    Objects of `DATA_MIN_SIZE` bytes or more come over `DATA_STREAMS` data connections
    (`data_connections`), unless the node has no data endpoint.

    Returns once every byte is in place and checked. Raises `TransferError` on any failure:
    the node refuses the proof, has no copy or another size, is unreachable, dies or sends
    nothing for ``timeout`` seconds mid-way; a chunk out of place, a checksum mismatch.
    Every stream is then cancelled before it returns, and nothing writes into
    ``destination`` any more: its contents are undefined, the caller discards it.
    """
    if destination.readonly or destination.ndim != 1 or destination.format != "B" or not destination.contiguous:
        raise ValueError(f"the destination of object {object_id} must be a writable 1-D byte memoryview, "
                         f"got a {'read-only' if destination.readonly else 'writable'} one of format "
                         f"{destination.format!r}, {destination.ndim} dimension(s), "
                         f"{'' if destination.contiguous else 'not '}contiguous")
    channels = _channels_to(address, tls)
    secret = _secret(token)
    size = destination.nbytes
    if DATA_CONNECTIONS and size >= DATA_MIN_SIZE and (DATA_OVER_TLS or not wants_tls(address, tls)):
        tasks = [
            asyncio.ensure_future(_lend_range(channels[i % len(channels)], secret, object_id, destination, start,
                                              end, address, tls, timeout))
            for i, (start, end) in enumerate(_ranges(size, DATA_STREAMS))
        ]
        try:
            await _settle(tasks, address, object_id, channels, None, size, timeout)
            return
        except TransferError as error:
            if error.code != grpc.StatusCode.UNIMPLEMENTED:  # else: a node without a data endpoint
                raise
    _keep_chunk_memory()
    progress = _Progress()
    tasks = [
        asyncio.ensure_future(_pull_range(channels[i % len(channels)], secret, object_id, destination, start, end,
                                          progress))
        for i, (start, end) in enumerate(_ranges(size))
    ]
    await _settle(tasks, address, object_id, channels, progress, size, timeout)


async def _settle(tasks: list[asyncio.Future], address: str, object_id: str, channels: list[grpc.aio.Channel],
                  progress: _Progress | None, size: int, timeout: float) -> None:
    """Wait for every range's task; on the first failure (or, with ``progress``, nothing
    received for ``timeout`` seconds) cancel them all, wait for them, and raise `TransferError`."""
    try:
        pending = set(tasks)
        seen = 0
        while pending:
            done, pending = await asyncio.wait(pending, timeout=timeout if progress is not None else None,
                                               return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
            if progress is not None and not done and progress.received == seen:
                raise _Failed(f"the node sent nothing for {timeout:g} s after {seen} of "
                              f"{size} bytes (stalled)")
            seen = progress.received if progress is not None else 0
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(exc, grpc.aio.AioRpcError):
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                _forget_channels(address, channels)
            raise TransferError(object_id, address, _reason(exc), exc.code()) from exc
        if isinstance(exc, (_Failed, RangeFailed)):
            raise TransferError(object_id, address, str(exc)) from None
        if isinstance(exc, Exception):
            raise TransferError(object_id, address, f"{type(exc).__name__}: {exc}") from exc
        raise  # cancelled: not a transfer failure


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
