"""The owner protocol: what other processes ask the owner of an actor (its CoreWorker's core actor).

The owner of an actor is the process that created it; a process holding a handle it got from
elsewhere (a borrower) asks the owner where the actor lives, to kill it, or to be told when it
is dead for good. The owner of a placement group is asked where its bundles are
(`GroupQuery`). Objects are asked for with `actorcore.protocol.GetObject`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ActorExited", "GroupQuery", "KillActor", "ResolveActor", "ResolveRestartedActor", "WatchActor"]


@dataclass(frozen=True, slots=True)
class ResolveActor:
    """Where does actor `actor_id` live now? Answered, once it is not restarting, with
    ``(worker ref or None, pid or None, the error it died of or None)``."""

    actor_id: str


@dataclass(frozen=True, slots=True)
class KillActor:
    """`kill()` by a borrower: the owner ends the actor (and decides about its restart)."""

    actor_id: str
    no_restart: bool


@dataclass(frozen=True, slots=True)
class WatchActor:
    """`watch()` by a borrower: answered with the reason (a str) once the actor is dead for good."""

    actor_id: str


@dataclass(frozen=True, slots=True)
class GroupQuery:
    """Where are the bundles of placement group `group_id`? Answered, once it is placed
    (`wait`; else at once), with its `placement_group_table` record, or with the error saying
    it never will be. `remove`: remove it (answered with None)."""

    group_id: str
    wait: bool = True
    remove: bool = False


@dataclass(frozen=True, slots=True)
class ResolveRestartedActor:
    """A borrower's call was in flight when `dead_worker`, the process of actor `actor_id`,
    died: where does it live now? Answered once the owner has restarted it or given up, with
    ``(worker ref or None, pid or None, the error it died of or None, its max_task_retries)``."""

    actor_id: str
    dead_worker: object  # an ActorRef


@dataclass(frozen=True, slots=True)
class ActorExited:
    """An actor ends itself on purpose (`exit_actor()`): its worker tells the owner, before
    its process ends, that it is dead for good with `cause` (no restart). Answered with True."""

    actor_id: str
    cause: str
