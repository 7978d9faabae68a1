"""Supervision for users (actorcore/supervision.py): `supervise(...)` groups of actors with a
strategy and a restart intensity, and `watch(actor)` — with real worker processes killed for real."""

from __future__ import annotations

import math
import os
import signal
import threading
import time

import pytest

import actorcore as ray
from actorcore import ChildSpec, supervise, watch
from actorcore import exceptions as exc
from actorcore.testing import is_alive, wait_until
from supervisor import Backoff, ChildStartError

pytestmark = pytest.mark.timeout(90)


@ray.remote
class Member:
    """Records each start (its id and pid) in a shared file: the order restarts happen in."""

    def __init__(self, name, log=None, slow_restart=0.0):
        self.name = name
        self.count = 0
        if log is not None:
            restarted = False
            if os.path.exists(log):
                with open(log) as f:
                    restarted = any(line.split()[0] == name for line in f.read().splitlines())
            with open(log, "a") as f:
                f.write(f"{name} {os.getpid()}\n")
            if restarted and slow_restart:
                time.sleep(slow_restart)

    def pid(self):
        return os.getpid()

    def incr(self):
        self.count += 1
        return self.count

    def crash(self):
        os._exit(1)


def _starts(log) -> list[str]:
    return [line.split()[0] for line in open(log).read().splitlines()]


def _pids(group) -> dict[str, int]:
    return {child_id: ray.get(group[child_id].pid.remote(), timeout=30) for child_id in group.ids}


def _until_new(group, old: dict[str, int], ids, seconds: float = 60.0) -> dict[str, int]:
    """The members' pids once each of `ids` answers from a new process (calls that were in
    flight when a process ended fail: max_task_retries=0)."""
    def renewed():
        try:
            pids = _pids(group)
        except exc.ActorDiedError as error:
            assert "not retried" in str(error), error  # noqa: PT017 - a wait condition, not an expected error
            return None
        return all(pids[i] != old[i] for i in ids) and pids

    return wait_until(renewed, seconds, f"{ids} to answer from new processes (before: {old})", interval=0.02)


def _group(tmp_path, strategy, **flags):
    log = tmp_path / "starts.log"
    specs = [ChildSpec(i, Member, args=(i, str(log))) for i in ("a", "b", "c")]
    return supervise(specs, strategy=strategy, **flags), log


# -- strategies ---------------------------------------------------------------------------------

def test_one_for_one_restarts_only_the_crashed_child(cluster, tmp_path):
    with _group(tmp_path, "one_for_one", max_restarts=3, period=30)[0] as group:
        assert group.ids == ("a", "b", "c")
        before = _pids(group)
        assert [ray.get(group[i].incr.remote()) for i in group.ids] == [1, 1, 1]
        os.kill(before["b"], signal.SIGKILL)
        after = _until_new(group, before, ["b"])
        assert after["a"] == before["a"] and after["c"] == before["c"]
        assert ray.get([group[i].incr.remote() for i in group.ids]) == [2, 1, 2]  # b's state is new
        assert group.restarts == {"a": 0, "b": 1, "c": 0}


def test_one_for_all_restarts_all_three_in_start_order(cluster, tmp_path):
    group, log = _group(tmp_path, "one_for_all", max_restarts=3, period=30)
    with group:
        assert _starts(log) == ["a", "b", "c"]
        before = _pids(group)
        ray.get([group[i].incr.remote() for i in group.ids])
        log.write_text("")
        start = time.monotonic()
        os.kill(before["b"], signal.SIGKILL)
        after = _until_new(group, before, group.ids)
        print(f"\none_for_all group of 3 back in {time.monotonic() - start:.3f} s")
        assert _starts(log) == ["a", "b", "c"]
        assert ray.get([group[i].incr.remote() for i in group.ids]) == [1, 1, 1]
        assert len(set(after.values())) == 3
        assert group.restarts == {"a": 1, "b": 1, "c": 1}


def test_rest_for_one_restarts_the_crashed_child_and_those_after_it(cluster, tmp_path):
    group, log = _group(tmp_path, "rest_for_one", max_restarts=3, period=30)
    with group:
        before = _pids(group)
        ray.get([group[i].incr.remote() for i in group.ids])
        log.write_text("")
        os.kill(before["b"], signal.SIGKILL)
        after = _until_new(group, before, ["b", "c"])
        assert after["a"] == before["a"]
        assert _starts(log) == ["b", "c"]
        assert ray.get([group[i].incr.remote() for i in group.ids]) == [2, 1, 1]


