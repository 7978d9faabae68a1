"""Placement groups and scheduling strategies on one node, against Ray 2.60's behaviour:
`placement_group` / `ready` / `wait` / `placement_group_table` / `remove_placement_group` /
`get_placement_group` / `get_current_placement_group`, PlacementGroupSchedulingStrategy (bundle
index, capture of child tasks, Ray's legacy options) and NodeAffinitySchedulingStrategy."""

from __future__ import annotations

import pytest

import actorcore as ray
from actorcore.exceptions import (
    ActorUnschedulableError,
    RayActorError,
    TaskPlacementGroupRemoved,
    TaskUnschedulableError,
)
from actorcore.testing import wait_until
from actorcore.util import get_placement_group, placement_group_table
from actorcore.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    placement_group,
    remove_placement_group,
)
from actorcore.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=4)
    yield ray
    ray.shutdown()


@pytest.fixture
def group(cluster):
    groups = []

    def make(bundles, **kwargs):
        pg = placement_group(bundles, **kwargs)
        groups.append(pg)
        return pg

    yield make
    for pg in groups:
        remove_placement_group(pg)
    wait_until(lambda: ray.available_resources().get("CPU") == 4.0, 30, "every group's CPUs to be released")


@ray.remote
def group_of_caller():
    current = get_current_placement_group()
    return None if current is None else current.id.hex()


@ray.remote
def parent_of_children():
    return ray.get(group_of_caller.remote()), ray.get(group_of_caller.options(scheduling_strategy="DEFAULT").remote())


@ray.remote
def parent_opting_out():
    no_group = PlacementGroupSchedulingStrategy(placement_group=None)  # Ray's way out of a captured group
    return ray.get(group_of_caller.options(scheduling_strategy=no_group).remote())


@ray.remote
class GroupReporter:
    def group(self):
        current = get_current_placement_group()
        return None if current is None else current.id.hex()


@ray.remote
def parent_of_an_actor():
    return ray.get(GroupReporter.remote().group.remote())


def test_bad_bundles_and_arguments_are_refused_with_rays_messages(cluster):
    with pytest.raises(ValueError, match="must be a list, got <class 'str'>"):
        placement_group("CPU")
    with pytest.raises(ValueError, match=r"non-empty list of resource dictionaries.*Got empty list instead"):
        placement_group([])
    for bundles in ([{}], [{"CPU": 0}], [{"CPU": 0, "GPU": 0}]):
        with pytest.raises(ValueError, match="cannot be an empty dictionary or resources with only 0 values"):
            placement_group(bundles)
    with pytest.raises(ValueError, match="non-empty list of resource dictionaries"):
        placement_group([{"CPU": "a"}])
    # Ray accepts a negative quantity (the group can then never be placed); refused here.
    with pytest.raises(ValueError, match=r"negative.*'CPU': -1"):
        placement_group([{"CPU": -1}])
    with pytest.raises(ValueError, match="Invalid placement group strategy FOO"):
        placement_group([{"CPU": 1}], strategy="FOO")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")
    # As in Ray, `ray.util.placement_group` is the function (here the module, callable as it).
    import actorcore.util

    with pytest.raises(ValueError, match="Got empty list instead"):
        actorcore.util.placement_group([])


