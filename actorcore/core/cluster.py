"""The cluster as this process sees it: the live nodes, what fits on them, where SPREAD goes next.

A process of a local cluster sees its one node; in a cluster (`actorcore start`) the GcsLink
of its node sends a `ClusterView` whenever a node joins or dies. The view answers the other
parts of the core: a node's actors by role (its Scheduler, ObjectStore, WorkerPool), how many
leases of a shape the nodes can hold, whether a shape fits on any node (warned once if not),
and the next node of a SPREAD placement.
"""

from __future__ import annotations

import warnings

from ..kernel import ActorRef, ActorSystem
from ..node_config import NodeEndpoints
from ..protocol import ClusterView, SubscribeLogs

__all__ = ["Cluster"]

#: the capacity of a shape that takes no resources (how many such leases to hold at once)
UNBOUNDED_CAPACITY = 64


class Cluster:
    """The live nodes' records (`gcs/schema.py`'s node record), kept current by `apply`."""

    def __init__(self, system: ActorSystem, node: NodeEndpoints, view: dict[str, dict] | None,
                 object_replicas: int, scheduler: ActorRef, store: ActorRef) -> None:
        self._system = system
        self._scheduler = scheduler
        self._store = store
        self.node_id = node.node_id
        self.cluster_mode = node.cluster_mode
        self.object_replicas = object_replicas
        #: node id -> its record ("resources", "uris", "host_id", ...)
        self.view: dict[str, dict] = view or {self.node_id: {"resources": node.resources, "uris": node.uris()}}
        self.dead_nodes: set[str] = set()
        #: a cluster driver's log sink: every node's WorkerPool sends its workers' output there
        self.log_sink: ActorRef | None = None
        self._log_nodes: set[str] = set()
        self._feasible_shapes: set = set()  # shapes some node can hold (a cache, reset on change)
        self._infeasible_warned: set = set()
        self._spread_next = 0
        #: placement group id -> {node id: the group's resources there}: leases of the group's
        #: shapes are counted against these (the nodes' records do not have them)
        self._group_resources: dict[str, dict[str, dict]] = {}

    def apply(self, view: ClusterView) -> None:
        """Take in a new view: nodes joined or died (connections to dead hosts are cut now,
        not when TCP gives up), the replica count, log subscriptions of new nodes."""
        own_host = self.view.get(self.node_id, {}).get("host_id")
        dead_hosts = {node_id: self.view.get(node_id, {}).get("host_id") for node_id in view.dead}
        self.dead_nodes.update(view.dead)
        if view.nodes:
            self.view = dict(view.nodes)
            self._feasible_shapes = set()
        for node_id, host in dead_hosts.items():
            if host and host != own_host:
                self._system.disconnect_host(host, f"its node {node_id} was declared dead (its etcd lease expired)")
        self.object_replicas = view.object_replicas
        if self.log_sink is not None:
            for node_id in set(self.view) - self._log_nodes:
                pool = self.node_ref(node_id, "pool")
                if pool is not None:
                    pool.tell(SubscribeLogs(self.log_sink))
                    self._log_nodes.add(node_id)

    def node_ref(self, node_id: str, role: str) -> ActorRef | None:
        """The actor of `role` ("scheduler", "object_store", "pool", ...) on node `node_id`;
        None if the node or the role is unknown."""
        if node_id == self.node_id and role in ("scheduler", "object_store"):
            return self._scheduler if role == "scheduler" else self._store
        uri = self.view.get(node_id, {}).get("uris", {}).get(role)
        return self._system.ref_from_uri(uri) if uri else None

    def store_of(self, node_id: str) -> ActorRef | None:
        """The ObjectStore of node `node_id`, or None if it is not a live node."""
        return self.node_ref(node_id, "object_store")

    def stores(self) -> list[ActorRef]:
        """The ObjectStores of every live node."""
        return [store for store in (self.store_of(node_id) for node_id in self.view) if store is not None]

    def is_live(self, node_id: str) -> bool:
        """Whether `node_id` is one of the live nodes."""
        return node_id in self.view

    def capacity(self, shape: tuple, node_id: str | None = None) -> int:
        """How many leases of `shape` the live nodes (or node `node_id`) can hold at once (>= 1)."""
        if not any(quantity > 0 for _, quantity in shape):
            return UNBOUNDED_CAPACITY
        count = 0
        records = self.view.values() if node_id is None else [self.view.get(node_id, {})]
        if self._group_resources and any("_group_" in name for name, _ in shape):
            return self._group_capacity(shape, node_id)
        for record in records:
            total = record.get("resources", {})
            count += min(int(total.get(name, 0.0) // quantity) for name, quantity in shape if quantity > 0)
        return max(1, count)

    def set_extra_resources(self, group_id: str, per_node: dict[str, dict]) -> None:
        """Placement group `group_id` holds `per_node` (node id -> its named resources there);
        empty: it holds nothing any more."""
        if per_node:
            self._group_resources[group_id] = per_node
        else:
            self._group_resources.pop(group_id, None)

    def _group_capacity(self, shape: tuple, node_id: str | None) -> int:
        totals: dict[str, dict] = {}
        for per_node in self._group_resources.values():
            for node, resources in per_node.items():
                if node_id is None or node == node_id:
                    merged = totals.setdefault(node, {})
                    merged.update(resources)
        count = 0
        for total in totals.values():
            count += min(int(total.get(name, 0.0) // quantity) for name, quantity in shape if quantity > 0)
        return max(1, count)

    def warn_if_infeasible(self, shape: tuple) -> None:
        """Warn (once per shape) if no node has the resources of `shape`: it waits for one to join."""
        # Once per task: a shape seen to fit is not checked again until the nodes change
        # (measured: the check over the nodes' records cost 6-10 us per task, with this set, under 1 us).
        feasible = self._feasible_shapes  # (taken first: `apply` replaces it)
        if shape in feasible or shape in self._infeasible_warned:
            return
        totals = [record.get("resources", {}) for record in self.view.values()]
        if any(all(total.get(k, 0.0) >= v for k, v in shape) for total in totals):
            feasible.add(shape)
            return
        self._infeasible_warned.add(shape)
        largest = max(totals, key=lambda total: total.get("CPU", 0.0)) if totals else {}
        warnings.warn(
            f"a task or actor requires {dict(shape)}, but no node of the cluster has that much "
            f"(the largest has {largest}); it stays pending until a node with these resources "
            "joins (cancel it with cancel())",
            stacklevel=4,
        )

    def spread_target(self, shape: tuple) -> str | None:
        """The next node, in turn, of those that can hold `shape` (SPREAD); None if none can."""
        feasible = sorted(
            node_id for node_id, record in self.view.items()
            if all(record.get("resources", {}).get(k, 0.0) >= v for k, v in shape)
        )
        if not feasible:
            return None
        self._spread_next += 1
        return feasible[self._spread_next % len(feasible)]
