"""Ending an actor from inside (sys.exit, exit_actor) and cancelling tasks and actor calls,
with Ray's error classes (checked against Ray 2.60)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.actor import exit_actor
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(120)


@ray.remote(max_restarts=3)
class Quitter:
    def pid(self):
        return os.getpid()

    def leave(self):
        exit_actor()

    def leave_but_catch(self):
        try:
            exit_actor()
        except SystemExit:
            pass
        return "caught"

    def sys_exit(self, code=None):
        sys.exit(code)

    def block(self, seconds):
        time.sleep(seconds)
        return seconds

    def block_until_cancelled(self, marker_path):
        open(marker_path, "w").close()
        while not ray.get_runtime_context().is_canceled():
            time.sleep(0.01)
        self.saw_cancel = True
        return "stopped early"

    def saw(self):
        return getattr(self, "saw_cancel", False)

    def note(self, text):
        self.__dict__.setdefault("noted", []).append(text)

    def notes(self):
        return self.__dict__.get("noted", [])


@ray.remote(max_restarts=3)
class AsyncQuitter:
    async def ping(self):
        return "pong"

    async def leave(self):
        exit_actor()

    async def nap(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    async def nap_marked(self, marker_path, seconds):
        _touch(marker_path)
        await asyncio.sleep(seconds)
        return seconds

    async def nap_catching_cancel(self, marker_path, seconds):
        _touch(marker_path)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            return "caught"
        return seconds


def _touch(path: str) -> None:
    open(path, "w").close()


def _assert_exited(ref, method):
    with pytest.raises(exc.ActorDiedError, match=f"exited intentionally: exit_actor\\(\\) was called in .*{method}"):
        ray.get(ref, timeout=60)


def test_exit_actor_ends_a_sync_actor_without_restart_and_fails_queued_and_later_calls(cluster):
    actor = Quitter.remote()
    ray.get(actor.pid.remote(), timeout=60)
    running = actor.block.remote(0.5)
    leaving = actor.leave.remote()
    queued = actor.pid.remote()
    assert ray.get(running, timeout=60) == 0.5  # calls before it ran
    _assert_exited(leaving, "leave")
    _assert_exited(queued, "leave")  # max_restarts=3, yet no restart: it exited on purpose
    _assert_exited(actor.pid.remote(), "leave")
    assert isinstance(_error_of(actor.pid.remote()), exc.RayActorError)


def test_exit_actor_ends_the_actor_even_if_the_method_catches_it(cluster):
    actor = Quitter.remote()
    ray.get(actor.pid.remote(), timeout=60)
    _assert_exited(actor.leave_but_catch.remote(), "leave_but_catch")
    wait_until(lambda: isinstance(_error_of(actor.pid.remote()), exc.ActorDiedError), 60,
               "the actor to be dead")
    _assert_exited(actor.pid.remote(), "leave_but_catch")


def test_exit_actor_in_an_async_actor_lets_running_calls_finish(cluster):
    actor = AsyncQuitter.remote()
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"
    napping = actor.nap.remote(1.0)
    leaving = actor.leave.remote()
    _assert_exited(leaving, "leave")
    assert ray.get(napping, timeout=60) == 1.0  # already running: it finishes (as in Ray)
    _assert_exited(actor.ping.remote(), "leave")


def test_exit_actor_outside_an_actor_is_a_type_error(cluster):
    with pytest.raises(TypeError, match="exit_actor\\(\\) was called in the driver, not in an actor"):
        exit_actor()

    @ray.remote
    def in_a_task():
        exit_actor()

    with pytest.raises(TypeError, match="exit_actor\\(\\) was called in a task"):
        ray.get(in_a_task.remote(), timeout=60)


def test_sys_exit_in_an_actor_ends_its_process_which_restarts_as_after_a_crash(cluster):
    # Ray 2.60 treats sys.exit() in an actor method as its process exiting unexpectedly: the
    # actor is restarted if max_restarts allows (only exit_actor() is an intentional exit).
    actor = Quitter.remote()
    first = ray.get(actor.pid.remote(), timeout=60)
    with pytest.raises(exc.RayActorError):
        ray.get(actor.sys_exit.remote(), timeout=60)
    assert ray.get(actor.pid.remote(), timeout=60) != first

    once = Quitter.options(max_restarts=0).remote()
    ray.get(once.pid.remote(), timeout=60)
    # (its exit code is in the message when the node reports it within EXIT_STATUS_WAIT)
    with pytest.raises(exc.ActorDiedError, match=r"its worker process \(pid \d+\) died"):
        ray.get(once.sys_exit.remote(3), timeout=60)
    with pytest.raises(exc.ActorDiedError):
        ray.get(once.pid.remote(), timeout=60)


def test_sys_exit_0_in_an_actor_is_an_intended_exit_that_is_not_restarted(cluster):
    # Ray 2.60 records sys.exit(0) as an intended user exit (the actor is dead for good), while
    # sys.exit() with no code, or any other code, is an unexpected exit (restarted): matched here.
    actor = Quitter.remote()  # max_restarts=3
    ray.get(actor.pid.remote(), timeout=60)
    with pytest.raises(exc.ActorDiedError, match=r"exited intentionally: sys.exit\(0\) was called in Quitter.sys_exit"):
        ray.get(actor.sys_exit.remote(0), timeout=60)
    with pytest.raises(exc.ActorDiedError, match="exited intentionally"):
        ray.get(actor.pid.remote(), timeout=60)


def test_sys_exit_in_a_task_ends_its_worker_and_the_task_is_retried(cluster, tmp_path):
    @ray.remote(max_retries=1)
    def leave(marker_dir):
        with open(os.path.join(marker_dir, str(os.getpid())), "w"):
            pass
        sys.exit(2)

    marker_dir = str(tmp_path)
    with pytest.raises(exc.WorkerCrashedError, match="retried 1 time"):
        ray.get(leave.remote(marker_dir), timeout=60)
    assert len(os.listdir(marker_dir)) == 2  # two attempts, in two worker processes


@ray.remote
def sleep(seconds):
    time.sleep(seconds)
    return seconds


def nap(seconds):
    """Sleep in short steps: a cancel (an exception raised in the task's thread, as Ray's
    KeyboardInterrupt) lands between two of them, where one long sleep would hold it off."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@ray.remote
