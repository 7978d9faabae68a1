"""The `Actor` base class and the context an actor sees.

An actor handles one message at a time in `receive`; what `receive` returns is the reply to
an `ask` (and is dropped for a `tell`). An exception raised for an `ask` goes back to the
caller and the actor carries on (errors are not failures); an exception raised for a `tell` is
a failure: the actor stops, or its supervisor restarts it (docs/supervision.md, "Supervised
kernel actors").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ref import ActorRef
    from .system import ActorSystem


class Actor:
    """Subclass and implement `async def receive(self, message)`."""

    context: ActorContext

    async def receive(self, message: Any) -> Any:
        """Handle one message; the value returned is the reply to an ask (dropped for a tell)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement async receive(message)")

    async def pre_start(self) -> None:
        """Runs before the first message of the first incarnation."""

    async def post_stop(self) -> None:
        """Runs once the actor has stopped for good (not when it is killed)."""

    async def pre_restart(self, cause: BaseException | None) -> None:
        """Runs on the failed incarnation before a supervisor replaces it; default: post_stop."""
        await self.post_stop()

    async def post_restart(self, cause: BaseException | None) -> None:
        """Runs on the new incarnation before it takes messages; default: pre_start."""
        await self.pre_start()

    @property
    def self_ref(self) -> ActorRef:
        """This actor's own ref (the same as ``context.self_ref``)."""
        return self.context.self_ref


class ActorContext:
    """What an actor can do besides handling its message: its ref, the sender, death watch."""

    __slots__ = ("_cell",)

    def __init__(self, cell) -> None:
        self._cell = cell

    @property
    def self_ref(self) -> ActorRef:
        """The ref of the actor this context belongs to."""
        return self._cell.ref

    @property
    def system(self) -> ActorSystem:
        """The actor system the actor runs in."""
        return self._cell.system

    @property
    def sender(self) -> ActorRef | None:
        """The actor that sent the message being handled, if it was sent by one."""
        return self._cell.sender

    @property
    def incarnation(self) -> int:
        """0 for the first instance, +1 each time a supervisor restarts the actor in place."""
        return self._cell.incarnation

    def defer_reply(self) -> Reply:
        """Answer the current ask later, through the returned `Reply`, not with receive's value.

        For a tell it returns a Reply that goes nowhere.
        """
        cell = self._cell
        reply, cell.reply = cell.reply, None
        return Reply(reply)

    def watch(self, ref: ActorRef) -> None:
        """Deliver `Terminated(ref, reason)` to this actor once `ref` ends (at once if it has)."""
        self._cell.system._watch(("actor", self._cell.actor_id), ref)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching `ref`: no `Terminated` for it will be delivered after this call."""
        self._cell.system._unwatch(("actor", self._cell.actor_id), ref)

    def stop(self) -> None:
        """Stop this actor after the current message."""
        self._cell.request_stop()


class Reply:
    """The answer to one ask, given later (see `ActorContext.defer_reply`)."""

    __slots__ = ("_target",)

    def __init__(self, target) -> None:
        self._target = target

    def send(self, value: Any) -> None:
        """Answer the ask with `value` (no-op if it is already answered or was a tell)."""
        target = self._target
        if target is not None and not target.done():
            target.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Answer the ask with `error`, raised in the caller (no-op if it is already answered)."""
        target = self._target
        if target is not None and not target.done():
            target.set_exception(error)

    @property
    def done(self) -> bool:
        """True once the ask has been answered, or if there is nobody to answer."""
        return self._target is None or self._target.done()
