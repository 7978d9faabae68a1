"""The child protocol: what a supervisor starts, watches and stops (docs/supervision.md,
"The child protocol").

A supervisor knows nothing about what its children are. It only needs:

- :class:`ChildSpec` — policy as data: an id, a start factory, a restart type, a shutdown
  policy, a type (worker or supervisor) and an optional :class:`~supervisor.backoff.Backoff`;
- :class:`Child` — one running *incarnation* returned by the factory: ``wait()`` resolves with
  an :class:`Exit` when it ends, ``shutdown(timeout)`` asks it to stop and kills it after
  ``timeout``;
- :class:`StartInfo` — what the factory is told: the incarnation number, why the previous
  incarnation ended, and the arguments of a ``simple_one_for_one`` child.

The actor kernel plugs in-process actors in through this protocol, :mod:`supervisor.process`
plugs OS processes in, and :class:`~supervisor.supervisor.Supervisor` itself implements
:class:`Child` so trees nest.
"""

from __future__ import annotations

import math
import signal as _signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

from .backoff import Backoff

__all__ = [
    "CHILD_TYPES",
    "EXIT_KINDS",
    "RESTART_TYPES",
    "Child",
    "ChildSpec",
    "ChildType",
    "Exit",
    "ExitKind",
    "RestartType",
    "ShutdownPolicy",
    "StartFn",
    "StartInfo",
]

ExitKind = Literal["normal", "shutdown", "crashed", "killed", "restarts_exhausted"]
RestartType = Literal["permanent", "transient", "temporary"]
ChildType = Literal["worker", "supervisor"]
ShutdownPolicy = float | Literal["brutal_kill", "infinity"]

EXIT_KINDS: tuple[str, ...] = get_args(ExitKind)
RESTART_TYPES: tuple[str, ...] = get_args(RestartType)
CHILD_TYPES: tuple[str, ...] = get_args(ChildType)
_SHUTDOWN_WORDS = ("brutal_kill", "infinity")

#: Default shutdown timeout (seconds) of a worker child; supervisors default to "infinity".
DEFAULT_WORKER_SHUTDOWN = 5.0


