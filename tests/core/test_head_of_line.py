"""No head-of-line blocking (docs/architecture.md, "Task submission"): a queued task never waits
behind a running one while a worker of its shape is free — with real workers. The long tasks
run until the test opens their gate (a file), so nothing here depends on how fast the machine is."""

from __future__ import annotations

import os
import time

import pytest

import actorcore as ray

pytestmark = pytest.mark.timeout(240)

GATE_WAIT = 120  # seconds a gated task waits for its gate at most (a test that fails must still end)


@pytest.fixture(scope="module")
def four_cpus():
    ray.init(num_cpus=4)
    yield ray
    ray.shutdown()


@ray.remote
def until_open(gate: str, tag):
    """Runs until the file `gate` exists."""
    deadline = time.monotonic() + GATE_WAIT
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return tag


@ray.remote
def instant(tag):
    return tag


@ray.remote
def brief(tag):
    time.sleep(0.2)  # short, yet longer than submitting the others takes
    return tag


def _hold_every_cpu_then_warm_up(gate: str) -> None:
    """Leave the driver holding a lease on each of the 4 CPUs, with its shape measured short
    (where a driver pipelines tasks on its workers)."""
    held = [until_open.remote(gate, i) for i in range(4)]
    open(gate, "w").close()
    assert ray.get(held, timeout=GATE_WAIT) == [0, 1, 2, 3]
    os.unlink(gate)
    assert ray.get([instant.remote(i) for i in range(32)], timeout=60) == list(range(32))


def test_wait_returns_the_short_tasks_while_the_long_ones_run(four_cpus, tmp_path):
    warm, gate = str(tmp_path / "warm"), str(tmp_path / "gate")
    _hold_every_cpu_then_warm_up(warm)
    refs = [until_open.remote(gate, 0), brief.remote(1), until_open.remote(gate, 2), brief.remote(3),
            brief.remote(4)]
    try:
        ready, _ = ray.wait(refs, num_returns=3, timeout=60)
        assert sorted(ray.get(ready)) == [1, 3, 4]  # as in Ray: the two long ones still run
    finally:
        open(gate, "w").close()
    assert ray.get(refs, timeout=GATE_WAIT) == [0, 1, 2, 3, 4]


def test_instant_tasks_interleaved_with_long_ones_end_before_them(four_cpus, tmp_path):
    warm, gate = str(tmp_path / "warm"), str(tmp_path / "gate")
    _hold_every_cpu_then_warm_up(warm)
    refs, instants = [], []
    for i in range(4):
        pair = [instant.remote(2 * i), instant.remote(2 * i + 1)]
        instants += pair
        refs += [*pair, until_open.remote(gate, f"long{i}")]
    try:
        ready, _ = ray.wait(instants, num_returns=len(instants), timeout=60)
        assert len(ready) == 8  # all of them while the 4 long ones hold the 4 CPUs
    finally:
        open(gate, "w").close()
    assert ray.get(instants) == list(range(8))
    assert ray.get(refs, timeout=GATE_WAIT)[2::3] == ["long0", "long1", "long2", "long3"]


def test_one_function_both_instant_and_long_keeps_the_instant_calls_ahead(four_cpus, tmp_path):
    # As with Ray's time.sleep([6, 0, 6, 0, 0]): the same function, measured short first.
    warm, opened, gate = str(tmp_path / "warm"), str(tmp_path / "open"), str(tmp_path / "gate")
    _hold_every_cpu_then_warm_up(warm)
    open(opened, "w").close()
    assert ray.get([until_open.remote(opened, i) for i in range(32)], timeout=60) == list(range(32))
    refs = [until_open.remote(gate, 0), until_open.remote(opened, 1), until_open.remote(gate, 2),
            until_open.remote(opened, 3), until_open.remote(opened, 4)]
    try:
        ready, _ = ray.wait(refs, num_returns=3, timeout=60)
        assert sorted(ray.get(ready)) == [1, 3, 4]
    finally:
        open(gate, "w").close()
    assert ray.get(refs, timeout=GATE_WAIT) == [0, 1, 2, 3, 4]
