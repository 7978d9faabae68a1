"""Supervised ping-pong across two processes: `python examples/ping_pong.py`.

- `ping` is an actor in this process; `pong` is an actor in a separate OS process.
- Both sit under one supervisor (one_for_one): `ping` as an in-process actor child, the pong
  process as an OS-process child.
- Halfway through, ping kills the pong process with SIGKILL. Death watch tells ping at once,
  the supervisor starts a new pong process, the new pong says hello, and the game goes on.
- Both processes hold the same cluster token (``ACTORCORE_TOKEN`` if set, else a fresh one
  that ping hands to pong in its environment): each proves it to the other before any message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actorcore.cluster_files import new_token
from actorcore.env import TOKEN_ENV
from actorcore.kernel import Actor, ActorSystem, Terminated, run
from actorcore.kernel.supervision import actor_spec
from supervisor import Supervisor, process_spec

ROUNDS = 10


class Ping(Actor):
    def __init__(self, rounds: int, done: asyncio.Future) -> None:
        self.rounds = rounds
        self.done = done
        self.pong = None
        self.pong_pid = None
        self.killed_at = None

    async def receive(self, message):
        if self.done.done():
            return
        if isinstance(message, Terminated):
            print(f"ping: pong died ({message.reason}); its supervisor restarts it")
            return
        kind, *rest = message
        if kind == "hello":
            self.pong, self.pong_pid = rest
            self.context.watch(self.pong)
            if self.killed_at is None:
                self.pong.tell(("ping", 1))
            else:
                took = (time.perf_counter() - self.killed_at) * 1000
                print(f"ping: a new pong (pid {self.pong_pid}) said hello {took:.0f} ms after the kill")
                self.pong.tell(("ping", self.rounds // 2 + 1))
        elif kind == "pong":
            (n,) = rest
            print(f"ping: got pong {n} from pid {self.pong_pid}")
            if n == self.rounds:
                self.done.set_result(n)
            elif n == self.rounds // 2 and self.killed_at is None:
                print(f"ping: killing pong's process (pid {self.pong_pid}) with SIGKILL")
                self.killed_at = time.perf_counter()
                os.kill(self.pong_pid, signal.SIGKILL)
            else:
                self.pong.tell(("ping", n + 1))


class Pong(Actor):
    async def receive(self, message):
        _kind, n = message
        self.context.sender.tell(("pong", n))


async def pong_process(ping_uri: str) -> None:
    system = await ActorSystem.start(name="pong", token=os.environ[TOKEN_ENV])
    pong = system.spawn(Pong, name="pong")
    system.ref_from_uri(ping_uri).tell(("hello", pong, os.getpid()))
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    await system.shutdown()


async def main() -> None:
    token = os.environ.get(TOKEN_ENV) or new_token()
    system = await ActorSystem.start(name="ping", token=token)
    done = asyncio.get_running_loop().create_future()

    def pong_argv(info):
        return [sys.executable, __file__, "--pong", system.lookup("ping").to_uri()]

    tree = Supervisor(
        [actor_spec(system, "ping", Ping, ROUNDS, done),
         process_spec("pong", pong_argv, env={**os.environ, TOKEN_ENV: token})],
        strategy="one_for_one", max_restarts=3, period=10, name="ping-pong",
    )
    await tree.start()
    try:
        rounds = await asyncio.wait_for(done, 30)
        print(f"done: {rounds} rounds, pong restarted {tree.restart_count} time(s) by its supervisor")
    finally:
        await tree.shutdown()
        await system.shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--pong":
        run(pong_process(sys.argv[2]))
    else:
        run(main())