def _signal_name(signum: int) -> str:
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True)
class Exit:
    """Why one incarnation of a child ended.

    ``kind``:
      - ``"normal"``: it finished by itself (exit code 0, the actor stopped itself);
      - ``"shutdown"``: its supervisor (or owner) asked it to stop;
      - ``"crashed"``: an exception or a non-zero exit code;
      - ``"killed"``: a signal nobody on our side sent (kill -9, the OOM killer);
      - ``"restarts_exhausted"``: it was a supervisor that gave up (restart intensity exceeded).

    Only ``normal`` and ``shutdown`` are not :attr:`abnormal`.
    """

    kind: ExitKind
    code: int | None = None
    signal: int | None = None
    error: BaseException | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EXIT_KINDS:
            raise ValueError(
                f"Exit: kind={self.kind!r} is not valid; use one of {', '.join(map(repr, EXIT_KINDS))}"
            )

    @property
    def abnormal(self) -> bool:
        """True unless the child ended normally or because it was asked to stop."""
        return self.kind not in ("normal", "shutdown")

    @classmethod
    def from_returncode(cls, returncode: int, detail: str = "") -> Exit:
        """The exit of an OS process nobody asked to stop (asyncio's ``returncode`` convention)."""
        if returncode == 0:
            return cls("normal", code=0, detail=detail)
        if returncode < 0:
            return cls("killed", signal=-returncode, detail=detail)
        return cls("crashed", code=returncode, detail=detail)

    def __str__(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(f"exit code {self.code}")
        if self.signal is not None:
            parts.append(f"by {_signal_name(self.signal)}")
        if self.error is not None:
            text = str(self.error)
            parts.append(f"{type(self.error).__name__}: {text}" if text else type(self.error).__name__)
        if self.detail:
            parts.append(self.detail)
        return self.kind + (" (" + "; ".join(parts) + ")" if parts else "")


@runtime_checkable
class Child(Protocol):
    """One running incarnation of a supervised child.

    ``wait()`` resolves with the :class:`Exit` when the incarnation ends for any reason and
    may be awaited any number of times (always the same Exit).

    ``shutdown(timeout)`` asks it to stop, waits up to ``timeout`` seconds (``None``: forever;
    ``0``: kill at once), then kills it, and returns the same Exit as ``wait()``. If it had
    already ended it returns that exit. ``restarting=True`` says it is being stopped only to be
    restarted as part of a ``one_for_all``/``rest_for_one`` restart (an actor keeps its mailbox
    and watchers).

    Optional: ``discard(why)``, called once when an incarnation has ended and the supervisor
    will not start the child again (its restart type, intensity exceeded, the supervisor
    stopping); ``why`` is the supervisor's own Exit when it is ending, else None.
    A child that outlives its incarnation to be restarted in place (an actor that keeps its
    mailbox) releases itself there; OS processes need nothing.
    """

    async def wait(self) -> Exit:
        """The :class:`Exit` of this incarnation, once it has ended (the same one at every call)."""

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        """Ask the incarnation to stop, kill it after ``timeout`` seconds, and return its :class:`Exit`."""


@dataclass(frozen=True)
class StartInfo:
    """What a spec's start factory is told about the incarnation it must start.

    ``incarnation``: 0 at the first start, +1 at each successful restart (a failed start
    attempt is retried with the same number). ``cause``: why the previous incarnation ended
    (``None`` at the first start). ``args``: the arguments given to ``start_child`` of a
    ``simple_one_for_one`` supervisor (``()`` otherwise).
    """

    incarnation: int = 0
    cause: Exit | None = None
    args: tuple = ()


StartFn = Callable[[StartInfo], Child | Awaitable[Child]]


@dataclass(frozen=True)
class ChildSpec:
    """How to start, restart and stop one child. Policy is data: read it, print it, test it.

    - ``id``: unique among the supervisor's children;
    - ``start``: ``start(StartInfo) -> Child`` (or an awaitable of one);
    - ``restart``: ``"permanent"`` (always restarted), ``"transient"`` (only after an abnormal
      exit) or ``"temporary"`` (never, and removed when a sibling strategy stops it);
    - ``shutdown``: seconds to wait after asking it to stop before killing it,
      ``"brutal_kill"`` (kill at once) or ``"infinity"``; defaults to 5.0 for a worker and
      ``"infinity"`` for a supervisor (leaving it ``None`` picks that default);
    - ``type``: ``"worker"`` or ``"supervisor"``;
    - ``backoff``: an optional :class:`Backoff` delaying its restarts.
    """

    id: str
    start: StartFn
    restart: RestartType = "permanent"
    shutdown: ShutdownPolicy | None = None
    type: ChildType = "worker"
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec: id={self.id!r} is not valid; give a non-empty string")
        where = f"ChildSpec {self.id!r}"
        if not callable(self.start):
            raise TypeError(
                f"{where}: start={self.start!r} is not callable; give a function "
                "start(StartInfo) -> Child (or a coroutine function returning one)"
            )
        if self.restart not in RESTART_TYPES:
            raise ValueError(
                f"{where}: restart={self.restart!r} is not valid; "
                f"use one of {', '.join(map(repr, RESTART_TYPES))}"
            )
        if self.type not in CHILD_TYPES:
            raise ValueError(
                f"{where}: type={self.type!r} is not valid; use one of {', '.join(map(repr, CHILD_TYPES))}"
            )
        if self.shutdown is None:
            object.__setattr__(
                self, "shutdown", "infinity" if self.type == "supervisor" else DEFAULT_WORKER_SHUTDOWN
            )
        elif isinstance(self.shutdown, str):
            if self.shutdown not in _SHUTDOWN_WORDS:
                raise ValueError(
                    f"{where}: shutdown={self.shutdown!r} is not valid; use a timeout in seconds "
                    "(a number >= 0), 'brutal_kill' or 'infinity'"
                )
        elif (
            isinstance(self.shutdown, bool)
            or not isinstance(self.shutdown, (int, float))
            or math.isnan(self.shutdown)
            or self.shutdown < 0
        ):
            raise ValueError(
                f"{where}: shutdown={self.shutdown!r} is not valid; use a timeout in seconds "
                "(a number >= 0), 'brutal_kill' or 'infinity'"
            )
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(
                f"{where}: backoff={self.backoff!r} is not a Backoff; "
                "use supervisor.Backoff(min=..., max=..., jitter=..., reset_after=...) or None"
            )

    @property
    def shutdown_timeout(self) -> float | None:
        """The ``timeout`` argument for :meth:`Child.shutdown`: seconds, 0 (brutal_kill) or None (infinity)."""
        if self.shutdown == "brutal_kill":
            return 0.0
        if self.shutdown == "infinity" or self.shutdown == math.inf:
            return None
        return float(self.shutdown)  # type: ignore[arg-type]
