"""No fail-open: an actor system that listens needs the cluster token (or an explicit
`insecure=True`, which warns), and nothing an unauthenticated peer says about itself reaches
the log (docs/architecture.md, "Security model")."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys

import pytest

from actorcore._proto import kernel_pb2 as pb
from actorcore.kernel import ActorSystem, PeerLostError
from actorcore.kernel.address import HOST_ID
from actorcore.kernel.remote.handshake import new_nonce
from actorcore.testing import capture_logs

pytestmark = pytest.mark.timeout(60)

TOKEN = "no-fail-open-token"
CLIENT_WITHOUT_TOKEN = """
import sys
from actorcore.kernel import ActorSystem, run

async def main():
    system = await ActorSystem.start(uds=False)
    print(await system.ref_from_uri(sys.argv[1]).ask("hi", timeout=10))
    await system.shutdown(timeout=1)

run(main())
"""


@pytest.mark.parametrize("token", [None, ""])
@pytest.mark.parametrize("endpoints", [{}, {"tcp": "127.0.0.1:0"}, {"uds": False, "tcp": "127.0.0.1:0"}])
async def test_a_listening_system_without_token_refuses_to_start(token, endpoints):
    with pytest.raises(ValueError, match=r"without a cluster token.*pass token=.*or insecure=True"):
        await ActorSystem.start(token=token, **endpoints)


def test_a_threaded_listening_system_without_token_refuses_to_start():
    with pytest.raises(ValueError, match="without a cluster token"):
        ActorSystem.start_in_thread(token=None)


async def test_a_system_that_only_connects_needs_no_token():
    system = await ActorSystem.start(token=None, uds=False)
    await system.shutdown()


async def test_insecure_is_explicit_and_warns(peers):
    with capture_logs() as logs:
        system = await ActorSystem.start(insecure=True)
    try:
        assert any(e["log_level"] == "warning" and "insecure" in e["event"] for e in logs), logs
        # It accepts any peer, and a secured one refuses it.
        from actorcore.kernel import Actor

        class Echo(Actor):
            async def receive(self, message):
                return message

        ref = system.spawn(Echo, name="echo")
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT_WITHOUT_TOKEN, ref.to_uri(), stdout=asyncio.subprocess.PIPE)
        output, _ = await asyncio.wait_for(client.communicate(), 30)
        assert output.strip() == b"hi"
        secured = await peers("uds", env={"ACTORCORE_TEST_TOKEN": TOKEN})
        with pytest.raises(PeerLostError, match="requires the cluster token"):
            await system.ref_from_uri(secured.uris[0]).ask(("echo", 1), timeout=10)
    finally:
        await system.shutdown(timeout=1)


@pytest.mark.parametrize("system_id", ["intruder-" + "x" * 3000, "4242-0123456789ab" + "y" * 100, "not an id"])
async def test_an_unauthenticated_peers_system_id_is_never_logged(system_id):
    system = await ActorSystem.start(token=TOKEN)
    try:
        hello = pb.Frame(hello=pb.Hello(system_id=system_id, host_id=HOST_ID, nonce=new_nonce()))
        wrong_proof = pb.Frame(proof=pb.Proof(mac=os.urandom(32)))
        with capture_logs() as logs:
            for frames in ([hello], [hello, wrong_proof]):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(10)
                    sock.connect(system.address.uds)
                    sock.sendall(b"".join(struct.pack(">I", f.ByteSize()) + f.SerializeToString() for f in frames))
                    await _until_closed(sock)
        assert logs, "a rejected connection is logged"
        assert not any("intruder" in repr(entry) or "yyyy" in repr(entry) or system_id in repr(entry)
                       for entry in logs), logs
    finally:
        await system.shutdown(timeout=1)


async def _until_closed(sock: socket.socket) -> None:
    def read() -> None:
        try:
            while sock.recv(65536):
                pass
        except (ConnectionResetError, TimeoutError):
            pass

    await asyncio.get_running_loop().run_in_executor(None, read)
