"""RestartIntensity: more than max_restarts within period gives up (timed on a clock)."""

import math

from supervisor import MONOTONIC, RestartIntensity
from supervisor.testing import ManualClock


def test_more_than_max_in_period_gives_up():
    clock = ManualClock()
    i = RestartIntensity(3, 5.0, clock=clock)
    verdicts = []
    for _ in range(3):
        verdicts.append(i.record())
        clock.advance(1.0)
    assert verdicts == [True, True, True]
    assert i.record() is False  # a fourth at t=3, within 5 s of the first
    assert i.recent == 4


def test_old_restarts_leave_the_window():
    clock = ManualClock()
    i = RestartIntensity(2, 1.0, clock=clock)
    assert i.record()
    clock.advance(0.5)
    assert i.record()
    clock.advance(0.7)
    assert i.record()  # t=1.2: the one at t=0 has left the window
    assert i.recent == 2
    clock.advance(0.2)
    assert not i.record()  # t=1.4: 0.5, 1.2 and 1.4 are within 1 s


def test_a_restart_exactly_one_period_later_is_outside_the_window():
    clock = ManualClock()
    i = RestartIntensity(1, 2.0, clock=clock)
    assert i.record()
    clock.advance(2.0)
    assert i.record() and i.recent == 1


def test_an_explicit_time_overrides_the_clock():
    i = RestartIntensity(2, 1.0, clock=ManualClock(start=1000.0))
    assert i.record(0.0) and i.record(0.5)
    assert i.record(1.2)
    assert not i.record(1.4)


def test_zero_means_no_restart_at_all():
    assert RestartIntensity(0, 5.0, clock=ManualClock()).record() is False


def test_unlimited():
    i = RestartIntensity(-1, 1.0, clock=ManualClock())
    assert all(i.record() for _ in range(1000))


def test_infinite_period_counts_forever():
    clock = ManualClock()
    i = RestartIntensity(2, math.inf, clock=clock)
    assert i.record()
    clock.advance(1e6)
    assert i.record()
    clock.advance(1e9)
    assert not i.record()


def test_real_time_by_default():
    i = RestartIntensity(2, 60.0)
    assert i.clock is MONOTONIC
    assert i.record() and i.record() and not i.record()  # three within a minute of real time
