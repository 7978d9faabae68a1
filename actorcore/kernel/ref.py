"""`ActorRef`: the address of an actor, local or remote (location transparency).

A ref is cheap, hashable and picklable; unpickled in another process it binds to that
process's actor system, so refs can travel inside messages.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from . import current
from .address import Address
from .errors import ActorSystemError

if TYPE_CHECKING:
    import asyncio

    from .cell import ActorCell
    from .system import ActorSystem

#: The cell whose message is being handled in this task (the implicit sender of a tell).
current_cell: contextvars.ContextVar[ActorCell | None] = contextvars.ContextVar(
    "actorcore_current_cell", default=None
)

DEFAULT_ASK_TIMEOUT = 30.0


class ActorRef:
    """The address of one actor; `tell` and `ask` reach it wherever it runs."""

    # __slots__: a ref is created per remote sender on the receive path.
    __slots__ = ("address", "actor_id", "_system", "_local")

    def __init__(self, system: ActorSystem, address: Address, actor_id: str) -> None:
        self.address = address
        self.actor_id = actor_id
        self._system = system
        self._local = address.system_id == system.id

    def tell(self, message: Any, sender: ActorRef | None = None) -> None:
        """Send without waiting (at most once, FIFO per sender). Callable from any thread."""
        if sender is None:
            cell = current_cell.get()
            if cell is not None:
                sender = cell.ref
        system = self._system
        if system._thread_id != threading.get_ident():
            system._call_threadsafe(self._tell_prepared(message, sender))
            return
        if self._local:
            cell = system._cells.get(self.actor_id)
            if cell is not None:
                cell.enqueue(message, sender, None)
            else:
                system._dead_letter(self, message)
        else:
            system._remote.tell(self, message, sender)

    def _tell_prepared(self, message: Any, sender: ActorRef | None):
        """For a tell from another thread: pickle now (errors reach the caller), send in the loop."""
        if self._local:
            return lambda: self.tell(message, sender)
        payload = self._system._remote.encode(self, message)
        return lambda: self._system._remote.tell_encoded(self, payload, sender)

    def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> asyncio.Future:
        """Send and return a future of the reply (the value `receive` returned, or its error).

        Raises `AskTimeoutError` after `timeout` seconds (None: no limit) and
        `ActorStoppedError` at once when the actor is or becomes stopped. Call it in the
        actor system's event loop.
        """
        system = self._system
        if system._thread_id != threading.get_ident():
            raise ActorSystemError(
                "ActorRef.ask must be called in the actor system's event loop; from another "
                "thread wrap it in a coroutine and use system.run(coroutine)"
            )
        cell = current_cell.get()
        sender = cell.ref if cell is not None else None
        if self._local:
            return system._ask_local(self, message, sender, timeout)
        return system._remote.ask(self, message, sender, timeout)

    def stop(self) -> None:
        """Ask the actor to stop after its current message."""
        self._system._call_threadsafe(lambda: self._system._stop_ref(self))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ActorRef)
            and other.actor_id == self.actor_id
            and other.address.system_id == self.address.system_id
        )

    def __hash__(self) -> int:
        return hash((self.address.system_id, self.actor_id))

    def __repr__(self) -> str:
        return f"ActorRef({self.actor_id}@{self.address.system_id})"

    def __reduce__(self):
        return (_restore_ref, (tuple(self.address), self.actor_id))

    def to_uri(self) -> str:
        """A string another process can turn back into this ref with `ActorSystem.ref_from_uri`."""
        a = self.address
        return (
            f"actorcore://{quote(a.system_id)}/{quote(self.actor_id)}"
            f"?host={quote(a.host_id)}&tcp={quote(a.tcp)}&uds={quote(a.uds)}"
        )


def parse_uri(uri: str) -> tuple[Address, str]:
    """The address and actor id of a URI made by `ActorRef.to_uri`; raises ValueError if it is not one."""
    parts = urlsplit(uri)
    if parts.scheme != "actorcore" or not parts.netloc or len(parts.path) < 2:
        raise ValueError(f"not an actor URI: {uri!r} (expected actorcore://<system>/<actor>?...)")
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    address = Address(unquote(parts.netloc), query.get("host", ""), query.get("tcp", ""), query.get("uds", ""))
    return address, unquote(parts.path[1:])  # `to_uri` quoted them (an actor named "job:1" is "job%3A1")


def _restore_ref(address: tuple, actor_id: str) -> ActorRef:
    return ActorRef(current.get(), Address(*address), actor_id)
