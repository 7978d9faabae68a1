"""Placement groups and node affinity across the nodes of a 3-node CLI cluster (2 CPUs and a
custom resource "A", "B" or "C" each): the strategies' placement, the all-or-nothing
reservation, and the rescheduling of a dead node's bundles (docs/architecture.md, "Placement
groups")."""

from __future__ import annotations

import os
import signal

import pytest

import actorcore as ray
from actorcore.exceptions import TaskUnschedulableError
from actorcore.testing import wait_until
from actorcore.util.placement_group import placement_group, placement_group_table, remove_placement_group
from actorcore.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from .conftest import LEASE_TTL

pytestmark = pytest.mark.timeout(180)


@ray.remote(num_cpus=1)
def node_of():
    return ray.get_runtime_context().get_node_id()


def free_cpus() -> float:
    return ray.available_resources().get("CPU", 0.0)


def nodes_of(pg) -> dict:
    return placement_group_table(pg)["bundles_to_node_id"]


@ray.remote
class GangMember:
    def where(self):
        return os.getpid(), ray.get_runtime_context().get_node_id()


# First: they have a cluster of their own (the module's shared one is started after it).
def test_a_dead_nodes_bundles_are_rescheduled_elsewhere(fresh_cluster):
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    pg = placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
    ray.get(pg.ready(), timeout=60)
    victim = cluster.nodes["C"]
    (lost,) = [index for index, node_id in nodes_of(pg).items() if node_id == victim["node_id"]]

    @ray.remote(max_restarts=1)
    class Member:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    member = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, lost)).remote()
    assert ray.get(member.node.remote(), timeout=60) == victim["node_id"]

    os.kill(victim["pid"], signal.SIGKILL)
    survivors = {cluster.nodes["A"]["node_id"], cluster.nodes["B"]["node_id"]}
    wait_until(lambda: placement_group_table(pg)["state"] == "CREATED" and nodes_of(pg)[lost] in survivors,
               LEASE_TTL + 60, "the lost bundle to be reserved on a live node")
    assert set(nodes_of(pg).values()) <= survivors
    # The group's actor restarts in its bundle's new home.
    moved = wait_until(lambda: ray.get(member.node.remote(), timeout=60), 60, "the member to restart",
                       retry_on=(ray.exceptions.RayActorError,))
    assert moved == nodes_of(pg)[lost]
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=lost)
    assert ray.get(node_of.options(scheduling_strategy=strategy).remote(), timeout=60) == nodes_of(pg)[lost]


def test_a_gang_is_restarted_together_and_its_lost_member_in_its_bundles_new_home(fresh_cluster):
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    pg = placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
    gang = ray.supervise_gang(pg, [ray.ChildSpec(name, GangMember) for name in "xyz"], max_restarts=3, period=60)
    try:
        before = {name: ray.get(gang[name].where.remote(), timeout=60) for name in "xyz"}
        assert len({node for _, node in before.values()}) == 3
        victim = cluster.nodes["C"]
        (lost,) = [name for name, (_, node) in before.items() if node == victim["node_id"]]
        os.kill(victim["pid"], signal.SIGKILL)

        def all_restarted():
            now = {name: ray.get(gang[name].where.remote(), timeout=60) for name in "xyz"}
            return all(now[name][0] != before[name][0] for name in now) and now

        after = wait_until(all_restarted, LEASE_TTL + 90, "every member of the gang to be restarted",
                           retry_on=(ray.exceptions.RayActorError,))
        survivors = {cluster.nodes["A"]["node_id"], cluster.nodes["B"]["node_id"]}
        assert after[lost][1] in survivors
        assert placement_group_table(pg)["state"] == "CREATED" and gang.alive
    finally:
        gang.stop()


def test_each_strategy_places_bundles_as_ray_does_and_tasks_run_on_their_bundles_node(cluster):
    spread = placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
    strict_spread = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    ray.get([spread.ready(), strict_spread.ready()], timeout=60)
    assert len(set(nodes_of(spread).values())) == 3
    assert len(set(nodes_of(strict_spread).values())) == 3
    for index, node_id in nodes_of(strict_spread).items():
        strategy = PlacementGroupSchedulingStrategy(strict_spread, placement_group_bundle_index=index)
        assert ray.get(node_of.options(scheduling_strategy=strategy).remote(), timeout=60) == node_id
    remove_placement_group(spread)
    remove_placement_group(strict_spread)
    wait_until(lambda: free_cpus() == 6.0, 30, "both groups' CPUs to be released")

    too_many = placement_group([{"CPU": 1}] * 4, strategy="STRICT_SPREAD")  # one node per bundle: 3 nodes
    too_big = placement_group([{"CPU": 2}, {"CPU": 1}], strategy="STRICT_PACK")  # one node: 2 CPUs each
    packed = placement_group([{"CPU": 2}, {"CPU": 1}], strategy="PACK")  # best effort: two nodes
    assert packed.wait(60)
    assert len(set(nodes_of(packed).values())) == 2
    assert not too_many.wait(0.5) and not too_big.wait(0.5)
    assert placement_group_table(too_many)["state"] == placement_group_table(too_big)["state"] == "PENDING"
    for pg in (too_many, too_big, packed):
        remove_placement_group(pg)
    wait_until(lambda: free_cpus() == 6.0, 30, "every group's CPUs to be released")


