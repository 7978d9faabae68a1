"""The cluster token: peers without it are rejected before anything is read
(docs/architecture.md, "Security model")."""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct

import grpc
import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore._proto import kernel_pb2_grpc as pb_grpc
from actorcore.kernel import ActorSystem, PeerLostError

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"


async def _ask_with(token: str | None, uri: str):
    system = await ActorSystem.start(token=token)
    try:
        return await system.ref_from_uri(uri).ask(("echo", "hi"), timeout=10)
    finally:
        await system.shutdown(timeout=1)


@pytest.mark.parametrize("role", ["uds", "grpc"])
async def test_only_the_right_token_gets_through(peers, role):
    peer = await peers(role, env={"ACTORCORE_TEST_TOKEN": TOKEN})
    uri = peer.uris[0]
    for token in (None, "wrong-token"):
        with pytest.raises(PeerLostError, match="token"):
            await _ask_with(token, uri)
    assert await _ask_with(TOKEN, uri) == "hi"


async def test_grpc_call_without_token_is_unauthenticated(peers):
    peer = await peers("grpc", env={"ACTORCORE_TEST_TOKEN": TOKEN})
    target = peer.uris[0].split("tcp=")[1].split("&")[0].replace("%3A", ":")
    async with grpc.aio.insecure_channel(target) as channel:
        call = pb_grpc.TransportStub(channel).Stream()

        # The rejection may arrive while the write is in flight: then the write fails (grpc
        # reports that as INTERNAL) and the call's own status says why it ended.
        async def hello_then_read():
            await call.write(pb.Frame(hello=pb.Hello(system_id="intruder")))
            await asyncio.wait_for(call.read(), 10)

        with pytest.raises(grpc.aio.AioRpcError):
            await hello_then_read()
        assert await asyncio.wait_for(call.code(), 10) == grpc.StatusCode.UNAUTHENTICATED


class _Marker:
    """Unpickling this creates a file: proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


async def test_nothing_from_an_unauthenticated_peer_is_unpickled(peers, tmp_path):
    peer = await peers("uds", env={"ACTORCORE_TEST_TOKEN": TOKEN})
    marker = tmp_path / "unpickled"
    uds = peer.uris[0].split("uds=")[1].replace("%00", "\0")
    frames = [
        pb.Frame(hello=pb.Hello(system_id="intruder", token="wrong-token")),
        pb.Frame(batch=pb.EnvelopeBatch(envelopes=[
            pb.Envelope(kind=pb.TELL, target="collector", payload=pickle.dumps(_Marker(str(marker)))),
        ])),
    ]
    data = b"".join(struct.pack(">I", len(f.SerializeToString())) + f.SerializeToString() for f in frames)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(uds)
        sock.sendall(data)
        sock.settimeout(5)
        assert sock.recv(1) == b"", "the peer should close the connection without answering"
    # The peer handles connections in order on one loop: once an authenticated ask has been
    # answered, anything it would have done with the rejected bytes has been done.
    assert await _ask_with(TOKEN, peer.uris[0]) == "hi"
    assert not marker.exists()
