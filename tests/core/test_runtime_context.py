"""The current task is a context variable: each call of an async actor sees its own task id."""

from __future__ import annotations

import asyncio

import actorcore as ray

CALLS = 8


@ray.remote
class Interleaved:
    """Each call waits until all CALLS calls have started, so they run interleaved on one thread."""

    def __init__(self):
        self.started = 0
        self.all_started = asyncio.Event()

    async def task_ids(self):
        before = ray.get_runtime_context().get_task_id()
        self.started += 1
        if self.started == CALLS:
            self.all_started.set()
        await asyncio.wait_for(self.all_started.wait(), 60)
        await asyncio.sleep(0)
        return before, ray.get_runtime_context().get_task_id()


def test_concurrent_calls_of_an_async_actor_each_see_their_own_task_id(cluster):
    actor = Interleaved.remote()
    refs = [actor.task_ids.remote() for _ in range(CALLS)]
    seen = ray.get(refs, timeout=90)
    for ref, (before, after) in zip(refs, seen, strict=True):
        assert before == after == ref.hex().rsplit(".", 1)[0]  # a call's id is its return's prefix
    assert len({after for _, after in seen}) == CALLS


@ray.remote
def task_id():
    return ray.get_runtime_context().get_task_id()


def test_a_task_sees_its_own_task_id_and_the_driver_none(cluster):
    ref = task_id.remote()
    assert ray.get(ref, timeout=60) == ref.hex().rsplit(".", 1)[0]
    assert ray.get_runtime_context().get_task_id() is None
