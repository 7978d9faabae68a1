"""Ray's actor and task options at work on a real cluster: concurrency groups, max_pending_calls,
max_calls, and the options Ray refuses in `.options()`."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import actorcore as ray
from actorcore import exceptions as exc

pytestmark = pytest.mark.timeout(120)


class _Peaks:
    """How many calls of each group ran at once, at most."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def enter(self, group):
        with self.lock:
            self.now[group] = self.now.get(group, 0) + 1
            self.peak[group] = max(self.peak.get(group, 0), self.now[group])

    def leave(self, group):
        with self.lock:
            self.now[group] -= 1


@ray.remote(concurrency_groups={"io": 2, "compute": 1})
class Grouped:
    def __init__(self):
        self.peaks = _Peaks()

    def _run(self, group, seconds):
        self.peaks.enter(group)
        time.sleep(seconds)
        self.peaks.leave(group)
        return group

    @ray.method(concurrency_group="io")
    def io(self, seconds):
        return self._run("io", seconds)

    @ray.method(concurrency_group="compute")
    def compute(self, seconds):
        return self._run("compute", seconds)

    def plain(self, seconds):
        return self._run("default", seconds)

    def peak(self):
        return self.peaks.peak


def test_each_concurrency_group_of_a_threaded_actor_has_its_own_limit(cluster):
    actor = Grouped.remote()
    refs = ([actor.io.remote(0.4) for _ in range(4)] + [actor.compute.remote(0.4) for _ in range(3)]
            + [actor.plain.remote(0.2) for _ in range(2)])
    assert ray.get(refs, timeout=60) == ["io"] * 4 + ["compute"] * 3 + ["default"] * 2
    # io ran 2 at once, compute 1, the default group (max_concurrency=1) 1; and while a long
    # compute call ran, the other groups' calls were not held behind it
    assert ray.get(actor.peak.remote(), timeout=60) == {"io": 2, "compute": 1, "default": 1}


def test_a_call_can_name_its_group_and_an_unknown_group_is_an_error(cluster):
    actor = Grouped.remote()
    blocker = actor.compute.remote(2.0)
    # the default group's method, sent to "io" for this call: it does not wait for compute
    assert ray.get(actor.plain.options(concurrency_group="io").remote(0), timeout=60) == "default"
    with pytest.raises(ValueError, match="no concurrency group 'nope'"):
        ray.get(actor.plain.options(concurrency_group="nope").remote(0), timeout=60)
    assert ray.get(blocker, timeout=60) == "compute"


@ray.remote(concurrency_groups={"slow": 1})
class AsyncGrouped:
    def __init__(self):
        self.peaks = _Peaks()

    @ray.method(concurrency_group="slow")
    async def slow(self, seconds):
        self.peaks.enter("slow")
        await asyncio.sleep(seconds)
        self.peaks.leave("slow")

    async def fast(self, seconds):
        self.peaks.enter("default")
        await asyncio.sleep(seconds)
        self.peaks.leave("default")

    async def peak(self):
        return self.peaks.peak


def test_an_async_actors_group_bounds_its_coroutines_and_the_default_group_runs_many(cluster):
    actor = AsyncGrouped.remote()
    ray.get([actor.slow.remote(0.3) for _ in range(3)] + [actor.fast.remote(0.5) for _ in range(5)],
            timeout=60)
    peaks = ray.get(actor.peak.remote(), timeout=60)
    assert peaks["slow"] == 1
    assert peaks["default"] > 1  # async actors default to max_concurrency=1000


def test_concurrency_groups_are_refused_in_options_as_ray_does(cluster):
    with pytest.raises(ValueError, match=r"'concurrency_groups' is not supported in \.options\(\)"):
        Grouped.options(concurrency_groups={"x": 1})


@ray.remote(max_pending_calls=2)
class Slow:
    def wait(self, seconds):
        time.sleep(seconds)
        return seconds


def test_max_pending_calls_raises_once_the_handle_has_that_many_pending(cluster):
    actor = Slow.remote()
    first, second = actor.wait.remote(0.5), actor.wait.remote(0.5)
    with pytest.raises(exc.PendingCallsLimitExceeded, match="max_pending_calls is 2"):
        actor.wait.remote(0)
    assert ray.get([first, second], timeout=60) == [0.5, 0.5]
    assert ray.get(actor.wait.remote(0), timeout=60) == 0  # room again once results are ready


@ray.remote(max_calls=1)
def pid_of_single_use_worker():
    return os.getpid()


@ray.remote
def pid_of_worker():
    return os.getpid()


def test_max_calls_retires_the_worker_after_that_many_runs(cluster):
    pids = [ray.get(pid_of_single_use_worker.remote(), timeout=60) for _ in range(3)]
    assert len(set(pids)) == 3  # a new worker each time
    for pid in pids:  # and the retired ones are gone
        _wait_gone(pid)
    reused = [ray.get(pid_of_worker.remote(), timeout=60) for _ in range(3)]
    assert len(set(reused)) == 1  # without max_calls a worker is reused


def test_max_calls_is_refused_in_options_as_ray_does(cluster):
    with pytest.raises(ValueError, match=r"'max_calls' is not supported in \.options\(\)"):
        pid_of_worker.options(max_calls=2)


def _wait_gone(pid: int) -> None:
    from actorcore.testing import wait_until

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split()[2] == "Z"  # exited, not yet reaped
        except OSError:
            return True
        return False

    wait_until(gone, 60, f"retired worker {pid} to exit")
