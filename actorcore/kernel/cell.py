"""`ActorCell`: one actor's mailbox, run loop and lifecycle (restarts in place:
docs/supervision.md, "Supervised kernel actors").

The mailbox is a deque drained by one asyncio task per actor, one message at a time. The
task yields to the event loop every `THROUGHPUT` messages so a busy actor cannot starve the
others (Akka's dispatcher throughput). Measured on the 2-core dev machine: ~1 µs per local
tell end to end; a per-actor asyncio.Queue cost ~3x more.

States: running → (suspended: failed or paused, waiting for its supervisor) → running …
→ stopped. A supervisor restarts an actor in place: same cell, same id, same mailbox and
watchers; `pre_restart` runs on the old instance and `post_restart` on the new one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._logging import get_logger
from .actor import Actor, ActorContext
from .errors import ActorStoppedError
from .messages import FAILED, NORMAL, Terminated
from .ref import ActorRef, current_cell

if TYPE_CHECKING:
    from .system import ActorSystem

log = get_logger(__name__)

THROUGHPUT = 200
#: While an actor waits for its supervisor to restart it, at most this many messages wait
#: for the new incarnation (the stash is bounded); the rest are dead letters.
STASH_LIMIT = 10_000

RUNNING, SUSPENDED, STOPPED = "running", "suspended", "stopped"

#: A supervision hook decides what a failure means: "resume" (drop the message, go on),
#: "suspend" (wait for `restart()` or `request_stop()`), or "stop".
SupervisionHook = Callable[["ActorCell", BaseException], str]


class ActorCell:
    """One actor: its mailbox, the task that drains it, its current instance and its watchers."""

    __slots__ = (
        "system", "actor_id", "ref", "factory", "actor", "mailbox", "state", "sender", "reply",
        "incarnation", "watchers", "supervision", "termination", "suspended",
        "_wakeup", "_task", "_stop_reason", "_restart_cause", "_started", "_overflowed",
    )

    def __init__(
        self,
        system: ActorSystem,
        actor_id: str,
        factory: Callable[[], Actor],
        supervision: SupervisionHook | None = None,
    ) -> None:
        self.system = system
        self.actor_id = actor_id
        self.ref = ActorRef(system, system.address, actor_id)
        self.factory = factory
        self.actor: Actor | None = None
        self.mailbox: deque = deque()
        self.state = RUNNING
        self.sender: ActorRef | None = None
        self.reply = None  # the reply of the message being handled, unless deferred
        self.incarnation = 0
        self.watchers: dict[tuple, None] = {}
        self.supervision = supervision
        loop = system.loop
        self.termination: asyncio.Future[Terminated] = loop.create_future()
        #: resolved with the failure (or None) each time the cell becomes suspended
        self.suspended: asyncio.Future[BaseException | None] = loop.create_future()
        self._wakeup: asyncio.Future | None = None
        self._stop_reason: tuple[str, BaseException | None] | None = None
        self._restart_cause: tuple[BaseException | None] | None = None
        self._started = False
        self._overflowed = False
        self._task = loop.create_task(self._run(), name=f"actor:{actor_id}")

    # -- called from outside the cell's task --------------------------------------------

    def enqueue(self, message: Any, sender: ActorRef | None, reply) -> None:
        """Queue a message for the actor; a stopping actor's messages go to dead letters."""
        if self._stop_reason is not None:
            self.system._dead_letter(self.ref, message, reply)
            return
        if self.state is SUSPENDED and len(self.mailbox) >= STASH_LIMIT:
            self._stash_overflow(message, reply)
            return
        self.mailbox.append((message, sender, reply))
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set_result(None)

    def _stash_overflow(self, message: Any, reply) -> None:
        if not self._overflowed:
            self._overflowed = True
            log.warning(
                "actor is waiting to be restarted and its stash is full; messages go to dead letters",
                actor=self.actor_id, stash_limit=STASH_LIMIT,
            )
        self.system._dead_letter(self.ref, message, reply)

    def request_stop(self, reason: str = NORMAL, error: BaseException | None = None) -> asyncio.Future:
        """Stop after the current message; queued asks fail at once."""
        if self._stop_reason is None:
            self._stop_reason = (reason, error)
            self._fail_queued()
            self._wake()
        return self.termination

    def restart(self, cause: BaseException | None) -> None:
        """Replace the suspended instance with a new one from the factory."""
        self._restart_cause = (cause,)
        self._wake()

    def suspend(self) -> asyncio.Future:
        """Pause after the current message (for a sibling restart); resolves once paused."""
        if self.state is SUSPENDED:
            return self.suspended
        self._restart_cause = None
        self.state = SUSPENDED
        self._wake()
        return self.suspended

    def kill(self) -> None:
        """End at once, cancelling the message being handled; post_stop does not run."""
        if not self._task.done():
            self._task.cancel()

    # -- the cell's own task -------------------------------------------------------------

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set_result(None)

    def _fail_queued(self) -> None:
        mailbox = self.mailbox
        while mailbox:
            message, _, reply = mailbox.popleft()
            self.system._dead_letter(self.ref, message, reply)

    async def _run(self) -> None:
        current_cell.set(self)
        killed = False
        try:
            await self._start_instance(None, first=True)
            await self._loop()
        except asyncio.CancelledError:
            killed = True
        except BaseException as exc:  # a bug in the kernel itself: never lose it silently
            log.exception("actor cell crashed", actor=self.actor_id)
            self._stop_reason = self._stop_reason or (FAILED, exc)
        finally:
            await self._terminate(killed)

    async def _start_instance(self, cause: BaseException | None, first: bool) -> None:
        try:
            if not first:
                old = self.actor
                if old is not None:
                    try:
                        await old.pre_restart(cause)
                    except Exception:
                        log.exception("pre_restart failed", actor=self.actor_id)
                self.actor = None
                self.incarnation += 1
            actor = self.factory()
            if not isinstance(actor, Actor):
                raise TypeError(
                    f"actor factory for {self.actor_id} returned {type(actor).__qualname__}, "
                    "not an actorcore Actor"
                )
            actor.context = ActorContext(self)
            self.actor = actor
            if first:
                await actor.pre_start()
            else:
                await actor.post_restart(cause)
            self._started = True
            self._overflowed = False
            if self.state is not SUSPENDED:  # a suspend() during the start holds until the loop pauses
                self.state = RUNNING
        except Exception as exc:  # noqa: BLE001 - a failed start goes to the supervisor
            self._on_failure(exc)

    def _on_failure(self, exc: BaseException) -> None:
        decision = "stop"
        if self.supervision is not None:
            decision = self.supervision(self, exc)
        if decision == "resume" and self.actor is not None:
            return
        if decision == "suspend":
            self.state = SUSPENDED
            self._restart_cause = None
            if not self.suspended.done():
                self.suspended.set_result(exc)
            return
        log.error(
            "actor failed and stops", actor=self.actor_id, error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
        self.request_stop(FAILED, exc)

    async def _loop(self) -> None:
        mailbox = self.mailbox
        loop = self.system.loop
        while self._stop_reason is None:
            if self.state is SUSPENDED:
                if not self.suspended.done():
                    self.suspended.set_result(None)
                if self._restart_cause is None:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                (cause,) = self._restart_cause
                self._restart_cause = None
                self.suspended = loop.create_future()
                self.state = RUNNING
                await self._start_instance(cause, first=False)
                continue
            if not mailbox:
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            receive = self.actor.receive
            for _ in range(THROUGHPUT):
                message, self.sender, reply = mailbox.popleft()
                self.reply = reply
                try:
                    result = await receive(message)
                except asyncio.CancelledError:
                    if reply is not None and not reply.done():
                        reply.set_exception(ActorStoppedError(
                            f"actor {self.actor_id} was killed while handling {type(message).__qualname__}"
                        ))
                    raise
                except Exception as exc:  # noqa: BLE001 - a failure goes to the asker or the supervisor
                    if reply is None:
                        self._on_failure(exc)
                        break
                    if not reply.done():
                        reply.set_exception(exc)
                else:
                    reply = self.reply  # None when the handler deferred it
                    if reply is not None and not reply.done():
                        reply.set_result(result)
                if not mailbox or self.state is not RUNNING or self._stop_reason is not None:
                    break
            else:
                await asyncio.sleep(0)
        self.sender = None

    async def _terminate(self, killed: bool) -> None:
        reason, error = self._stop_reason or (NORMAL, None)
        self._stop_reason = self._stop_reason or (reason, error)
        self.state = STOPPED
        if not killed and self._started and self.actor is not None:
            try:
                await self.actor.post_stop()
            except Exception:
                log.exception("post_stop failed", actor=self.actor_id)
        self._fail_queued()
        terminated = Terminated(self.ref, reason, error)
        self.system._on_cell_terminated(self, terminated)
        if not self.suspended.done():
            self.suspended.set_result(error)
        if not self.termination.done():
            self.termination.set_result(terminated)


def stopped_error(ref: ActorRef, message: Any) -> ActorStoppedError:
    """The error an ask to a stopped actor fails with."""
    return ActorStoppedError(
        f"actor {ref.actor_id} is stopped; it will not handle {type(message).__qualname__}"
    )
