"""Restart backoff inside a supervisor: delays grow, reset after a stable run, cancel on shutdown."""

import asyncio
import time

import pytest

from supervisor import Backoff, Supervisor
from supervisor.testing import EventRecorder, FakeStarter

pytestmark = pytest.mark.timeout(30)


async def crash_and_measure(a, rec, n):
    """Crash the current incarnation; return (announced delay, measured exit→start gap)."""
    a.current.crash()
    started = await rec.wait_for("child_started", "a", count=n)
    exited = rec.of("child_exited", "a")[-1]
    restarting = rec.of("child_restarting", "a")[-1]
    return restarting.delay, started.time - exited.time


async def test_backoff_delays_grow_then_reset_after_a_stable_run():
    rec, a = EventRecorder(), FakeStarter("a")
    backoff = Backoff(min=0.02, max=0.1, jitter=0.0, reset_after=0.3)
    async with Supervisor([a.spec(backoff=backoff)], max_restarts=-1, on_event=rec) as sup:
        measured = [await crash_and_measure(a, rec, n) for n in range(2, 6)]
        delays = [d for d, _ in measured]
        assert delays == pytest.approx([0.02, 0.04, 0.08, 0.1])  # doubles, capped at max
        for delay, gap in measured:
            assert delay <= gap < delay + 0.25
        print("announced/measured:", [(round(d, 3), round(g, 3)) for d, g in measured])

        # run stably longer than reset_after: the next restart starts from min again
        await asyncio.sleep(0.35)
        delay, gap = await crash_and_measure(a, rec, 6)
        assert delay == pytest.approx(0.02) and 0.02 <= gap < 0.27
        assert sup.which_children()[0].restarts == 5


async def test_restarting_state_during_backoff_and_jitter_bounds():
    rec, a = EventRecorder(), FakeStarter("a")
    backoff = Backoff(min=0.1, max=1.0, jitter=0.5)
    async with Supervisor([a.spec(backoff=backoff)], on_event=rec) as sup:
        a.current.crash()
        event = await rec.wait_for("child_restarting", "a")
        assert 0.1 <= event.delay <= 0.15
        info = sup.which_children()[0]
        assert info.state == "restarting" and info.child is None
        await rec.wait_for("child_started", "a", count=2)
        assert sup.which_children()[0].state == "running"


async def test_shutdown_during_backoff_cancels_the_restart():
    rec, a, b = EventRecorder(), FakeStarter("a"), FakeStarter("b")
    sup = Supervisor([a.spec(backoff=Backoff(min=30, max=30)), b.spec()], on_event=rec)
    await sup.start()
    a.current.crash()
    await rec.wait_for("child_restarting", "a")
    t0 = time.monotonic()
    exit = await asyncio.wait_for(sup.shutdown(), 5)
    assert time.monotonic() - t0 < 1.0
    assert exit.kind == "shutdown"
    assert len(a.children) == 1 and [c.state for c in sup.which_children()] == ["stopped", "stopped"]
    assert b.current.exit.kind == "shutdown"


async def test_one_for_all_waits_the_failed_childs_backoff():
    rec, a, b = EventRecorder(), FakeStarter("a"), FakeStarter("b")
    sup = Supervisor([a.spec(), b.spec(backoff=Backoff(min=0.1, max=0.1, jitter=0))],
                     strategy="one_for_all", on_event=rec)
    async with sup:
        b.current.crash()
        await rec.wait_for("child_restarting", "b")
        assert [c.state for c in sup.which_children()] == ["restarting", "restarting"]
        started = await rec.wait_for("child_started", "a", count=2)
        crashed = rec.of("child_exited", "b")[0]
        assert started.time - crashed.time >= 0.1
        await rec.wait_for("child_started", "b", count=2)
