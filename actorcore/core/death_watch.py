"""Death watch of processes: when a worker (or node) process this process depends on has ended.

The core actor watches the workers of the actors it calls (the kernel then sends it
`Terminated`), and each node's Scheduler tells it how an actor's process exited
(`ActorWorkerExited`). This part keeps what that taught: which workers are gone, how a
process ended, and who waits for either. Whether an *actor* is dead for good (restarts are not
deaths) is the actor submitter's knowledge, built on this.
"""

from __future__ import annotations

import asyncio

from ..kernel import ActorRef, ActorSystem, Terminated
from ..protocol import ActorWorkerExited, ExitWorker

__all__ = ["DeathWatch"]

#: how many exit statuses of ended processes are remembered
EXITS_KEPT = 1000


class DeathWatch:
    """Ended worker processes, their exit statuses, and waiters for either."""

    def __init__(self, system: ActorSystem, watcher: ActorRef) -> None:
        self._system = system
        self._loop = system.loop
        self._watcher = watcher  # the core actor: the kernel sends it `Terminated`
        self._dead_workers: set[ActorRef] = set()
        self._waiters: dict[ActorRef, list[tuple[asyncio.Future, str]]] = {}
        self._exits: dict[int, str] = {}  # pid -> how its process ended (from its Scheduler)
        self._exit_waiters: dict[int, asyncio.Future] = {}
        self._stopping: dict[ActorRef, asyncio.Future] = {}  # processes ended on purpose

    def watch(self, worker: ActorRef) -> None:
        """Have the core actor told (`Terminated`) when `worker` ends."""
        self._system._watch(("actor", self._watcher.actor_id), worker)

    def is_dead(self, worker: ActorRef) -> bool:
        """Whether `worker` was seen ending (a handle's hint naming it is stale)."""
        return worker in self._dead_workers

    def on_terminated(self, terminated: Terminated) -> None:
        """`terminated.ref` ended: wake whoever waits for it."""
        self._dead_workers.add(terminated.ref)
        for waiter, what in self._waiters.pop(terminated.ref, ()):
            if not waiter.done():
                waiter.set_result(f"{what} ended ({terminated.reason})")
        stopping = self._stopping.get(terminated.ref)
        if stopping is not None and not stopping.done():
            stopping.set_result(None)

    def on_worker_exited(self, message: ActorWorkerExited) -> None:
        """A Scheduler says how the process `message.pid` ended."""
        self._exits[message.pid] = message.how
        waiter = self._exit_waiters.get(message.pid)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if len(self._exits) > EXITS_KEPT:
            self._exits.pop(next(iter(self._exits)))

    def exit_of(self, pid: int | None) -> str | None:
        """How process `pid` ended, if its Scheduler said so (else None)."""
        return self._exits.get(pid)

    async def wait_exit(self, pid: int, timeout: float) -> None:
        """Wait up to `timeout` seconds for the exit status of process `pid`."""
        if pid in self._exits:
            return
        told = self._exit_waiters.setdefault(pid, self._loop.create_future())
        try:
            await asyncio.wait_for(asyncio.shield(told), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._exit_waiters.pop(pid, None)

    async def process_death(self, worker: ActorRef, what: str = "its worker process") -> str:
        """The reason, once the process of ``worker`` (described as ``what``) has ended, or its
        node is dead."""
        if worker in self._dead_workers:
            return f"{what} ended"
        waiter = self._loop.create_future()
        self._waiters.setdefault(worker, []).append((waiter, what))
        self.watch(worker)
        return await waiter

    async def stop(self, worker: ActorRef, timeout: float | None) -> bool:
        """Ask `worker`'s process to exit and wait until it has; False if it had not within
        `timeout` seconds."""
        stopped = self._stopping[worker] = self._loop.create_future()
        worker.tell(ExitWorker())
        try:
            await asyncio.wait_for(stopped, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._stopping.pop(worker, None)
