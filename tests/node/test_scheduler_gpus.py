"""The Scheduler's GPU devices: each lease of a shape with GPUs gets device ids of its own
(whole GPUs: distinct devices; fractions: packed onto shared devices as Ray packs them, never
more than one device's worth), named in its `LeaseGranted` and given back with the lease.

The Scheduler is the real actor; the pool, workers and owners are the recording fakes of
test_scheduler.py.
"""

from __future__ import annotations

import itertools

import pytest

from actorcore.kernel import ActorSystem
from actorcore.node.scheduler import Scheduler
from actorcore.protocol import GetResources, ReturnLease, WorkerDied

from .test_scheduler import NODE, Fake, Node, assert_waiting, granted

pytestmark = pytest.mark.timeout(30)


class GpuNode(Node):
    """A `Node` whose Scheduler is given the device ids of its GPUs."""

    def __init__(self, system: ActorSystem, total: dict, gpu_ids: list[str] | None = None) -> None:
        self.system = system
        self.pool = Fake(system, "pool")
        self.owner = Fake(system, "owner")
        self.gcs = None
        self.scheduler = system.spawn(Scheduler, total, self.pool.ref, node_id=NODE, gpu_ids=gpu_ids,
                                      name="scheduler")
        self._pids = itertools.count(1001)
        self.workers = {}

    def workers_ready(self, count: int) -> None:
        for _ in range(count):
            self.worker_ready()


@pytest.fixture
def node(system):
    gpu_node = GpuNode(system, {"CPU": 16.0, "GPU": 4.0})
    gpu_node.workers_ready(10)
    return gpu_node


async def test_leases_of_whole_gpus_get_distinct_devices_and_wait_when_none_is_free(node):
    grants = [await granted(node.request(CPU=1, GPU=1)) for _ in range(4)]
    assert sorted(grant.gpu_ids for grant in grants) == [("0",), ("1",), ("2",), ("3",)]
    fifth = node.request(CPU=1, GPU=1)
    await assert_waiting(node, fifth)
    node.tell(ReturnLease(grants[2].lease_id))
    assert (await granted(fifth)).gpu_ids == grants[2].gpu_ids  # the device came back with the lease


async def test_a_lease_of_several_gpus_takes_the_free_devices_with_the_lowest_ids(node):
    one = await granted(node.request(GPU=1))
    two = await granted(node.request(GPU=2))
    assert (one.gpu_ids, two.gpu_ids) == (("0",), ("1", "2"))
    node.tell(ReturnLease(one.lease_id))
    assert (await granted(node.request(GPU=2))).gpu_ids == ("0", "3")


async def test_leases_without_gpus_get_no_devices(node):
    assert (await granted(node.request(CPU=1))).gpu_ids == ()


async def test_fractions_are_packed_onto_the_fullest_device_that_holds_them_as_ray_does(node):
    # The same requests, in the same order, were given these devices by Ray 2.60 (num_gpus=4).
    quantities = [0.3, 0.3, 0.5, 0.5, 0.3, 1, 0.7, 0.2]
    grants = [await granted(node.request(GPU=q)) for q in quantities]
    assert [grant.gpu_ids for grant in grants] == [("0",), ("0",), ("1",), ("1",), ("0",), ("2",), ("3",), ("3",)]
    assert (await node.available())["GPU"] == pytest.approx(0.2)
    assert (await node.scheduler.ask(GetResources(available=False)))["GPU"] == 4.0


async def test_fractions_never_make_a_device_exceed_one_gpu(system):
    node = GpuNode(system, {"CPU": 4.0, "GPU": 2.0})
    node.workers_ready(4)
    first = await granted(node.request(GPU=0.7))
    second = await granted(node.request(GPU=0.7))
    assert {first.gpu_ids, second.gpu_ids} == {("0",), ("1",)}
    # 0.6 GPU is free in all, but 0.3 per device: a half does not fit on any one of them.
    half = node.request(GPU=0.5)
    whole = node.request(GPU=1)
    await assert_waiting(node, half, whole)
    node.tell(ReturnLease(first.lease_id))
    assert (await granted(half)).gpu_ids == first.gpu_ids
    await assert_waiting(node, whole)


async def test_the_devices_are_the_ids_the_node_was_given(system):
    node = GpuNode(system, {"CPU": 4.0, "GPU": 2.0}, gpu_ids=["2", "5"])
    node.workers_ready(3)
    assert (await granted(node.request(GPU=1))).gpu_ids == ("2",)
    assert (await granted(node.request(GPU=0.5))).gpu_ids == ("5",)
    assert (await granted(node.request(GPU=0.5))).gpu_ids == ("5",)


async def test_devices_come_back_when_the_worker_dies_or_the_owner_goes(node):
    lease = await granted(node.request(GPU=4))
    assert lease.gpu_ids == ("0", "1", "2", "3")
    node.tell(WorkerDied(lease.pid))
    by_owner = await granted(node.request(GPU=4))
    assert by_owner.gpu_ids == ("0", "1", "2", "3")
    other = Fake(node.system, "other-owner")
    waiting = node.request(other, GPU=1)
    await assert_waiting(node, waiting)
    await node.owner.stop()  # its leases end with it
    assert (await granted(waiting)).gpu_ids == ("0",)
