"""A peer process for the kernel's cross-process tests: `python -m tests.kernel.peer ROLE`.

It starts an actor system, spawns the actors of ROLE, prints one line `READY <uri>` per
actor on stdout and runs until its stdin closes (so it dies with the test).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from actorcore.credentials import TlsIdentity
from actorcore.kernel import Actor, ActorSystem, run

#: The cluster token of the kernel tests' actor systems (a peer takes ACTORCORE_TEST_TOKEN instead when set).
TEST_TOKEN = "kernel-test-token"


class Collector(Actor):
    """Records every int it is told; `("count",)` asks how many and whether they were in order."""

    def __init__(self) -> None:
        self.expected = 0
        self.in_order = True

    async def receive(self, message):
        if type(message) is int:
            if message != self.expected:
                self.in_order = False
            self.expected = message + 1
            return None
        if message == ("count",):
            return self.expected, self.in_order
        if message == ("pid",):
            return os.getpid()
        if message == ("sleep",):
            await asyncio.sleep(3600)
        if isinstance(message, tuple) and message[0] == "echo":
            return message[1]
        if isinstance(message, tuple) and message[0] == "tell_back":
            message[1].tell(("pong", os.getpid()))
            return None
        raise ValueError(f"unexpected message {message!r}")


async def main(role: str) -> None:
    tcp = "127.0.0.1:0" if "tcp" in role else None
    tls = None
    if role == "tls":  # TCP on every address (not loopback, so TLS) with the identity in ACTORCORE_TEST_TLS
        tcp, tls = "0.0.0.0:0", TlsIdentity.from_dict(json.loads(os.environ["ACTORCORE_TEST_TLS"]))
    system = await ActorSystem.start(name=role, tcp=tcp, uds=tcp is None, tls=tls,
                                     token=os.environ.get("ACTORCORE_TEST_TOKEN", TEST_TOKEN))
    refs = [system.spawn(Collector, name="collector")]
    if role.startswith("two"):
        refs.append(system.spawn(Collector, name="second"))
    for ref in refs:
        print("READY", ref.to_uri(), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await system.shutdown(timeout=1.0)


if __name__ == "__main__":
    run(main(sys.argv[1] if len(sys.argv) > 1 else "uds"))
