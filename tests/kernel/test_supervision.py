"""Actors under a supervisor: restart in place, strategies, intensity, stop order."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from actorcore.kernel import Actor, ActorStoppedError
from actorcore.kernel.cell import ActorCell
from actorcore.kernel.supervision import actor_spec
from supervisor import Supervisor
from supervisor.testing import EventRecorder

pytestmark = pytest.mark.timeout(30)


class Worker(Actor):
    log: ClassVar[list] = []

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    async def pre_start(self) -> None:
        Worker.log.append(("start", self.name))

    async def post_stop(self) -> None:
        Worker.log.append(("stop", self.name))

    async def pre_restart(self, cause) -> None:
        Worker.log.append(("pre_restart", self.name, self.count, repr(cause)))

    async def post_restart(self, cause) -> None:
        Worker.log.append(("post_restart", self.name, self.count, repr(cause)))

    async def receive(self, message):
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed")
        if message == "count":
            return self.count
        self.count += 1
        return self.count


@pytest.fixture(autouse=True)
def clear_log():
    Worker.log = []


async def _restarted(recorder: EventRecorder, child_id: str) -> None:
    """The second `child_started` of `child_id`: its first restart has happened."""
    await recorder.wait_for("child_started", child_id, count=2, timeout=10)


async def test_crashed_actor_is_restarted_in_place_with_fresh_state(system):
    recorder = EventRecorder()
    sup = Supervisor([actor_spec(system, "w", Worker, "w")], on_event=recorder)
    await sup.start()
    ref = system.lookup("w")
    assert await ref.ask("add") == 1
    watch = system.watch(ref)
    ref.tell("crash")
    ref.tell("add")  # queued behind the crash: handled by the new incarnation
    await _restarted(recorder, "w")
    assert await ref.ask("count") == 1  # state from the constructor, plus the queued message
    assert system.cell(ref).incarnation == 1
    assert not watch.done()  # a restart is not a death
    crash = repr(RuntimeError("w crashed"))
    assert Worker.log == [("start", "w"), ("pre_restart", "w", 1, crash), ("post_restart", "w", 0, crash)]
    await sup.shutdown()
    assert (await asyncio.wait_for(watch, 10)).reason == "normal"
    with pytest.raises(ActorStoppedError):
        await ref.ask("count")


async def test_one_for_all_restarts_siblings_and_stops_in_reverse_order(system):
    recorder = EventRecorder()
    specs = [actor_spec(system, name, Worker, name) for name in ("a", "b", "c")]
    sup = Supervisor(specs, strategy="one_for_all", on_event=recorder)
    await sup.start()
    refs = [system.lookup(n) for n in "abc"]
    for ref in refs:
        await ref.ask("add")
    refs[1].tell("crash")
    for name in "abc":
        await _restarted(recorder, name)
    assert [await ref.ask("count") for ref in refs] == [0, 0, 0]
    Worker.log.clear()
    await sup.shutdown()
    assert Worker.log == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_intensity_exceeded_gives_up_and_stops_the_actor(system):
    sup = Supervisor([actor_spec(system, "fragile", Worker, "fragile")], max_restarts=2, period=10)
    await sup.start()
    ref = system.lookup("fragile")
    watch = system.watch(ref)
    for _ in range(3):
        ref.tell("crash")
    exit = await asyncio.wait_for(sup.wait(), 10)
    assert exit.kind == "restarts_exhausted"
    terminated = await asyncio.wait_for(watch, 10)
    assert terminated.ref == ref
    assert terminated.reason == "restarts_exhausted"
    assert isinstance(terminated.error, RuntimeError)


async def test_decider_resume_keeps_state(system):
    spec = actor_spec(system, "tough", Worker, "tough", decider=lambda error: "resume")
    sup = Supervisor([spec])
    await sup.start()
    ref = system.lookup("tough")
    await ref.ask("add")
    ref.tell("crash")
    assert await ref.ask("count") == 1
    assert sup.restart_count == 0
    await sup.shutdown()


async def test_stash_while_waiting_for_restart_is_bounded(system, monkeypatch):
    from actorcore.kernel import cell as cell_module
    from supervisor import Backoff

    monkeypatch.setattr(cell_module, "STASH_LIMIT", 5)
    recorder = EventRecorder()
    spec = actor_spec(system, "slow", Worker, "slow", backoff=Backoff(min=0.3, max=0.3, jitter=0))
    sup = Supervisor([spec], on_event=recorder)
    await sup.start()
    ref = system.lookup("slow")
    ref.tell("crash")
    await recorder.wait_for("child_restarting", "slow", timeout=10)
    asks = [ref.ask("add", timeout=None) for _ in range(8)]
    for overflow in asks[5:]:
        with pytest.raises(ActorStoppedError):
            await asyncio.wait_for(overflow, 10)  # dead letters fail at once
    assert [await asyncio.wait_for(a, 10) for a in asks[:5]] == [1, 2, 3, 4, 5]
    await sup.shutdown()


class SlowStart(Actor):
    """An actor whose pre_start waits for the test's gate."""

    gate: ClassVar[asyncio.Event]
    log: ClassVar[list] = []

    async def pre_start(self) -> None:
        SlowStart.log.append("starting")
        await SlowStart.gate.wait()
        SlowStart.log.append("started")

    async def post_stop(self) -> None:
        SlowStart.log.append("stopped")

    async def receive(self, message):
        return "up"


async def test_an_actor_suspended_while_it_starts_is_stopped_cleanly_then_restarted(system, monkeypatch):
    SlowStart.gate, SlowStart.log = asyncio.Event(), []
    recorder = EventRecorder()
    sup = Supervisor([actor_spec(system, "first", Worker, "first")], strategy="rest_for_one", on_event=recorder)
    await sup.start()
    await sup.start_child(actor_spec(system, "slow", SlowStart, shutdown=60))
    suspending, suspend = asyncio.Event(), ActorCell.suspend

    def suspend_and_tell(cell):
        suspending.set()
        return suspend(cell)

    monkeypatch.setattr(ActorCell, "suspend", suspend_and_tell)
    system.lookup("first").tell("crash")
    await asyncio.wait_for(suspending.wait(), 10)  # the rest_for_one restart reaches "slow" in its pre_start
    SlowStart.gate.set()
    await _restarted(recorder, "slow")  # at once, not after the 60 s shutdown timeout
    assert await system.lookup("slow").ask("ping") == "up"
    assert SlowStart.log == ["starting", "started", "stopped", "starting", "started"]
    await sup.shutdown()
