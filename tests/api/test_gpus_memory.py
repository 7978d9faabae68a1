"""GPUs and memory on a real local cluster declared with 4 GPUs and 2 GB of memory (no GPU
hardware needed): device ids per task and actor, CUDA_VISIBLE_DEVICES in the worker,
get_gpu_ids / get_accelerator_ids, and the memory resource bounding what runs at once.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest

import actorcore as ray
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(180)

GB = 10**9


@pytest.fixture(scope="module")
def cluster():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # the workers inherit none
        ray.init(num_cpus=4, num_gpus=4, _memory=2 * GB)
        yield ray
        ray.shutdown()


@ray.remote(max_concurrency=100)
class Gate:
    """Holds each caller until `count` callers are inside at once; records the most inside."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.inside = 0
        self.most = 0
        self.full = asyncio.Event()

    async def pass_together(self) -> int:
        self.inside += 1
        self.most = max(self.most, self.inside)
        if self.inside >= self.count:
            self.full.set()
        await asyncio.wait_for(self.full.wait(), 60)
        return self.inside

    async def leave(self) -> None:
        self.inside -= 1
        if self.inside == 0:
            self.full.clear()

    async def most_inside(self) -> int:
        return self.most


@ray.remote
def devices(gate=None):
    if gate is not None:
        ray.get(gate.pass_together.remote())
    seen = (os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids(),
            ray.get_runtime_context().get_accelerator_ids())
    if gate is not None:
        ray.get(gate.leave.remote())
    return seen


def wait_for_all_gpus_free() -> None:
    # The driver keeps an idle lease for a moment before it returns it (and its devices).
    wait_until(lambda: ray.available_resources().get("GPU") == 4.0, 30, "every GPU lease to be returned",
               details=ray.available_resources)


def test_the_cluster_shows_its_gpus_and_memory(cluster):
    total = ray.cluster_resources()
    assert (total["GPU"], total["memory"]) == (4.0, 2 * GB)
    wait_for_all_gpus_free()
    assert ray.available_resources()["memory"] == 2 * GB


def test_the_driver_has_no_gpu_ids(cluster):
    assert ray.get_gpu_ids() == []
    assert ray.get_runtime_context().get_accelerator_ids() == {"GPU": []}


def test_gpu_tasks_running_at_once_each_see_a_device_of_their_own(cluster):
    wait_for_all_gpus_free()
    gate = Gate.remote(4)
    seen = ray.get([devices.options(num_gpus=1).remote(gate) for _ in range(4)], timeout=120)
    assert sorted(ids[0] for _, _, ids, _ in seen) == [0, 1, 2, 3]
    for _, visible, ids, accelerators in seen:
        assert visible == str(ids[0])
        assert accelerators == {"GPU": [str(ids[0])]}


def test_half_gpus_share_a_device_two_by_two(cluster):
    wait_for_all_gpus_free()
    gate = Gate.remote(4)
    seen = ray.get([devices.options(num_gpus=0.5).remote(gate) for _ in range(4)], timeout=120)
    per_device = Counter(visible for _, visible, _, _ in seen)
    assert sorted(per_device.values()) == [2, 2], per_device
    assert all(ids == [int(visible)] for _, visible, ids, _ in seen)


def test_devices_come_back_with_the_lease(cluster):
    ray.get([devices.options(num_gpus=1).remote() for _ in range(4)], timeout=120)
    wait_for_all_gpus_free()
    _, visible, ids, _ = ray.get(devices.options(num_gpus=4).remote(), timeout=120)
    assert (visible, sorted(ids)) == ("0,1,2,3", [0, 1, 2, 3])


def test_a_task_without_gpus_on_a_worker_that_ran_one_sees_the_inherited_environment(cluster):
    # Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for a task without GPUs (it does not set it to "").
    seen = ray.get([devices.options(num_gpus=1).remote() for _ in range(4)], timeout=120)
    gpu_workers = {pid for pid, _, _, _ in seen}
    wait_for_all_gpus_free()
    after = wait_until(
        lambda: [s for s in ray.get([devices.remote() for _ in range(8)], timeout=120) if s[0] in gpu_workers],
        60, "a task without GPUs to run on a worker that ran a GPU task")
    for _, visible, ids, accelerators in after:
        assert (visible, ids, accelerators) == (None, [], {"GPU": []})


