"""An outsider cannot make an actor system or a transfer endpoint hold memory: oversized
frames, floods of connections, slow handshakes and huge unauthenticated requests are refused
with the target process's peak memory up by less than 50 MB, and nothing they sent is run
(docs/architecture.md, "Security model").

The target is a real process (`tests.security.target`); its memory is read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore.kernel import ActorSystem
from actorcore.kernel.address import HOST_ID
from actorcore.kernel.errors import PeerLostError
from actorcore.kernel.remote.handshake import new_nonce
from actorcore.kernel.remote.peers import MAX_PENDING_HANDSHAKES
from actorcore.testing import async_wait_until, wait_until

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "memory-test-token"
MB = 1 << 20
LIMIT = 50 * MB


class Target:
    """A `tests.security.target` process."""

    def __init__(self, handshake_timeout: float) -> None:
        self.marker_dir = Path(tempfile.mkdtemp(prefix="actorcore-target-"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.security.target", str(handshake_timeout), str(self.marker_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "ACTORCORE_TEST_TOKEN": TOKEN},
        )
        line = self.process.stdout.readline().split()
        assert line[:1] == [b"READY"], "the target process did not start"
        self.uri, self.transfer = line[1].decode(), line[2].decode()
        self.uds = self.uri.split("uds=")[1].split("&")[0].replace("%00", "\0")
        self.tcp = self.uri.split("tcp=")[1].split("&")[0].replace("%3A", ":")

    def peak_memory(self) -> int:
        """The process's peak resident memory so far, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def executed(self) -> list[str]:
        return sorted(p.name for p in self.marker_dir.iterdir())

    async def answers(self) -> bool:
        """Whether the target answers an ask. It sees an attack's connections closed when its
        loop gets to them: until then it may still be at its limit and refuse the handshake,
        so a refused handshake is tried again for up to 30 s."""
        system = await ActorSystem.start(token=TOKEN, uds=False)
        try:
            return await async_wait_until(
                lambda: system.ref_from_uri(self.uri).ask(("echo", "alive"), timeout=30), 30,
                "the target to answer an ask", interval=0.2, retry_on=(PeerLostError,)) == "alive"
        finally:
            await system.shutdown(timeout=1)

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for path in self.marker_dir.iterdir():
            path.unlink()
        self.marker_dir.rmdir()


@pytest.fixture
def target(request):
    started = []

    def start(handshake_timeout: float = 10.0) -> Target:
        started.append(Target(handshake_timeout))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def _framed(frame: pb.Frame) -> bytes:
    return struct.pack(">I", frame.ByteSize()) + frame.SerializeToString()


def _hello() -> bytes:
    return _framed(pb.Frame(hello=pb.Hello(system_id="4242-0123456789ab", host_id=HOST_ID, nonce=new_nonce())))


def _connect(where: str) -> socket.socket:
    """A blocking socket connected to a Unix-socket path or a TCP "host:port"."""
    if where.startswith(("\0", "/")):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(where)
        return sock
    host, _, port = where.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _push(where: str, head: bytes, total: int) -> int:
    """Send `head` then up to `total` bytes; how many were sent before the other side closed."""
    chunk = bytes(MB)
    sent = 0
    with _connect(where) as sock:
        try:
            sock.sendall(head)
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    return sent


@pytest.mark.parametrize("transport", ["uds", "tcp"])
@pytest.mark.parametrize("after_hello", [False, True], ids=["first-frame", "after-hello"])
async def test_a_huge_length_header_is_refused_before_its_bytes_are_buffered(target, after_hello, transport):
    target = target()
    before = target.peak_memory()
    head = (_hello() if after_hello else b"") + struct.pack(">I", 0xFFFFFFF0)
    where = target.uds if transport == "uds" else target.tcp
    loop = asyncio.get_running_loop()
    sent = await asyncio.gather(*(loop.run_in_executor(None, _push, where, head, 400 * MB) for _ in range(3)))
    assert all(n < 400 * MB for n in sent), f"the target kept reading: {sent}"
    assert target.peak_memory() - before < LIMIT
    assert await target.answers()
    assert target.executed() == []


async def test_a_flood_of_connections_is_cut_to_the_pending_handshake_limit(target):
    """Connections beyond MAX_PENDING_HANDSHAKES are closed at once (the handshake timeout is
    5 minutes here: none of these ends by it)."""
    target = target(handshake_timeout=300)
    before = target.peak_memory()
    count = MAX_PENDING_HANDSHAKES + 300
    flood = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            flood.append(sock)
            sock.connect(target.uds)
            sock.setblocking(False)

        def still_open() -> list[socket.socket]:
            alive = []
            for sock in flood:
                try:
                    if sock.recv(1) == b"":
                        continue
                except BlockingIOError:
                    alive.append(sock)
                except ConnectionResetError:
                    continue
            return alive

        await asyncio.to_thread(wait_until, lambda: len(still_open()) <= MAX_PENDING_HANDSHAKES, 60,
                                "the target to close the connections over its limit",
                                details=lambda: f"{len(still_open())} still open")
        assert len(still_open()) == MAX_PENDING_HANDSHAKES
        assert target.peak_memory() - before < LIMIT
    finally:
        for sock in flood:
            sock.close()
    assert await target.answers()
    assert target.executed() == []


async def test_a_slow_handshake_is_cut_off_after_the_handshake_timeout(target):
    """Connections that send a Hello, then dribble a proof one byte at a time, are closed once
    the handshake timeout (1 s here) has passed, having run nothing."""
    target = target(handshake_timeout=1)
    before = target.peak_memory()
    batch = pb.Frame(batch=pb.EnvelopeBatch(envelopes=[pb.Envelope(kind=pb.TELL, target="tripwire", payload=b"x")]))
    dribble = _framed(pb.Frame(proof=pb.Proof(mac=bytes(32)))) + _framed(batch)

    def slow_client() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            sock.connect(target.uds)
            sock.sendall(_hello())
            answer = b""
            for byte in dribble * 100:
                try:
                    sock.send(bytes([byte]))
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    return answer
                if not chunk:
                    return answer
                answer += chunk
            raise AssertionError("the target kept a dribbling handshake open")

    loop = asyncio.get_running_loop()
    answers = await asyncio.gather(*(loop.run_in_executor(None, slow_client) for _ in range(8)))
    for answer in answers:  # the target's Hello and Proof, then the end
        first = struct.unpack(">I", answer[:4])[0]
        assert pb.Frame.FromString(answer[4:4 + first]).WhichOneof("body") == "hello"
    assert target.peak_memory() - before < LIMIT
    assert target.executed() == []
    assert await target.answers()


async def test_huge_unauthenticated_grpc_requests_are_refused_unread(target):
    target = target()
    method = "/actorcore.transfer.ObjectTransfer/Pull"
    before = target.peak_memory()
    request = bytes(60 * MB)

    async def call(channel) -> grpc.StatusCode:
        try:
            async for _ in channel.unary_stream(method)(request, timeout=60):
                pass
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(target.transfer, options=options) as channel:
        codes = await asyncio.gather(*(call(channel) for _ in range(4)))
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert target.peak_memory() - before < LIMIT
    assert target.executed() == []
    assert await target.answers()
