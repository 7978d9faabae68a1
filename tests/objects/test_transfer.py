"""Pulling an object from another node's transfer endpoint in ranges over parallel streams: a
real gRPC server on loopback, in this process or in another one (docs/architecture.md, "Object
transfer between nodes")."""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import signal
import subprocess
import sys
import time

import grpc
import pytest

from actorcore._proto import transfer_pb2 as pb
from actorcore.objects import transfer
from actorcore.objects.transfer import (
    PullMerger,
    TransferError,
    TransferServer,
    _decode_chunk,
    _encode_chunk,
    _ranges,
    close_channels,
    pull,
)
from actorcore.testing import async_wait_until

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
KIB = 1 << 10
MIB = 1 << 20


@pytest.fixture(autouse=True)
def over_grpc_streams(monkeypatch):
    """These tests are about the bytes in gRPC streams (small objects, and nodes without a data
    endpoint); the data connections have tests of their own (test_data_connections.py)."""
    monkeypatch.setattr(transfer, "DATA_CONNECTIONS", False)


class Held:
    """A `transfer.Source` over bytes in memory, counting its releases."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.releases = 0

    def release(self) -> None:
        self.releases += 1


class Node:
    """A transfer server over a dict of objects, recording every source it hands out."""

    def __init__(self, token: str | None = TOKEN, server_class=TransferServer, **kwargs) -> None:
        self.objects: dict[str, bytes] = {}
        self.sources: list[Held] = []
        self.server = server_class("127.0.0.1:0", token, self.source_for, **kwargs)

    def source_for(self, object_id: str) -> Held | None:
        data = self.objects.get(object_id)
        if data is None:
            return None
        self.sources.append(Held(data))
        return self.sources[-1]

    def releases(self) -> list[int]:
        return [source.releases for source in self.sources]


@pytest.fixture
async def node():
    node = Node()
    await node.server.start()
    yield node
    await node.server.stop(0)
    await close_channels()


def pattern(size: int) -> bytes:
    """``size`` random bytes: a misplaced or missing chunk shows."""
    return os.urandom(size)


def others() -> set[asyncio.Task]:
    """The pulls' stream tasks still running in this loop."""
    return {task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "_pull_range"}


async def released_once(node: Node, what: str) -> None:
    """Waits for the server to release every source it handed out (it does so after its last
    write, which the puller may have read, or after the puller gave up), then checks that each
    was released exactly once."""
    await async_wait_until(lambda: all(node.releases()), 10, what, details=node.releases)
    assert node.releases() == [1] * len(node.sources), what


async def test_a_20_mb_object_arrives_over_several_streams(node):
    data = pattern(20 * MIB + 12345)
    node.objects["big"] = data
    destination = bytearray(len(data))
    assert await pull(node.server.address, TOKEN, "big", memoryview(destination)) is None
    assert destination == data
    assert len(node.sources) == len(_ranges(len(data))) > 1, "one lookup per range, several ranges"
    await released_once(node, "every source released exactly once")
    assert not others(), "no stream left running"


