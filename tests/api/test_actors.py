"""Actors: state, call order, concurrency, handles as arguments, names, kill."""

from __future__ import annotations

import asyncio
import threading

import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(60)


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self, by=1):
        self.value += by
        return self.value

    def get(self):
        return self.value

    @ray.method(num_returns=2)
    def pair(self):
        return self.value, -self.value

    def fail(self):
        raise KeyError("no such thing")


@ray.remote
def bump(counter, times):
    return ray.get([counter.incr.remote() for _ in range(times)])[-1]


def test_actor_keeps_state_and_calls_run_in_order(cluster):
    counter = Counter.remote(10)
    refs = [counter.incr.remote() for _ in range(50)]
    assert ray.get(refs) == list(range(11, 61))
    assert ray.get(counter.pair.remote()) == [60, -60]
    with pytest.raises(KeyError):
        ray.get(counter.fail.remote())
    assert ray.get(counter.get.remote()) == 60  # an error in a call is not a failure


def test_direct_calls_are_type_errors(cluster):
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()
    counter = Counter.remote()
    with pytest.raises(TypeError, match=r"incr\.remote\(\)"):
        counter.incr()


def test_handles_can_be_passed_to_tasks(cluster):
    counter = Counter.remote()
    results = ray.get([bump.remote(counter, 5) for _ in range(4)])
    assert max(results) == 20
    assert ray.get(counter.get.remote()) == 20


def test_named_actors_are_unique_and_free_after_kill(cluster):
    first = Counter.options(name="unique-counter").remote()
    ray.get(first.incr.remote())
    with pytest.raises(exc.ActorAlreadyExistsError):
        Counter.options(name="unique-counter").remote()
    assert isinstance(exc.ActorAlreadyExistsError("x"), ValueError)
    found = ray.get_actor("unique-counter")
    assert ray.get(found.get.remote()) == 1
    same = Counter.options(name="unique-counter", get_if_exists=True).remote()
    assert ray.get(same.get.remote()) == 1
    ray.kill(first)
    with pytest.raises(exc.ActorDiedError):
        ray.get(first.get.remote(), timeout=10)
    with pytest.raises(ValueError, match="unique-counter"):
        ray.get_actor("unique-counter")
    again = Counter.options(name="unique-counter").remote(5)
    assert ray.get(again.get.remote()) == 5


def test_get_actor_unknown_name(cluster):
    with pytest.raises(ValueError, match="no-such-actor"):
        ray.get_actor("no-such-actor")


def test_constructor_error_kills_the_actor(cluster):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot start")

        def ping(self):
            return "pong"

    broken = Broken.remote()
    with pytest.raises(exc.ActorDiedError, match="cannot start"):
        ray.get(broken.ping.remote(), timeout=20)


def test_async_actor_runs_calls_concurrently(cluster):
    @ray.remote
    class AsyncWaiter:
        def __init__(self):
            self.event = None

        async def wait_for_others(self, n):
            if self.event is None:
                self.event = asyncio.Event()
                self.count = 0
            self.count += 1
            if self.count == n:
                self.event.set()
            await asyncio.wait_for(self.event.wait(), 10)
            return self.count

    waiter = AsyncWaiter.remote()
    assert ray.get([waiter.wait_for_others.remote(5) for _ in range(5)], timeout=30) == [5] * 5


def test_threaded_actor_with_max_concurrency(cluster):
    @ray.remote(max_concurrency=3)
    class Barrier:
        def __init__(self):
            self.barrier = threading.Barrier(3, timeout=10)

        def meet(self):
            return self.barrier.wait() >= 0

    barrier = Barrier.remote()
    assert ray.get([barrier.meet.remote() for _ in range(3)], timeout=30) == [True] * 3


def test_actor_handles_inside_actors(cluster):
    @ray.remote
    class Forwarder:
        def __init__(self, target):
            self.target = target

        def forward(self):
            return ray.get(self.target.incr.remote(100))

    counter = Counter.remote()
    forwarder = Forwarder.remote(counter)
    assert ray.get(forwarder.forward.remote()) == 100
    assert ray.get(counter.get.remote()) == 100


