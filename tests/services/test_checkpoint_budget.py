"""The daemon's checkpoint byte budget: etcd's history must stay within its quota."""

import pytest

from actorcore.services.instances import CheckpointBudget

pytestmark = pytest.mark.timeout(10)


def test_the_budget_refuses_what_exceeds_it_within_the_window_and_frees_it_after(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("actorcore.services.instances.time.monotonic", lambda: now[0])
    budget = CheckpointBudget(limit=100, window=60.0)
    assert budget.allow(60) and budget.allow(40)
    assert not budget.allow(1)  # spent
    now[0] += 30
    assert not budget.allow(1)  # still within the minute
    now[0] += 31
    assert budget.allow(100)  # the first writes left the window
    assert not budget.allow(101 - 100)
