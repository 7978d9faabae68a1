"""Backoff delays: min(max, min * 2**n) * (1 + jitter * U(0, 1))."""

import pytest

from supervisor import Backoff


def test_delays_double_up_to_max_without_jitter():
    b = Backoff(min=0.1, max=1.0, jitter=0.0)
    assert [b.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_stays_within_its_fraction():
    b = Backoff(min=0.1, max=1.0, jitter=0.5)
    for n in range(6):
        base = b.base_delay(n)
        delays = [b.delay(n) for _ in range(200)]
        assert all(base <= d <= base * 1.5 for d in delays)
        assert len(set(delays)) > 1


def test_large_n_does_not_overflow():
    assert Backoff(min=0.1, max=3.0, jitter=0).delay(10_000) == 3.0


def test_zero_min_means_no_delay():
    assert Backoff(min=0, max=0, jitter=0.2).delay(5) == 0