@pytest.mark.parametrize("size", [1, 4095, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 3 * 64 * KIB + 7, 1000 * KIB + 3])
@pytest.mark.parametrize("streams", [1, 2, 3, 4])
async def test_ranges_reassemble_exactly(node, monkeypatch, size, streams):
    # Chunks of 64 KiB and ranges from 100 KiB: odd sizes, a size smaller than a chunk, sizes
    # that the range count does not divide, ranges that end inside a chunk.
    monkeypatch.setattr(transfer, "CHUNK_SIZE", 64 * KIB)
    monkeypatch.setattr(transfer, "MIN_RANGE", 100 * KIB)
    monkeypatch.setattr(transfer, "STREAMS", streams)
    data = pattern(size)
    node.objects["odd"] = data
    destination = bytearray(size)
    await pull(node.server.address, TOKEN, "odd", memoryview(destination))
    assert destination == data
    assert len(node.sources) == min(streams, max(1, size // (100 * KIB)))
    await released_once(node, "every range released once")


@pytest.mark.parametrize("size", [0, 1, 4096, 10 * MIB + 1, 100 * MIB])
@pytest.mark.parametrize("streams", [1, 3, 4])
def test_ranges_cover_the_object_once(monkeypatch, size, streams):
    monkeypatch.setattr(transfer, "STREAMS", streams)
    ranges = _ranges(size)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(ranges))
    assert all(start % 4096 == 0 for start, _ in ranges)
    assert len(ranges) == max(1, min(streams, size // transfer.MIN_RANGE))


@pytest.mark.parametrize("data", [b"", b"x"], ids=["empty", "one-byte"])
async def test_tiny_objects(node, data):
    node.objects["tiny"] = data
    destination = bytearray(len(data))
    await pull(node.server.address, TOKEN, "tiny", memoryview(destination))
    assert destination == data
    await released_once(node, "the range released once")


async def test_pull_of_100_mb_rate(node):
    size = 100 * MIB
    node.objects["huge"] = data = pattern(size)
    destination = memoryview(bytearray(size))
    rates = []
    for i in range(3):
        start = time.perf_counter()
        await pull(node.server.address, TOKEN, "huge", destination)
        rates.append(size / (time.perf_counter() - start) / 1e9)
        if i == 0:
            assert destination == data
    print("\npull of 100 MB over loopback, both ends in this process: "
          + ", ".join(f"{rate:.2f}" for rate in rates) + " GB/s")
    assert max(rates) > 0.05


async def test_concurrent_pulls_are_merged(node):
    data = pattern(9 * MIB)
    node.objects["shared"] = data
    merger = PullMerger()
    destination = bytearray(len(data))

    def start():
        return pull(node.server.address, TOKEN, "shared", memoryview(destination))

    assert await asyncio.gather(*(merger.fetch("shared", start) for _ in range(5))) == [None] * 5
    assert len(node.sources) == len(_ranges(len(data))), "one transfer for the five fetches"
    assert "shared" not in merger
    assert destination == data


async def test_merged_fetch_shares_the_error_and_survives_a_cancelled_caller(node):
    merger = PullMerger()
    fetches = [asyncio.ensure_future(merger.fetch(
        "nothing", lambda: pull(node.server.address, TOKEN, "nothing", memoryview(bytearray(10))))) for _ in range(3)]
    await asyncio.sleep(0)
    fetches[0].cancel()
    results = await asyncio.gather(*fetches, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, TransferError) and "NOT_FOUND" in str(r) for r in results[1:])


async def test_cancelling_every_fetch_cancels_the_transfer():
    merger = PullMerger()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def transfer():
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fetches = [asyncio.ensure_future(merger.fetch("k", transfer)) for _ in range(2)]
    await started.wait()
    for fetch in fetches:
        fetch.cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.sleep(0)
    assert "k" not in merger


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
async def test_unauthenticated_pulls_are_refused(node, token):
    node.objects["secret"] = b"s" * (20 * MIB)
    destination = bytearray(20 * MIB)
    with pytest.raises(TransferError, match="UNAUTHENTICATED") as info:
        await pull(node.server.address, token, "secret", memoryview(destination))
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "secret" in str(info.value) and node.server.address in str(info.value)
    assert node.sources == [], "refused before the object was looked up"
    assert destination == bytes(20 * MIB), "nothing written"


async def test_unknown_object_is_not_found(node):
    with pytest.raises(TransferError, match=r"NOT_FOUND.*ghost") as info:
        await pull(node.server.address, TOKEN, "ghost", memoryview(bytearray(10)))
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "cannot pull object ghost from " + node.server.address in str(info.value)


async def test_a_destination_smaller_than_the_object(node):
    node.objects["sized"] = b"z" * 100
    with pytest.raises(TransferError, match="the node has 100 bytes of it, 99 were expected"):
        await pull(node.server.address, TOKEN, "sized", memoryview(bytearray(99)))
    await released_once(node, "the range released once the puller gave up")


async def test_a_destination_larger_than_the_object(node):
    node.objects["sized"] = b"z" * 100
    with pytest.raises(TransferError, match=r"OUT_OF_RANGE: object sized has 100 bytes: there is no range \[0, 101\)"):
        await pull(node.server.address, TOKEN, "sized", memoryview(bytearray(101)))
    assert node.releases() == [1]


@pytest.mark.parametrize("destination", [memoryview(b"ro"), memoryview(bytearray(8)).cast("d"),
                                         memoryview(bytearray(8))[::2]],
                         ids=["read-only", "not-bytes", "not-contiguous"])
async def test_a_bad_destination_is_refused(node, destination):
    with pytest.raises(ValueError, match="destination of object x must be a writable 1-D byte memoryview"):
        await pull(node.server.address, TOKEN, "x", destination)


async def test_a_failing_lookup_is_an_internal_error():
    def source_for(object_id):
        raise OSError("disk on fire")

    server = TransferServer("127.0.0.1:0", TOKEN, source_for)
    await server.start()
    try:
        with pytest.raises(TransferError, match="INTERNAL: object broken: its copy on this node cannot be read: "
                                                "OSError: disk on fire") as info:
            await pull(server.address, TOKEN, "broken", memoryview(bytearray(10)))
        assert info.value.code == grpc.StatusCode.INTERNAL
    finally:
        await server.stop(0)
        await close_channels()


class _CorruptingContext:
    """Flips a byte of the second message written, after the server computed its checksum."""

    def __init__(self, context) -> None:
        self._context = context
        self._written = 0

    async def write(self, message: bytes) -> None:
        self._written += 1
        if self._written == 2:
            corrupted = bytearray(message)
            corrupted[1000] ^= 0xFF
            message = bytes(corrupted)
        await self._context.write(message)


class CorruptingServer(TransferServer):
    """Corrupts one chunk of every range in transit."""

    async def _send_range(self, context, view, size, start, end):
        await super()._send_range(_CorruptingContext(context), view, size, start, end)


async def test_a_corrupted_chunk_fails_the_checksum():
    node = Node(server_class=CorruptingServer)
    await node.server.start()
    try:
        data = pattern(3 * transfer.CHUNK_SIZE + 10)
        node.objects["fragile"] = data
        with pytest.raises(TransferError, match=r"checksum mismatch in bytes \[0, \d+\): the node sent CRC-32C "
                                                r"0x[0-9a-f]{8}, the received messages have 0x[0-9a-f]{8} "
                                                r"\(corrupted in transit\)") as info:
            await pull(node.server.address, TOKEN, "fragile", memoryview(bytearray(len(data))))
        assert info.value.code is None
        assert "fragile" in str(info.value) and node.server.address in str(info.value)
        assert not others()
    finally:
        await node.server.stop(0)
        await close_channels()


async def test_server_gone():
    node = Node()
    await node.server.start()
    address = node.server.address
    await node.server.stop(0)
    with pytest.raises(TransferError, match="UNAVAILABLE") as info:
        await pull(address, TOKEN, "any", memoryview(bytearray(10)))
    assert address in str(info.value)
    await close_channels()


class StallingServer(TransferServer):
    """Sends the first chunk of a range, then nothing (a node that hangs)."""

    stalled: asyncio.Event

    async def _send_range(self, context, view, size, start, end):
        await context.write(transfer._encode_chunk(view[start:start + 10], start, size))
        self.stalled.set()
        await asyncio.sleep(3600)


async def test_a_stalled_node_fails_the_pull_and_its_streams_are_cancelled():
    node = Node(server_class=StallingServer)
    node.server.stalled = asyncio.Event()
    await node.server.start()
    try:
        node.objects["stuck"] = pattern(1000)
        # the first 10 bytes come within the first window (a new channel's connection included)
        with pytest.raises(TransferError, match=r"the node sent nothing for 2 s after 10 of 1000 bytes \(stalled\)"):
            await pull(node.server.address, TOKEN, "stuck", memoryview(bytearray(1000)), timeout=2)
        assert node.server.stalled.is_set()
        await async_wait_until(lambda: node.releases() == [1], 10, "the server to release the cancelled range")
    finally:
        await node.server.stop(0)
        await close_channels()


async def test_a_cancelled_pull_cancels_its_streams(node):
    node.objects["long"] = pattern(64 * MIB)
    destination = memoryview(bytearray(64 * MIB))
    task = asyncio.ensure_future(pull(node.server.address, TOKEN, "long", destination))
    await async_wait_until(lambda: node.sources, 10, "the pull to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not others(), "no stream left running"
    await async_wait_until(lambda: node.releases() == [1] * len(node.sources), 10,
                           "the server to release every range")


SLOW_SOURCE = """
import asyncio, sys
from actorcore.objects import transfer
from actorcore.kernel import run

class Slow(transfer.TransferServer):
    async def _send_range(self, context, view, size, start, end):
        for offset in range(start, end, 64 * 1024):  # 64 KiB every 20 ms: a pull takes seconds
            await context.write(transfer._encode_chunk(view[offset:min(offset + 64 * 1024, end)], offset, size))
            await asyncio.sleep(0.02)

class Held:
    view = memoryview(bytes(range(256)) * (32 * 1024 * 1024 // 256))
    def release(self):
        pass

async def main():
    server = Slow("127.0.0.1:0", sys.argv[1], lambda object_id: Held())
    await server.start()
    print(server.address, flush=True)
    await asyncio.sleep(3600)

run(main())
"""


async def test_a_source_process_dying_mid_pull_fails_it_promptly():
    source = subprocess.Popen([sys.executable, "-c", SLOW_SOURCE, TOKEN], stdout=subprocess.PIPE)  # noqa: ASYNC220
    try:
        address = (await asyncio.get_running_loop().run_in_executor(None, source.stdout.readline)).decode().strip()
        destination = memoryview(bytearray(32 * MIB))
        task = asyncio.ensure_future(pull(address, TOKEN, "doomed", destination, timeout=300))
        starts = [start for start, _ in _ranges(32 * MIB)]
        assert len(starts) > 1
        # Every range has received its first bytes (ranges start on page bounds, where the pattern
        # starts over: byte 1 of each range is 1).
        await async_wait_until(lambda: all(destination[start + 1] == 1 for start in starts),
                               30, "the pull to be under way on every stream")
        source.send_signal(signal.SIGKILL)
        # Not the stall timeout (300 s): the broken connections end every stream.
        with pytest.raises(TransferError, match=r"cannot pull object doomed from 127\.0\.0\.1:\d+: ") as info:
            await asyncio.wait_for(task, 30)
        assert info.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                                   grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN), info.value
        assert not others(), "no stream left running: nothing writes into the destination any more"
    finally:
        source.kill()
        source.wait(10)
        source.stdout.close()
        await close_channels()


@pytest.mark.parametrize("token", [None, ""])
def test_a_server_without_token_refuses_to_start(token):
    with pytest.raises(ValueError, match=r"would serve objects to anyone.*insecure=True"):
        Node(token=token)


async def test_an_insecure_server_serves_anyone():
    node = Node(token=None, insecure=True)
    await node.server.start()
    try:
        node.objects["open"] = b"o" * 10
        destination = bytearray(10)
        await pull(node.server.address, None, "open", memoryview(destination))
        assert destination == b"o" * 10
    finally:
        await node.server.stop(0)
        await close_channels()


def test_transfer_error_pickles():
    error = TransferError("obj1", "10.0.0.1:5000", "checksum mismatch")
    back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, ConnectionError)
    assert (back.object_id, back.address, back.reason, str(back)) == (
        "obj1", "10.0.0.1:5000", "checksum mismatch", str(error))


@pytest.mark.parametrize("length", [1, 127, 128, 300_000])
def test_chunk_encoding_is_the_proto(length):
    data = os.urandom(length)
    raw = _encode_chunk(memoryview(data), 2**40, 2**41)
    assert pb.Chunk.FromString(raw) == pb.Chunk(data=data, offset=2**40, total_size=2**41)
    for encoded in (raw, pb.Chunk(data=data, offset=7, total_size=9).SerializeToString(),
                    pb.Chunk(offset=7, total_size=9).SerializeToString() + pb.Chunk(data=data).SerializeToString()):
        decoded_data, chunk = _decode_chunk(encoded)
        assert bytes(decoded_data) == data
        assert chunk.offset == pb.Chunk.FromString(encoded).offset