def test_a_call_made_while_the_group_restarts_waits_and_succeeds(cluster, tmp_path):
    log = tmp_path / "starts.log"
    spec = ChildSpec("slow", Member, args=("slow", str(log)), kwargs={"slow_restart": 1.0})
    with supervise([spec], max_restarts=1, period=30) as group:
        actor = group["slow"]
        assert ray.get(actor.incr.remote()) == 1
        with pytest.raises(exc.ActorDiedError, match="not retried"):
            ray.get(actor.crash.remote(), timeout=30)
        start = time.monotonic()
        assert ray.get(actor.incr.remote(), timeout=30) == 1  # the new incarnation's first call
        waited = time.monotonic() - start
        print(f"\nthe call waited {waited:.3f} s for the restart")
        assert waited > 0.5


def test_backoff_delays_the_restart(cluster):
    restarting = threading.Event()
    events, restarting_at = [], []

    def on_event(event):
        events.append(event)
        if event.kind == "child_restarting":
            restarting_at.append(time.monotonic())
            restarting.set()

    spec = ChildSpec("a", Member, args=("a",))
    with supervise([spec], backoff=(0.5, 1.0), on_event=on_event) as group:
        actor = group["a"]
        first = ray.get(actor.pid.remote())
        os.kill(first, signal.SIGKILL)
        assert restarting.wait(30)
        assert ray.get(actor.pid.remote(), timeout=30) != first  # made while it backs off: waits
        assert time.monotonic() - restarting_at[0] >= 0.4  # the backoff (0.5 s), from when it was scheduled
        [scheduled] = [e for e in events if e.kind == "child_restarting"]
        assert 0.5 <= scheduled.delay <= 0.6 and scheduled.child_id == "a"


# -- escalation -------------------------------------------------------------------------------

def test_exceeding_the_restart_intensity_escalates_with_a_cause_naming_the_child(cluster, tmp_path):
    group, _ = _group(tmp_path, "one_for_one", max_restarts=1, period=30, name="pair")
    reasons = {i: watch(group[i]) for i in group.ids}
    pids = _pids(group)
    os.kill(pids["b"], signal.SIGKILL)
    pids = _until_new(group, pids, ["b"])
    assert group.alive
    os.kill(pids["b"], signal.SIGKILL)
    cause = group.dead.result(timeout=30)
    print(f"\n{cause}")
    assert not group.alive
    assert "'pair' gave up" in cause and "more than 1 restart" in cause and "in 30 s" in cause
    assert f"child 'b' crashed (its worker process (pid {pids['b']}) died" in cause
    for child_id in group.ids:
        assert reasons[child_id].result(timeout=10) == cause
        with pytest.raises(exc.ActorDiedError) as raised:
            ray.get(group[child_id].incr.remote(), timeout=30)
        assert raised.value.cause == cause
    wait_until(lambda: not any(is_alive(pid) for pid in pids.values()), 30, "every member's process to end",
               details=lambda: [pid for pid in pids.values() if is_alive(pid)])
    assert group.stop() == cause  # stopping a dead group changes nothing


def test_stop_ends_every_member_with_cause_stopped(cluster, tmp_path):
    group, _ = _group(tmp_path, "one_for_all", name="short-lived")
    pids = _pids(group)
    reason = watch(group["a"])
    cause = group.stop()
    assert cause == "its supervision group 'short-lived' was stopped"
    assert group.dead.result(0) == cause and reason.result(timeout=10) == cause
    with pytest.raises(exc.ActorDiedError, match="was stopped"):
        ray.get(group["c"].incr.remote(), timeout=30)
    wait_until(lambda: not any(is_alive(pid) for pid in pids.values()), 30, "every member's process to end",
               details=lambda: [pid for pid in pids.values() if is_alive(pid)])


def test_a_temporary_child_is_not_restarted_and_the_group_goes_on(cluster):
    specs = [ChildSpec("keep", Member, args=("keep",)), ChildSpec("once", Member, args=("once",), restart="temporary")]
    with supervise(specs, strategy="one_for_one") as group:
        reason = watch(group["once"])
        os.kill(ray.get(group["once"].pid.remote()), signal.SIGKILL)
        assert "not restarted" in reason.result(timeout=30) and "temporary" in reason.result()
        with pytest.raises(exc.ActorDiedError, match="temporary"):
            ray.get(group["once"].incr.remote(), timeout=30)
        assert ray.get(group["keep"].incr.remote(), timeout=30) == 1 and group.alive


