"""Generator tasks and actor methods, as Ray 2.60 has them, on a real local cluster.

A remote generator function (or generator method) streams by default: ``.remote()`` returns an
`ObjectRefGenerator` whose items can be taken while the generator still runs; an exception
comes as the item of its step; backpressure pauses the producer; ``num_returns="dynamic"`` and
an int ``num_returns`` work as in Ray; a retried generator task delivers each item once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.runtime import require as ray_runtime
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(90)


@ray.remote
class Gate:
    """Lets a generator block at a step until the test opens it."""

    def __init__(self):
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    async def open(self):
        self.event.set()


@ray.remote
class Counter:
    def __init__(self):
        self.count = 0

    def incr(self):
        self.count += 1

    def get(self):
        return self.count


@ray.remote
def squares(n):
    for i in range(n):
        yield i * i


@ray.remote
def gated(gate):
    yield "before"
    ray.get(gate.wait.remote())
    yield "after"


@ray.remote
def fails_at(n, step):
    for i in range(n):
        if i == step:
            raise ValueError(f"step {i} failed")
        yield i


@ray.remote
async def async_squares(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i * i


def test_a_generator_task_returns_an_object_ref_generator(cluster):
    gen = squares.remote(5)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert ray.get(gen) is gen  # as in Ray: get() of a generator gives it back
    assert [ray.get(ref) for ref in gen] == [0, 1, 4, 9, 16]
    assert gen.is_finished()
    assert ray.get(gen.completed()) is None
    with pytest.raises(StopIteration):
        next(gen)


def test_items_are_taken_while_the_generator_still_runs(cluster):
    gate = Gate.remote()
    gen = gated.remote(gate)
    assert ray.get(next(gen)) == "before"  # the generator is blocked at its next step meanwhile
    assert not gen.is_finished()
    ray.get(gate.open.remote())
    assert ray.get(next(gen)) == "after"
    with pytest.raises(StopIteration):
        next(gen)


def test_async_iteration_and_async_generator_functions(cluster):
    async def take(gen):
        return [await ref async for ref in gen]

    assert asyncio.run(take(squares.remote(4))) == [0, 1, 4, 9]
    assert [ray.get(ref) for ref in async_squares.remote(4)] == [0, 1, 4, 9]
    assert asyncio.run(take(async_squares.remote(3))) == [0, 1, 4]


@ray.remote
class SyncActor:
    def numbers(self, n):
        yield from range(n)

    def failing(self):
        yield 0
        raise KeyError("at step 1")


@ray.remote(max_concurrency=4)
class ThreadedActor:
    def numbers(self, n):
        yield from range(n)

    def failing(self):
        yield 0
        raise KeyError("at step 1")


@ray.remote
class AsyncActor:
    def __init__(self):
        self.lock = asyncio.Lock()  # made on the actor's loop: the method runs there too

    async def numbers(self, n):
        async with self.lock:
            for i in range(n):
                await asyncio.sleep(0)
                yield i

    async def failing(self):
        yield 0
        raise KeyError("at step 1")


@pytest.mark.parametrize("actor_class", [SyncActor, ThreadedActor, AsyncActor], ids=["sync", "threaded", "async"])
def test_generator_methods_of_every_kind_of_actor_stream(cluster, actor_class):
    actor = actor_class.remote()
    gen = actor.numbers.remote(5)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref) for ref in gen] == [0, 1, 2, 3, 4]
    two = [actor.numbers.remote(3), actor.numbers.remote(2)]
    assert [[ray.get(ref) for ref in gen] for gen in two] == [[0, 1, 2], [0, 1]]
    first, failed = actor.failing.remote()
    assert ray.get(first) == 0
    with pytest.raises(KeyError, match="at step 1"):
        ray.get(failed)


def test_an_exception_at_step_k_is_the_kth_item_and_ends_the_stream(cluster):
    gen = fails_at.remote(5, 2)
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 1
    failed = next(gen)
    with pytest.raises(ValueError, match="step 2 failed") as info:
        ray.get(failed)
    assert isinstance(info.value, exc.RayTaskError)
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()
    assert ray.get(gen.completed()) is None  # as in Ray: the generator's own error is an item


def test_next_with_a_timeout_next_ready_and_wait(cluster):
    gate = Gate.remote()

    @ray.remote
    def late(gate):
        ray.get(gate.wait.remote())
        yield 1

    gen = late.remote(gate)
    assert gen._next_sync(timeout_s=0.1).is_nil()
    assert not gen.next_ready()
    assert ray.wait([gen], timeout=0) == ([], [gen])
    plain = squares.options(num_returns=1).remote(1)
    ready, not_ready = ray.wait([gen, plain], num_returns=1, timeout=30)
    assert (ready, not_ready) == ([plain], [gen])
    ray.get(gate.open.remote())
    ready, _ = ray.wait([gen], timeout=30)
    assert ready == [gen]
    assert gen.next_ready()
    assert ray.get(next(gen)) == 1
    ready, _ = ray.wait([gen], timeout=30)  # finished: next() would not block (it stops)
    assert ready == [gen]
    with pytest.raises(StopIteration):
        next(gen)


@ray.remote
def counted(counter, n):
    for i in range(n):
        ray.get(counter.incr.remote())
        yield i


def test_backpressure_pauses_the_producer_at_the_bound(cluster):
    free = Counter.remote()
    unbounded = counted.remote(free, 6)
    wait_until(lambda: ray.get(free.get.remote()) == 6, 30, "the unbounded generator to run to its end")

    counter = Counter.remote()
    gen = counted.options(_generator_backpressure_num_objects=2).remote(counter, 6)
    wait_until(lambda: ray.get(counter.get.remote()) == 2, 30, "the generator to produce 2 items")
    time.sleep(1.0)  # (a producer that does not stop would have made its 6 items by now)
    assert ray.get(counter.get.remote()) == 2
    assert ray.get(next(gen)) == 0
    wait_until(lambda: ray.get(counter.get.remote()) == 3, 30, "the generator to resume for one item")
    assert [ray.get(ref) for ref in gen] == [1, 2, 3, 4, 5]
    assert [ray.get(ref) for ref in unbounded] == [0, 1, 2, 3, 4, 5]


def test_an_async_actor_runs_many_paused_generators_at_once(cluster):
    @ray.remote
    class Streams:
        async def items(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

    actor = Streams.remote()
    gens = [actor.items.options(_generator_backpressure_num_objects=1).remote(3) for _ in range(8)]
    # The last one first: the seven before it are paused meanwhile, none may hold it up.
    assert [[ray.get(ref) for ref in gen] for gen in reversed(gens)] == [[0, 1, 2]] * 8


def test_backpressure_of_an_actor_generator_method(cluster):
    @ray.remote
    class Producer:
        def __init__(self, counter):
            self.counter = counter

        def items(self, n):
            for i in range(n):
                ray.get(self.counter.incr.remote())
                yield i

    counter = Counter.remote()
    producer = Producer.remote(counter)
    gen = producer.items.options(_generator_backpressure_num_objects=1).remote(4)
    wait_until(lambda: ray.get(counter.get.remote()) == 1, 30, "the method to produce 1 item")
    time.sleep(1.0)
    assert ray.get(counter.get.remote()) == 1
    assert [ray.get(ref) for ref in gen] == [0, 1, 2, 3]


def test_dynamic_num_returns(cluster):
    @ray.remote(num_returns="dynamic")
    def split(array, size):
        while len(array):
            yield array[:size]
            array = array[size:]

    @ray.remote
    def total(ref_generator):
        return sum(len(ray.get(ref)) for ref in ref_generator)

    array = np.arange(250_000)  # two of its chunks are large enough for shared memory
    dynamic_ref = split.remote(array, 100_000)
    ref_generator = ray.get(dynamic_ref)
    assert isinstance(ref_generator, ray.DynamicObjectRefGenerator)
    assert len(ref_generator) == 3
    chunks = [ray.get(ref) for ref in ref_generator]
    assert np.array_equal(np.concatenate(chunks), array)
    assert ray.get(total.remote(dynamic_ref)) == 250_000
    assert ray.get(total.remote(ref_generator)) == 250_000

    failing = ray.get(fails_at.options(num_returns="dynamic").remote(5, 2))
    refs = list(failing)
    assert len(refs) == 3
    assert ray.get(refs[:2]) == [0, 1]
    with pytest.raises(ValueError, match="step 2 failed"):
        ray.get(refs[2])


def test_an_int_num_returns_takes_the_generators_first_items(cluster):
    first, second, third, fourth = fails_at.options(num_returns=4).remote(5, 2)
    assert ray.get([first, second]) == [0, 1]
    for ref in (third, fourth):
        with pytest.raises(ValueError, match="step 2 failed"):
            ray.get(ref)
    assert ray.get(squares.options(num_returns=2).remote(5)) == [0, 1]  # more items: the first ones
    assert ray.get(squares.options(num_returns=1).remote(3)) == 0
    a, b, c = squares.options(num_returns=3).remote(2)
    assert ray.get([a, b]) == [0, 1]
    with pytest.raises(ValueError, match="num_returns=3 but its generator yielded 2"):
        ray.get(c)


def test_large_items_travel_in_shared_memory(cluster):
    @ray.remote
    def blocks(n):
        for i in range(n):
            yield np.full(200_000, i, dtype=np.int64)

    values = [ray.get(ref) for ref in blocks.remote(3)]
    assert [int(value[0]) for value in values] == [0, 1, 2]
    assert all(value.shape == (200_000,) for value in values)


@ray.remote(max_retries=1)
def interrupted(gate):
    for i in range(5):
        if i == 3:
            ray.get(gate.wait.remote())
        yield i, os.getpid()


@pytest.mark.parametrize("bound", [-1, 2], ids=["unbounded", "backpressure"])
def test_a_retried_generator_task_delivers_each_item_once(cluster, bound):
    gate = Gate.remote()
    gen = interrupted.options(_generator_backpressure_num_objects=bound).remote(gate)
    first = [ray.get(next(gen)) for _ in range(3)]
    assert [i for i, _ in first] == [0, 1, 2]
    pid = first[0][1]
    os.kill(pid, signal.SIGKILL)  # while it waits at step 3
    ray.get(gate.open.remote())
    rest = [ray.get(ref) for ref in gen]
    assert [i for i, _ in rest] == [3, 4]
    assert all(other != pid for _, other in rest)  # made by the new attempt


@ray.remote(retry_exceptions=True, max_retries=1)
def fails_once(marker, always):
    for i in range(5):
        if i == 2 and (always or not os.path.exists(marker)):
            open(marker, "w").close()
            raise ValueError("step 2 failed")
        yield i


def test_retry_exceptions_runs_a_failed_generator_again_without_duplicates(cluster, tmp_path):
    # As in Ray: with retry_exceptions the generator's exception retries the task (the items
    # already delivered are not delivered again); out of retries, it is the last item.
    assert [ray.get(ref) for ref in fails_once.remote(str(tmp_path / "once"), False)] == [0, 1, 2, 3, 4]
    gen = fails_once.remote(str(tmp_path / "always"), True)
    refs = list(gen)
    assert ray.get(refs[:2]) == [0, 1]
    assert len(refs) == 3
    with pytest.raises(ValueError, match="step 2 failed"):
        ray.get(refs[2])
    assert ray.get(gen.completed()) is None


@ray.remote(max_restarts=1, max_task_retries=1)
class Restartable:
    def items(self, gate):
        for i in range(5):
            if i == 3:
                ray.get(gate.wait.remote())
            yield i, os.getpid()


def test_a_generator_method_is_redelivered_to_the_restarted_actor_once(cluster):
    gate = Gate.remote()
    actor = Restartable.remote()
    gen = actor.items.remote(gate)
    first = [ray.get(next(gen)) for _ in range(3)]
    pid = first[0][1]
    os.kill(pid, signal.SIGKILL)
    ray.get(gate.open.remote())
    rest = [ray.get(ref) for ref in gen]
    assert [i for i, _ in first + rest] == [0, 1, 2, 3, 4]
    assert all(other != pid for _, other in rest)


@ray.remote(max_retries=0)
def not_retried(gate):
    yield os.getpid()
    ray.get(gate.wait.remote())
    yield "never"


def test_a_generator_task_out_of_retries_ends_with_its_crash(cluster):
    gate = Gate.remote()
    gen = not_retried.remote(gate)
    pid = ray.get(next(gen))
    os.kill(pid, signal.SIGKILL)
    last = next(gen)
    with pytest.raises(exc.WorkerCrashedError):
        ray.get(last)
    with pytest.raises(StopIteration):
        next(gen)


@ray.remote
def endless():
    i = 0
    while True:
        time.sleep(0.02)
        yield i
        i += 1


@pytest.mark.parametrize("target", ["generator", "item"])
def test_cancel_stops_a_generator_task(cluster, target):
    gen = endless.remote()
    item = next(gen)
    assert ray.get(item) == 0
    ray.cancel(gen if target == "generator" else item)
    values, error = [], None
    for ref in gen:  # ends: the items made before the cancel, then the cancellation
        try:
            values.append(ray.get(ref))
        except exc.TaskCancelledError as cancelled:
            error = cancelled
    assert error is not None
    assert values == list(range(1, len(values) + 1))


def test_a_generator_cannot_be_passed_to_a_task(cluster):
    @ray.remote
    def identity(x):
        return x

    gen = squares.remote(2)
    with pytest.raises(TypeError, match="ObjectRefGenerator cannot be pickled"):
        identity.remote(gen)
    with pytest.raises(TypeError, match="ObjectRefGenerator cannot be pickled"):
        identity.remote([gen])
    assert [ray.get(ref) for ref in gen] == [0, 1]


def test_streaming_and_dynamic_need_a_generator_function(cluster):
    def plain():
        return 1

    for num_returns in ("streaming", "dynamic"):
        with pytest.raises(ValueError, match="needs a generator function"):
            ray.remote(num_returns=num_returns)(plain)
        with pytest.raises(ValueError, match="needs a generator function"):
            ray.remote(plain).options(num_returns=num_returns)
    with pytest.raises(ValueError, match="0 would never let the generator run"):
        squares.options(_generator_backpressure_num_objects=0)


def test_a_task_can_consume_a_generator_task(cluster):
    @ray.remote
    def total(n):
        return sum(ray.get(ref) for ref in squares.remote(n))

    assert ray.get(total.remote(5)) == 30


def test_items_not_taken_are_freed_with_their_generator(cluster):
    @ray.remote
    def blocks(n):
        for i in range(n):
            yield np.full(50_000, i, dtype=np.int64)  # 400 KB each: in shared memory

    objects = ray_runtime().objects
    gen = blocks.remote(3)
    taken = next(gen)
    task_id = gen.completed().id.rpartition(".")[0]
    untaken = [f"{task_id}.2", f"{task_id}.3"]  # items 1 and 2 (the return is <task id>.0)
    wait_until(lambda: all(object_id in objects for object_id in untaken), 30, "every item to arrive")
    del gen
    wait_until(lambda: not any(object_id in objects for object_id in untaken), 30,
               "the items not taken to be freed")
    assert int(ray.get(taken)[0]) == 0  # the one taken lives on with its ref
