"""Placement groups as their creator (owner) sees and schedules them, and where their tasks go.

A placement group belongs to the process that created it, as its actors and objects do
(docs/architecture.md, "Placement groups"). The owner picks a node for every bundle from
what the nodes have free, then reserves them in two phases: `PrepareBundles` on every chosen
node's Scheduler, then `CommitBundles` on all of them; if any prepare is refused every
prepared node is told to release, and the owner tries again when the nodes change or after a
backoff (the group stays PENDING meanwhile, as in Ray). All bundles on one node need only one
phase. When a node holding bundles dies the group is RESCHEDULING until its lost bundles are
reserved elsewhere. Removing a group releases it on every node, which kills the workers of
its tasks and actors.

Any process places a task of a group: its owner knows the bundles' nodes; another process
(a task that got the group as an argument, or captured it) asks the owner once and keeps the
answer until a node dies.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import exceptions as exc
from ..kernel import ActorRef, ActorStoppedError, ActorSystem, PeerLostError
from ..object_ref import ObjectRef
from ..objects import serialize
from ..protocol import (
    ClusterView,
    CommitBundles,
    Failed,
    GetResources,
    Inline,
    ListBundleGroups,
    LookupGroup,
    NameGroup,
    PrepareBundles,
    ReleaseBundles,
)
from ..scheduling import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
    bundle_resources,
    group_of_shape,
    group_shape,
)
from .cluster import Cluster
from .messages import GroupQuery
from .object_table import ObjectTable

__all__ = ["GROUP_STATES", "STRATEGIES", "Group", "PlacementGroups"]

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
GROUP_STATES = ("PENDING", "CREATED", "REMOVED", "RESCHEDULING")

#: how many removed groups `placement_group_table` still shows (older ones are forgotten)
KEEP_REMOVED = 1000

#: the longest wait between two attempts to place a pending group (a node change wakes it earlier)
MAX_RETRY_DELAY = 1.0


@dataclass(slots=True)
class Group:
    """A placement group this process owns."""

    group_id: str
    name: str
    bundles: list  # one {resource: quantity} dict per bundle
    strategy: str
    detached: bool
    state: str = "PENDING"
    nodes: dict = field(default_factory=dict)  # bundle index -> node id, for reserved bundles
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)
    latency_ms: float = 0.0
    highest_delay_ms: float = 0.0
    spread_next: int = 0
    scheduling: bool = False  # an attempt loop runs for it
    namespace: str = ""
    handle: bytes | None = None  # a named group's pickled handle, as recorded in etcd

    def record(self) -> dict:
        """The group as `placement_group_table` shows it (Ray's fields)."""
        return {
            "placement_group_id": self.group_id,
            "name": self.name,
            "bundles": {i: dict(b) for i, b in enumerate(self.bundles)},
            "bundles_to_node_id": dict(sorted(self.nodes.items())),
            "strategy": self.strategy,
            "state": self.state,
            "stats": {
                "end_to_end_creation_latency_ms": self.latency_ms,
                "scheduling_attempt": self.attempts,
                "highest_retry_delay_ms": self.highest_delay_ms,
                "scheduling_state": {"CREATED": "FINISHED", "REMOVED": "REMOVED"}.get(self.state, "QUEUED"),
            },
        }


class PlacementGroups:
    """The placement groups of this process (owned) and those it placed tasks in (borrowed)."""

    def __init__(self, system: ActorSystem, owner: ActorRef, cluster: Cluster, objects: ObjectTable,
                 gcs: ActorRef) -> None:
        self._system = system
        self._gcs = gcs
        self._objects = objects
        self._loop = system.loop
        self._owner = owner
        self._cluster = cluster
        self._groups: dict[str, Group] = {}
        self._names: dict[str, str] = {}  # name -> group id, of the live groups
        self._borrowed: dict[str, dict] = {}  # group id -> its owner's record, while valid
        self._handles: dict[str, Any] = {}  # group id -> the group object tasks were placed with
        self._changed = self._loop.create_future()
        self._ready_ids = itertools.count(1)
        self._removed: deque[str] = deque()  # ids of removed groups still in the table, oldest first

    # -- the owner's side (user thread) -----------------------------------------------------

    def create(self, group_id: str, bundles: list, strategy: str, name: str, detached: bool, *,
               namespace: str = "", handle: bytes | None = None) -> None:
        """Start placing a new group (returns at once; `ready` says when it is placed). A named
        group (`handle`: its pickled handle) is recorded in etcd first, for `lookup`."""
        group = Group(group_id, name, [dict(b) for b in bundles], strategy, detached,
                      namespace=namespace, handle=handle)
        if name and handle is not None:
            self._system.ask_sync(self._gcs, NameGroup(namespace, name, handle), timeout=30)
        self._loop.call_soon_threadsafe(self._start, group)

    def lookup(self, namespace: str, name: str) -> bytes | None:
        """The pickled handle of the group named `name` in `namespace` (any process's), or None."""
        group_id = self._names.get(name)
        if group_id is not None and self._groups[group_id].namespace == namespace:
            return self._groups[group_id].handle
        return self._system.ask_sync(self._gcs, LookupGroup(namespace, name), timeout=30)

    def remove(self, group_id: str) -> None:
        """Remove the group (any thread): released on every node, its tasks' workers killed."""
        self._system.run(self._remove(group_id))

    def table(self, group_id: str | None = None) -> dict:
        """`placement_group_table`: one group's record, or every group's of the cluster by id."""
        return self._system.run(self._table(group_id) if group_id is not None else self._cluster_table())

    def wait_ready(self, group_id: str, owner: ActorRef, timeout: float | None) -> bool:
        """Whether the group is placed within `timeout` seconds (None: wait as long as it takes)."""
        async def wait() -> bool:
            try:
                await asyncio.wait_for(self.record_of(group_id, owner), timeout)
                return True
            except (asyncio.TimeoutError, exc.RayError):
                return False
        return self._system.run(wait())

    # -- the loop ---------------------------------------------------------------------------

    def _start(self, group: Group) -> None:
        self._groups[group.group_id] = group
        if group.name:
            self._names[group.name] = group.group_id
        self._start_scheduling(group)

    async def _remove(self, group_id: str) -> None:
        group = self._groups.get(group_id)
        if group is None or group.state == "REMOVED":
            return
        group.state = "REMOVED"
        group.nodes.clear()
        self._removed.append(group_id)
        if len(self._removed) > KEEP_REMOVED:  # the table keeps the latest removed groups only, as Ray's
            forgotten = self._removed.popleft()
            self._groups.pop(forgotten, None)
            self._handles.pop(forgotten, None)
        group.ready.set()  # waiters see REMOVED
        if self._names.get(group.name) == group_id:
            del self._names[group.name]
        if group.handle is not None:
            self._gcs.tell(NameGroup(group.namespace, group.name, group.handle, forget=True))
        self._cluster.set_extra_resources(group_id, {})
        # Answered once each node has released it: its resources are free when `remove` returns.
        await self._release_everywhere(group_id)
        self._wake()

    async def _table(self, group_id: str | None) -> dict:
        if group_id is None:
            return {gid: group.record() for gid, group in self._groups.items()}
        group = self._groups.get(group_id)
        return group.record() if group is not None else {}

    async def _cluster_table(self) -> dict:
        """Every group of the cluster, as Ray's `placement_group_table()`: this process's, and
        those other owners hold bundles of on any node (asked of each owner). Another process's
        group is known only once some of it is reserved, and a detached group only to its
        creator."""
        table = await self._table(None)
        node_ids = sorted(self._cluster.view)
        listed = await asyncio.gather(*(self._ask(node_id, ListBundleGroups()) for node_id in node_ids))
        owners: dict[str, ActorRef] = {
            group_id: owner
            for answer in listed if isinstance(answer, list)
            for group_id, owner in answer
            if group_id not in table and owner is not None and owner != self._owner}

        async def record(group_id: str, owner: ActorRef) -> dict:
            try:
                return await owner.ask(GroupQuery(group_id, wait=False), timeout=30)
            except (PeerLostError, asyncio.TimeoutError):
                return {}

        records = await asyncio.gather(*(record(g, o) for g, o in owners.items()))
        table.update({g: r for g, r in zip(owners, records, strict=True) if isinstance(r, dict) and r})
        return table

    def _wake(self) -> None:
        """The nodes or their free resources changed: pending groups try again now."""
        if not self._changed.done():
            self._changed.set_result(None)
        self._changed = self._loop.create_future()

    def on_view(self, view: ClusterView) -> None:
        """Nodes joined or died: groups with bundles on a dead node are rescheduled; borrowed
        records naming one are asked for again."""
        dead = set(view.dead)
        for group_id in [g for g, r in self._borrowed.items() if dead & set(r["bundles_to_node_id"].values())]:
            del self._borrowed[group_id]
        for group in self._groups.values():
            lost = sorted(i for i, node_id in group.nodes.items() if node_id in dead)
            if lost and group.state != "REMOVED":
                for index in lost:
                    del group.nodes[index]
                group.state = "RESCHEDULING"
                group.ready = asyncio.Event()
                self._publish(group)
                self._start_scheduling(group)
        self._wake()

    def _start_scheduling(self, group: Group) -> None:
        if not group.scheduling:
            group.scheduling = True
            self._loop.create_task(self._schedule(group))

    async def _schedule(self, group: Group) -> None:
        try:
            await self._attempts(group)
        finally:
            group.scheduling = False

    async def _attempts(self, group: Group) -> None:
        delay = 0.02
        while group.state != "REMOVED":
            group.attempts += 1
            indexes = [i for i in range(len(group.bundles)) if i not in group.nodes]
            if await self._try_place(group, indexes):
                if group.state == "REMOVED":
                    return
                group.state = "CREATED"
                if not group.latency_ms:
                    group.latency_ms = round((time.monotonic() - group.started) * 1000, 3)
                self._publish(group)
                group.ready.set()
                return
            group.highest_delay_ms = max(group.highest_delay_ms, delay * 1000)
            await asyncio.wait([self._changed], timeout=delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _try_place(self, group: Group, indexes: list[int]) -> bool:
        owner = None if group.detached else self._owner
        bundles = [(i, group.bundles[i]) for i in indexes]
        local = self._cluster.node_id
        # The common case first: the whole group on this node, in one phase.
        if (group.strategy in ("PACK", "STRICT_PACK") and not group.nodes and self._cluster.is_live(local)
                and await self._ask(local, PrepareBundles(group.group_id, tuple(bundles), True, owner))):
            return self._placed(group, {local: indexes})
        free = await self._free_resources()
        plan = _plan(group, indexes, free, local)
        if plan is None:
            return False
        if len(plan) == 1 and not group.nodes:
            (node_id, chosen), = plan.items()
            ok = await self._ask(node_id, PrepareBundles(group.group_id, tuple((i, group.bundles[i]) for i in chosen),
                                                         True, owner))
            return ok and self._placed(group, plan)
        prepares = [self._ask(node_id, PrepareBundles(group.group_id, tuple((i, group.bundles[i]) for i in chosen),
                                                      False, owner))
                    for node_id, chosen in plan.items()]
        results = await asyncio.gather(*prepares)
        if not all(results) or group.state == "REMOVED":
            for node_id, prepared in zip(plan, results, strict=True):
                if prepared:
                    self._tell(node_id, ReleaseBundles(group.group_id, removed=False, prepared_only=True))
            return False
        commits = await asyncio.gather(*(self._ask(node_id, CommitBundles(group.group_id)) for node_id in plan))
        if not all(commits):  # a node died between the phases: start again from nothing
            for node_id in set(plan) | set(group.nodes.values()):
                self._tell(node_id, ReleaseBundles(group.group_id, removed=False))
            group.nodes.clear()
            return False
        return self._placed(group, plan)

    def _placed(self, group: Group, plan: dict) -> bool:
        for node_id, chosen in plan.items():
            for index in chosen:
                group.nodes[index] = node_id
        return True

    def _publish(self, group: Group) -> None:
        self._cluster.set_extra_resources(group.group_id, _per_node(group.group_id, group.nodes, group.bundles))

    async def _free_resources(self) -> dict[str, dict]:
        node_ids = sorted(self._cluster.view)

        async def free(node_id: str) -> dict | None:
            reply = await self._ask(node_id, GetResources(available=True))
            return reply if isinstance(reply, dict) else None

        answers = await asyncio.gather(*(free(node_id) for node_id in node_ids))
        return {node_id: answer for node_id, answer in zip(node_ids, answers, strict=True) if answer is not None}

    async def _ask(self, node_id: str, message) -> Any:
        scheduler = self._cluster.node_ref(node_id, "scheduler")
        if scheduler is None:
            return False
        try:
            return await scheduler.ask(message, timeout=30)
        except (PeerLostError, asyncio.TimeoutError):
            return False

    def _tell(self, node_id: str, message) -> None:
        scheduler = self._cluster.node_ref(node_id, "scheduler")
        if scheduler is not None:
            scheduler.tell(message)

    # -- any process: where a task of a group goes ------------------------------------------

    async def record_of(self, group_id: str, owner: ActorRef | None) -> dict:
        """The group's record once it is placed (waits while PENDING or RESCHEDULING);
        raises if the group was removed."""
        group = self._groups.get(group_id)
        if group is not None:
            while group.state != "CREATED":
                if group.state == "REMOVED":
                    raise exc.TaskPlacementGroupRemoved()
                await group.ready.wait()
            return group.record()
        record = self._borrowed.get(group_id)
        if record is None:
            if owner is None or owner == self._owner:
                raise exc.RayError(f"placement group {group_id} is unknown (it was removed, or its creator ended)")
            try:
                record = await owner.ask(GroupQuery(group_id), timeout=None)
            except PeerLostError:
                raise exc.RayError(f"placement group {group_id} is gone: its creator ended") from None
            if isinstance(record, BaseException):
                raise record
            self._borrowed[group_id] = record
            self._cluster.set_extra_resources(
                group_id, _per_node(group_id, record["bundles_to_node_id"], record["bundles"]))
        return record

    async def answer(self, query: GroupQuery) -> Any:
        """A borrower's `GroupQuery`: the record once placed, or the error saying why not."""
        if query.remove:
            await self._remove(query.group_id)
            return None
        if not query.wait:
            return await self._table(query.group_id)
        try:
            return await self.record_of(query.group_id, None)
        except exc.RayError as error:
            return error

    # -- any process: the user's calls on a group it holds (user thread) -------------------

    def ready_ref(self, group_id: str, owner: ActorRef, value: Any) -> ObjectRef:
        """An ObjectRef (owned here) that resolves to `value` once the group is placed, or to
        the error saying it never will be."""
        object_id = f"{group_id}.ready.{next(self._ready_ids)}"
        self._objects.expect([object_id])
        ref = ObjectRef(object_id, self._owner, self._objects)

        async def resolve() -> None:
            try:
                await self.record_of(group_id, owner)
                payload = Inline(serialize(value).to_bytes())
            except exc.RayError as error:
                payload = Failed(error)
            self._objects.resolve(object_id, payload)

        self._loop.call_soon_threadsafe(self._loop.create_task, resolve())
        return ref

    def remove_any(self, group_id: str, owner: ActorRef | None, name: str = "", namespace: str = "") -> None:
        """Remove the group, this process's or another's (asking its owner; if its creator
        ended, a detached group's nodes are told directly, and its name, if it is `name` in
        `namespace`, is forgotten)."""
        if group_id in self._groups or owner is None or owner == self._owner:
            self.remove(group_id)
            return
        try:
            self._system.ask_sync(owner, GroupQuery(group_id, remove=True), timeout=30)
        except ActorStoppedError:
            self._system.run(self._release_everywhere(group_id))
            handle = self._system.ask_sync(self._gcs, LookupGroup(namespace, name), timeout=30) if name else None
            if handle is not None and pickle.loads(handle).id.hex() == group_id:
                self._system.ask_sync(self._gcs, NameGroup(namespace, name, handle, forget=True), timeout=30)

    async def _release_everywhere(self, group_id: str) -> None:
        nodes = list(self._cluster.view)
        await asyncio.gather(*(self._ask(node_id, ReleaseBundles(group_id)) for node_id in nodes))

    def table_any(self, group_id: str, owner: ActorRef | None) -> dict:
        """The record of a group, this process's or another's (asked of its owner)."""
        if group_id in self._groups or owner is None or owner == self._owner:
            return self.table(group_id)
        try:
            return self._system.ask_sync(owner, GroupQuery(group_id, wait=False), timeout=30)
        except PeerLostError:
            return {}

    def check(self, strategy: Any, shape: tuple, name: str) -> tuple | None:
        """Check at submission that a task or actor `name` of `shape` can ever run under
        `strategy` (ValueError as Ray raises it, if not); its `TaskSpec.placement`."""
        if not isinstance(strategy, PlacementGroupSchedulingStrategy):
            return None
        group = strategy.placement_group
        bundles = group.bundle_specs
        index = strategy.placement_group_bundle_index
        if not isinstance(index, int) or isinstance(index, bool) or not -1 <= index < len(bundles):
            raise ValueError(f"placement group bundle index {index} is invalid. Valid placement group "
                             f"indexes: 0-{len(bundles)}")
        wanted = dict(shape)
        candidates = bundles if index == -1 else [bundles[index]]
        if wanted and not any(_fits(bundle, wanted) for bundle in candidates):
            where = "any bundles" if index == -1 else f"the bundle index {index}"
            raise ValueError(f"Cannot schedule {name} with the placement group because the resource request "
                             f"{_plain(wanted)} cannot fit into {where} for the placement group, {bundles}.")
        return group, bool(strategy.placement_group_capture_child_tasks)

    def removal_cause(self, strategy: Any) -> str | None:
        """If `strategy` is that of a group this process removed: the death cause of its actors."""
        if not isinstance(strategy, PlacementGroupSchedulingStrategy):
            return None
        group = self._groups.get(strategy.placement_group.id.hex())
        if group is None or group.state != "REMOVED":
            return None
        return f"its placement group {group.group_id} was removed"

    async def place_again(self, shape: tuple) -> tuple:
        """The queue key of a task of a group whose node died: placed anew once the group is."""
        group_id = group_of_shape(shape)
        index = -1
        base = []
        for name, quantity in shape:
            if name.startswith("bundle_group_"):
                parts = name.split("_")
                if len(parts) == 4:
                    index = int(parts[2])
            elif name.endswith(f"_group_{group_id}"):
                base.append((name[: -len(f"_group_{group_id}")], quantity))
        handle = self._handles.get(group_id)
        if handle is None:  # removed long ago (forgotten since)
            raise exc.TaskPlacementGroupRemoved()
        strategy = PlacementGroupSchedulingStrategy(handle, index)
        return await self.place(strategy, tuple(base), "", actor=False)

    async def place(self, strategy: Any, shape: tuple, name: str, *, actor: bool) -> tuple:
        """The queue key ``(shape, target node)`` of a task or actor under `strategy`."""
        if isinstance(strategy, PlacementGroupSchedulingStrategy):
            group = strategy.placement_group
            group_id = group.id.hex()
            self._handles.setdefault(group_id, group)
            try:
                record = await self.record_of(group_id, getattr(group, "_owner", None))
            except exc.TaskPlacementGroupRemoved:
                if actor:
                    raise exc.ActorPlacementGroupRemoved() from None
                raise
            index = strategy.placement_group_bundle_index
            nodes = record["bundles_to_node_id"]
            if index >= 0:
                target = nodes[index]
            else:
                candidates = sorted(set(nodes.values()))
                own = self._groups.get(group_id)
                turn = 0
                if own is not None:
                    own.spread_next += 1
                    turn = own.spread_next
                target = candidates[turn % len(candidates)]
            return group_shape(shape, group_id, index), target
        if isinstance(strategy, NodeAffinitySchedulingStrategy):
            node_id = strategy.node_id
            total = self._cluster.view.get(node_id, {}).get("resources", {})
            if self._cluster.is_live(node_id) and _fits(total, dict(shape)):
                return shape, node_id
            if strategy.soft:
                return shape, None
            error_type = exc.ActorUnschedulableError if actor else exc.TaskUnschedulableError
            why = ("dead" if node_id in self._cluster.dead_nodes else
                   f"too small for {_plain(dict(shape))}" if self._cluster.is_live(node_id) else "unknown")
            raise error_type(f"The node specified via NodeAffinitySchedulingStrategy doesn't exist any more "
                             f"or is infeasible, and soft=False was specified (node {node_id} is {why}).")
        raise TypeError(f"unknown scheduling strategy {strategy!r}")


def _per_node(group_id: str, nodes: dict, bundles: Any) -> dict[str, dict]:
    """The group's named resources on each of its nodes (`nodes`: bundle index -> node id)."""
    per_node: dict[str, dict] = {}
    for index, node_id in nodes.items():
        resources = per_node.setdefault(node_id, {})
        for name, quantity in bundle_resources(group_id, index, bundles[index]).items():
            resources[name] = resources.get(name, 0.0) + quantity
    return per_node


def _fits(free: dict, bundle: dict) -> bool:
    return all(free.get(name, 0.0) >= quantity - 1e-9 for name, quantity in bundle.items())


def _plain(resources: dict) -> dict:
    return {name: int(q) if float(q).is_integer() else q for name, q in resources.items()}


def _take(free: dict, bundle: dict) -> None:
    for name, quantity in bundle.items():
        free[name] = free.get(name, 0.0) - quantity


def _plan(group: Group, indexes: list[int], free: dict[str, dict], local: str) -> dict[str, list[int]] | None:
    """Which node takes each of `indexes` under the group's strategy, given each node's free
    resources; None if they cannot all be placed now."""
    order = sorted(free, key=lambda node_id: (node_id != local, node_id))
    free = {node_id: dict(free[node_id]) for node_id in order}
    bundles = {i: group.bundles[i] for i in indexes}
    plan: dict[str, list[int]] = {}
    if group.strategy in ("PACK", "STRICT_PACK"):
        total: dict[str, float] = {}
        for bundle in bundles.values():
            for name, quantity in bundle.items():
                total[name] = total.get(name, 0.0) + quantity
        homes = set(group.nodes.values())
        preferred = [n for n in order if n in homes] + [n for n in order if n not in homes]
        if group.strategy == "STRICT_PACK" and homes:
            preferred = [n for n in order if n in homes]
        for node_id in preferred:
            if _fits(free[node_id], total):
                return {node_id: list(indexes)}
        if group.strategy == "STRICT_PACK":
            return None
        for index, bundle in bundles.items():  # PACK is best effort: as few nodes as it can
            home = next((n for n in plan if _fits(free[n], bundle)), None) or next(
                (n for n in order if _fits(free[n], bundle)), None)
            if home is None:
                return None
            _take(free[home], bundle)
            plan.setdefault(home, []).append(index)
        return plan
    used: dict[str, int] = {}
    for node_id in group.nodes.values():
        used[node_id] = used.get(node_id, 0) + 1
    for index, bundle in bundles.items():
        candidates = [n for n in order if _fits(free[n], bundle)]
        if group.strategy == "STRICT_SPREAD":
            candidates = [n for n in candidates if not used.get(n)]
        if not candidates:
            return None
        home = min(candidates, key=lambda n: used.get(n, 0))  # SPREAD: the least used first
        _take(free[home], bundle)
        used[home] = used.get(home, 0) + 1
        plan.setdefault(home, []).append(index)
    return plan
