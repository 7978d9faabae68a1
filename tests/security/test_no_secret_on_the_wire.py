"""The cluster token never leaves a process: not in a kernel frame (Unix socket or TCP), not
in a gRPC header, not in a transfer request. Fake listeners record everything a real process sends them
(docs/architecture.md, "Security model")."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import grpc
import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore.kernel import ActorRef, ActorSystem, PeerLostError
from actorcore.kernel.address import HOST_ID, Address
from actorcore.objects.transfer import TransferError, pull

pytestmark = pytest.mark.timeout(60)

TOKEN = "the-cluster-token-0123456789"
FAKE_ID = "4242-0123456789ab"


class RecordingServer:
    """A gRPC server that accepts any call to any method and records its metadata and every
    request message's bytes, answering nothing."""

    def __init__(self) -> None:
        self.metadata: list[tuple[str, str | bytes]] = []
        self.requests: list[bytes] = []
        self.called = asyncio.Event()
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((self,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def service(self, handler_call_details):  # grpc.GenericRpcHandler
        self.metadata.extend(handler_call_details.invocation_metadata or ())
        self.called.set()
        return grpc.stream_stream_rpc_method_handler(self._record)

    async def _record(self, request_iterator, context):
        async for request in request_iterator:  # no deserializer: raw bytes
            self.requests.append(request)
            break  # the first message (a Hello, a PullRequest): a client waits for an answer then
        await context.abort(grpc.StatusCode.UNAVAILABLE, "a fake")
        yield b""  # pragma: no cover - an async generator

    def everything(self) -> bytes:
        headers = b"".join(k.encode() + (v if isinstance(v, bytes) else v.encode()) for k, v in self.metadata)
        return headers + b"".join(self.requests)


@pytest.fixture
async def recording():
    server = RecordingServer()
    await server.server.start()
    yield server
    await server.server.stop(0)


async def test_a_transfer_pull_sends_no_token(recording):
    with pytest.raises(TransferError):
        await pull(recording.address, TOKEN, "an-object", memoryview(bytearray(10)), timeout=10)
    assert recording.called.is_set()
    assert any(key == "x-actorcore-proof" for key, _ in recording.metadata)
    assert TOKEN.encode() not in recording.everything()


@pytest.mark.parametrize("transport", ["uds", "tcp"])
async def test_a_kernel_connection_sends_no_token(transport):
    if transport == "uds":
        path = f"\0actorcore-test-recorder-{os.getpid()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        address = Address(FAKE_ID, HOST_ID, "", path)
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        address = Address(FAKE_ID, "another-host", f"127.0.0.1:{listener.getsockname()[1]}", "")
    listener.listen()
    received = bytearray()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            while len(received) < 4 or len(received) < 4 + struct.unpack(">I", received[:4])[0]:
                received.extend(conn.recv(65536))
            # Answer as a real listener would, with a Hello and a proof that cannot be right.
            hello = pb.Frame(hello=pb.Hello(system_id=FAKE_ID, host_id=HOST_ID, nonce=os.urandom(16)))
            proof = pb.Frame(proof=pb.Proof(mac=os.urandom(32)))
            conn.sendall(b"".join(struct.pack(">I", f.ByteSize()) + f.SerializeToString() for f in (hello, proof)))
            while chunk := conn.recv(65536):
                received.extend(chunk)

    server = asyncio.get_running_loop().run_in_executor(None, serve)
    system = await ActorSystem.start(token=TOKEN, uds=False)
    try:
        ref = ActorRef(system, address, "collector")
        with pytest.raises(PeerLostError):
            await ref.ask(("echo", 1), timeout=10)
    finally:
        await system.shutdown(timeout=1)
        await asyncio.wait_for(server, 10)
        listener.close()
    assert received
    assert TOKEN.encode() not in received
