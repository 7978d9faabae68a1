"""Object bytes over data connections: a gRPC ``Lend`` call (with the proof of the cluster
secret) gets a one-time ticket, a TCP connection that shows it gets the range, received
straight into the destination; real gRPC, real sockets, a serving process that dies
(docs/architecture.md, "Object transfer between nodes")."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import google_crc32c
import grpc
import pytest

from actorcore._proto import transfer_pb2 as pb
from actorcore.credentials import make_credentials
from actorcore.kernel.remote import grpc_tls
from actorcore.kernel.remote.grpc_auth import call_proof, new_channel
from actorcore.kernel.secret import ClusterSecret
from actorcore.objects import data_connections, transfer
from actorcore.objects.data_connections import DataEndpoint, active_receivers, crc32c_of
from actorcore.objects.transfer import TransferError, TransferServer, _ranges, close_channels, pull
from actorcore.testing import async_wait_until

from .test_transfer import Node, pattern

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
KIB = 1 << 10
MIB = 1 << 20


@pytest.fixture(autouse=True)
def every_size_over_data_connections(monkeypatch):
    monkeypatch.setattr(transfer, "DATA_MIN_SIZE", 1)


class DataOnlyServer(TransferServer):
    """Fails any pull that streams bytes over gRPC: what arrives came over data connections."""

    async def _pull(self, request, context):
        await context.abort(grpc.StatusCode.INTERNAL, "bytes streamed over gRPC")


async def started(node: Node) -> Node:
    await node.server.start()
    return node


@pytest.fixture
async def node():
    node = await started(Node(server_class=DataOnlyServer))
    yield node
    await node.server.stop(0)
    await close_channels()


async def released(node: Node) -> None:
    """Wait until the node released every source it lent, once (its sending threads do so once
    the bytes are sent, maybe after the puller has them all)."""
    await async_wait_until(lambda: node.releases() == [1] * len(node.sources), 10, "every source released once")


def nothing_left(node: Node) -> bool:
    return not node.server._data._loans and active_receivers() == 0


async def test_a_100_mb_object_arrives_over_data_connections(node):
    data = pattern(100 * MIB + 12345)
    node.objects["big"] = data
    destination = bytearray(len(data))
    assert await pull(node.server.address, TOKEN, "big", memoryview(destination)) is None
    assert destination == data
    assert len(node.sources) == len(_ranges(len(data), transfer.DATA_STREAMS)) == transfer.DATA_STREAMS
    await released(node)
    assert nothing_left(node)


@pytest.mark.parametrize("size", [1, 4095, 64 * KIB - 1, 64 * KIB + 1, 3 * 64 * KIB + 7, 1000 * KIB + 3])
@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize("checksum", [False, True], ids=["loopback", "checksummed"])
async def test_odd_sizes_reassemble_exactly(node, monkeypatch, size, streams, checksum):
    monkeypatch.setattr(data_connections, "DATA_CHUNK", 64 * KIB)
    monkeypatch.setattr(data_connections, "CHECKSUM_ON_LOOPBACK", checksum)
    monkeypatch.setattr(transfer, "MIN_RANGE", 100 * KIB)
    monkeypatch.setattr(transfer, "DATA_STREAMS", streams)
    data = pattern(size)
    node.objects["odd"] = data
    destination = bytearray(size)
    await pull(node.server.address, TOKEN, "odd", memoryview(destination))
    assert destination == data
    assert len(node.sources) == min(streams, max(1, size // (100 * KIB)))
    await released(node)


@pytest.mark.parametrize("size", [0, 1, 1000, MIB + 3])
def test_crc32c_of_views_is_google_crc32c(size):
    data = os.urandom(size)
    assert crc32c_of(0, memoryview(data)) == google_crc32c.value(data)
    writable = memoryview(bytearray(data))
    half = size // 2
    assert crc32c_of(crc32c_of(0, writable[:half]), writable[half:].toreadonly()) == google_crc32c.value(data)


def test_crc32c_of_and_memcopy_both_work_in_one_process():
    # Both call PyObject_GetBuffer through ctypes, each with a structure of its own.
    from actorcore.objects import memcopy

    data = os.urandom(memcopy.PARALLEL_FROM + 1)
    copied = bytearray(len(data))
    memcopy.copy_into(memoryview(copied), data)
    assert copied == data
    assert crc32c_of(0, memoryview(data)) == google_crc32c.value(data)


class CorruptingEndpoint(DataEndpoint):
    """Flips a byte of what it sends after computing the checksum of the true bytes."""

    def _send(self, connection, loan):
        view = loan.source.view[loan.start:loan.end]
        sent = bytearray(view)
        sent[len(sent) // 2] ^= 0xFF
        connection.sendall(sent)
        connection.sendall(struct.pack(">I", crc32c_of(0, view)))


class CorruptingServer(DataOnlyServer):
    def _data_endpoint(self):
        return CorruptingEndpoint(self._bind.rpartition(":")[0])


async def test_corrupted_bytes_fail_the_checksum(monkeypatch):
    monkeypatch.setattr(data_connections, "CHECKSUM_ON_LOOPBACK", True)  # as between hosts without TLS
    node = await started(Node(server_class=CorruptingServer))
    try:
        data = pattern(3 * MIB + 10)
        node.objects["fragile"] = data
        with pytest.raises(TransferError, match=r"checksum mismatch in bytes \[0, \d+\): the node sent CRC-32C "
                                                r"0x[0-9a-f]{8}, the received bytes have 0x[0-9a-f]{8} "
                                                r"\(corrupted in transit\)") as info:
            await pull(node.server.address, TOKEN, "fragile", memoryview(bytearray(len(data))))
        assert info.value.code is None
        assert "fragile" in str(info.value) and node.server.address in str(info.value)
        assert active_receivers() == 0
        await async_wait_until(lambda: node.releases() == [1] * len(node.sources), 10, "every range released")
    finally:
        await node.server.stop(0)
        await close_channels()


async def lend(node: Node, object_id: str, start: int, end: int, token: str = TOKEN) -> pb.Loan:
    async with new_channel(node.server.address, []) as channel:
        method = "/actorcore.transfer.ObjectTransfer/Lend"
        call = channel.unary_unary(method, request_serializer=pb.PullRequest.SerializeToString,
                                   response_deserializer=pb.Loan.FromString)
        return await call(pb.PullRequest(object_id=object_id, offset=start, length=end - start),
                          metadata=call_proof(ClusterSecret(token), method), timeout=10)


def exchange(port: int, first: bytes) -> bytes:
    """Connect to the data endpoint, send ``first``, and return all it sends until it closes
    (or resets: it closed with bytes of ours unread)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(first)
        received = bytearray()
        try:
            while chunk := connection.recv(1 << 16):
                received += chunk
        except ConnectionResetError:
            pass
        return bytes(received)


