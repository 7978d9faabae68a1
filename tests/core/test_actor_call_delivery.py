"""Actor calls made by tasks and by borrowers (docs/architecture.md, "Task submission" and
"Failure semantics"): a task's calls are in the actor's mailbox before its result is seen, and a
borrower redelivers its calls in flight across a restart within max_task_retries — with real
worker processes, killed for real."""

from __future__ import annotations

import os
import signal

import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(180)

#: under the inline limit: each call carries its argument itself, so many of them take a while
#: to cross the task's connection to the actor
BLOB_BYTES = 90_000


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2)
    yield ray
    ray.shutdown()


@ray.remote
class Tally:
    def __init__(self):
        self.seen = 0

    def add(self, blob: bytes) -> None:
        self.seen += 1

    def count(self) -> int:
        return self.seen

    def pid(self) -> int:
        return os.getpid()


@ray.remote
def add_to(tally, calls: int) -> int:
    blob = b"x" * BLOB_BYTES
    for _ in range(calls):
        tally.add.remote(blob)
    return calls


def test_the_calls_a_task_made_reach_the_actor_before_its_callers_next_call(cluster):
    tally = Tally.remote()  # on a worker of its own: the tasks' calls and ours come from elsewhere
    expected = 0
    for _ in range(4):
        expected += sum(ray.get([add_to.remote(tally, 30) for _ in range(2)], timeout=120))
        assert ray.get(tally.count.remote(), timeout=120) == expected


def test_the_lectures_tracker_counts_every_call_its_tasks_made(cluster):
    for _ in range(3):
        tally = Tally.remote()  # tasks take a handle whose actor may not be placed yet
        assert ray.get([add_to.remote(tally, 1) for _ in range(8)], timeout=120) == [1] * 8
        assert ray.get(tally.count.remote(), timeout=120) == 8
        ray.kill(tally)


@ray.remote(max_restarts=1, max_task_retries=1)
class Slow:
    def __init__(self):
        self.calls = 0

    def pid(self) -> int:
        return os.getpid()

    def step(self, started: str, gate: str) -> int:
        """Marks the file `started`, waits (bounded) for the file `gate`, then counts the call
        in this incarnation."""
        open(started, "w").close()
        wait_until(lambda: os.path.exists(gate), 120, "the gate")
        self.calls += 1
        return self.calls


@ray.remote
def borrow_and_call(actor, started: str, gate: str, calls: int) -> list:
    """A borrower: the values of its calls, or their errors as (type name, message)."""
    outcomes = []
    for ref in [actor.step.remote(started, gate) for _ in range(calls)]:
        try:
            outcomes.append(ray.get(ref, timeout=150))
        except exc.RayError as error:
            outcomes.append((type(error).__name__, str(error)))
    return outcomes


def _calls_in_flight_when_killed(actor, tmp_path) -> list:
    """What a borrower's 3 calls give when the actor's process is killed while they are in
    flight (the first runs and waits for a gate that opens after the kill)."""
    pid = ray.get(actor.pid.remote(), timeout=60)
    started, gate = str(tmp_path / "started"), str(tmp_path / "gate")
    outcomes = borrow_and_call.remote(actor, started, gate, 3)
    wait_until(lambda: os.path.exists(started), 60, "the borrower's first call to run")
    os.kill(pid, signal.SIGKILL)
    open(gate, "w").close()
    result = ray.get(outcomes, timeout=160)
    assert ray.get(actor.pid.remote(), timeout=60) != pid  # restarted
    return result


def test_a_borrower_redelivers_its_calls_in_flight_to_the_restarted_actor(cluster, tmp_path):
    # In order, to the new incarnation (its count starts again at 0), as the owner's would be.
    assert _calls_in_flight_when_killed(Slow.remote(), tmp_path) == [1, 2, 3]


def test_a_borrowers_calls_beyond_max_task_retries_fail_as_the_owners_would(cluster, tmp_path):
    outcomes = _calls_in_flight_when_killed(Slow.options(max_task_retries=0).remote(), tmp_path)
    assert [outcome[0] for outcome in outcomes] == ["ActorDiedError"] * 3
    assert all("max_task_retries=0: not retried" in message for _, message in outcomes), outcomes
