"""ActorPool: Ray's ordered and unordered maps, submit/get_next, timeouts, push and pop_idle."""

from __future__ import annotations

import asyncio
import os

import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.util import ActorPool

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("cluster")]


@ray.remote
class Doubler:
    def double(self, value):
        return 2 * value

    def pid(self, _):
        return os.getpid()

    def die(self, _):
        os._exit(0)


@ray.remote
class Gated:
    """Calls to ``held`` finish only after ``release`` (an async actor: both run at once)."""

    def __init__(self):
        self.gate = asyncio.Event()

    async def held(self, value):
        await self.gate.wait()
        return value

    async def release(self):
        self.gate.set()


def double(actor, value):
    return actor.double.remote(value)


def test_map_returns_results_in_order_and_map_unordered_all_of_them():
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(double, [1, 2, 3, 4])) == [2, 4, 6, 8]
    assert sorted(pool.map_unordered(double, range(10))) == [2 * v for v in range(10)]
    assert not pool.has_next()


def test_map_uses_every_actor():
    actors = [Doubler.remote(), Doubler.remote()]
    pids = set(ActorPool(actors).map(lambda actor, value: actor.pid.remote(value), range(20)))
    assert len(pids) == 2


def test_taking_from_an_empty_pool_raises_stop_iteration():
    pool = ActorPool([Doubler.remote()])
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next_unordered()


def test_work_submitted_while_every_actor_is_busy_waits_for_a_free_one():
    actor = Doubler.remote()
    pool = ActorPool([actor])
    pool.submit(double, 1)
    pool.submit(double, 2)
    assert pool.has_next()
    assert not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert pool.get_next() == 4
    assert pool.has_free()
    assert pool.pop_idle() == actor
    assert not pool.has_free()


def test_push_adds_an_actor_that_takes_waiting_work_and_refuses_a_member():
    first, second = Doubler.remote(), Doubler.remote()
    pool = ActorPool([first])
    with pytest.raises(ValueError, match="Actor already belongs to current ActorPool"):
        pool.push(first)
    pool.submit(double, 1)
    pool.submit(double, 2)  # waits: the one actor is busy
    with pytest.raises(ValueError, match="Actor already belongs to current ActorPool"):
        pool.push(first)  # busy is a member too
    pool.push(second)  # takes the waiting work at once
    assert not pool.has_free()
    assert sorted([pool.get_next_unordered(), pool.get_next_unordered()]) == [2, 4]


def test_get_next_timeout_keeps_the_result_unless_told_to_ignore_it():
    gated = Gated.remote()
    pool = ActorPool([gated])
    pool.submit(lambda actor, value: actor.held.remote(value), "kept")
    with pytest.raises(TimeoutError, match=r"^Timed out waiting for result$"):
        pool.get_next(timeout=0.2)
    assert pool.has_next()
    ray.get(gated.release.remote())
    assert pool.get_next(timeout=60) == "kept"

    other = Gated.remote()
    pool = ActorPool([other])
    pool.submit(lambda actor, value: actor.held.remote(value), "dropped")
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.2, ignore_if_timedout=True)
    assert not pool.has_next()
    assert pool.has_free()  # its actor is back in the pool
    ray.get(other.release.remote())


def test_get_next_unordered_timeout_and_ignore():
    gated = Gated.remote()
    pool = ActorPool([gated])
    pool.submit(lambda actor, value: actor.held.remote(value), 1)
    with pytest.raises(TimeoutError, match=r"^Timed out waiting for result$"):
        pool.get_next_unordered(timeout=0.2)
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next_unordered(timeout=0.2, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free()
    ray.get(gated.release.remote())


def test_get_next_after_get_next_unordered_passed_it_raises():
    open_gate, closed_gate = Gated.remote(), Gated.remote()
    ray.get(open_gate.release.remote())
    pool = ActorPool([open_gate, closed_gate])  # as in Ray, the last idle actor is taken first
    pool.submit(lambda actor, value: actor.held.remote(value), "first")  # on closed_gate
    pool.submit(lambda actor, value: actor.held.remote(value), "second")  # on open_gate
    assert pool.get_next_unordered(timeout=60) == "second"
    with pytest.raises(ValueError, match=r"not allowed to call get_next\(\) after get_next_unordered\(\)"):
        pool.get_next()
    ray.get(closed_gate.release.remote())
    assert pool.get_next_unordered(timeout=60) == "first"


def test_map_drops_results_left_in_the_pool():
    pool = ActorPool([Doubler.remote()])
    pool.submit(double, 100)
    assert list(pool.map(double, [1])) == [2]


def test_an_actor_that_died_is_not_returned_to_the_pool():
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda actor, value: actor.die.remote(value), None)
    with pytest.raises(exc.ActorDiedError):
        pool.get_next(timeout=60)
    assert not pool.has_free()
    assert pool.pop_idle() is None


def test_an_error_of_the_call_is_raised_and_the_actor_stays():
    pool = ActorPool([Doubler.remote()])
    pool.submit(double, "x")
    assert pool.get_next() == "xx"
    pool.submit(lambda actor, value: actor.double.remote(value), None)
    with pytest.raises(TypeError):
        pool.get_next()
    assert pool.has_free()