async def in_thread(function, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


@pytest.mark.parametrize("first", [os.urandom(32), b"", b"x" * 31, os.urandom(4096)],
                         ids=["wrong-ticket", "nothing", "short-ticket", "long-garbage"])
async def test_a_data_connection_without_a_valid_ticket_gets_nothing(node, monkeypatch, first):
    monkeypatch.setattr(data_connections, "HANDSHAKE_TIMEOUT", 0.5)  # "nothing", "short": closed after it
    node.objects["secret"] = b"s" * MIB
    assert await in_thread(exchange, node.server._data.port, first) == b""
    assert node.sources == [], "nothing looked up, nothing lent"


async def test_a_ticket_serves_one_connection_only(node):
    data = pattern(200 * KIB)
    node.objects["once"] = data
    loan = await lend(node, "once", 1000, 5000)
    assert (len(loan.ticket), loan.port, loan.total_size) == (32, node.server._data.port, len(data))
    assert await in_thread(exchange, loan.port, loan.ticket) == data[1000:5000] + bytes(4)  # trailer: no CRC here
    assert await in_thread(exchange, loan.port, loan.ticket) == b"", "a used ticket gets nothing"
    await async_wait_until(lambda: node.releases() == [1], 10, "the range released once sent")


async def test_an_unused_ticket_expires_and_its_range_is_released(node, monkeypatch):
    monkeypatch.setattr(data_connections, "TICKET_SECONDS", 0.2)
    node.objects["late"] = b"l" * MIB
    loan = await lend(node, "late", 0, MIB)
    await async_wait_until(lambda: node.releases() == [1], 10, "the unused loan to expire")
    assert await in_thread(exchange, loan.port, loan.ticket) == b""


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
async def test_lending_needs_the_proof_of_the_cluster_secret(node, token):
    node.objects["secret"] = b"s" * (20 * MIB)
    destination = bytearray(20 * MIB)
    with pytest.raises(TransferError, match="UNAUTHENTICATED") as info:
        await pull(node.server.address, token, "secret", memoryview(destination))
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert node.sources == [], "refused before the object was looked up"
    assert destination == bytes(20 * MIB), "nothing written"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await lend(node, "secret", 0, 10, token="wrong-token")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_lend_errors_are_the_pulls(node):
    node.objects["sized"] = b"z" * 100
    with pytest.raises(TransferError, match=r"NOT_FOUND.*ghost"):
        await pull(node.server.address, TOKEN, "ghost", memoryview(bytearray(10)))
    with pytest.raises(TransferError, match=r"OUT_OF_RANGE: object sized has 100 bytes: there is no range \[0, 101\)"):
        await pull(node.server.address, TOKEN, "sized", memoryview(bytearray(101)))
    with pytest.raises(TransferError, match="the node has 100 bytes of it, 99 were expected"):
        await pull(node.server.address, TOKEN, "sized", memoryview(bytearray(99)))
    assert node.releases()[0] == 1  # the OUT_OF_RANGE lookup; the last loan expires unused


class SlowEndpoint(DataEndpoint):
    """Sends 64 KiB at a time, `pause` seconds apart; after `stall_after` bytes, waits for `resume`."""

    pause = 0.01
    stall_after: int | None = None

    def __init__(self, host, tls=None):
        super().__init__(host, tls)
        self.resume = threading.Event()
        self.stalled = threading.Event()

    def _send(self, connection, loan):
        view = loan.source.view
        for offset in range(loan.start, loan.end, 64 * KIB):
            if self.stall_after is not None and offset - loan.start >= self.stall_after:
                self.stalled.set()
                self.resume.wait(30)
                return
            connection.sendall(view[offset:min(offset + 64 * KIB, loan.end)])
            time.sleep(self.pause)
        connection.sendall(bytes(4))


class SlowServer(DataOnlyServer):
    stall_after = None

    def _data_endpoint(self):
        endpoint = self.endpoint = SlowEndpoint(self._bind.rpartition(":")[0])
        endpoint.stall_after = self.stall_after
        return endpoint


async def test_a_stalled_node_fails_the_pull_promptly():
    SlowServer.stall_after = 64 * KIB
    node = await started(Node(server_class=SlowServer))
    try:
        node.objects["stuck"] = pattern(MIB)
        # the timeout also bounds the Lend call and the connection (a new channel): 2 s, so that
        # a loaded machine still gets its first 64 KiB through in time
        with pytest.raises(TransferError, match=r"the node sent nothing for 2 s after 65536 of the 1048576 bytes "
                                                r"of \[0, 1048576\) \(stalled\)"):
            await pull(node.server.address, TOKEN, "stuck", memoryview(bytearray(MIB)), timeout=2)
        assert node.server.endpoint.stalled.is_set()
        assert active_receivers() == 0
    finally:
        node.server.endpoint.resume.set()
        SlowServer.stall_after = None
        await node.server.stop(0)
        await close_channels()
    assert node.releases() == [1]


async def test_a_cancelled_pull_stops_writing_and_the_node_lets_go():
    node = await started(Node(server_class=SlowServer))
    try:
        node.objects["long"] = pattern(16 * MIB)
        destination = memoryview(bytearray(16 * MIB))
        task = asyncio.ensure_future(pull(node.server.address, TOKEN, "long", destination))
        await async_wait_until(lambda: any(destination[:64 * KIB]),
                               20, "the first bytes to arrive")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert active_receivers() == 0, "no thread writes into the destination any more"
        snapshot = bytes(destination)
        await async_wait_until(lambda: node.releases() == [1] * len(node.sources), 10,
                               "the node to release every range")
        assert bytes(destination) == snapshot
        assert not node.server._data._sockets, "the node's data connections are closed"
    finally:
        await node.server.stop(0)
        await close_channels()


SLOW_SOURCE = """
import asyncio, sys, time
from actorcore.objects import data_connections, transfer
from actorcore.kernel import run

class Slow(data_connections.DataEndpoint):
    def _send(self, connection, loan):
        for offset in range(loan.start, loan.end, 64 * 1024):  # 64 KiB every 20 ms: a pull takes seconds
            connection.sendall(loan.source.view[offset:min(offset + 64 * 1024, loan.end)])
            time.sleep(0.02)

class Server(transfer.TransferServer):
    def _data_endpoint(self):
        return Slow(self._bind.rpartition(":")[0])

class Held:
    view = memoryview(bytes(range(256)) * (32 * 1024 * 1024 // 256))
    def release(self):
        pass

async def main():
    server = Server("127.0.0.1:0", sys.argv[1], lambda object_id: Held())
    await server.start()
    print(server.address, flush=True)
    await asyncio.sleep(3600)

run(main())
"""


async def test_a_source_process_dying_mid_transfer_fails_the_pull_promptly():
    source = subprocess.Popen([sys.executable, "-c", SLOW_SOURCE, TOKEN], stdout=subprocess.PIPE)  # noqa: ASYNC220
    try:
        address = (await asyncio.get_running_loop().run_in_executor(None, source.stdout.readline)).decode().strip()
        destination = memoryview(bytearray(32 * MIB))
        task = asyncio.ensure_future(pull(address, TOKEN, "doomed", destination, timeout=300))
        starts = [start for start, _ in _ranges(32 * MIB, transfer.DATA_STREAMS)]
        await async_wait_until(lambda: all(destination[start + 1] == 1 for start in starts),
                               30, "the pull to be under way on every connection")
        source.send_signal(signal.SIGKILL)
        # Not the stall timeout (300 s): the broken connections end every range.
        with pytest.raises(TransferError, match=r"cannot pull object doomed from 127\.0\.0\.1:\d+: the (node closed "
                                                r"the data connection|data connection for bytes) ") as info:
            await asyncio.wait_for(task, 30)
        assert info.value.code is None
        assert active_receivers() == 0, "nothing writes into the destination any more"
    finally:
        source.kill()
        source.wait(10)
        source.stdout.close()
        await close_channels()


class NoDataServer(TransferServer):
    def _data_endpoint(self):
        return None


async def test_a_node_without_a_data_endpoint_streams_over_grpc():
    node = await started(Node(server_class=NoDataServer))
    try:
        data = pattern(5 * MIB + 1)
        node.objects["old"] = data
        destination = bytearray(len(data))
        await pull(node.server.address, TOKEN, "old", memoryview(destination))
        assert destination == data
    finally:
        await node.server.stop(0)
        await close_channels()


CREDENTIALS = make_credentials("default", "10.0.0.1:6380", "secret").tls
OTHER = make_credentials("default", "10.0.0.1:6380", "other").tls


@pytest.fixture
def tls_on_loopback(monkeypatch):
    """The rule of "TLS between hosts" applied to loopback too, so that one machine can test it."""
    def everywhere(address, tls):
        return tls is not None

    for module in (grpc_tls, transfer, data_connections):
        monkeypatch.setattr(module, "wants_tls", everywhere)


async def test_over_tls_only_the_clusters_members_get_the_bytes(tls_on_loopback, monkeypatch):
    monkeypatch.setattr(transfer, "DATA_OVER_TLS", True)
    node = await started(Node(server_class=DataOnlyServer, tls=CREDENTIALS))
    try:
        data = pattern(3 * MIB + 5)
        node.objects["private"] = data
        destination = bytearray(len(data))
        await pull(node.server.address, TOKEN, "private", memoryview(destination), tls=CREDENTIALS)
        assert destination == data
        await released(node)
        port = node.server._data.port

        def handshake(context):
            """What the endpoint sends to a connection of TLS ``context`` showing a wrong ticket
            (raises if the TLS handshake fails: TLS 1.3 may tell only at the first read)."""
            with socket.create_connection(("127.0.0.1", port), timeout=20) as plain, \
                    context.wrap_socket(plain, server_hostname=CREDENTIALS.server_name) as secure:
                secure.sendall(os.urandom(32))
                return secure.recv(1)

        assert await in_thread(handshake, CREDENTIALS.ssl_client_context()) == b"", "a wrong ticket over TLS"
        for context in (OTHER.ssl_client_context(),  # another cluster's certificate and CA
                        ssl.create_default_context(cadata=CREDENTIALS.ca)):  # no client certificate
            context.check_hostname = False
            try:
                received = await in_thread(handshake, context)
            except (ssl.SSLError, ConnectionError):
                received = b""
            assert received == b"", "a stranger's TLS connection gets nothing"
        # Plain text gets no byte of an object; the TLS layer may answer with an alert record
        # (content type 21) before it closes, depending on what the bytes look like.
        answer = await in_thread(exchange, port, os.urandom(32))
        assert answer == b"" or (answer[0] == 21 and len(answer) <= 7), f"plain text got {answer!r}"
        assert len(node.sources) == 1, "nothing looked up for the refused connections"
    finally:
        await node.server.stop(0)
        await close_channels()


async def test_over_tls_the_bytes_stream_over_grpc_unless_data_connections_are_chosen(tls_on_loopback):
    node = await started(Node(tls=CREDENTIALS))
    try:
        data = pattern(5 * MIB + 1)
        node.objects["private"] = data
        destination = bytearray(len(data))
        await pull(node.server.address, TOKEN, "private", memoryview(destination), tls=CREDENTIALS)
        assert destination == data
        assert node.server._data is None, "no data endpoint: nothing listens that is not used"
    finally:
        await node.server.stop(0)
        await close_channels()


class WrongPortServer(DataOnlyServer):
    """Lends as usual but names a port where nothing listens (its data endpoint went away)."""

    async def _lend(self, request, context):
        loan = await super()._lend(request, context)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            loan.port = probe.getsockname()[1]
        return loan


async def test_a_data_endpoint_that_is_gone_fails_the_pull_at_once():
    node = await started(Node(server_class=WrongPortServer))
    try:
        node.objects["moved"] = pattern(2 * MIB)
        with pytest.raises(TransferError, match=r"cannot pull object moved from 127\.0\.0\.1:\d+: cannot open a data "
                                                r"connection to port \d+: .*[Rr]efused"):
            await pull(node.server.address, TOKEN, "moved", memoryview(bytearray(2 * MIB)), timeout=300)
        assert active_receivers() == 0
    finally:
        await node.server.stop(0)
        await close_channels()
    assert node.releases() == [1], "the stop released the unused loan"
