"""Restart backoff inside a supervisor: delays grow, reset after a stable run, cancel on shutdown.

Time is a ManualClock: a restart happens when the test advances the clock to its deadline,
not before, and no test sleeps. `test_backoff_in_real_time` checks the default clock's wiring.
"""

import asyncio
import time

import pytest

from supervisor import MONOTONIC, Backoff, Supervisor
from supervisor.testing import EventRecorder, FakeStarter, ManualClock

pytestmark = pytest.mark.timeout(30)

EPSILON = 1e-6


async def crash_and_restart(a, rec, clock, n):
    """Crash the current incarnation; check that incarnation ``n`` starts exactly when the
    announced backoff has passed on ``clock`` and not before; return that delay."""
    a.current.crash()
    restarting = await rec.wait_for("child_restarting", "a", count=n - 1)
    exited = rec.of("child_exited", "a")[-1]
    [deadline] = clock.deadlines
    assert deadline == pytest.approx(exited.time + restarting.delay)
    clock.advance_to(deadline - EPSILON)
    assert len(a.children) == n - 1  # not yet
    clock.advance_to(deadline)
    started = await rec.wait_for("child_started", "a", count=n)
    assert started.time - exited.time == pytest.approx(restarting.delay)
    return restarting.delay


async def test_backoff_delays_double_up_to_max():
    rec, a, clock = EventRecorder(), FakeStarter("a"), ManualClock()
    backoff = Backoff(min=1.0, max=8.0, jitter=0.0, reset_after=60.0)
    async with Supervisor([a.spec(backoff=backoff)], max_restarts=-1, on_event=rec, clock=clock) as sup:
        delays = [await crash_and_restart(a, rec, clock, n) for n in range(2, 8)]
        assert delays == pytest.approx([1, 2, 4, 8, 8, 8])
        assert sup.which_children()[0].restarts == 6


async def test_backoff_starts_over_after_a_stable_run_only():
    rec, a, clock = EventRecorder(), FakeStarter("a"), ManualClock()
    backoff = Backoff(min=1.0, max=100.0, jitter=0.0, reset_after=30.0)
    async with Supervisor([a.spec(backoff=backoff)], max_restarts=-1, on_event=rec, clock=clock):
        assert await crash_and_restart(a, rec, clock, 2) == 1
        assert await crash_and_restart(a, rec, clock, 3) == 2
        clock.advance(30.0 - EPSILON)  # not quite stable: the backoff keeps growing
        assert await crash_and_restart(a, rec, clock, 4) == 4
        clock.advance(30.0)  # ran reset_after: the next restart starts from min again
        assert await crash_and_restart(a, rec, clock, 5) == 1
        assert await crash_and_restart(a, rec, clock, 6) == 2


async def test_restarting_state_during_backoff_and_jitter_bounds():
    rec, a, clock = EventRecorder(), FakeStarter("a"), ManualClock()
    backoff = Backoff(min=0.1, max=1.0, jitter=0.5)
    async with Supervisor([a.spec(backoff=backoff)], on_event=rec, clock=clock) as sup:
        a.current.crash()
        event = await rec.wait_for("child_restarting", "a")
        assert 0.1 <= event.delay <= 0.15
        info = sup.which_children()[0]
        assert info.state == "restarting" and info.child is None
        clock.advance(event.delay)
        await rec.wait_for("child_started", "a", count=2)
        assert sup.which_children()[0].state == "running"


async def test_shutdown_during_backoff_cancels_the_restart():
    rec, a, b, clock = EventRecorder(), FakeStarter("a"), FakeStarter("b"), ManualClock()
    sup = Supervisor([a.spec(backoff=Backoff(min=30, max=30)), b.spec()], on_event=rec, clock=clock)
    await sup.start()
    a.current.crash()
    await rec.wait_for("child_restarting", "a")
    assert len(clock.deadlines) == 1
    exit = await asyncio.wait_for(sup.shutdown(), 5)  # does not wait for the 30 s: time stands still
    assert exit.kind == "shutdown"
    assert clock.deadlines == []  # the restart timer was cancelled
    assert clock.advance(60) == 0
    assert len(a.children) == 1 and [c.state for c in sup.which_children()] == ["stopped", "stopped"]
    assert b.current.exit.kind == "shutdown"


async def test_one_for_all_waits_the_failed_childs_backoff():
    rec, a, b, clock = EventRecorder(), FakeStarter("a"), FakeStarter("b"), ManualClock()
    sup = Supervisor([a.spec(), b.spec(backoff=Backoff(min=0.1, max=0.1, jitter=0))],
                     strategy="one_for_all", on_event=rec, clock=clock)
    async with sup:
        b.current.crash()
        await rec.wait_for("child_restarting", "b")
        assert [c.state for c in sup.which_children()] == ["restarting", "restarting"]
        assert a.current.exit.kind == "shutdown"  # stopped at once, restarted after b's backoff
        [deadline] = clock.deadlines
        clock.advance_to(deadline - EPSILON)
        assert (len(a.children), len(b.children)) == (1, 1)
        clock.advance_to(deadline)
        started = await rec.wait_for("child_started", "a", count=2)
        await rec.wait_for("child_started", "b", count=2)
        assert started.time - rec.of("child_exited", "b")[0].time == pytest.approx(0.1)


async def test_a_failed_restart_waits_the_backoff_again():
    rec, a, clock = EventRecorder(), FakeStarter("a"), ManualClock()
    backoff = Backoff(min=1.0, max=10.0, jitter=0.0)
    async with Supervisor([a.spec(backoff=backoff)], max_restarts=5, on_event=rec, clock=clock) as sup:
        a.fail_next(1)
        a.current.crash()
        await rec.wait_for("child_restarting", "a")
        clock.advance(1.0)
        await rec.wait_for("child_start_failed", "a")
        second = await rec.wait_for("child_restarting", "a", count=2)
        assert second.delay == 2.0 and len(a.children) == 1
        clock.advance(2.0)
        await rec.wait_for("child_started", "a", count=2)
        assert sup.restart_count == 2


async def test_backoff_in_real_time():
    """The default clock: a real timer, and events stamped with time.monotonic()."""
    rec, a = EventRecorder(), FakeStarter("a")
    before = time.monotonic()
    async with Supervisor([a.spec(backoff=Backoff(min=0.05, max=0.05, jitter=0))], on_event=rec) as sup:
        assert sup.clock is MONOTONIC
        a.current.crash()
        started = await rec.wait_for("child_started", "a", count=2)
        exited = rec.of("child_exited", "a")[0]
        assert before <= exited.time <= started.time <= time.monotonic()
        assert started.time - exited.time >= 0.05
