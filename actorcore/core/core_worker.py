"""The CoreWorker: the runtime inside every driver and worker process, wired from its parts.

It submits tasks and actor calls, owns the objects this process creates, and answers other
processes' requests for them. Its state lives on the process's actor-system thread; user
code calls it from its own thread (the driver's main thread, a worker's execution thread).

Each role is a part with its collaborators given to its constructor:

- `Cluster` (cluster.py): the live nodes, what fits where, SPREAD's next node;
- `DeathWatch` (death_watch.py): which worker processes ended, and how;
- `ObjectTable` (object_table.py): owned objects, reference counts, pins, lineage, put/get/wait;
- `TaskManager` (task_manager.py): pending tasks and calls until their returns resolve;
- `TaskSubmitter` (task_submitter.py): worker leases, the hot path of tasks, retries;
- `ActorSubmitter` (actor_submitter.py): actor creation, calls in order, restarts, kill;
- `PlacementGroups` (placement_groups.py): the groups it owns (two-phase reservation,
  rescheduling) and where a task or actor of a group or node affinity goes;
- `StreamTable` (streams.py): the items of generator tasks, as they come.

The `CoreActor` receives what other processes and the node send, and hands each message to
the part whose role it is.
"""

from __future__ import annotations

import itertools
import os
import uuid

from ..env import TASK_EVENTS_ENV
from ..kernel import Actor, ActorRef, ActorSystem, Terminated
from ..node_config import NodeEndpoints
from ..protocol import (
    ActorWorkerExited,
    ClusterView,
    DescribeProcess,
    ExportFunction,
    GeneratorEnd,
    GeneratorItem,
    GeneratorResume,
    GetClusterResources,
    GetObject,
    GetResources,
    SubscribeView,
)
from .actor_submitter import ActorSubmitter
from .cluster import Cluster
from .death_watch import DeathWatch
from .messages import ActorExited, GroupQuery, KillActor, ResolveActor, ResolveRestartedActor, WatchActor
from .object_table import ObjectTable
from .placement_groups import PlacementGroups
from .runtime_envs import RuntimeEnvs
from .streams import StreamTable
from .task_events import TaskEvents
from .task_manager import TaskManager
from .task_submitter import TaskSubmitter

__all__ = ["CoreActor", "CoreWorker"]


class CoreActor(Actor):
    """This process's core actor: answers other processes and the node, part by part."""

    def __init__(self, core: CoreWorker) -> None:
        self.core = core

    async def receive(self, message):
        core = self.core
        if isinstance(message, GetObject):
            return await core.objects.payload_for_remote(message.object_id)
        if isinstance(message, ResolveActor):
            return await core.actors.resolve_for_remote(message.actor_id)
        if isinstance(message, KillActor):
            await core.actors.kill_owned(message.actor_id, message.no_restart)
            return True
        if isinstance(message, ActorExited):
            core.actors.exited(message.actor_id, message.cause)
            return True
        if isinstance(message, WatchActor):
            core.actors.answer_watch(message.actor_id, self.context.defer_reply())
            return None
        if isinstance(message, ResolveRestartedActor):
            core.actors.answer_restarted(message.actor_id, message.dead_worker, self.context.defer_reply())
            return None
        if isinstance(message, Terminated):
            core.deaths.on_terminated(message)
            core.actors.on_worker_ended(message)
            return None
        if isinstance(message, ClusterView):
            core.on_view(message)
            return None
        if isinstance(message, ActorWorkerExited):
            core.deaths.on_worker_exited(message)
            return None
        if isinstance(message, GroupQuery):
            reply = self.context.defer_reply()
            task = core.loop.create_task(core.groups.answer(message))
            task.add_done_callback(lambda t: reply.send(t.result()))
            return None
        if isinstance(message, DescribeProcess):
            return await core.describe(message.objects)
        return self._on_generator(message)

    def _on_generator(self, message):
        """The items of this process's generator tasks (streams.py)."""
        streams = self.core.streams
        if isinstance(message, GeneratorItem):
            streams.on_item(message)
            return True
        if isinstance(message, GeneratorEnd):
            retry = message.error is not None and self._retries_on(message)
            streams.on_end(message, retry)
            return retry
        if isinstance(message, GeneratorResume):
            return streams.resume(message)
        return None

    def _retries_on(self, end: GeneratorEnd) -> bool:
        """Whether the generator task of `end` runs again for the error its generator raised
        (`retry_exceptions`), as its task submitter decides when that error is its result."""
        pending = self.core.task_manager.task_of(f"{end.task_id}.0")
        return pending is not None and self.core.tasks._should_retry_exception(pending, [end.error])


