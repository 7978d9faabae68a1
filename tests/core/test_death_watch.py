"""Death watch of processes in process: who waits for a worker's end, and how it ended."""

from __future__ import annotations

import asyncio

import pytest

from actorcore.core.death_watch import DeathWatch
from actorcore.kernel import PEER_LOST, Terminated
from actorcore.protocol import ActorWorkerExited, ExitWorker

from .fakes import FakeSystem, settle

pytestmark = pytest.mark.usefixtures("no_dangling_tasks")


@pytest.fixture
async def system():
    return FakeSystem(asyncio.get_running_loop())


async def test_waiters_for_a_process_learn_its_end_and_later_ones_at_once(system):
    deaths = DeathWatch(system, system.ref("core"))
    worker = system.ref("w1")
    death = asyncio.ensure_future(deaths.process_death(worker, "its node process"))
    await settle()
    assert system.watched == [worker] and not death.done()
    deaths.on_terminated(Terminated(worker, PEER_LOST))
    assert await death == f"its node process ended ({PEER_LOST})"
    assert deaths.is_dead(worker)
    assert await deaths.process_death(worker) == "its worker process ended"


async def test_an_exit_status_is_kept_and_wakes_who_waits_for_it(system):
    deaths = DeathWatch(system, system.ref("core"))
    waiting = asyncio.ensure_future(deaths.wait_exit(42, timeout=60))
    await settle()
    deaths.on_worker_exited(ActorWorkerExited(1, 42, "exited with code 3"))
    await waiting
    assert deaths.exit_of(42) == "exited with code 3" and deaths.exit_of(43) is None


async def test_stop_asks_the_process_to_exit_and_returns_once_it_has(system):
    deaths = DeathWatch(system, system.ref("core"))
    worker = system.ref("w2")
    stopping = asyncio.ensure_future(deaths.stop(worker, timeout=60))
    await settle()
    assert worker.told == [ExitWorker()]
    deaths.on_terminated(Terminated(worker, PEER_LOST))
    assert await stopping is True
    assert await deaths.stop(system.ref("w3"), timeout=0) is False  # never ends: gives up