def test_kill_no_restart_takes_a_member_out_and_kill_with_restart_restarts_it(cluster, tmp_path):
    c_taken_out = threading.Event()

    def on_event(event):
        if event.kind == "child_exited" and event.child_id == "c" and event.exit.kind == "killed":
            c_taken_out.set()

    group, _ = _group(tmp_path, "one_for_all", max_restarts=3, period=30, on_event=on_event)
    with group:
        before = _pids(group)
        ray.kill(group["a"], no_restart=False)  # a death like any other: the strategy applies
        after = _until_new(group, before, group.ids)
        ray.kill(group["c"])  # dead for good; the group stops supervising it
        assert watch(group["c"]).result(timeout=10) == "it was killed with kill()"
        assert c_taken_out.wait(10)  # the group has taken c out: a and b go on untouched
        assert ray.get(group["a"].pid.remote(), timeout=30) == after["a"]
        assert ray.get(group["b"].pid.remote(), timeout=30) == after["b"]
        assert group.alive


# -- watch ------------------------------------------------------------------------------------

def test_watch_a_killed_actor_and_an_already_dead_one(cluster):
    actor = Member.remote("w")
    reason = watch(actor)
    assert not reason.done()
    ray.kill(actor)
    assert reason.result(timeout=10) == "it was killed with kill()"
    assert watch(actor).result(timeout=10) == "it was killed with kill()"  # set after the death: completes at once


def test_watch_an_actor_out_of_restarts(cluster):
    actor = Member.options(max_restarts=1).remote("phoenix")
    reason = watch(actor)
    first = ray.get(actor.pid.remote())
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: ray.get(actor.pid.remote(), timeout=30), 60,  # the restart within max_restarts
                        "the actor to answer after its restart", retry_on=(exc.ActorDiedError,))  # is not a death
    assert second != first and not reason.done()
    os.kill(second, signal.SIGKILL)
    # (the cause may also say how the process ended, e.g. ": it was killed by SIGKILL")
    reason_text = reason.result(timeout=30)
    assert reason_text.startswith(f"its worker process (pid {second}) died")
    assert reason_text.endswith("(after 1 restart(s))")


def test_watch_with_a_callback(cluster):
    actor = Member.remote("cb")
    called = threading.Event()
    got = []

    def on_death(reason):
        got.append(reason)
        called.set()

    watch(actor, on_death)
    pid = ray.get(actor.pid.remote())
    os.kill(pid, signal.SIGKILL)
    assert called.wait(30)
    assert len(got) == 1 and got[0].startswith(f"its worker process (pid {pid}) died")


def test_watch_from_another_process_asks_the_owner(cluster):
    actor = Member.remote("remote-watched")

    @ray.remote
    class Watcher:
        def __init__(self, target):
            self.reason = watch(target)

        def done(self):
            return self.reason.done()

        def result(self, timeout):
            return self.reason.result(timeout)

    watcher = Watcher.remote(actor)
    assert ray.get(watcher.done.remote(), timeout=30) is False
    ray.kill(actor)
    assert ray.get(watcher.result.remote(30), timeout=40) == "it was killed with kill()"


def test_watch_completes_when_the_owner_dies(cluster):
    @ray.remote
    class Owner:
        def make(self):
            self.child = Member.remote("orphan")
            return [self.child]

        def pid(self):
            return os.getpid()

    owner = Owner.remote()
    [child] = ray.get(owner.make.remote())
    reason = watch(child)
    time.sleep(0.2)
    assert not reason.done()
    os.kill(ray.get(owner.pid.remote()), signal.SIGKILL)
    assert reason.result(timeout=30) == "its owner died"


def test_watch_of_a_detached_actor_outlives_its_owner_and_ends_with_its_process(cluster):
    @ray.remote
    class Owner:
        def make(self):
            self.child = Member.options(name="lives-on", lifetime="detached").remote("lives-on")
            return [self.child]

        def pid(self):
            return os.getpid()

    owner = Owner.remote()
    [child] = ray.get(owner.make.remote())
    child_pid = ray.get(child.pid.remote())
    reason = watch(ray.get_actor("lives-on"))
    os.kill(ray.get(owner.pid.remote()), signal.SIGKILL)
    with pytest.raises(TimeoutError):  # the owner's death is not the detached actor's
        reason.result(timeout=1.5)
    assert ray.get(child.incr.remote()) == 1
    os.kill(child_pid, signal.SIGKILL)
    assert reason.result(timeout=30).startswith("its worker process ended")


# -- bad input ----------------------------------------------------------------------------------

class Plain:
    pass


