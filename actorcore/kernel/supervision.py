"""In-process actors as children of a `supervisor.Supervisor` (docs/supervision.md,
"Supervised kernel actors").

`actor_spec(system, id, factory, ...)` gives a `ChildSpec`; the supervisor starts, restarts
and stops the actor through the child protocol. A restart keeps the actor's id, ref, mailbox
and watchers: `pre_restart(cause)` runs on the failed instance and `post_restart(cause)` on
the new one; the message that failed is not handled again, the rest of the mailbox is.
Restarts within the supervisor's intensity are not deaths (no `Terminated`).

A decider maps a failure (an exception from a `tell` handler) to "resume" (drop the message
and carry on), "restart" (the default: report a crash to the supervisor) or "stop" (end the
actor; its exit counts as a crash for the restart type).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from supervisor import Backoff, ChildSpec, Exit, StartInfo

from .actor import Actor
from .cell import SUSPENDED, ActorCell
from .messages import FAILED, RESTARTS_EXHAUSTED
from .system import ActorSystem

DECISIONS = ("resume", "restart", "stop")
Decider = Callable[[BaseException], str]


def _always_restart(error: BaseException) -> str:
    return "restart"


class ActorChild:
    """One incarnation of a supervised actor, seen through the supervisor's child protocol."""

    def __init__(self, cell: ActorCell) -> None:
        self.cell = cell
        self.ref = cell.ref
        self._exit: asyncio.Future[Exit] = cell.system.loop.create_future()
        cell.termination.add_done_callback(self._on_terminated)

    def crashed(self, error: BaseException) -> None:
        """The actor failed and waits to be restarted: end this incarnation with that crash."""
        self._resolve(Exit("crashed", error=error))

    def _on_terminated(self, termination: asyncio.Future) -> None:
        terminated = termination.result()
        if terminated.reason == FAILED:
            self._resolve(Exit("crashed", error=terminated.error))
        else:
            self._resolve(Exit("normal", detail="the actor stopped"))

    def _resolve(self, exit: Exit) -> None:
        if not self._exit.done():
            self._exit.set_result(exit)

    def discard(self, why: Exit | None = None) -> None:
        """The supervisor will not restart this actor: it stops for good, with its failure."""
        cell = self.cell
        if cell.state is SUSPENDED:
            exit = self._exit.result() if self._exit.done() else None
            gave_up = why is not None and why.kind == "restarts_exhausted"
            cell.request_stop(RESTARTS_EXHAUSTED if gave_up else FAILED, exit.error if exit else None)

    async def wait(self) -> Exit:
        """The Exit of this incarnation: crashed, normal (the actor stopped itself) or shutdown."""
        return await asyncio.shield(self._exit)

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        """Stop the actor (suspend it when `restarting`), kill it after `timeout` s; return its Exit."""
        cell = self.cell
        if self._exit.done() and cell.state is SUSPENDED and restarting:
            return self._exit.result()
        done = cell.suspend() if restarting else cell.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            cell.kill()
            await asyncio.shield(cell.termination)
            self._resolve(Exit("shutdown", detail=f"killed after {timeout:g} s"))
        self._resolve(Exit("shutdown"))
        return self._exit.result()


def actor_spec(
    system: ActorSystem,
    id: str,
    factory: type[Actor] | Callable[..., Actor],
    *args: Any,
    restart: str = "permanent",
    shutdown: float | str | None = None,
    backoff: Backoff | None = None,
    decider: Decider = _always_restart,
    **kwargs: Any,
) -> ChildSpec:
    """A ChildSpec for an actor named `id` in `system`, built by `factory(*args, **kwargs)`."""
    current: list[ActorChild | None] = [None]

    def supervise(cell: ActorCell, error: BaseException) -> str:
        decision = decider(error)
        if decision not in DECISIONS:
            raise ValueError(f"decider for actor {id!r} returned {decision!r}; use one of {DECISIONS}")
        if decision == "restart" and current[0] is not None:
            current[0].crashed(error)
            return "suspend"
        return decision

    def start(info: StartInfo) -> ActorChild:
        previous = current[0]
        cell = previous.cell if previous is not None else None
        if cell is not None and cell.state is SUSPENDED and system._cells.get(id) is cell:
            cause = info.cause.error if info.cause is not None else None
            child = ActorChild(cell)
            current[0] = child
            cell.restart(cause)
        else:
            ref = system.spawn(factory, *args, name=id, supervision=supervise, **kwargs)
            child = current[0] = ActorChild(system.cell(ref))
        return child

    return ChildSpec(id=id, start=start, restart=restart, shutdown=shutdown, backoff=backoff)
