"""Actor restarts (docs/supervision.md, "Ray's max_restarts"): max_restarts, max_task_retries,
kill(no_restart=...), and the pool replacing dead workers — with real worker processes killed
for real."""

from __future__ import annotations

import os
import signal
import time

import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.protocol import ListWorkers
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(120)


@ray.remote(max_restarts=2)
class Phoenix:
    def __init__(self):
        self.calls = 0

    def pid(self):
        return os.getpid()

    def count(self):
        self.calls += 1
        return self.calls


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _back(actor, seconds: float = 60.0):
    """The actor's pid once a call succeeds again (calls in flight when it died may fail)."""
    return wait_until(lambda: ray.get(actor.pid.remote(), timeout=seconds), seconds, "the actor to come back",
                      interval=0, retry_on=(exc.ActorDiedError,))


def test_an_actor_is_restarted_in_a_new_process_until_max_restarts(cluster):
    actor = Phoenix.remote()
    first = ray.get(actor.pid.remote())
    assert ray.get([actor.count.remote(), actor.count.remote()]) == [1, 2]
    seen = {first}
    for _ in range(2):
        _kill(ray.get(actor.pid.remote()))
        start = time.monotonic()
        pid = _back(actor)
        print(f"\nactor back in {time.monotonic() - start:.3f} s")
        assert pid not in seen
        seen.add(pid)
        assert ray.get(actor.count.remote()) == 1  # __init__ ran again
    _kill(ray.get(actor.pid.remote()))
    with pytest.raises(exc.ActorDiedError, match="after 2 restart"):  # calls fail once its death is known
        wait_until(lambda: ray.get(actor.count.remote(), timeout=30) is None, 60, "a call to raise ActorDiedError")


def test_a_call_in_flight_is_redelivered_with_max_task_retries(cluster, tmp_path):
    marker = tmp_path / "died-once"

    @ray.remote(max_restarts=1, max_task_retries=1)
    class DiesOnce:
        def work(self, path):
            if not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            return "done"

    actor = DiesOnce.remote()
    assert ray.get(actor.work.remote(str(marker)), timeout=30) == "done"


def test_without_max_task_retries_the_call_in_flight_fails_and_the_next_succeeds(cluster):
    @ray.remote(max_restarts=1)
    class Crashy:
        def crash(self):
            os._exit(1)

        def ok(self):
            return "ok"

    actor = Crashy.remote()
    with pytest.raises(exc.ActorDiedError, match="not retried"):
        ray.get(actor.crash.remote(), timeout=30)
    assert ray.get(actor.ok.remote(), timeout=30) == "ok"


def test_kill_with_no_restart_false_restarts_and_kill_ends_it(cluster):
    actor = Phoenix.remote()
    first = ray.get(actor.pid.remote())
    ray.kill(actor, no_restart=False)
    assert _back(actor) != first
    ray.kill(actor)
    with pytest.raises(exc.ActorDiedError, match="kill"):
        ray.get(actor.count.remote(), timeout=30)


def test_a_borrowed_handle_follows_the_restarted_actor(cluster):
    actor = Phoenix.remote()

    @ray.remote
    def call_twice(handle):
        return ray.get(handle.pid.remote())

    before = ray.get(call_twice.remote(actor))
    _kill(before)
    after = _back(actor)
    assert ray.get(call_twice.remote(actor), timeout=30) == after
    assert after != before and after == ray.get(actor.pid.remote())


def test_a_worker_killed_with_minus_9_is_replaced_at_once(cluster):
    from actorcore import api

    core = api._runtime()
    before = core.system.ask_sync(core.pool, ListWorkers(), timeout=10)
    os.kill(before[0], signal.SIGKILL)
    start = time.monotonic()

    def replaced():
        pids = core.system.ask_sync(core.pool, ListWorkers(), timeout=10)
        return before[0] not in pids and len(pids) >= len(before)

    wait_until(replaced, 30, f"the pool to replace worker {before[0]}", interval=0.02)
    print(f"\nworker replaced in {time.monotonic() - start:.3f} s")


def test_the_cause_says_how_the_actors_process_ended(cluster):
    @ray.remote
    class Quitter:
        def quit(self, code):
            os._exit(code)

        def ping(self):
            return "pong"

    actor = Quitter.remote()
    assert ray.get(actor.ping.remote()) == "pong"
    with pytest.raises(exc.ActorDiedError):
        ray.get(actor.quit.remote(3), timeout=30)
    messages = []

    def cause_told() -> bool:  # calls racing the news of its death may get a shorter cause
        with pytest.raises(exc.ActorDiedError) as info:
            ray.get(actor.ping.remote(), timeout=30)
        messages.append(str(info.value))
        return "exited with code 3" in messages[-1]

    wait_until(cause_told, 30, "a call's error to say the process exited with code 3", details=lambda: messages)
