"""Task events on a real local node, for every kind of task: actor creation and calls (sync and
async), a task seen RUNNING while it runs, a retried task whose first worker died, and an actor's
restart, as the state API lists them."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

import actorcore as ray
from actorcore.testing import wait_until
from actorcore.util.state import list_tasks

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("cluster")]


def _one(name: str, state: str, attempt: int | None = None):
    tasks = [t for t in list_tasks(filters=[("name", "=", name), ("state", "=", state)], limit=1000)
             if attempt is None or t.attempt_number == attempt]
    return tasks[0] if len(tasks) == 1 else None


@ray.remote
class Counter:
    def __init__(self):
        self.count = 0

    def add(self):
        self.count += 1
        return self.count


@ray.remote
class Sleeper:
    async def nap(self):
        await asyncio.sleep(0.01)
        return "rested"


def test_actor_creation_and_calls_are_listed_with_their_actor():
    counter = Counter.remote()
    assert ray.get([counter.add.remote() for _ in range(2)]) == [1, 2]
    actor_id = counter._actorcore_actor_id
    created = wait_until(lambda: _one("Counter.__init__", "FINISHED"), 30, "the actor's creation to be listed",
                         details=lambda: list_tasks(limit=1000))
    assert (created.type, created.actor_id) == ("ACTOR_CREATION_TASK", actor_id)
    calls = wait_until(
        lambda: (lambda ts: ts if len(ts) == 2 else None)(
            list_tasks(filters=[("name", "=", "Counter.add"), ("state", "=", "FINISHED")], limit=1000)),
        30, "the two calls to be listed")
    for call in calls:
        assert (call.type, call.actor_id, call.node_id) == ("ACTOR_TASK", actor_id, created.node_id)
        assert call.worker_pid == created.worker_pid and call.worker_id


def test_an_async_actor_call_is_listed():
    sleeper = Sleeper.remote()
    assert ray.get(sleeper.nap.remote()) == "rested"
    nap = wait_until(lambda: _one("Sleeper.nap", "FINISHED"), 30, "the async call to be listed")
    assert nap.type == "ACTOR_TASK" and nap.start_time_ms <= nap.end_time_ms


def test_a_long_task_is_listed_running_then_finished(tmp_path):
    release = tmp_path / "release"

    @ray.remote
    def waits(path):
        import time

        while not os.path.exists(path):
            time.sleep(0.02)
        return "done"

    ref = waits.remote(str(release))
    running = wait_until(lambda: _one("waits", "RUNNING"), 30, "the running task to be listed")
    assert running.start_time_ms is not None and running.end_time_ms is None
    release.write_text("go")
    assert ray.get(ref) == "done"
    finished = wait_until(lambda: _one("waits", "FINISHED"), 30, "the task to be listed finished")
    assert finished.task_id == running.task_id and finished.end_time_ms >= finished.start_time_ms


def test_a_task_whose_worker_died_is_listed_failed_then_its_retry_finished(tmp_path):
    marker = tmp_path / "died-once"

    @ray.remote(max_retries=1)
    def dies_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "second time"

    assert ray.get(dies_once.remote(str(marker))) == "second time"
    first = wait_until(lambda: _one("dies_once", "FAILED", 0), 30, "the first attempt to be listed failed",
                       details=lambda: list_tasks(limit=1000))
    assert first.error_type == "WORKER_DIED"
    retry = wait_until(lambda: _one("dies_once", "FINISHED", 1), 30, "the retry to be listed finished")
    assert retry.task_id == first.task_id and retry.type == "NORMAL_TASK"


def test_an_actor_restart_is_listed_as_the_next_attempt_of_its_creation():
    @ray.remote(max_restarts=1)
    class Phoenix:
        def pid(self):
            return os.getpid()

    def pid_after_restart(phoenix, first_pid):
        try:
            pid = ray.get(phoenix.pid.remote(), timeout=30)
        except ray.exceptions.RayActorError:  # a call that met the death itself
            return None
        return pid if pid != first_pid else None

    phoenix = Phoenix.remote()
    first_pid = ray.get(phoenix.pid.remote())
    # listed before the kill: a killed worker's events not sent yet (up to a second's) die with it
    first = wait_until(lambda: _one("Phoenix.__init__", "FINISHED", 0), 30, "the creation to be listed")
    os.kill(first_pid, signal.SIGKILL)
    second_pid = wait_until(lambda: pid_after_restart(phoenix, first_pid), 60, "the actor to restart")
    again = wait_until(lambda: _one("Phoenix.__init__", "FINISHED", 1), 30, "the restart's creation to be listed",
                       details=lambda: list_tasks(filters=[("name", "=", "Phoenix.__init__")]))
    assert (again.type, again.actor_id, again.worker_pid) == (
        "ACTOR_CREATION_TASK", phoenix._actorcore_actor_id, second_pid)
    assert first.task_id == again.task_id and first.worker_pid == first_pid


def test_events_from_many_threads_are_all_listed():
    @ray.remote
    def noop(i):
        return i

    results: list = []

    def submit() -> None:
        results.extend(ray.get([noop.remote(i) for i in range(50)]))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 200
    wait_until(lambda: len(list_tasks(filters=[("name", "=", "noop"), ("state", "=", "FINISHED")], limit=1000))
               == 200, 30, "the 200 tasks to be listed finished")


def _names() -> set[str]:
    return {task.name for task in list_tasks(limit=10_000)}


def test_a_task_without_task_events_is_not_listed():
    @ray.remote
    def quiet_pid():
        return os.getpid()

    @ray.remote
    def loud_pid():
        return os.getpid()

    quiet = ray.get(quiet_pid.options(enable_task_events=False).remote())
    # A listed task run after it by the same worker: that worker's events up to it are applied.
    runs = 1
    while ray.get(loud_pid.remote()) != quiet:
        runs += 1
        assert runs <= 50, f"no task ran again on worker {quiet}"
    wait_until(lambda: len(list_tasks(filters=[("name", "=", "loud_pid"), ("state", "=", "FINISHED")],
                                      limit=1000)) == runs, 30, "the tasks run after it to be listed")
    assert "quiet_pid" not in _names()


@ray.remote(enable_task_events=False)
class Quiet:
    def hush(self):
        return "hush"

    @ray.method(enable_task_events=True)
    def speak(self):
        return "spoken"


def test_an_actor_without_task_events_lists_only_the_methods_that_ask_for_them():
    quiet = Quiet.remote()
    assert ray.get([quiet.hush.remote(), quiet.speak.remote()]) == ["hush", "spoken"]
    wait_until(lambda: _one("Quiet.speak", "FINISHED"), 30, "the method with task events to be listed")
    names = _names()
    assert "Quiet.hush" not in names and "Quiet.__init__" not in names


def test_a_call_without_task_events_is_not_listed():
    counter = Counter.remote()
    assert ray.get(counter.add.options(enable_task_events=False).remote()) == 1
    assert ray.get(counter.add.remote()) == 2
    calls = [("actor_id", "=", counter._actorcore_actor_id), ("name", "=", "Counter.add")]
    listed = wait_until(lambda: list_tasks(filters=calls, limit=1000), 30, "the second call to be listed")
    assert len(listed) == 1 and listed[0].state == "FINISHED"