def test_ready_resolves_to_the_group_and_the_table_has_rays_fields(group):
    pg = group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK", name="pair")
    assert isinstance(pg, PlacementGroup) and pg.bundle_count == 2
    assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}]
    ready = ray.get(pg.ready(), timeout=30)
    assert ready == pg and ready.id.hex() == pg.id.hex()
    assert pg.wait(10) is True
    record = placement_group_table(pg)
    node_id = ray.get_runtime_context().get_node_id()
    assert record["placement_group_id"] == pg.id.hex()
    assert record["name"] == "pair" and record["strategy"] == "STRICT_PACK" and record["state"] == "CREATED"
    assert record["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}
    assert record["bundles_to_node_id"] == {0: node_id, 1: node_id}
    assert pg.id.hex() in placement_group_table()


def test_reserved_resources_are_taken_and_given_back_on_removal(group):
    pg = group([{"CPU": 3}])
    ray.get(pg.ready(), timeout=30)
    wait_until(lambda: ray.available_resources().get("CPU") == 1.0, 30, "the group's 3 CPUs to be taken")

    @ray.remote(num_cpus=2)
    def needs_two():
        return "ran"

    outside = needs_two.remote()
    ready, _ = ray.wait([outside], timeout=1.0)
    assert ready == [], "a task outside the group used the group's reserved CPUs"
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    assert ray.get(outside, timeout=30) == "ran"
    wait_until(lambda: ray.available_resources().get("CPU") == 4.0, 30, "the group's CPUs to come back")


def test_a_group_that_cannot_fit_stays_pending_and_reserves_nothing(group):
    pg = group([{"CPU": 2}, {"CPU": 100}])
    assert pg.wait(0.5) is False
    assert placement_group_table(pg)["state"] == "PENDING"
    assert ray.available_resources().get("CPU") == 4.0


def test_tasks_and_actors_run_in_the_group_within_its_bundles(group):
    pg = group([{"CPU": 1}, {"CPU": 2}])
    ray.get(pg.ready(), timeout=30)
    in_group = PlacementGroupSchedulingStrategy(pg)
    assert ray.get(group_of_caller.options(scheduling_strategy=in_group).remote(), timeout=30) == pg.id.hex()
    assert ray.get(group_of_caller.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=1), num_cpus=2,
    ).remote(), timeout=30) == pg.id.hex()
    assert ray.get(group_of_caller.remote(), timeout=30) is None
    assert get_current_placement_group() is None  # a driver is in no group

    @ray.remote
    class Member:
        def group(self):
            current = get_current_placement_group()
            return current.id.hex() if current else None

    member = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    assert ray.get(member.group.remote(), timeout=30) == pg.id.hex()

    with pytest.raises(ValueError, match=r"resource request \{'CPU': 3\} cannot fit into any bundles"):
        group_of_caller.options(scheduling_strategy=in_group, num_cpus=3).remote()
    with pytest.raises(ValueError, match="cannot fit into the bundle index 0"):
        group_of_caller.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0), num_cpus=2).remote()
    with pytest.raises(ValueError, match="placement group bundle index 5 is invalid"):
        group_of_caller.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 5)).remote()


def test_capture_child_tasks(group):
    pg = group([{"CPU": 2}])
    ray.get(pg.ready(), timeout=30)
    captured = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
    # A child with no strategy runs in the group; one with "DEFAULT" does not (as in Ray).
    assert ray.get(parent_of_children.options(scheduling_strategy=captured, num_cpus=0).remote(),
                   timeout=60) == (pg.id.hex(), None)
    assert ray.get(parent_opting_out.options(scheduling_strategy=captured, num_cpus=0).remote(), timeout=60) is None
    assert ray.get(parent_of_an_actor.options(scheduling_strategy=captured, num_cpus=0).remote(),
                   timeout=60) == pg.id.hex()  # an actor it creates is captured too
    not_captured = PlacementGroupSchedulingStrategy(pg)
    assert ray.get(parent_of_children.options(scheduling_strategy=not_captured, num_cpus=0).remote(),
                   timeout=60) == (None, None)


def test_rays_legacy_placement_group_options(group):
    pg = group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=30)
    assert ray.get(group_of_caller.options(placement_group=pg).remote(), timeout=30) == pg.id.hex()
    assert ray.get(group_of_caller.options(placement_group=pg, placement_group_bundle_index=0).remote(),
                   timeout=30) == pg.id.hex()
    with pytest.raises(ValueError, match="should be specified via the scheduling_strategy option"):
        group_of_caller.options(placement_group=pg, scheduling_strategy="SPREAD").remote()


def test_removal_kills_the_groups_actors_and_fails_what_waits_for_it(group):
    pg = group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=30)

    @ray.remote
    class Member:
        def ping(self):
            return "pong"

    member = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg), max_restarts=3).remote()
    assert ray.get(member.ping.remote(), timeout=30) == "pong"
    remove_placement_group(pg)

    def death_of_member():
        try:
            ray.get(member.ping.remote(), timeout=30)
        except RayActorError as error:
            return str(error)
        return None

    # Killed with its group, and not restarted (its group is gone), as in Ray.
    why = wait_until(death_of_member, 30, "the group's actor to be killed with its group")
    assert f"its placement group {pg.id.hex()} was removed" in why
    with pytest.raises(TaskPlacementGroupRemoved, match="has been removed"):
        ray.get(pg.ready(), timeout=30)
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(group_of_caller.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote(),
                timeout=30)
    remove_placement_group(pg)  # removing twice is fine, as in Ray


