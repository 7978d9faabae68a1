"""Workers of a runtime env kept warm on a real local node: a driver's job env is set up and a
worker started for it as `init` returns (Ray's ``eager_install``), and a worker of an env that
retires (``max_calls``) is replaced by one of the same env, ready before the next task asks."""

from __future__ import annotations

import os

import pytest

import actorcore as ray
from actorcore import runtime
from actorcore.protocol import GetSchedulerStats, ListWorkerProcesses
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(120)


def _idle_workers_with(variable: str, value: str) -> set[int]:
    """The pids of the local node's idle workers whose environment has `variable`=`value`."""
    core = runtime.current()
    workers = core.system.ask_sync(core.scheduler, ListWorkerProcesses(), timeout=30)
    marker = f"{variable}={value}".encode()
    found = set()
    for pid, _uri, leased, _for_actor in workers:
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                if not leased and marker in file.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found


@ray.remote
def pid_and(variable):
    return os.getpid(), os.environ.get(variable)


@pytest.fixture
def session():
    ray.init(num_cpus=2, runtime_env={"env_vars": {"EAGER": "job"}})
    yield
    ray.shutdown()


def test_the_jobs_env_has_a_worker_before_its_first_task(session):
    warm = wait_until(lambda: _idle_workers_with("EAGER", "job"), 60,
                      "a worker of the job's env to start after init")
    assert ray.get(pid_and.remote("EAGER")) in [(pid, "job") for pid in warm]


@ray.remote(max_calls=1, runtime_env={"env_vars": {"KIND": "retiring"}})
def retiring(variable):
    return os.getpid(), os.environ.get(variable)


def test_a_retired_workers_replacement_has_its_env(session):
    core = runtime.current()
    wait_until(lambda: core.system.ask_sync(core.scheduler, GetSchedulerStats(), timeout=30)["idle_workers"] >= 3, 60,
               "the warm pool (2 workers) and the job env's worker to be ready")  # all started: none ends later
    first, kind = ray.get(retiring.remote("KIND"))
    assert kind == "retiring"
    replacement = wait_until(lambda: _idle_workers_with("KIND", "retiring") - {first}, 60,
                             "the retired worker's replacement of its env")
    second, kind = ray.get(retiring.remote("KIND"))
    assert (second, kind) in [(pid, "retiring") for pid in replacement]


def test_eager_install_false_waits_for_the_first_task():
    ray.init(num_cpus=2, runtime_env={"env_vars": {"EAGER": "lazy"}, "config": {"eager_install": False}})
    try:
        assert not _idle_workers_with("EAGER", "lazy")  # nothing is started for it at init
        assert ray.get(pid_and.remote("EAGER"))[1] == "lazy"
    finally:
        ray.shutdown()
