"""queue.Queue: FIFO held by an actor; blocking and non-blocking put/get, batches, use from tasks
and actors, async forms, shutdown."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue

import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.testing import wait_until
from actorcore.util.queue import Empty, Full, Queue

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("cluster")]


@pytest.fixture
def make_queue():
    made = []

    def make(*args, **kwargs):
        made.append(Queue(*args, **kwargs))
        return made[-1]

    yield make
    for queue in made:
        queue.shutdown(force=True)


def test_items_come_out_in_order_and_sizes_follow(make_queue):
    queue = make_queue(maxsize=3)
    assert queue.empty() and not queue.full() and len(queue) == 0
    for item in ["a", {"b": 1}, 3]:
        queue.put(item)
    assert queue.full() and queue.qsize() == queue.size() == len(queue) == 3
    assert [queue.get(), queue.get_nowait(), queue.get(block=False)] == ["a", {"b": 1}, 3]
    assert queue.empty()


def test_empty_and_full_are_the_standard_librarys(make_queue):
    assert issubclass(Empty, stdlib_queue.Empty) and issubclass(Full, stdlib_queue.Full)
    queue = make_queue(maxsize=1)
    with pytest.raises(Empty):
        queue.get_nowait()
    queue.put_nowait(1)
    with pytest.raises(Full):
        queue.put_nowait(2)
    with pytest.raises(Full):
        queue.put(2, block=False)


def test_blocking_calls_time_out(make_queue):
    queue = make_queue(maxsize=1)
    with pytest.raises(Empty):
        queue.get(timeout=0.2)
    queue.put(1)
    with pytest.raises(Full):
        queue.put(2, timeout=0.2)
    assert queue.get() == 1 and queue.empty()


def test_a_negative_timeout_is_refused(make_queue):
    queue = make_queue()
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        queue.get(timeout=-1)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        queue.put(1, timeout=-1)


def test_batches_go_in_whole_or_not_at_all(make_queue):
    queue = make_queue(maxsize=3)
    queue.put_nowait_batch([1, 2])
    with pytest.raises(Full, match="Cannot add 2 items to queue of size 2 and maxsize 3"):
        queue.put_nowait_batch([3, 4])
    assert queue.size() == 2
    with pytest.raises(Empty, match="Cannot get 3 items from queue of size 2"):
        queue.get_nowait_batch(3)
    assert queue.get_nowait_batch(2) == [1, 2]
    assert queue.get_nowait_batch(0) == []
    with pytest.raises(TypeError, match="'items' must be an Iterable"):
        queue.put_nowait_batch(5)
    with pytest.raises(TypeError, match="'num_items' must be an int"):
        queue.get_nowait_batch("2")
    with pytest.raises(ValueError, match="'num_items' must be nonnegative"):
        queue.get_nowait_batch(-1)


@ray.remote
def consume(queue, count):
    return [queue.get(timeout=60) for _ in range(count)]


@ray.remote
def produce(queue, items):
    for item in items:
        queue.put(item, timeout=60)
    return len(items)


def test_a_blocked_get_in_a_task_returns_when_the_driver_puts(make_queue):
    queue = make_queue()
    consumer = consume.remote(queue, 3)
    ready, _ = ray.wait([consumer], timeout=0.3)
    assert not ready  # it waits for items
    queue.put_nowait_batch(["x", "y", "z"])
    assert ray.get(consumer, timeout=60) == ["x", "y", "z"]


def test_a_task_blocked_on_a_full_queue_goes_on_as_the_driver_gets(make_queue):
    queue = make_queue(maxsize=1)
    producer = produce.remote(queue, list(range(5)))
    assert [queue.get(timeout=60) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert ray.get(producer, timeout=60) == 5


@ray.remote
class Collector:
    def __init__(self, queue):
        self.queue = queue

    def drain(self, count):
        return [self.queue.get(timeout=60) for _ in range(count)]


def test_an_actor_holding_the_queue_sees_the_same_items(make_queue):
    queue = make_queue()
    collector = Collector.remote(queue)
    queue.put(1)
    queue.put(2)
    assert ray.get(collector.drain.remote(2), timeout=60) == [1, 2]
    assert queue.empty()


def test_async_forms(make_queue):
    queue = make_queue(maxsize=1)

    async def main():
        await queue.put_async("a")
        with pytest.raises(Full):
            await queue.put_async("b", block=False)
        with pytest.raises(Full):
            await queue.put_async("b", timeout=0.1)
        first = await queue.get_async()
        with pytest.raises(Empty):
            await queue.get_async(block=False)
        with pytest.raises(Empty):
            await queue.get_async(timeout=0.1)
        return first

    assert asyncio.run(main()) == "a"


def test_shutdown_ends_the_actor(make_queue):
    queue = make_queue()
    queue.put(1)
    actor = queue.actor
    queue.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        queue.get()
    with pytest.raises(exc.RayActorError):
        ray.get(actor.qsize.remote(), timeout=60)
    queue.shutdown()  # a second time does nothing


def test_actor_options_reach_the_queues_actor(make_queue):
    queue = make_queue(actor_options={"num_cpus": 2})
    queue.put(1)
    wait_until(lambda: ray.available_resources().get("CPU", 0) == 0, 30, "the queue's actor to hold both CPUs")
    assert queue.get() == 1
