"""The Scheduler's side of placement groups, in one process (fakes as in test_scheduler.py):
bundles prepared (all or nothing), committed as resources named per group and bundle,
granted to the group's leases only, and released (prepared only, on removal, with the
creator's death) with the workers leased against them killed."""

from __future__ import annotations

import pytest

from actorcore.exceptions import TaskPlacementGroupRemoved
from actorcore.protocol import (
    CommitBundles,
    GetResources,
    KillWorker,
    PrepareBundles,
    ReleaseBundles,
    RequestLease,
)
from actorcore.scheduling import group_shape

from .test_scheduler import Fake, Node, assert_waiting, granted

pytestmark = pytest.mark.timeout(30)

GROUP = "g1"


@pytest.fixture
def node(system):
    return Node(system, {"CPU": 4.0, "GPU": 1.0})


def in_group(node: Node, index: int = -1, **shape: float):
    """Ask for a lease of ``shape`` in bundle ``index`` of GROUP."""
    renamed = group_shape(tuple(sorted(shape.items())), GROUP, index)
    return node.scheduler.ask(RequestLease(renamed, node.owner.ref), timeout=None)


async def prepare(node: Node, *bundles: dict, commit: bool = False, owner: Fake | None = None) -> bool:
    message = PrepareBundles(GROUP, tuple(enumerate(bundles)), commit, owner.ref if owner else None)
    return await node.scheduler.ask(message)


async def test_a_prepare_that_does_not_fit_whole_sets_nothing_aside(node):
    assert await prepare(node, {"CPU": 2}, {"CPU": 1, "GPU": 2}) is False
    assert await node.available() == {"CPU": 4.0, "GPU": 1.0}
    assert await node.scheduler.ask(CommitBundles(GROUP)) is False  # nothing prepared to commit


async def test_prepared_bundles_are_set_aside_then_committed_as_the_groups_resources(node):
    assert await prepare(node, {"CPU": 2}, {"CPU": 1, "GPU": 1}) is True
    assert await node.available() == {"CPU": 1.0, "GPU": 0.0}
    waiting = in_group(node, CPU=1)
    await assert_waiting(node, waiting)  # prepared is not committed: nothing of the group's yet
    assert await node.scheduler.ask(CommitBundles(GROUP)) is True
    total = await node.scheduler.ask(GetResources(available=False))
    assert total["CPU_group_0_g1"] == 2.0 and total["CPU_group_1_g1"] == 1.0 and total["CPU_group_g1"] == 3.0
    assert total["GPU_group_1_g1"] == 1.0 and total["bundle_group_g1"] == 2000.0
    node.worker_ready()
    await granted(waiting)
    free = await node.available()
    assert free["CPU_group_g1"] == 2.0 and free["CPU"] == 1.0  # the group's CPUs, not the node's


async def test_a_bundles_leases_are_bounded_by_that_bundle(node):
    assert await prepare(node, {"CPU": 1}, {"CPU": 2}, commit=True) is True
    node.worker_ready()
    node.worker_ready()
    await granted(in_group(node, 0, CPU=1))
    second = in_group(node, 0, CPU=1)
    await assert_waiting(node, second)  # bundle 0 is full, bundle 1 is not its bundle
    await granted(in_group(node, 1, CPU=2))


async def test_a_failed_phase_one_releases_what_is_prepared_only(node):
    assert await prepare(node, {"CPU": 1}, commit=True) is True
    assert await node.scheduler.ask(PrepareBundles(GROUP, ((1, {"CPU": 2}),))) is True
    assert await node.scheduler.ask(ReleaseBundles(GROUP, removed=False, prepared_only=True)) is True
    free = await node.available()
    assert free["CPU"] == 3.0 and free["CPU_group_0_g1"] == 1.0 and "CPU_group_1_g1" not in free


async def test_removal_kills_the_groups_workers_fails_its_requests_and_gives_its_resources_back(node):
    assert await prepare(node, {"CPU": 2}, commit=True) is True
    pid = node.worker_ready()
    held = await granted(in_group(node, CPU=2))
    assert held.pid == pid
    queued = in_group(node, CPU=1)
    await assert_waiting(node, queued)
    assert await node.scheduler.ask(ReleaseBundles(GROUP)) is True
    with pytest.raises(TaskPlacementGroupRemoved, match="has been removed"):
        await queued
    with pytest.raises(TaskPlacementGroupRemoved):
        await in_group(node, CPU=1)
    await node.settle()
    assert KillWorker(pid) in node.pool.take()
    assert await node.available() == {"CPU": 4.0, "GPU": 1.0}
    assert await prepare(node, {"CPU": 1}) is False  # a removed group is never placed again


async def test_a_groups_reservation_ends_with_its_creator_unless_detached(system, node):
    creator = Fake(system, "creator")
    assert await prepare(node, {"CPU": 3}, commit=True, owner=creator) is True
    assert (await node.available())["CPU"] == 1.0
    await creator.stop()
    await node.settle()
    assert await node.available() == {"CPU": 4.0, "GPU": 1.0}


async def test_a_groups_gpu_leases_hold_devices_of_their_own(system):
    node = Node(system, {"CPU": 4.0, "GPU": 2.0})
    assert await prepare(node, {"GPU": 1}, {"CPU": 1}, commit=True) is True
    node.worker_ready()
    node.worker_ready()
    in_bundle = await granted(in_group(node, 0, GPU=1))
    outside = await granted(node.request(GPU=1))
    assert len(in_bundle.gpu_ids) == len(outside.gpu_ids) == 1
    assert set(in_bundle.gpu_ids) | set(outside.gpu_ids) == {"0", "1"}
    assert await node.scheduler.ask(ReleaseBundles(GROUP)) is True  # its worker killed, its device free
    node.worker_ready()
    again = await granted(node.request(GPU=1))
    assert again.gpu_ids == in_bundle.gpu_ids