class CoreWorker:
    """The parts of this process's runtime, and what identifies it.

    Made on the actor system's loop. ``node`` is how to reach the node's actors and what it
    holds; a cluster driver also passes the cluster's ``view`` (node id -> record) and its
    ``object_replicas`` setting (both kept current afterwards by the GcsLink's `ClusterView`).
    """

    def __init__(self, system: ActorSystem, node: NodeEndpoints, *, job_id: str, namespace: str,
                 is_driver: bool, view: dict[str, dict] | None = None, object_replicas: int = 1,
                 worker_id: str | None = None) -> None:
        self.system = system
        self.loop = system.loop
        self.node = node
        self.job_id = job_id
        #: the namespace of the code running now (a task runs in its submitter's)
        self.namespace = namespace
        self.is_driver = is_driver
        self.node_id: str = node.node_id
        self.cluster_mode = node.cluster_mode
        self.scheduler = system.ref_from_uri(node.scheduler)
        self.gcs = system.ref_from_uri(node.gcs)
        self.store = system.ref_from_uri(node.object_store)
        self.pool = system.ref_from_uri(node.pool) if node.pool else None
        self.prefix = worker_id or uuid.uuid4().hex[:10]  # a worker's: its id, named by its pool
        self._ids = itertools.count(1)
        self.exported: set[str] = set()
        self.hosted_actor_id: str | None = None  # set in a worker that hosts an actor
        self.actor_exit_requested = False  # exit_actor() was called in the hosted actor
        self.actor = system.spawn(CoreActor, self, name="core")
        self.task_events: TaskEvents | None = None
        if node.task_history and os.environ.get(TASK_EVENTS_ENV, "1") != "0":
            self.task_events = TaskEvents(self.loop, system.ref_from_uri(node.task_history), {
                "job_id": job_id, "node_id": node.node_id, "worker_id": self.prefix, "worker_pid": os.getpid()})
            self.task_events.start()

        self.runtime_envs = RuntimeEnvs(system, self.gcs, self.actor, self.scheduler)
        self.cluster = Cluster(system, node, view, object_replicas, self.scheduler, self.store)
        self.deaths = DeathWatch(system, self.actor)
        self.objects = ObjectTable(system, self.actor, self.node_id, self.store, self.scheduler, self.cluster,
                                   self.new_id)
        self.task_manager = TaskManager(self.objects, self.cluster_mode)
        self.tasks = TaskSubmitter(system, self.actor, self.scheduler, self.objects, self.task_manager, self.cluster,
                                   is_driver=is_driver, new_id=self.new_id, runtime_envs=self.runtime_envs)
        self.streams = StreamTable(system, self.actor, self.objects)
        self.objects.remake = self.tasks.resubmit  # lineage: lost returns are made by their task again
        self.groups = PlacementGroups(system, self.actor, self.cluster, self.objects, self.gcs)
        self.tasks.placements = self.groups  # where tasks of a group or node affinity go
        self.task_manager.events = self.task_events
        self.actors = ActorSubmitter(system, self.actor, self.gcs, self.pool, self.objects, self.task_manager,
                                     self.tasks, self.cluster, self.deaths, new_id=self.new_id)
        self.tasks.cancel_actor_call = self.actors.cancel_call
        if self.cluster_mode:
            self.gcs.tell(SubscribeView(self.actor))

    def stop_events(self) -> None:
        """Send the task events not sent yet, and stop sending (user thread, at shutdown)."""

        events = self.task_events
        if events is None:
            return

        async def stop() -> None:
            events.stop()

        self.system.run(stop(), timeout=5)

    async def describe(self, objects: bool) -> dict:
        """What this process is, and with `objects` what it owns (the state API's `DescribeProcess`)."""
        answer = {"worker_id": self.prefix, "pid": os.getpid(), "node_id": self.node_id, "job_id": self.job_id,
                  "is_driver": self.is_driver, "actor_id": self.hosted_actor_id}
        if objects:
            answer["objects"] = self.objects.describe()
            answer["placement_groups"] = await self.groups.answer(GroupQuery(None, wait=False))
        return answer

    def new_id(self, kind: str) -> str:
        """A new id, unique in the cluster: this process's prefix, `kind` ("t", "p", "a") and a count."""
        return f"{self.prefix}{kind}{next(self._ids):x}"

    def owns(self, owner: ActorRef) -> bool:
        """Whether `owner` (an ObjectRef's or handle's) is this process."""
        return owner == self.actor

    def export(self, function_id: str, blob: bytes) -> None:
        """Send a pickled function or class to the GCS once, before any task that uses it."""
        if function_id in self.exported:
            return
        self.gcs.tell(ExportFunction(function_id, blob))  # ordered before any task that uses it
        self.exported.add(function_id)

    def resources(self, available: bool) -> dict:
        """The cluster's resources: those free now (`available`) or the total."""
        if self.cluster_mode:
            return self.system.ask_sync(self.gcs, GetClusterResources(available), timeout=30)
        return self.system.ask_sync(self.scheduler, GetResources(available), timeout=30)

    def on_view(self, view: ClusterView) -> None:
        """The nodes changed: copies on dead nodes are dropped, leases recounted."""
        self.cluster.apply(view)
        self.groups.on_view(view)
        if view.dead:
            self.objects.drop_dead_locations(view.dead)
        self.tasks.refresh_capacity()