def test_bad_specs_get_clear_errors(cluster):
    with pytest.raises(TypeError, match=r"ChildSpec 'x': actor_class=.* decorate class Plain with @actorcore.remote"):
        ChildSpec("x", Plain)
    with pytest.raises(ValueError, match="ChildSpec: id=''"):
        ChildSpec("", Member)
    with pytest.raises(ValueError, match=r"ChildSpec 'x': options max_restarts=2: .*supervise\(\.\.\., max_restarts=N"):
        ChildSpec("x", Member, options={"max_restarts": 2})
    with pytest.raises(ValueError, match=r"ChildSpec 'x': options: unknown option 'num_cpu'.*Did you mean 'num_cpus'"):
        ChildSpec("x", Member, options={"num_cpu": 1})
    with pytest.raises(ValueError, match="ChildSpec 'x': lifetime='detached'"):
        ChildSpec("x", Member, options={"lifetime": "detached"})
    with pytest.raises(ValueError, match="ChildSpec 'x': restart='sometimes' is not valid"):
        ChildSpec("x", Member, restart="sometimes")
    with pytest.raises(ValueError, match="ChildSpec 'x': shutdown=-1 is not valid"):
        ChildSpec("x", Member, shutdown=-1)
    with pytest.raises(TypeError, match="ChildSpec 'x': args=1 is not a tuple"):
        ChildSpec("x", Member, args=1)
    with pytest.raises(TypeError, match=r"ChildSpec 'x': backoff='slow' is not valid; give \(min_seconds"):
        ChildSpec("x", Member, backoff="slow")
    assert ChildSpec("x", Member, backoff=(0.1, 2)).backoff == Backoff(min=0.1, max=2)
    spec = ChildSpec("x", Member, args=("x",))
    with pytest.raises(ValueError, match="two children have id 'x'; ids must be unique"):
        supervise([spec, spec])
    with pytest.raises(ValueError, match="strategy='simple_one_for_one' is not valid"):
        supervise([spec], strategy="simple_one_for_one")
    with pytest.raises(ValueError, match="children is empty"):
        supervise([])
    with pytest.raises(TypeError, match="is not a list"):
        supervise(spec)
    with pytest.raises(ValueError, match="max_restarts=-2 is not valid"):
        supervise([spec], max_restarts=-2)
    with pytest.raises(ValueError, match="period=0 is not valid"):
        supervise([spec], period=0)
    with pytest.raises(TypeError, match=r"supervise\(\): backoff=3 is not valid"):
        supervise([spec], backoff=3)
    with pytest.raises(TypeError, match="watch\\(\\) takes an actor handle"):
        watch("a")
    with pytest.raises(TypeError, match=r"SupervisionGroup is made by actorcore\.supervise"):
        ray.SupervisionGroup(None, None, "g", (), "one_for_one", 3, 5.0, None, None)
    with supervise([spec], period=math.inf) as group, pytest.raises(KeyError, match="has no child 'y'"):
        group["y"]


def test_a_constructor_that_raises_at_start_stops_the_children_started_before_it(cluster):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("no database")

    specs = [ChildSpec("a", Member, args=("a",), options={"name": "first-of-g"}), ChildSpec("b", Broken),
             ChildSpec("c", Member, args=("c",))]
    with pytest.raises(ChildStartError, match=r"(?s)child 'b' of group 'g' failed to start: .*no database.*"
                                              r"before it \('a'\) were stopped") as raised:
        supervise(specs, name="g")
    assert raised.value.child_id == "b"
    def name_free() -> bool:  # 'a' is dead: its name becomes free
        try:
            ray.get_actor("first-of-g")
        except ValueError:
            return True
        return False

    wait_until(name_free, 30, "'a' to end after its group's failed start (its name to be free)")


def test_a_restart_whose_constructor_raises_ends_the_group_with_that_cause(cluster, tmp_path):
    marker = tmp_path / "started-once"

    @ray.remote
    class OnlyOnce:
        def __init__(self, path):
            if os.path.exists(path):
                raise RuntimeError("the port is taken")
            open(path, "w").close()

        def pid(self):
            return os.getpid()

    specs = [ChildSpec("keep", Member, args=("keep",)), ChildSpec("once", OnlyOnce, args=(str(marker),))]
    group = supervise(specs, strategy="one_for_one", max_restarts=5, period=30, name="fragile")
    keep = watch(group["keep"])
    os.kill(ray.get(group["once"].pid.remote()), signal.SIGKILL)
    cause = group.dead.result(timeout=30)
    assert cause.startswith("its supervision group 'fragile' gave up: child 'once' could not be restarted: "
                            "its constructor raised:") and "the port is taken" in cause
    assert keep.result(timeout=10) == cause
    with pytest.raises(exc.ActorDiedError, match="the port is taken"):
        ray.get(group["once"].pid.remote(), timeout=30)
