"""The Scheduler actor: worker leases for resource shapes.

A submitter asks for a lease (`RequestLease`); the Scheduler answers when the node has the
resources and an idle worker, holding the resources until the lease is returned. Requests it
cannot grant yet wait in FIFO order per shape; a request no node could ever satisfy warns once
and waits. A leased worker blocked in `get` lends its CPUs back (`LeaseBlocked`), so nested
tasks cannot deadlock the pool; the pool then starts extra workers. A lease of a shape with GPUs
also holds GPU devices by id (`GpuDevices`), named in its `LeaseGranted`.

The Scheduler is not on the per-task path: a submitter keeps its lease for as long as it has
tasks of that shape.

In a cluster it knows the other nodes (`ClusterView` from the GcsLink) and what they have free
(`NodeLoad`, as they publish it, throttled): a request this node can never satisfy, or cannot
satisfy now while another node has room, is answered with `Spillback` to that node's
Scheduler (the submitter asks there, with `spillable=False`: one hop). It publishes its own
free resources through the GcsLink whenever they change.

It also holds placement group bundles (docs/architecture.md, "Placement groups"): a bundle
is prepared (its resources set aside), then committed (turned into resources named after the
group and bundle, which the group's leases take like any custom resource), and released when
the group is removed or rescheduled, killing the workers leased against it.

And it holds resources with no worker (`HoldResources`): what a submitted job's entrypoint
asked for (docs/architecture.md, "Jobs"), taken before any waiting lease as soon as they fit,
given back on `ReleaseHeldResources` or when their owner ends.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from dataclasses import dataclass

from .._logging import get_logger
from ..exceptions import RuntimeEnvSetupError, TaskPlacementGroupRemoved
from ..kernel import Actor, ActorRef, Reply, Terminated
from ..protocol import (
    ActorWorkerExited,
    AttachPool,
    ClusterView,
    CommitBundles,
    EndIdleWorkers,
    GetResources,
    GetSchedulerStats,
    HoldResources,
    KillWorker,
    LeaseBlocked,
    LeaseGranted,
    LeaseUnblocked,
    ListBundleGroups,
    ListWorkerProcesses,
    NodeLoad,
    PrepareBundles,
    ReleaseBundles,
    ReleaseHeldResources,
    RequestLease,
    ReturnLease,
    RuntimeEnvFailed,
    Spillback,
    StartWorkers,
    WarmRuntimeEnv,
    WorkerDied,
    WorkerReady,
)
from ..scheduling import bundle_resources, gpus_of, group_of_shape
from .gpu_devices import GpuAssignment, GpuDevices

__all__ = ["GrantedLease", "RemoteNode", "Scheduler"]

log = get_logger(__name__)

#: how many removed placement groups a Scheduler remembers, to refuse leases of their resources
REMEMBER_REMOVED_GROUPS = 100_000


@dataclass(slots=True)
class GrantedLease:
    """A worker this Scheduler leased out, and the resources it holds until returned."""

    lease_id: int
    worker: ActorRef
    pid: int
    shape: dict
    owner: ActorRef
    for_actor: bool
    blocked: bool = False
    gpus: GpuAssignment = ()  # the GPU devices it holds
    runtime_env: str = ""  # the runtime env its worker was started for


@dataclass(slots=True)
class _Reservation:
    """What one placement group holds on this node: its bundles, and whether committed."""

    bundles: tuple  # (index, {resource: quantity}) pairs
    owner: ActorRef | None  # the group is released when it ends (None: a detached group)
    committed: bool = False
    resources: dict | None = None  # the group's named resources, once committed


@dataclass(slots=True)
class _Hold:
    """Resources held with no worker (`HoldResources`): waiting while `reply` is set, then held."""

    shape: dict
    owner: ActorRef
    reply: Reply | None
    gpus: GpuAssignment = ()


@dataclass(slots=True)
class _Pending:
    request: RequestLease
    reply: Reply


@dataclass(slots=True)
class RemoteNode:
    """Another node as this Scheduler sees it: its Scheduler, its totals and what it has free."""

    scheduler: ActorRef
    total: dict
    available: dict


class Scheduler(Actor):
    """Grants worker leases on one node: ``Scheduler(total, pool, node_id=..., gcs=...)``.

    ``total``: the node's resources (name -> quantity); ``pool``: the WorkerPool asked for
    workers (also given later by the node's start-up, with how many to keep warm); ``gcs``:
    the GcsLink, in a cluster only (loads are published to it, cluster views come from it).
    """

    def __init__(self, total: dict[str, float], pool: ActorRef | None = None, *, node_id: str = "",
                 gcs: ActorRef | None = None, gpu_ids: list[str] | None = None) -> None:
        self.node_id = node_id
        self.gcs = gcs  # set in a cluster: loads are published, views received
        self.remote: dict[str, RemoteNode] = {}
        self._publish_scheduled = False
        self.total = dict(total)
        self.available = dict(total)
        self.pool = pool
        #: (pid, executor, runtime env) of the workers no lease holds, the longest idle first
        self.idle: deque[tuple[int, ActorRef, str]] = deque()
        self.leases: dict[int, GrantedLease] = {}
        self.pending: deque[_Pending] = deque()
        self.ended_idle: set[int] = set()  # idle workers this scheduler ended, not dead yet
        self.starting: Counter[str] = Counter()  # runtime env -> workers asked of the pool, not ready yet
        self.leases_granted = 0
        self.watched_owners: set[ActorRef] = set()
        self._ids = itertools.count(1)
        self._warned: set[tuple] = set()
        self.warm_workers = 0  # the pool is kept at least this big: a dead worker is replaced at once
        self.ready: set[int] = set()  # pids of workers that said they are ready
        self.reservations: dict[str, _Reservation] = {}  # placement group id -> its bundles here
        self.removed_groups: dict[str, None] = {}  # ids of removed groups, oldest first
        self.holds: dict[str, _Hold] = {}  # hold id -> resources held (or waited for) with no worker
        gpus = self.total.get("GPU", 0.0)
        self.gpus = GpuDevices([str(i) for i in range(math.ceil(gpus))] if gpu_ids is None else gpu_ids, gpus)

    async def receive(self, message):
        if isinstance(message, RequestLease):
            if self.removed_groups and group_of_shape(message.shape) in self.removed_groups:
                self.context.defer_reply().fail(TaskPlacementGroupRemoved())
                return None
            self._watch_owner(message.owner)
            self.pending.append(_Pending(message, self.context.defer_reply()))
            self._dispatch()
        elif isinstance(message, ReturnLease):
            self._return(message.lease_id, message.worker_died)
            self._dispatch()
        elif isinstance(message, WorkerReady):
            self._started(message.runtime_env)
            self.ready.add(message.pid)
            self.idle.append((message.pid, message.executor, message.runtime_env))
            self._dispatch()
        elif isinstance(message, WorkerDied):
            for lease in self.leases.values():
                if lease.pid == message.pid and lease.for_actor and lease.owner is not None:
                    lease.owner.tell(ActorWorkerExited(lease.lease_id, message.pid, message.how))
            self._replace_workers(self._worker_died(message.pid, message.runtime_env))
            self._dispatch()
        elif isinstance(message, WarmRuntimeEnv):
            self._prepare(message.runtime_env)
        elif isinstance(message, EndIdleWorkers):
            self._end_idle([pid for pid, _, env in self.idle if env in message.runtime_envs])
        elif isinstance(message, RuntimeEnvFailed):
            self._runtime_env_failed(message.runtime_env, message.error)
            self._dispatch()
        elif isinstance(message, LeaseBlocked):
            lease = self.leases.get(message.lease_id)
            if lease is not None and not lease.blocked:
                lease.blocked = True
                self._give("CPU", lease.shape.get("CPU", 0.0))
                self._dispatch()
        elif isinstance(message, LeaseUnblocked):
            lease = self.leases.get(message.lease_id)
            if lease is not None and lease.blocked:
                lease.blocked = False
                self._take({"CPU": lease.shape.get("CPU", 0.0)})
        elif isinstance(message, GetResources):
            return dict(self.available if message.available else self.total)
        elif isinstance(message, GetSchedulerStats):
            return {"idle_workers": len(self.idle), "busy_workers": len({lease.pid for lease in self.leases.values()}),
                    "active_leases": len(self.leases), "leases_granted": self.leases_granted,
                    "pending_leases": len(self.pending)}
        elif isinstance(message, ListBundleGroups):
            return [(group_id, reservations[0].owner) for group_id, reservations in self.reservations.items()
                    if reservations and group_id not in self.removed_groups]
        elif isinstance(message, ClusterView):
            self._update_view(message.nodes)
            self._dispatch()
        elif isinstance(message, NodeLoad):
            node = self.remote.get(message.node_id)
            if node is not None:
                node.available = dict(message.available)
                self._dispatch()
        elif isinstance(message, Terminated):
            self._drop_owner(message.ref)
            if self.reservations:
                self._release_groups_of(message.ref)
            self._dispatch()
        elif isinstance(message, AttachPool):
            self.pool, prestart = message.pool, message.prestart
            self.warm_workers = prestart
            if prestart > 0:
                self.starting[""] += prestart
                self.pool.tell(StartWorkers(prestart))
        elif isinstance(message, (PrepareBundles, CommitBundles, ReleaseBundles)):
            return self._reserve(message)
        elif isinstance(message, HoldResources):
            self._hold(message.hold_id, dict(message.shape), message.owner, self.context.defer_reply())
        elif isinstance(message, ReleaseHeldResources):
            self._release_hold(message.hold_id)
            self._dispatch()
        elif isinstance(message, ListWorkerProcesses):
            return ([(pid, worker.to_uri(), False, False) for pid, worker, _ in self.idle]
                    + [(lease.pid, lease.worker.to_uri(), True, lease.for_actor) for lease in self.leases.values()])
        return None

    # -- granting -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.holds:
            self._grant_holds()
        wanted_workers: Counter[str] = Counter()  # runtime env -> leases waiting for a worker of it
        for pending in list(self.pending):
            if pending.reply.done:  # the requester gave up or died
                self.pending.remove(pending)
                continue
            shape = dict(pending.request.shape)
            if not self._feasible(shape):
                target = self._spill_target(shape, need_room=False)
                if target is not None:
                    self._spill(pending, target, shape)
                else:
                    self._warn_infeasible(shape)
                continue
            if not self._fits(shape):
                if pending.request.spillable:
                    target = self._spill_target(shape, need_room=True)
                    if target is not None:
                        self._spill(pending, target, shape)
                continue
            runtime_env = pending.request.runtime_env
            idle = self._idle_worker(runtime_env)
            if idle is None:
                wanted_workers[runtime_env] += 1
                continue
            pid, worker = idle
            self._take(shape)
            lease = GrantedLease(next(self._ids), worker, pid, shape, pending.request.owner, pending.request.for_actor,
                                 gpus=self.gpus.assign(gpus_of(shape)), runtime_env=runtime_env)
            self.leases[lease.lease_id] = lease
            self.leases_granted += 1
            self.pending.remove(pending)
            pending.reply.send(LeaseGranted(lease.lease_id, worker, pid, self.node_id, self.gpus.ids_of(lease.gpus)))
        if self.pool is None:
            return
        for runtime_env, wanted in wanted_workers.items():
            missing = wanted - self.starting[runtime_env]
            if missing > 0:
                self._make_room(missing, runtime_env)
                self.starting[runtime_env] += missing
                self.pool.tell(StartWorkers(missing, runtime_env))

    def _idle_worker(self, runtime_env: str) -> tuple[int, ActorRef] | None:
        """Take the longest idle worker started for `runtime_env`: ``(pid, executor)``, or None."""
        idle = self.idle
        if idle and idle[0][2] == runtime_env:  # the common case: one env on the node
            pid, worker, _ = idle.popleft()
            return pid, worker
        for index, (pid, worker, env) in enumerate(idle):
            if env == runtime_env:
                del idle[index]
                return pid, worker
        return None

    def _live_workers(self) -> int:
        """Worker processes idle, leased or starting."""
        return len(self.idle) + len({lease.pid for lease in self.leases.values()}) + sum(self.starting.values())

    def _make_room(self, count: int, runtime_env: str) -> None:
        """Before `count` workers start for `runtime_env`: past the node's worker limit (its
        CPUs, or the warm pool if bigger), end as many idle workers of other runtime envs, the
        longest idle first."""
        limit = max(self.warm_workers, math.ceil(self.total.get("CPU", 0.0)), 1)
        excess = self._live_workers() + count - limit
        if excess <= 0:
            return
        self._end_idle([pid for pid, _, env in self.idle if env != runtime_env][:excess])

    def _end_idle(self, pids: list[int]) -> None:
        """End the idle workers `pids` (not replaced in kind: their env is not wanted here)."""
        if pids:
            self.idle = deque(idle for idle in self.idle if idle[0] not in pids)
            self.ended_idle.update(pids)
            for pid in pids:
                self.pool.tell(KillWorker(pid))

    def _started(self, runtime_env: str) -> None:
        if self.starting[runtime_env] > 0:
            self.starting[runtime_env] -= 1

    def _runtime_env_failed(self, runtime_env: str, error: str) -> None:
        """No worker can start for `runtime_env`: the leases waiting for one fail with `error`."""
        self.starting.pop(runtime_env, None)
        for pending in [p for p in self.pending if p.request.runtime_env == runtime_env]:
            self.pending.remove(pending)
            if not pending.reply.done:
                pending.reply.fail(RuntimeEnvSetupError(error))

    def _return(self, lease_id: int, worker_died: bool) -> None:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return
        self._release(lease)
        if not worker_died and not lease.for_actor:
            self.idle.append((lease.pid, lease.worker, lease.runtime_env))

    def _release(self, lease: GrantedLease) -> None:
        self.gpus.release(lease.gpus)
        shape = dict(lease.shape)
        if lease.blocked:
            shape.pop("CPU", None)
        for name, quantity in shape.items():
            self._give(name, quantity)

    def _worker_died(self, pid: int, runtime_env: str) -> str:
        """Forget worker `pid`, started for `runtime_env`; the env its replacement is for: its own
        if it ran tasks (a worker retired by ``max_calls`` is replaced in kind, warm for the next
        task of its env), else the default ("": one that died starting, hosted an actor or was
        ended idle to make room)."""
        replace_with = ""
        if pid in self.ready:
            self.ready.discard(pid)
            if pid in self.ended_idle:
                self.ended_idle.discard(pid)
            else:
                replace_with = runtime_env
        else:  # it died while starting: it will never say it is ready
            self._started(runtime_env)
        self.idle = deque(idle for idle in self.idle if idle[0] != pid)
        for lease in [lease for lease in self.leases.values() if lease.pid == pid]:
            del self.leases[lease.lease_id]
            self._release(lease)
            if lease.for_actor:
                replace_with = ""
        return replace_with

    def _replace_workers(self, runtime_env: str = "") -> None:
        """Keep the pool at its warm size: start what it lacks, for `runtime_env`."""
        missing = self.warm_workers - self._live_workers()
        if missing > 0 and self.pool is not None:
            self.starting[runtime_env] += missing
            self.pool.tell(StartWorkers(missing, runtime_env))

    def _prepare(self, runtime_env: str) -> None:
        """Set `runtime_env` up and start a worker for it, unless the node has one (idle, leased
        or starting) already."""
        if (not runtime_env or self.pool is None or self.starting[runtime_env]
                or any(env == runtime_env for _, _, env in self.idle)
                or any(lease.runtime_env == runtime_env for lease in self.leases.values())):
            return
        self._make_room(1, runtime_env)
        self.starting[runtime_env] += 1
        self.pool.tell(StartWorkers(1, runtime_env))

    def _drop_owner(self, owner: ActorRef) -> None:
        for pending in [p for p in self.pending if p.request.owner == owner]:
            self.pending.remove(pending)
        for lease in [lease for lease in self.leases.values() if lease.owner == owner]:
            del self.leases[lease.lease_id]
            self._release(lease)
            if not lease.for_actor:
                self.idle.append((lease.pid, lease.worker, lease.runtime_env))
        for hold_id in [hold_id for hold_id, hold in self.holds.items() if hold.owner == owner]:
            self._release_hold(hold_id)
        self.watched_owners.discard(owner)

    # -- resources held with no worker (a job's entrypoint) ----------------------------------

    def _hold(self, hold_id: str, shape: dict, owner: ActorRef, reply: Reply) -> None:
        shape = {name: quantity for name, quantity in shape.items() if quantity > 0}
        short = [f"{quantity:g} {name} (the node has {self.total.get(name, 0.0):g})"
                 for name, quantity in shape.items() if self.total.get(name, 0.0) < quantity]
        if short:
            reply.fail(ValueError(f"this node can never hold {', '.join(short)}"))
            return
        self._release_hold(hold_id)
        self.holds[hold_id] = _Hold(shape, owner, reply)
        self._watch_owner(owner)
        self._dispatch()

    def _grant_holds(self) -> None:
        """Hold what fits of the waiting holds, in the order they came."""
        for hold_id, hold in list(self.holds.items()):
            if hold.reply is None:
                continue
            if hold.reply.done:  # its requester gave up
                del self.holds[hold_id]
            elif self._fits(hold.shape):
                self._take(hold.shape)
                hold.gpus = self.gpus.assign(gpus_of(hold.shape))
                reply, hold.reply = hold.reply, None
                reply.send(list(self.gpus.ids_of(hold.gpus)))

    def _release_hold(self, hold_id: str) -> None:
        hold = self.holds.pop(hold_id, None)
        if hold is None:
            return
        if hold.reply is not None:
            if not hold.reply.done:
                hold.reply.fail(RuntimeError(f"hold {hold_id} was released before it was held"))
            return
        self.gpus.release(hold.gpus)
        for name, quantity in hold.shape.items():
            self._give(name, quantity)

    def _watch_owner(self, owner: ActorRef) -> None:
        if owner is not None and owner not in self.watched_owners:
            self.watched_owners.add(owner)
            self.context.watch(owner)

    # -- placement group bundles ------------------------------------------------------------

    def _reserve(self, message) -> bool | None:
        group_id = message.group_id
        if isinstance(message, PrepareBundles):
            if group_id in self.removed_groups:
                return False
            needed: dict[str, float] = {}
            for _, bundle in message.bundles:
                for name, quantity in bundle.items():
                    needed[name] = needed.get(name, 0.0) + quantity
            if not self._fits(needed):
                return False
            self._take(needed)
            self.reservations.setdefault(group_id, []).append(_Reservation(tuple(message.bundles), message.owner))
            if message.owner is not None:
                self._watch_owner(message.owner)
            if message.commit:
                self._commit(group_id)
            return True
        if isinstance(message, CommitBundles):
            return self._commit(group_id)
        self._release_group(group_id, message.removed, message.prepared_only)
        return True

    def _commit(self, group_id: str) -> bool:
        reservations = self.reservations.get(group_id)
        if not reservations:
            return False
        for reservation in reservations:
            if reservation.committed:
                continue
            reservation.committed = True
            resources: dict[str, float] = {}
            for index, bundle in reservation.bundles:
                for name, quantity in bundle_resources(group_id, index, bundle).items():
                    resources[name] = resources.get(name, 0.0) + quantity
            reservation.resources = resources
            for name, quantity in resources.items():
                self.total[name] = self.total.get(name, 0.0) + quantity
                self.available[name] = self.available.get(name, 0.0) + quantity
        self._publish_load()
        self._dispatch()
        return True

    def _release_group(self, group_id: str, removed: bool, prepared_only: bool = False) -> None:
        if removed:
            self.removed_groups[group_id] = None
            if len(self.removed_groups) > REMEMBER_REMOVED_GROUPS:
                del self.removed_groups[next(iter(self.removed_groups))]
            for pending in [p for p in self.pending if group_of_shape(p.request.shape) == group_id]:
                self.pending.remove(pending)
                pending.reply.fail(TaskPlacementGroupRemoved())
        reservations = self.reservations.pop(group_id, [])
        kept = [r for r in reservations if prepared_only and r.committed]
        if kept:
            self.reservations[group_id] = kept
        released = [r for r in reservations if r not in kept]
        if any(r.committed for r in released):
            for lease in [lease for lease in self.leases.values() if group_of_shape(lease.shape.items()) == group_id]:
                del self.leases[lease.lease_id]
                self.gpus.release(lease.gpus)
                if self.pool is not None:
                    self.pool.tell(KillWorker(lease.pid))
        for reservation in released:
            for name, quantity in (reservation.resources or {}).items():
                self.total[name] = self.total.get(name, 0.0) - quantity
                self.available[name] = self.available.get(name, 0.0) - quantity
                if self.total[name] <= 1e-9:
                    del self.total[name]
                    self.available.pop(name, None)
            for _, bundle in reservation.bundles:
                for name, quantity in bundle.items():
                    self._give(name, quantity)
        self._publish_load()
        self._dispatch()

    def _release_groups_of(self, owner: ActorRef) -> None:
        for group_id in [g for g, rs in self.reservations.items() if any(r.owner == owner for r in rs)]:
            self._release_group(group_id, removed=True)

    # -- the other nodes (clusters) ---------------------------------------------------------

    def _update_view(self, nodes: dict) -> None:
        for node_id in [n for n in self.remote if n not in nodes]:
            del self.remote[node_id]
        for node_id, record in nodes.items():
            if node_id == self.node_id or node_id in self.remote:
                continue
            uri = record.get("uris", {}).get("scheduler")
            if uri:
                resources = dict(record.get("resources", {}))
                self.remote[node_id] = RemoteNode(self.context.system.ref_from_uri(uri), resources, dict(resources))

    def _spill_target(self, shape: dict, need_room: bool) -> str | None:
        """The node to send a request to: one with room now (the most free CPUs first), else
        (unless `need_room`) one that could ever hold it."""
        best, best_free = None, -1.0
        feasible = None
        for node_id, node in self.remote.items():
            if not all(node.total.get(k, 0.0) >= v for k, v in shape.items()):
                continue
            feasible = feasible or node_id
            if all(node.available.get(k, 0.0) >= v - 1e-9 for k, v in shape.items()):
                free = node.available.get("CPU", 0.0)
                if free > best_free:
                    best, best_free = node_id, free
        if best is not None or need_room:
            return best
        return feasible

    def _spill(self, pending: _Pending, node_id: str, shape: dict) -> None:
        node = self.remote[node_id]
        # Count it as taken there until that node publishes its load again: the next
        # requests of a burst go elsewhere instead of all to the same node.
        for name, quantity in shape.items():
            node.available[name] = node.available.get(name, 0.0) - quantity
        self.pending.remove(pending)
        pending.reply.send(Spillback(node_id, node.scheduler))

    def _publish_load(self) -> None:
        if self.gcs is not None and not self._publish_scheduled:
            self._publish_scheduled = True
            self.context.system.loop.call_soon(self._send_load)

    def _send_load(self) -> None:
        self._publish_scheduled = False
        self.gcs.tell(NodeLoad(self.node_id, dict(self.available)))

    # -- resource arithmetic --------------------------------------------------------------

    def _feasible(self, shape: dict) -> bool:
        return all(self.total.get(name, 0.0) >= quantity for name, quantity in shape.items())

    def _fits(self, shape: dict) -> bool:
        return (all(self.available.get(name, 0.0) >= quantity - 1e-9 for name, quantity in shape.items())
                and (not (gpus := gpus_of(shape)) or self.gpus.fits(gpus)))

    def _take(self, shape: dict) -> None:
        for name, quantity in shape.items():
            self.available[name] = self.available.get(name, 0.0) - quantity
        self._publish_load()

    def _give(self, name: str, quantity: float) -> None:
        if quantity:
            self.available[name] = min(self.total.get(name, 0.0), self.available.get(name, 0.0) + quantity)
            self._publish_load()

    def _warn_infeasible(self, shape: dict) -> None:
        key = tuple(sorted(shape.items()))
        if key in self._warned:
            return
        self._warned.add(key)
        # The driver warns the user (it knows the cluster's totals); this is for the node's log.
        log.info("infeasible resource request waits", shape=shape, total=self.total)