def test_actor_ids_in_runtime_context(cluster):
    @ray.remote
    class WhoAmI:
        def me(self):
            return ray.get_runtime_context().get_actor_id()

    actor = WhoAmI.remote()
    assert ray.get(actor.me.remote()) == actor._actorcore_actor_id


def test_calls_to_an_actor_whose_process_died_raise_actor_died(cluster):
    import os as os_module

    @ray.remote
    class Fragile:
        def die(self):
            os_module._exit(1)

        def ping(self):
            return "pong"

    fragile = Fragile.remote()
    assert ray.get(fragile.ping.remote()) == "pong"
    with pytest.raises(exc.ActorDiedError, match="Fragile"):
        ray.get(fragile.die.remote(), timeout=20)
    with pytest.raises(exc.RayActorError):
        ray.get(fragile.ping.remote(), timeout=20)


def test_an_actors_resources_come_back_when_it_is_killed_or_its_process_dies(cluster):
    import os as os_module

    @ray.remote(num_cpus=1, resources={"custom": 1})
    class Holder:
        def ping(self):
            return "pong"

        def die(self):
            os_module._exit(1)

    before = ray.cluster_resources()  # all free once the actors of earlier tests are gone
    wait_until(lambda: ray.available_resources() == before, 60, "the resources of earlier tests' actors to come back",
               details=ray.available_resources)
    killed, crashed = Holder.remote(), Holder.remote()
    assert ray.get([killed.ping.remote(), crashed.ping.remote()]) == ["pong", "pong"]
    assert ray.available_resources()["custom"] == before["custom"] - 2
    ray.kill(killed)
    with pytest.raises(exc.ActorDiedError):
        ray.get(crashed.die.remote(), timeout=20)
    wait_until(lambda: ray.available_resources() == before, 60,
               f"the resources of the killed and the crashed actor to come back ({before})",
               details=ray.available_resources)


def test_tasks_and_actors_run_in_the_namespace_of_the_driver_that_made_them(cluster):
    """As in Ray: a named actor made inside a task or an actor goes to the job's namespace."""

    @ray.remote
    class Named:
        def hello(self):
            return "hello"

    @ray.remote
    def make_in_task():
        Named.options(name="made-in-task", lifetime="detached").remote()
        return ray.get_runtime_context().namespace

    @ray.remote
    class Maker:
        def make(self):
            self.named = Named.options(name="made-in-actor").remote()
            return ray.get_runtime_context().namespace

    driver = ray.get_runtime_context().namespace
    maker = Maker.remote()
    assert ray.get(make_in_task.remote()) == driver
    assert ray.get(maker.make.remote()) == driver
    for name in ("made-in-task", "made-in-actor"):
        assert ray.get(ray.get_actor(name).hello.remote()) == "hello"
    ray.kill(ray.get_actor("made-in-task"))


@pytest.mark.timeout(120)
def test_a_detached_actor_outlives_the_actor_that_made_it_and_its_handles_reach_it(cluster):
    """As Ray's fault-tolerance page shows: an actor makes a child and a detached actor and is
    killed right after returning their handles; the child dies with it, the detached actor
    answers through the handle its maker returned."""
    import os
    import signal

    @ray.remote(max_restarts=-1)
    class Pinger:
        def ping(self):
            return "hello"

    @ray.remote
    class Parent:
        def make(self):
            self.child = Pinger.remote()
            self.detached = Pinger.options(name="outlives-its-maker", lifetime="detached").remote()
            return self.child, self.detached, os.getpid()

    child, detached, pid = ray.get(Parent.remote().make.remote(), timeout=60)
    os.kill(pid, signal.SIGKILL)
    assert ray.get(detached.ping.remote(), timeout=60) == "hello"
    wait_until(lambda: isinstance(_error_of(child.ping.remote()), exc.ActorDiedError), 60,
               "the child to die with its owner")
    with pytest.raises(exc.ActorDiedError, match="its owner"):
        ray.get(child.ping.remote(), timeout=60)
    ray.kill(detached)


def _error_of(ref):
    try:
        ray.get(ref, timeout=60)
    except Exception as error:  # noqa: BLE001 - whatever it raised is the answer
        return error
    return None
