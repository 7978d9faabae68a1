"""The process the attacker tests attack: `python -m tests.security.target HANDSHAKE_TIMEOUT MARKER_DIR`.

An actor system with the cluster token (ACTORCORE_TEST_TOKEN) on a Unix socket and a TCP
endpoint, with an actor that creates a file in MARKER_DIR for any message it gets, and an
object-transfer endpoint that does the same for any lookup. It prints
`READY <actor uri> <transfer address>` and runs until its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from actorcore.kernel import Actor, ActorSystem, run
from actorcore.kernel.remote import peers
from actorcore.objects.transfer import TransferServer


class Tripwire(Actor):
    """Leaves a file behind for every message; answers `("echo", x)` with x."""

    def __init__(self, marker_dir: Path) -> None:
        self.marker_dir = marker_dir

    async def receive(self, message):
        if isinstance(message, tuple) and message[:1] == ("echo",):
            return message[1]
        (self.marker_dir / "message").touch()
        return None


async def main(handshake_timeout: float, marker_dir: Path, token: str) -> None:
    peers.HANDSHAKE_TIMEOUT = handshake_timeout
    system = await ActorSystem.start(name="target", tcp="127.0.0.1:0", token=token)
    ref = system.spawn(Tripwire, marker_dir, name="tripwire")

    def segment_for(object_id: str) -> None:
        (marker_dir / "lookup").touch()

    transfer = TransferServer("127.0.0.1:0", token, segment_for)
    await transfer.start()
    print("READY", ref.to_uri(), transfer.address, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await transfer.stop(0)
    await system.shutdown(timeout=1.0)


if __name__ == "__main__":
    import os

    run(main(float(sys.argv[1]), Path(sys.argv[2]), os.environ["ACTORCORE_TEST_TOKEN"]))
