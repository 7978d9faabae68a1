"""The handshake: each side proves it holds the cluster secret, nothing from a peer that has
not is read, and no frame carries the token (docs/architecture.md, "Security model")."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct

import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore.kernel import ActorRef, ActorSystem, PeerLostError
from actorcore.kernel.address import HOST_ID, Address
from actorcore.kernel.secret import ClusterSecret

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
INTRUDER_ID = "4242-0123456789ab"


async def _ask_with(token: str | None, uri: str):
    system = await ActorSystem.start(token=token, uds=False)  # connects only: no token needed to start
    try:
        return await system.ref_from_uri(uri).ask(("echo", "hi"), timeout=10)
    finally:
        await system.shutdown(timeout=1)


def _uds_path(uri: str) -> str:
    return uri.split("uds=")[1].split("&")[0].replace("%00", "\0")


def _framed(*frames: pb.Frame) -> bytes:
    return b"".join(struct.pack(">I", f.ByteSize()) + f.SerializeToString() for f in frames)


def _read_frames(sock: socket.socket, count: int) -> list[pb.Frame]:
    frames, buffer = [], b""
    while len(frames) < count:
        while len(buffer) < 4 or len(buffer) < 4 + struct.unpack(">I", buffer[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return frames
            buffer += chunk
        size = struct.unpack(">I", buffer[:4])[0]
        frames.append(pb.Frame.FromString(buffer[4:4 + size]))
        buffer = buffer[4 + size:]
    return frames


def _intruder_hello() -> pb.Hello:
    return pb.Hello(system_id=INTRUDER_ID, host_id=HOST_ID, nonce=os.urandom(16))


@pytest.mark.parametrize("role", ["uds", "tcp"])
async def test_only_the_right_token_gets_through(peers, role):
    peer = await peers(role, env={"ACTORCORE_TEST_TOKEN": TOKEN})
    uri = peer.uris[0]
    for token in (None, "wrong-token"):
        with pytest.raises(PeerLostError, match="token"):
            await _ask_with(token, uri)
    assert await _ask_with(TOKEN, uri) == "hi"


class _Marker:
    """Unpickling this creates a file: proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _marker_batch(path) -> pb.Frame:
    return pb.Frame(batch=pb.EnvelopeBatch(envelopes=[
        pb.Envelope(kind=pb.TELL, target="collector", payload=pickle.dumps(_Marker(str(path)))),
    ]))


def _connect(role: str, uri: str) -> socket.socket:
    """A raw socket to the peer's endpoint of `role` ("uds" or "tcp")."""
    if role == "uds":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(_uds_path(uri))
        return sock
    host, _, port = uri.split("tcp=")[1].split("&")[0].replace("%3A", ":").rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


@pytest.mark.parametrize("role", ["uds", "tcp"])
@pytest.mark.parametrize("proof", ["none", "garbage", "reflected"])
async def test_nothing_from_a_peer_without_a_valid_proof_is_unpickled(peers, tmp_path, proof, role):
    """The accepting side reads no envelope before the connecting side's proof verified: not
    without one, not with a wrong one, not with its own proof sent back to it."""
    peer = await peers(role, env={"ACTORCORE_TEST_TOKEN": TOKEN})
    marker = tmp_path / "unpickled"
    with _connect(role, peer.uris[0]) as sock:
        sock.sendall(_framed(pb.Frame(hello=_intruder_hello())))
        answer = _read_frames(sock, 2)
        assert [f.WhichOneof("body") for f in answer] == ["hello", "proof"]
        frames = {
            "none": [_marker_batch(marker)],
            "garbage": [pb.Frame(proof=pb.Proof(mac=os.urandom(32))), _marker_batch(marker)],
            "reflected": [answer[1], _marker_batch(marker)],
        }[proof]
        try:
            sock.sendall(_framed(*frames))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sock.recv(1) == b"", "the peer should close the connection without answering"
    # The peer handles connections in order on one loop: once an authenticated ask has been
    # answered, anything it would have done with the rejected bytes has been done.
    assert await _ask_with(TOKEN, peer.uris[0]) == "hi"
    assert not marker.exists()


async def test_the_connecting_side_sends_nothing_before_the_listener_proved_itself(tmp_path):
    """A listener that answers with a Hello but cannot prove the secret (e.g. a process that
    took the socket name of one that died) gets no envelope, and the ask fails saying why."""
    path = f"\0actorcore-test-fake-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            (hello,) = _read_frames(conn, 1)
            received.append(hello.hello.SerializeToString())
            fake = pb.Hello(system_id=INTRUDER_ID, host_id=HOST_ID, nonce=os.urandom(16))
            conn.sendall(_framed(pb.Frame(hello=fake), pb.Frame(proof=pb.Proof(mac=os.urandom(32)))))
            while chunk := conn.recv(65536):
                received.append(chunk)

    server = asyncio.get_running_loop().run_in_executor(None, serve)
    system = await ActorSystem.start(token=TOKEN, uds=False)
    try:
        ref = ActorRef(system, Address(INTRUDER_ID, HOST_ID, "", path), "collector")
        with pytest.raises(PeerLostError, match="prove"):
            await ref.ask(("echo", "hi"), timeout=10)
    finally:
        await system.shutdown(timeout=1)
        await asyncio.wait_for(server, 10)
        listener.close()
    hello = pb.Hello.FromString(received[0])
    assert len(hello.nonce) == 16
    assert received[1:] == [], "nothing but the Hello may be sent before the listener's proof verified"
    assert TOKEN.encode() not in b"".join(received)


async def test_a_proof_is_a_mac_of_both_hellos_and_the_role(peers):
    """What the accepting side sends is its Hello and a MAC of the transcript for its role: a
    party with the secret can check it, and it is not the MAC for the other role."""
    peer = await peers("uds", env={"ACTORCORE_TEST_TOKEN": TOKEN})
    secret = ClusterSecret(TOKEN)
    ours = _intruder_hello()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(_uds_path(peer.uris[0]))
        sock.sendall(_framed(pb.Frame(hello=ours)))
        theirs, proof = _read_frames(sock, 2)
    transcript = (ours.SerializeToString(deterministic=True), theirs.hello.SerializeToString(deterministic=True))
    assert secret.verify("handshake", proof.proof.mac, b"accepting", *transcript)
    assert not secret.verify("handshake", proof.proof.mac, b"connecting", *transcript)
    assert TOKEN.encode() not in theirs.SerializeToString() + proof.SerializeToString()
