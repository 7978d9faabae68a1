"""The kernel's TCP streams off loopback are TLS with the cluster's certificate, both ends
showing one: a member talks (in order, large frames intact); a plain client, one without a
certificate and another cluster's member get nothing, not even the handshake's Hello; a
peer that dies is detected (docs/architecture.md, "Security model")."""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct

import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore.credentials import make_credentials
from actorcore.kernel import ActorSystem, PeerLostError
from actorcore.kernel.address import HOST_ID
from actorcore.kernel.remote.handshake import new_nonce
from actorcore.kernel.remote.peers import MAX_PENDING_HANDSHAKES
from tests.kernel.peer import TEST_TOKEN

pytestmark = pytest.mark.timeout(60)

CREDENTIALS = make_credentials("default", "10.0.0.1:6380", TEST_TOKEN)
OURS, OTHER = CREDENTIALS.tls, make_credentials("other", "10.0.0.1:6380", "other").tls
MB = 1 << 20


@pytest.fixture
async def tls_peer(peers):
    """A peer process listening on 0.0.0.0 (so with TLS) with the cluster's identity."""
    return await peers("tls", env={"ACTORCORE_TEST_TLS": json.dumps(OURS.to_dict())})


@pytest.fixture
async def member():
    system = await ActorSystem.start(name="member", uds=False, token=TEST_TOKEN, tls=OURS)
    yield system
    await system.shutdown(timeout=1.0)


def _endpoint(uri: str) -> tuple[str, int]:
    host, _, port = uri.split("tcp=")[1].split("&")[0].replace("%3A", ":").rpartition(":")
    return host, int(port)


def _hello() -> bytes:
    frame = pb.Frame(hello=pb.Hello(system_id="4242-0123456789ab", host_id=HOST_ID, nonce=new_nonce()))
    return struct.pack(">I", frame.ByteSize()) + frame.SerializeToString()


def _answer(sock) -> bytes:
    """Everything the server sends before it closes (or an error ends the connection)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return received


async def test_a_member_talks_over_tls_in_order_with_large_frames_intact(tls_peer, member):
    assert _endpoint(tls_peer.uris[0])[0] == "0.0.0.0"
    ref = member.ref_from_uri(tls_peer.uris[0])
    assert await ref.ask(("echo", "hi"), timeout=10) == "hi"
    for i in range(20_000):
        ref.tell(i)
    big = os.urandom(16 * MB)
    assert await ref.ask(("echo", big), timeout=30) == big
    assert await ref.ask(("count",), timeout=30) == (20_000, True)


async def test_a_member_sees_a_tls_peer_die(tls_peer, member):
    ref = member.ref_from_uri(tls_peer.uris[0])
    assert await ref.ask(("echo", 1), timeout=10) == 1
    pending = ref.ask(("sleep",), timeout=None)
    tls_peer.process.kill()
    with pytest.raises(PeerLostError, match="unreachable"):
        await pending


async def test_another_clusters_member_gets_no_answer(tls_peer):
    system = await ActorSystem.start(name="outsider", uds=False, token=TEST_TOKEN, tls=OTHER)
    try:
        with pytest.raises(PeerLostError, match="certificate verify failed"):
            await system.ref_from_uri(tls_peer.uris[0]).ask(("echo", "hi"), timeout=10)
    finally:
        await system.shutdown(timeout=1.0)


def _contexts() -> dict[str, ssl.SSLContext | None]:
    """Clients that trust the cluster's CA but show no certificate, or another cluster's."""
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=OURS.ca)
    foreign = OTHER.ssl_client_context()
    foreign.load_verify_locations(cadata=OURS.ca)
    return {"plain": None, "no certificate": anonymous, "foreign certificate": foreign}


@pytest.mark.parametrize("client", ["plain", "no certificate", "foreign certificate"])
async def test_a_client_without_the_clusters_certificate_gets_nothing(tls_peer, client):
    context = _contexts()[client]
    with socket.create_connection(_endpoint(tls_peer.uris[0]), timeout=10) as raw:
        sock = raw if context is None else context.wrap_socket(raw, server_hostname=OURS.server_name)
        try:
            sock.sendall(_hello())
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass
        answer = _answer(sock)
    assert HOST_ID.encode() not in answer, "the listener answered with its Hello"


async def test_a_member_gets_the_handshake_over_tls(tls_peer):
    """The control for the test above: the same raw client with the cluster's certificate
    gets the listener's Hello."""
    context = OURS.ssl_client_context()
    with socket.create_connection(_endpoint(tls_peer.uris[0]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=OURS.server_name) as sock:
        sock.sendall(_hello())
        received = b""
        while len(received) < 4 or len(received) < 4 + struct.unpack(">I", received[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "the listener closed the connection"
            received += chunk
    size = struct.unpack(">I", received[:4])[0]
    assert pb.Frame.FromString(received[4:4 + size]).hello.host_id == HOST_ID


async def test_clients_stuck_before_tls_take_no_handshake_slot(tls_peer, member):
    """Connections that never start TLS do not count among the kernel's pending handshakes:
    more of them than its limit leave room for a member (the kernel sees a connection once
    its TLS handshake succeeded)."""
    stuck = [socket.create_connection(_endpoint(tls_peer.uris[0]), timeout=10)
             for _ in range(MAX_PENDING_HANDSHAKES + 44)]
    try:
        ref = member.ref_from_uri(tls_peer.uris[0])
        assert await ref.ask(("echo", "through"), timeout=10) == "through"
    finally:
        for sock in stuck:
            sock.close()