def test_a_group_passed_to_a_task_is_usable_there(group):
    pg = group([{"CPU": 1}], name="shared")
    ray.get(pg.ready(), timeout=30)

    @ray.remote(num_cpus=0)
    def use(handle):
        found = get_placement_group("shared")
        assert ray.get(handle.ready()) == handle and handle.wait(10)
        record = placement_group_table(handle)
        inner = ray.get(group_of_caller.options(scheduling_strategy=PlacementGroupSchedulingStrategy(handle)).remote())
        return found.id.hex(), record["state"], inner

    assert ray.get(use.remote(pg), timeout=60) == (pg.id.hex(), "CREATED", pg.id.hex())
    with pytest.raises(ValueError, match="Failed to look up placement group with name: nothing"):
        get_placement_group("nothing")


def test_the_table_lists_the_groups_of_every_process_as_rays_does(group):
    mine = group([{"CPU": 1}])
    ray.get(mine.ready(), timeout=30)

    @ray.remote(num_cpus=0)
    class Maker:
        def make(self):
            self.pg = placement_group([{"CPU": 1}], strategy="STRICT_PACK")
            ray.get(self.pg.ready())
            return self.pg.id.hex(), sorted(placement_group_table())

    maker = Maker.remote()
    theirs, seen_there = ray.get(maker.make.remote(), timeout=60)
    table = placement_group_table()
    assert {mine.id.hex(), theirs} <= set(table)
    assert table[theirs]["state"] == "CREATED" and table[theirs]["strategy"] == "STRICT_PACK"
    assert mine.id.hex() in seen_there  # the maker sees the driver's group too
    ray.kill(maker)


def test_node_affinity_hard_and_soft(cluster):
    @ray.remote
    def node():
        return ray.get_runtime_context().get_node_id()

    here = ray.get_runtime_context().get_node_id()
    assert ray.get(node.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(),
                   timeout=30) == here
    unknown = "ab" * 6
    with pytest.raises(TaskUnschedulableError, match="soft=False was specified"):
        ray.get(node.options(scheduling_strategy=NodeAffinitySchedulingStrategy(unknown, soft=False)).remote(),
                timeout=30)
    assert ray.get(node.options(scheduling_strategy=NodeAffinitySchedulingStrategy(unknown, soft=True)).remote(),
                   timeout=30) == here
    # A node that can never hold the task: hard fails (soft would run it anywhere else).
    with pytest.raises(TaskUnschedulableError, match="too small for"):
        ray.get(node.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
                             num_cpus=64).remote(), timeout=30)

    @ray.remote
    class Pinned:
        def ping(self):
            return "pong"

    pinned = Pinned.options(scheduling_strategy=NodeAffinitySchedulingStrategy(unknown, soft=False)).remote()
    with pytest.raises(ActorUnschedulableError, match="The actor is not schedulable"):
        ray.get(pinned.ping.remote(), timeout=30)
    with pytest.raises(TypeError, match="node_id must be a str"):
        NodeAffinitySchedulingStrategy(123, soft=False)


@ray.remote
class GangMember:
    def where(self):
        import os

        current = get_current_placement_group()
        return os.getpid(), current.id.hex() if current else None


def test_gang_supervision_restarts_every_member_of_the_group_together(group):
    import os
    import signal

    pg = group([{"CPU": 1}, {"CPU": 1}])
    gang = ray.supervise_gang(pg, [ray.ChildSpec("a", GangMember), ray.ChildSpec("b", GangMember)],
                              max_restarts=2, period=60)
    try:
        before = {child: ray.get(gang[child].where.remote(), timeout=60) for child in ("a", "b")}
        assert {record[1] for record in before.values()} == {pg.id.hex()}
        os.kill(before["a"][0], signal.SIGKILL)  # one member dies: both are restarted

        def both_restarted():
            now = {child: ray.get(gang[child].where.remote(), timeout=60) for child in ("a", "b")}
            return all(now[c][0] != before[c][0] for c in now) and now

        after = wait_until(both_restarted, 60, "both members of the gang to be restarted",
                           retry_on=(ray.exceptions.RayActorError,))
        assert {record[1] for record in after.values()} == {pg.id.hex()}
        assert gang.restarts == {"a": 1, "b": 1}
    finally:
        gang.stop()

    with pytest.raises(ValueError, match="a member of the gang runs in the placement group"):
        ray.supervise_gang(pg, [ray.ChildSpec("c", GangMember, options={"scheduling_strategy": "SPREAD"})])
    with pytest.raises(TypeError, match="is not a placement group"):
        ray.supervise_gang("pg", [ray.ChildSpec("c", GangMember)])
