"""The CoreWorker: the runtime inside every driver and worker process (DESIGN.md §2, §5, §8).

It submits tasks and actor calls, owns the objects this process creates, and answers other
processes' requests for them. Its state lives on the process's actor-system thread; user
code calls it from its own thread (the driver's main thread, a worker's execution thread).

Its three roles live in their own modules and are mixed in here: `ownership.py` (the object
table, put/get/wait), `task_submission.py` (leases, the hot path of tasks, retries) and
`actor_submission.py` (creating and calling actors). This module holds the shared state and
the `CoreActor` that answers other processes.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

from .actor_submission import ActorState, ActorSubmission
from .kernel import Actor, ActorRef, ActorSystem, Terminated
from .node.config import NodeEndpoints
from .ownership import Entry, ObjectOwnership
from .protocol import (
    ActorWorkerExited,
    ClusterView,
    GetClusterResources,
    GetObject,
    GetResources,
    SubscribeLogs,
    SubscribeView,
)
from .task_submission import PendingTask, ShapeQueue, TaskSubmission

__all__ = ["CoreWorker"]


class CoreActor(Actor):
    """Answers other processes: object requests, actor lookups for borrowed handles."""

    def __init__(self, core: CoreWorker) -> None:
        self.core = core

    async def receive(self, message):
        if isinstance(message, GetObject):
            return await self.core._payload_for_remote(message.object_id)
        if isinstance(message, tuple) and message[0] == "resolve_actor":
            return await self.core._resolve_actor_for_remote(message[1])
        if isinstance(message, tuple) and message[0] == "kill_actor":  # from a borrower's kill()
            state = self.core.actors.get(message[1])
            if state is not None:
                await self.core._kill_actor(message[1], state.name, self.core.actor, None, message[2])
            return True
        if isinstance(message, tuple) and message[0] == "watch_actor":  # actorcore.watch() by a borrower
            from .supervision import answer_watch

            answer_watch(self.core, message[1], self.context.defer_reply())
            return None
        if isinstance(message, Terminated):
            self.core._on_terminated(message)
            return None
        if isinstance(message, ClusterView):
            self.core._on_view(message)
            return None
        if isinstance(message, ActorWorkerExited):
            self.core._on_worker_exited(message)
            return None
        return None


class CoreWorker(ObjectOwnership, TaskSubmission, ActorSubmission):
    def __init__(self, system: ActorSystem, node: NodeEndpoints, *, job_id: str, namespace: str,
                 is_driver: bool, view: dict[str, dict] | None = None, object_replicas: int = 1) -> None:
        self.system = system
        self.loop = system.loop
        self.node = node
        self.job_id = job_id
        self.namespace = namespace
        self.is_driver = is_driver
        self.session = node.node_id
        self.node_id = node.node_id
        self.scheduler = system.ref_from_uri(node.scheduler)
        self.gcs = system.ref_from_uri(node.gcs)
        self.store = system.ref_from_uri(node.object_store)
        self.pool = system.ref_from_uri(node.pool) if node.pool else None
        self.actor = system.spawn(CoreActor, self, name="core")
        self.objects: dict[str, Entry] = {}
        self.queues: dict[tuple, ShapeQueue] = {}
        self.tasks: dict[str, PendingTask] = {}  # by return object id
        self.lineage: dict[str, PendingTask] = {}  # large task returns -> the finished task
        self.actors: dict[str, ActorState] = {}
        self._actor_chains: dict[str, asyncio.Task] = {}  # the last call sent to each actor
        self._unsent = 0  # actor calls submitted but not yet sent
        self._after_sent: list = []
        self.exported: set[str] = set()
        self.prefix = uuid.uuid4().hex[:10]
        self._ids = itertools.count(1)
        self.current_lease: int | None = None  # set in workers while a task runs
        self.hosted_actor_id: str | None = None  # set in a worker that hosts an actor
        self._infeasible_warned: set = set()
        self._feasible_shapes: set = set()  # shapes some node of `view` can hold (a cache)
        self._idle_timer = None
        #: clusters: the live nodes' records (gcs/schema.py), kept current by the GcsLink
        self.cluster_mode = node.cluster_mode
        self.object_replicas = object_replicas
        self.view: dict[str, dict] = view or {self.node_id: {"resources": node.resources, "uris": node.uris()}}
        self._spread_next = 0
        self._dead_workers: set[ActorRef] = set()  # actor workers seen dying: no longer hints
        self._worker_waiters: dict[ActorRef, list[tuple[asyncio.Future, str]]] = {}  # process_death()
        self._dead_nodes: set[str] = set()
        self._exits: dict[int, str] = {}  # pid -> how an actor's process ended (from its Scheduler)
        self._exit_waiters: dict[int, asyncio.Future] = {}  # actors dead for good awaiting that
        self._stopping: dict[ActorRef, asyncio.Future] = {}  # actor processes ended on purpose
        self.log_sink: ActorRef | None = None  # a cluster driver's: every node's workers print to it
        self._log_nodes: set[str] = set()
        if self.cluster_mode:
            self.gcs.tell(SubscribeView(self.actor))

    # -- identity -------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        return f"{self.prefix}{kind}{next(self._ids):x}"

    def owns(self, owner: ActorRef) -> bool:
        return owner == self.actor

    # -- resources, misc ---------------------------------------------------------------------

    def resources(self, available: bool) -> dict:
        if self.cluster_mode:
            return self.system.ask_sync(self.gcs, GetClusterResources(available), timeout=30)
        return self.system.ask_sync(self.scheduler, GetResources(available), timeout=30)

    # -- the cluster's nodes --------------------------------------------------------------

    def _on_view(self, view: ClusterView) -> None:
        own_host = self.view.get(self.node_id, {}).get("host_id")
        dead_hosts = {node_id: self.view.get(node_id, {}).get("host_id") for node_id in view.dead}
        self._dead_nodes.update(view.dead)
        if view.nodes:
            self.view = dict(view.nodes)
            self._feasible_shapes = set()
        for node_id, host in dead_hosts.items():
            if host and host != own_host:  # its work fails over now, not when TCP gives up
                self.system.disconnect_host(host, f"its node {node_id} was declared dead (its etcd lease expired)")
        self.object_replicas = view.object_replicas
        if view.dead:
            self._drop_dead_locations(view.dead)
        if self.log_sink is not None:
            for node_id in set(self.view) - self._log_nodes:
                pool = self._node_ref(node_id, "pool")
                if pool is not None:
                    pool.tell(SubscribeLogs(self.log_sink))
                    self._log_nodes.add(node_id)
        for queue in self.queues.values():
            queue.capacity = self._capacity(*queue.shape)
            self._pump(queue)

    def _node_ref(self, node_id: str, role: str) -> ActorRef | None:
        if node_id == self.node_id and role in ("scheduler", "object_store"):
            return self.scheduler if role == "scheduler" else self.store
        uri = self.view.get(node_id, {}).get("uris", {}).get(role)
        return self.system.ref_from_uri(uri) if uri else None

    def store_of(self, node_id: str) -> ActorRef | None:
        return self._node_ref(node_id, "object_store")

    def stores(self) -> list[ActorRef]:
        return [store for store in (self.store_of(node_id) for node_id in self.view) if store is not None]

    def _on_terminated(self, terminated: Terminated) -> None:
        self._dead_workers.add(terminated.ref)
        for waiter, what in self._worker_waiters.pop(terminated.ref, ()):
            if not waiter.done():
                waiter.set_result(f"{what} ended ({terminated.reason})")
        stopping = self._stopping.get(terminated.ref)
        if stopping is not None and not stopping.done():
            stopping.set_result(None)
        for state in list(self.actors.values()):
            if state.worker != terminated.ref or state.dead is not None:
                continue
            cause = self._death_cause(state, terminated.reason)
            if state.owned:
                self._actor_worker_died(state, cause)
            else:  # a borrowed handle: the next call asks the owner where the actor lives now
                del self.actors[state.actor_id]

    def _death_cause(self, state, reason: str = "peer_lost") -> str:
        if state.node_id in self._dead_nodes:
            return f"its node ({state.node_id}) died"
        if reason == "peer_lost":
            how = self._exits.get(state.pid)
            return f"its worker process (pid {state.pid}) died" + (f": {how}" if how else "")
        return str(reason)

    def _on_worker_exited(self, message) -> None:
        self._exits[message.pid] = message.how
        waiter = self._exit_waiters.get(message.pid)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if len(self._exits) > 1000:
            self._exits.pop(next(iter(self._exits)))

    async def process_death(self, worker: ActorRef, what: str = "its worker process") -> str:
        """The reason, once the process of ``worker`` (``what``) has ended, or its node is dead."""
        if worker in self._dead_workers:
            return f"{what} ended"
        waiter = self.loop.create_future()
        self._worker_waiters.setdefault(worker, []).append((waiter, what))
        self._watch(worker)
        return await waiter

    def _watch(self, ref: ActorRef) -> None:
        """Death watch by the core actor: `_on_terminated` marks the actors on `ref` dead."""
        self.system._watch(("actor", self.actor.actor_id), ref)
