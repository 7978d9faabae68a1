"""RestartIntensity: more than max_restarts within period gives up."""

import math

from supervisor import RestartIntensity


def test_more_than_max_in_period_gives_up():
    i = RestartIntensity(3, 5.0)
    assert [i.record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert i.record(3.0) is False


def test_old_restarts_leave_the_window():
    i = RestartIntensity(2, 1.0)
    assert i.record(0.0) and i.record(0.5)
    assert i.record(1.2)  # 0.0 has left the window
    assert not i.record(1.4)


def test_zero_means_no_restart_at_all():
    assert RestartIntensity(0, 5.0).record(0.0) is False


def test_unlimited():
    i = RestartIntensity(-1, 1.0)
    assert all(i.record(0.0) for _ in range(1000))


def test_infinite_period_counts_forever():
    i = RestartIntensity(2, math.inf)
    assert i.record(0.0) and i.record(1e6)
    assert not i.record(1e9)