@ray.remote(num_gpus=2, max_concurrency=2)
class Trainer:
    def devices(self):
        return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids(), \
            ray.get_runtime_context().get_accelerator_ids()


@ray.remote(num_gpus=1)
class AsyncTrainer:
    async def devices(self):
        return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids()


def test_an_actor_keeps_its_devices_for_its_lifetime(cluster):
    wait_for_all_gpus_free()
    trainer, other = Trainer.remote(), AsyncTrainer.remote()
    visible, ids, accelerators = ray.get(trainer.devices.remote(), timeout=120)
    assert len(ids) == 2 and visible == ",".join(map(str, ids))
    assert accelerators == {"GPU": [str(i) for i in ids]}
    other_visible, other_ids = ray.get(other.devices.remote(), timeout=120)
    assert len(other_ids) == 1 and other_visible == str(other_ids[0]) and other_ids[0] not in ids
    # Tasks come and go meanwhile: the actors' devices stay theirs.
    ray.get([devices.options(num_gpus=1).remote() for _ in range(3)], timeout=120)
    assert ray.get([trainer.devices.remote() for _ in range(4)], timeout=120) == [(visible, ids, accelerators)] * 4
    assert ray.get(other.devices.remote(), timeout=120) == (other_visible, other_ids)
    ray.kill(trainer)
    ray.kill(other)


@ray.remote
def pair_up(gate):
    ray.get(gate.pass_together.remote())
    ray.get(gate.leave.remote())


def test_memory_bounds_how_many_tasks_run_at_once(cluster):
    # 2 GB on the node, 1 GB each: two at a time. Each pair waits until both are inside the
    # gate, so a bound of one would hang and no bound would let more in. (A function of its
    # own: `devices`, measured short by the tests before, may be pipelined behind itself on
    # one worker, where a task waiting in the gate would hold its partner back.)
    gate = Gate.remote(2)
    ray.get([pair_up.options(memory=GB).remote(gate) for _ in range(6)], timeout=150)
    assert ray.get(gate.most_inside.remote()) == 2


@ray.remote
class Holder:
    def ping(self):
        return "pong"


def test_an_actor_holds_its_memory_until_it_is_gone(cluster):
    first = Holder.options(memory=1.5 * GB).remote()
    assert ray.get(first.ping.remote(), timeout=120) == "pong"
    second = Holder.options(memory=1.5 * GB).remote()
    ready, _ = ray.wait([second.ping.remote()], timeout=2)
    assert not ready, "the second actor must wait for the first one's memory"
    ray.kill(first)
    assert ray.get(second.ping.remote(), timeout=120) == "pong"
    ray.kill(second)


def test_more_memory_than_any_node_has_is_infeasible(cluster):
    with pytest.warns(UserWarning, match=r"requires \{'CPU': 1.0, 'memory': 3000000000.0\}, but no node"):
        ref = devices.options(memory=3 * GB).remote()
    ready, _ = ray.wait([ref], timeout=1)
    assert not ready
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=60)


def test_bad_gpu_and_memory_options_are_refused(cluster):
    with pytest.raises(ValueError, match=r"num_gpus=1.5 is invalid \(a GPU quantity above 1 must be a whole number\)"):
        devices.options(num_gpus=1.5)
    with pytest.raises(ValueError, match=r"memory=-1 is invalid"):
        Holder.options(memory=-1)


def test_a_gpu_function_runs_once_per_worker_unless_its_decorator_gives_max_calls(cluster):
    # As Ray: @remote(num_gpus=...) without max_calls gets max_calls=1, so each call's worker
    # exits afterwards (a library's GPU memory is given back); max_calls=0 keeps the worker.
    @ray.remote(num_gpus=1)
    def single_use():
        return os.getpid()

    @ray.remote(num_gpus=1, max_calls=0)
    def reused():
        return os.getpid()

    assert len({ray.get(single_use.remote(), timeout=60) for _ in range(3)}) == 3
    assert len({ray.get(reused.remote(), timeout=60) for _ in range(3)}) == 1
