"""Pulling a shared-memory object from another node's transfer endpoint: a real gRPC server on
loopback in this process (docs/architecture.md, "Object transfer between nodes")."""

from __future__ import annotations

import asyncio
import os
import pickle
import time

import grpc
import pytest

from actorcore._proto import transfer_pb2 as pb
from actorcore.objects import cleanup_session, list_segments, open_segment, segment_name
from actorcore.objects.shm import _create_fd
from actorcore.objects.transfer import (
    CHUNK_SIZE,
    PullMerger,
    TransferError,
    TransferServer,
    _decode_chunk,
    _encode_chunk,
    close_channels,
    pull,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"


def make_segment(session: str, object_id: str, data: bytes) -> tuple[str, int]:
    name = segment_name(session, object_id)
    fd = _create_fd(name, len(data), reserve=False)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
    return name, len(data)


def read_segment(name: str) -> bytes:
    if os.stat("/dev/shm/" + name).st_size == 0:
        return b""
    with open_segment(name) as segment:
        return bytes(segment.view)


class Node:
    """A transfer server over a dict of local segments, counting lookups."""

    def __init__(self, session: str, token: str | None = TOKEN, server_class=TransferServer, **kwargs) -> None:
        self.session = session
        self.objects: dict[str, tuple[str, int]] = {}
        self.lookups = 0
        self.server = server_class("127.0.0.1:0", token, self.segment_for, **kwargs)

    def segment_for(self, object_id: str):
        self.lookups += 1
        return self.objects.get(object_id)

    def add(self, object_id: str, data: bytes) -> None:
        self.objects[object_id] = make_segment(self.session, object_id, data)


@pytest.fixture(autouse=True)
def _remove_segments(session):
    """Every segment a test made goes (then conftest's `session` checks none is left mapped)."""
    yield
    cleanup_session(session)


@pytest.fixture
async def node(session):
    node = Node(session)
    await node.server.start()
    yield node
    await node.server.stop(0)
    await close_channels()


async def test_round_trip_of_20_mb(node, session):
    data = os.urandom(20 * 2**20 + 12345)  # several chunks, the last one partial
    node.add("big", data)
    dest = segment_name(session, "big_copy")
    assert await pull(node.server.address, TOKEN, "big", dest, len(data)) == len(data)
    assert read_segment(dest) == data
    assert node.lookups == 1


@pytest.mark.parametrize("data", [b"", b"x"], ids=["empty", "one-byte"])
async def test_tiny_objects(node, session, data):
    node.add("tiny", data)
    dest = segment_name(session, "tiny_copy")
    assert await pull(node.server.address, TOKEN, "tiny", dest, len(data)) == len(data)
    assert os.stat("/dev/shm/" + dest).st_size == len(data)
    assert read_segment(dest) == data


async def test_pull_of_100_mb_rate(node, session):
    size = 100 * 2**20
    node.add("huge", bytes(range(256)) * (size // 256))
    rates = []
    for i in range(3):
        dest = segment_name(session, f"huge_copy{i}")
        start = time.perf_counter()
        await pull(node.server.address, TOKEN, "huge", dest, size)
        rates.append(size / (time.perf_counter() - start) / 1e6)
        if i == 0:
            assert read_segment(dest) == bytes(range(256)) * (size // 256)
    print(f"\npull of 100 MB over loopback, both ends in this process, chunks of "
          f"{CHUNK_SIZE >> 20} MiB: " + ", ".join(f"{r:.0f}" for r in rates) + " MB/s")
    assert max(rates) > 50


async def test_concurrent_pulls_are_merged(node, session):
    data = os.urandom(9 * 2**20)
    node.add("shared", data)
    merger = PullMerger()
    dest = segment_name(session, "shared_copy")

    def start():
        return pull(node.server.address, TOKEN, "shared", dest, len(data))

    results = await asyncio.gather(*(merger.fetch("shared", start) for _ in range(5)))
    assert results == [len(data)] * 5
    assert node.lookups == 1, "one transfer for the five fetches"
    assert "shared" not in merger
    assert read_segment(dest) == data


async def test_merged_fetch_shares_the_error_and_survives_a_cancelled_caller(node, session):
    merger = PullMerger()
    dest = segment_name(session, "nothing_copy")
    fetches = [asyncio.ensure_future(merger.fetch(
        "nothing", lambda: pull(node.server.address, TOKEN, "nothing", dest, 10))) for _ in range(3)]
    await asyncio.sleep(0)
    fetches[0].cancel()
    results = await asyncio.gather(*fetches, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, TransferError) and "NOT_FOUND" in str(r) for r in results[1:])
    assert node.lookups == 1


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
async def test_token_is_required(node, session, token):
    node.add("secret", b"s" * 1000)
    dest = segment_name(session, "secret_copy")
    with pytest.raises(TransferError, match="UNAUTHENTICATED") as info:
        await pull(node.server.address, token, "secret", dest, 1000)
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "secret" in str(info.value) and node.server.address in str(info.value)
    assert node.lookups == 0, "rejected before the object was looked up"
    assert list_segments(session) == [segment_name(session, "secret")], "nothing created"


async def test_unknown_object_is_not_found(node, session):
    dest = segment_name(session, "ghost_copy")
    with pytest.raises(TransferError, match=r"NOT_FOUND.*ghost") as info:
        await pull(node.server.address, TOKEN, "ghost", dest, 10)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert list_segments(session) == []


async def test_freed_segment_is_not_found(node, session):
    node.objects["freed"] = (segment_name(session, "freed"), 100)  # listed, but no segment
    with pytest.raises(TransferError, match=r"NOT_FOUND.*freed"):
        await pull(node.server.address, TOKEN, "freed", segment_name(session, "freed_copy"), 100)
    assert list_segments(session) == []


async def test_size_mismatch(node, session):
    node.add("sized", b"z" * 100)
    dest = segment_name(session, "sized_copy")
    with pytest.raises(TransferError, match="100 bytes of it, 99 were expected"):
        await pull(node.server.address, TOKEN, "sized", dest, 99)
    assert list_segments(session) == [segment_name(session, "sized")]


class CorruptingServer(TransferServer):
    """Flips a byte of the second chunk after the checksum was computed: bad bytes in transit."""

    def _chunk_messages(self, view, size):
        for i, message in enumerate(super()._chunk_messages(view, size)):
            if i == 1:
                corrupted = bytearray(message)
                corrupted[1000] ^= 0xFF
                yield bytes(corrupted)
            else:
                yield message


async def test_checksum_mismatch_removes_the_copy(session):
    node = Node(session, server_class=CorruptingServer)
    await node.server.start()
    try:
        data = os.urandom(CHUNK_SIZE * 2 + 10)
        node.add("fragile", data)
        dest = segment_name(session, "fragile_copy")
        with pytest.raises(TransferError, match="checksum mismatch") as info:
            await pull(node.server.address, TOKEN, "fragile", dest, len(data))
        assert info.value.code is None
        assert list_segments(session) == [segment_name(session, "fragile")], "the copy was removed"
    finally:
        await node.server.stop(0)
        await close_channels()


async def test_server_gone(session):
    node = Node(session)
    await node.server.start()
    address = node.server.address
    await node.server.stop(0)
    with pytest.raises(TransferError, match="UNAVAILABLE") as info:
        await pull(address, TOKEN, "any", segment_name(session, "any_copy"), 10, timeout=10)
    assert address in str(info.value)
    await close_channels()


async def test_server_stopping_mid_transfer(session):
    node = Node(session)
    size = 64 * 2**20
    node.add("long", bytes(size))
    lookup = node.segment_for

    def segment_for_then_stop(object_id):
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(node.server.stop(0)))
        return lookup(object_id)

    node.server._segment_for = segment_for_then_stop
    await node.server.start()
    dest = segment_name(session, "long_copy")
    with pytest.raises(TransferError):
        await pull(node.server.address, TOKEN, "long", dest, size, timeout=20)
    assert list_segments(session) == [segment_name(session, "long")], "the partial copy was removed"
    await close_channels()


async def test_existing_destination_is_left_alone(node, session):
    node.add("dup", b"d" * 10)
    dest, _ = make_segment(session, "dup_copy", b"mine")
    with pytest.raises(TransferError, match="already exists"):
        await pull(node.server.address, TOKEN, "dup", dest, 10)
    assert read_segment(dest) == b"mine"


@pytest.mark.parametrize("token", [None, ""])
def test_a_server_without_token_refuses_to_start(session, token):
    with pytest.raises(ValueError, match=r"would serve objects to anyone.*insecure=True"):
        Node(session, token=token)


async def test_an_insecure_server_serves_anyone(session):
    node = Node(session, token=None, insecure=True)
    await node.server.start()
    try:
        node.add("open", b"o" * 10)
        dest = segment_name(session, "open_copy")
        assert await pull(node.server.address, None, "open", dest, 10) == 10
    finally:
        await node.server.stop(0)
        await close_channels()


def test_transfer_error_pickles():
    error = TransferError("obj1", "10.0.0.1:5000", "checksum mismatch")
    back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, ConnectionError)
    assert (back.object_id, back.address, back.reason, str(back)) == (
        "obj1", "10.0.0.1:5000", "checksum mismatch", str(error))


@pytest.mark.parametrize("length", [0, 1, 127, 128, 300_000])
def test_chunk_encoding_is_the_proto(length):
    data = os.urandom(length)
    raw = _encode_chunk(memoryview(data), 2**40, 2**41, True, 0xDEADBEEF)
    assert pb.Chunk.FromString(raw) == pb.Chunk(
        data=data, offset=2**40, total_size=2**41, last=True, crc32=0xDEADBEEF)
    for encoded in (raw, pb.Chunk(data=data, offset=7, total_size=9).SerializeToString(),
                    pb.Chunk(offset=7, total_size=9).SerializeToString() + pb.Chunk(data=data).SerializeToString()):
        decoded_data, chunk = _decode_chunk(encoded)
        assert bytes(decoded_data) == data
        assert chunk.offset == pb.Chunk.FromString(encoded).offset
