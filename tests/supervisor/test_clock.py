"""Clocks: the real one the supervisor uses by default, and the manual one tests move by hand."""

import asyncio
import math
import time

import pytest

from supervisor import MONOTONIC, Clock, MonotonicClock
from supervisor.clock import TimerHandle
from supervisor.testing import ManualClock

pytestmark = pytest.mark.timeout(30)


def test_both_clocks_are_clocks():
    assert isinstance(MONOTONIC, MonotonicClock)
    assert isinstance(MONOTONIC, Clock) and isinstance(ManualClock(), Clock)
    assert not isinstance(object(), Clock)


def test_monotonic_clock_reads_time_monotonic():
    before = time.monotonic()
    reading = MONOTONIC.now()
    assert before <= reading <= time.monotonic()


async def test_monotonic_clock_timers_run_on_the_event_loop():
    fired = asyncio.get_running_loop().create_future()
    MONOTONIC.call_later(0.01, fired.set_result, "fired")
    assert await asyncio.wait_for(fired, 5) == "fired"
    handle = MONOTONIC.call_later(3600, fired.set_result, "never")
    assert isinstance(handle, TimerHandle)
    handle.cancel()
    assert handle.cancelled()


def test_manual_clock_stands_still_until_advanced():
    clock = ManualClock(start=100.0)
    assert clock.now() == clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5
    clock.advance(0)
    assert clock.now() == 102.5


def test_manual_clock_fires_due_timers_in_deadline_order_each_at_its_own_time():
    clock, seen = ManualClock(), []
    clock.call_later(3.0, lambda: seen.append(("c", clock.now())))
    clock.call_later(1.0, lambda: seen.append(("a", clock.now())))
    clock.call_later(1.0, lambda tag: seen.append((tag, clock.now())), "a2")  # same deadline: set order
    clock.call_later(2.0, lambda: seen.append(("b", clock.now())))
    assert clock.deadlines == [1.0, 1.0, 2.0, 3.0]
    assert clock.advance(0.999) == 0 and seen == []
    assert clock.advance(1.5) == 3
    assert seen == [("a", 1.0), ("a2", 1.0), ("b", 2.0)]
    assert clock.now() == 2.499 and clock.deadlines == [3.0]
    assert clock.advance(10) == 1 and seen[-1] == ("c", 3.0)
    assert clock.deadlines == []


def test_manual_clock_cancelled_timers_do_not_fire():
    clock, seen = ManualClock(), []
    timer = clock.call_later(1.0, seen.append, "x")
    timer.cancel()
    assert timer.cancelled() and clock.deadlines == []
    assert clock.advance(5) == 0 and seen == []


def test_manual_clock_fires_timers_set_by_callbacks_within_the_same_advance():
    clock, seen = ManualClock(), []

    def tick(n):
        seen.append((n, clock.now()))
        if n < 5:
            clock.call_later(1.0, tick, n + 1)

    clock.call_later(1.0, tick, 1)
    assert clock.advance(3.5) == 3
    assert seen == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert clock.deadlines == [4.0]


def test_manual_clock_zero_delay_fires_on_the_next_advance():
    clock, seen = ManualClock(), []
    clock.call_later(0, seen.append, "now")
    clock.call_later(-1, seen.append, "past")
    assert seen == []
    assert clock.advance(0) == 2 and seen == ["now", "past"]


def test_manual_clock_advances_to_an_exact_time():
    clock, seen = ManualClock(), []
    clock.advance(0.1)
    clock.call_later(0.2, seen.append, "due")
    [deadline] = clock.deadlines
    assert clock.advance_to(deadline) == 1 and seen == ["due"] and clock.now() == deadline


def test_manual_clock_rejects_going_back_or_nan():
    clock = ManualClock(start=5.0)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance_to(4.0)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(math.nan)
    with pytest.raises(ValueError, match="NaN"):
        clock.call_later(math.nan, print)


def test_a_failing_callback_propagates_and_later_timers_wait():
    clock, seen = ManualClock(), []

    def boom():
        raise RuntimeError("callback bug")

    clock.call_later(1.0, boom)
    clock.call_later(2.0, seen.append, "later")
    with pytest.raises(RuntimeError, match="callback bug"):
        clock.advance(5)
    assert clock.now() == 1.0 and seen == []
    assert clock.advance(1) == 1 and seen == ["later"]