def test_a_group_that_cannot_fully_fit_reserves_nothing_and_is_placed_when_it_can(cluster):
    blocker = placement_group([{"CPU": 2, "C": 1}])
    ray.get(blocker.ready(), timeout=60)
    wait_until(lambda: free_cpus() == 4.0, 30, "the blocker's CPUs to be taken")
    wanted = placement_group([{"CPU": 1, "A": 1}, {"CPU": 1, "B": 1}, {"CPU": 1, "C": 1}])
    assert not wanted.wait(1.0)
    assert placement_group_table(wanted)["state"] == "PENDING"
    assert free_cpus() == 4.0, "a group that cannot be placed whole reserved part of itself"
    remove_placement_group(blocker)
    assert wanted.wait(60)
    by_resource = {name: cluster.nodes[name]["node_id"] for name in "ABC"}
    assert nodes_of(wanted) == {0: by_resource["A"], 1: by_resource["B"], 2: by_resource["C"]}
    remove_placement_group(wanted)
    wait_until(lambda: free_cpus() == 6.0, 30, "the group's CPUs to be released")


def test_node_affinity_hard_and_soft(cluster):
    target = cluster.nodes["B"]["node_id"]
    hard = NodeAffinitySchedulingStrategy(target, soft=False)
    assert set(ray.get([node_of.options(scheduling_strategy=hard).remote() for _ in range(4)], timeout=60)) == {target}
    soft = NodeAffinitySchedulingStrategy(target, soft=True)
    assert ray.get(node_of.options(scheduling_strategy=soft).remote(), timeout=60) == target
    # B has no "A": soft affinity to B runs it where it can run, hard affinity fails.
    assert ray.get(node_of.options(resources={"A": 1}, scheduling_strategy=soft).remote(),
                   timeout=60) == cluster.nodes["A"]["node_id"]
    with pytest.raises(TaskUnschedulableError):
        ray.get(node_of.options(resources={"A": 1}, scheduling_strategy=hard).remote(), timeout=60)
    gone = "0" * 12
    assert ray.get(node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=True)).remote(),
                   timeout=60) in {record["node_id"] for record in cluster.nodes.values()}
    with pytest.raises(TaskUnschedulableError):
        ray.get(node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(gone, soft=False)).remote(),
                timeout=60)


def test_a_detached_group_outlives_its_creator_and_any_driver_can_remove_it(cluster):
    created = cluster.driver(
        "import actorcore as ray\n"
        "from actorcore.util.placement_group import placement_group\n"
        f"ray.init(address={cluster.address!r}, namespace='shared')\n"
        "pg = placement_group([{'CPU': 2}], lifetime='detached', name='kept')\n"
        "ray.get(pg.ready(), timeout=60)\n"
        "print('created', pg.id.hex())\n")
    assert created.returncode == 0, created.stderr[-3000:]
    group_id = created.stdout.split()[-1]
    wait_until(lambda: free_cpus() == 4.0, 30, "the detached group's CPUs to stay reserved")
    removed = cluster.driver(
        "import actorcore as ray\n"
        "from actorcore.util import get_placement_group, remove_placement_group\n"
        f"ray.init(address={cluster.address!r}, namespace='shared')\n"
        "pg = get_placement_group('kept')\n"
        "remove_placement_group(pg)\n"
        "try:\n"
        "    get_placement_group('kept')\n"
        "except ValueError:\n"
        "    print('forgotten')\n"
        "print('removed', pg.id.hex())\n")
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert removed.stdout.split()[-1] == group_id and "forgotten" in removed.stdout
    wait_until(lambda: free_cpus() == 6.0, 30, "the detached group's CPUs to be released")


# Last: it adds a node to the module's cluster.
def test_a_pending_group_is_placed_when_a_node_that_can_hold_it_joins(cluster):
    pg = placement_group([{"CPU": 1, "D": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert not pg.wait(0.5)
    assert placement_group_table(pg)["state"] == "PENDING"
    joined = cluster.start_node("D")
    assert ray.get(pg.ready(), timeout=60) == pg
    assert set(nodes_of(pg).values()) == {joined["node_id"]}
    remove_placement_group(pg)