def started(marker_path, seconds):
    open(marker_path, "w").close()
    nap(seconds)
    return seconds


def test_a_cancelled_task_raises_plain_task_cancelled_if_queued_and_also_ray_task_error_if_running(
        cluster, tmp_path):
    marker = str(tmp_path / "started")
    running = started.options(num_cpus=4).remote(marker, 60)
    queued = sleep.options(num_cpus=4).remote(0)
    wait_until(lambda: os.path.exists(marker), 60, "the first task to start")
    ray.cancel(queued)
    ray.cancel(running)
    with pytest.raises(exc.TaskCancelledError) as raised:
        ray.get(queued, timeout=60)
    assert not isinstance(raised.value, exc.RayTaskError)
    with pytest.raises(exc.TaskCancelledError) as raised:
        ray.get(running, timeout=60)
    assert isinstance(raised.value, exc.RayTaskError)
    assert "was cancelled" in str(raised.value) and "ray::started()" in str(raised.value)


def test_cancel_is_recursive_by_default_and_cancels_the_tasks_it_submitted(cluster, tmp_path):
    @ray.remote
    class Box:
        def __init__(self):
            self.refs = None

        def put(self, refs):
            self.refs = refs

        def get(self):
            return self.refs

    @ray.remote(num_cpus=0)
    def parent(box, marker):
        box.put.remote([started.remote(marker, 60)])
        nap(60)

    box = Box.remote()
    marker = str(tmp_path / "child")
    ref = parent.remote(box, marker)
    wait_until(lambda: ray.get(box.get.remote(), timeout=30) is not None and os.path.exists(marker), 60,
               "the child task to start")
    [child] = ray.get(box.get.remote(), timeout=30)
    ray.cancel(ref)
    with pytest.raises(exc.TaskCancelledError):
        ray.get(ref, timeout=60)
    with pytest.raises(exc.TaskCancelledError):
        ray.get(child, timeout=60)


def test_cancel_of_a_running_async_actor_call_cancels_its_coroutine(cluster, tmp_path):
    actor = AsyncQuitter.remote()
    marker = str(tmp_path / "started")
    napping = actor.nap_marked.remote(marker, 60)
    wait_until(lambda: os.path.exists(marker), 60, "the coroutine to start")
    ray.cancel(napping)
    with pytest.raises(exc.TaskCancelledError) as raised:
        ray.get(napping, timeout=60)
    assert isinstance(raised.value, exc.RayTaskError)  # as Ray: it was running
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"  # the actor lives on


def test_a_coroutine_that_catches_its_cancellation_still_reports_it(cluster, tmp_path):
    actor = AsyncQuitter.remote()
    marker = str(tmp_path / "started")
    napping = actor.nap_catching_cancel.remote(marker, 60)
    wait_until(lambda: os.path.exists(marker), 60, "the coroutine to start")
    ray.cancel(napping)
    with pytest.raises(exc.TaskCancelledError) as raised:  # as Ray 2.60, though it returned
        ray.get(napping, timeout=60)
    assert isinstance(raised.value, exc.RayTaskError)


def test_cancel_of_a_queued_sync_actor_call_drops_it_at_the_actor(cluster):
    actor = Quitter.remote()
    ray.get(actor.pid.remote(), timeout=60)
    running = actor.block.remote(1.0)
    queued = actor.note.remote("queued ran")
    ray.cancel(queued)
    with pytest.raises(exc.TaskCancelledError) as raised:
        ray.get(queued, timeout=60)
    assert not isinstance(raised.value, exc.RayTaskError)
    assert ray.get(running, timeout=60) == 1.0
    assert ray.get(actor.notes.remote(), timeout=60) == []  # it never ran


def test_a_running_sync_actor_call_is_not_interrupted_but_sees_is_canceled(cluster, tmp_path):
    actor = Quitter.remote()
    marker = str(tmp_path / "started")
    running = actor.block_until_cancelled.remote(marker)
    wait_until(lambda: os.path.exists(marker), 60, "the actor call to start")
    ray.cancel(running)
    # As Ray 2.60: the call runs to its end (here it stops early, seeing is_canceled()), and
    # its caller gets a plain TaskCancelledError.
    with pytest.raises(exc.TaskCancelledError) as raised:
        ray.get(running, timeout=60)
    assert not isinstance(raised.value, exc.RayTaskError)
    assert ray.get(actor.saw.remote(), timeout=60) is True


def test_is_canceled_is_refused_in_the_driver(cluster):
    with pytest.raises(RuntimeError, match="not in the driver"):
        ray.get_runtime_context().is_canceled()


def test_exit_actor_is_reachable_as_in_ray(cluster):
    assert ray.actor.exit_actor is exit_actor


def test_force_cancel_of_an_actor_call_is_a_value_error(cluster):
    actor = AsyncQuitter.remote()
    ref = actor.nap.remote(0.1)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        ray.cancel(ref, force=True)
    assert ray.get(ref, timeout=60) == 0.1


def _error_of(ref):
    try:
        ray.get(ref, timeout=60)
    except Exception as error:  # noqa: BLE001 - the error is what the caller checks
        return error
    return None
