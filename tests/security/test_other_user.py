"""Unix sockets and loopback TCP between actor systems are for one user: a process of another
user is refused before anything it sends is read, and a process that took the abstract socket
name of a dead actor system (as another user) is never sent anything (docs/architecture.md,
"Security model").

The other user is uid 65534 ("nobody"): a forked child of this test drops to it, so these
tests need root (as CI runs them).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore.kernel import ActorRef, ActorSystem, PeerLostError
from actorcore.kernel.address import HOST_ID, Address
from actorcore.kernel.remote.handshake import new_nonce

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root"),
]

TOKEN = "other-user-token"
NOBODY = 65534
FAKE_ID = "4242-0123456789ab"


def _as_nobody(child) -> tuple[int, int]:
    """Fork; the child drops to uid/gid 65534 and runs ``child(write_fd)``. Returns (pid, read_fd)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            child(write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


async def _child_result(pid: int, read_fd: int) -> bytes:
    def collect() -> bytes:
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child as uid 65534 failed"
        return data

    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, collect), 30)


def _framed(frame: pb.Frame) -> bytes:
    return struct.pack(">I", frame.ByteSize()) + frame.SerializeToString()


@pytest.mark.parametrize("role", ["uds", "tcp"])
async def test_a_connection_from_another_user_is_refused_before_anything_is_read(peers, role):
    """On a Unix socket, and on loopback TCP (no TLS there: the uid is what keeps another user
    of the machine from taking the kernel's handshake slots)."""
    peer = await peers(role, env={"ACTORCORE_TEST_TOKEN": TOKEN})
    if role == "uds":
        family, where = socket.AF_UNIX, peer.uris[0].split("uds=")[1].split("&")[0].replace("%00", "\0")
    else:
        host, _, port = peer.uris[0].split("tcp=")[1].split("&")[0].replace("%3A", ":").rpartition(":")
        family, where = socket.AF_INET, (host, int(port))
    hello = _framed(pb.Frame(hello=pb.Hello(system_id=FAKE_ID, host_id=HOST_ID, nonce=new_nonce())))

    def connect_and_listen(write_fd: int) -> None:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(where)
            received = b""
            try:
                sock.sendall(hello)  # a well-formed Hello: another uid would be answered
                while chunk := sock.recv(65536):
                    received += chunk
            except (ConnectionResetError, BrokenPipeError):
                pass
        os.write(write_fd, b"received %d bytes" % len(received))

    result = await _child_result(*_as_nobody(connect_and_listen))
    assert result == b"received 0 bytes"


async def test_a_socket_name_taken_by_another_user_is_sent_nothing():
    """The listener of a name a dead actor system had now runs as another user: the connecting
    side checks the listener's uid before it sends its Hello."""
    path = f"\0actorcore-test-squatter-{os.getpid()}"

    def squat(write_fd: int) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen()
            os.write(write_fd, b"listening\n")
            listener.settimeout(20)
            conn, _ = listener.accept()
            received = b""
            with conn:
                conn.settimeout(20)
                try:
                    while chunk := conn.recv(65536):
                        received += chunk
                except OSError:
                    pass
        os.write(write_fd, b"received %d bytes" % len(received))

    pid, read_fd = _as_nobody(squat)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.run_in_executor(None, pipe.readline), 30) == b"listening\n"
    system = await ActorSystem.start(token=TOKEN, uds=False)
    try:
        ref = ActorRef(system, Address(FAKE_ID, HOST_ID, "", path), "collector")
        with pytest.raises(PeerLostError, match=f"runs as uid {NOBODY}"):
            await ref.ask(("echo", 1), timeout=10)
    finally:
        await system.shutdown(timeout=1)
    assert await _child_result(pid, os.dup(pipe.fileno())) == b"received 0 bytes"
    pipe.close()
