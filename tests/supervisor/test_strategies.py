"""Each strategy on a tree of three children; restart types (permanent, transient, temporary)."""

import os
import signal

import pytest

from supervisor import ChildNotFoundError, Exit, Supervisor
from supervisor.testing import EventRecorder, FakeStarter

pytestmark = pytest.mark.timeout(30)


def tree(strategy, *, restart=("permanent",) * 3, **flags):
    rec, order = EventRecorder(), []
    starters = {name: FakeStarter(name, started=order) for name in "abc"}
    specs = [s.spec(restart=r) for s, r in zip(starters.values(), restart, strict=True)]
    return Supervisor(specs, strategy=strategy, on_event=rec, **flags), starters, rec, order


def exited(rec, since=0):
    return [(e.child_id, e.exit.kind) for e in rec.events[since:] if e.kind == "child_exited"]


async def test_one_for_one_restarts_only_the_failed_child():
    sup, s, rec, order = tree("one_for_one")
    async with sup:
        assert order == ["a", "b", "c"]
        first_b = s["b"].current
        first_b.crash(ValueError("boom"))
        await rec.wait_for("child_started", "b", count=2)
        assert order == ["a", "b", "c", "b"]
        assert len(s["a"].children) == len(s["c"].children) == 1
        assert s["a"].current.shutdown_calls == [] and s["c"].current.shutdown_calls == []
        info = s["b"].infos[-1]
        assert info.incarnation == 1 and info.cause.kind == "crashed"
        assert isinstance(info.cause.error, ValueError)
        states = {c.id: (c.state, c.restarts, c.incarnation) for c in sup.which_children()}
        assert states == {"a": ("running", 0, 0), "b": ("running", 1, 1), "c": ("running", 0, 0)}
        assert sup.restart_count == 1
        assert sup.which_children()[1].child is s["b"].current is not first_b


async def test_one_for_all_stops_the_others_in_reverse_order_then_restarts_all_in_order():
    sup, s, rec, order = tree("one_for_all")
    async with sup:
        since = len(rec.events)
        s["b"].current.kill()
        await rec.wait_for("child_started", "c", count=2)
        assert exited(rec, since) == [("b", "killed"), ("c", "shutdown"), ("a", "shutdown")]
        assert order == ["a", "b", "c", "a", "b", "c"]
        # the siblings were told they are being stopped only to be restarted
        assert s["a"].children[0].shutdown_calls == [(5.0, True)]
        assert s["c"].children[0].shutdown_calls == [(5.0, True)]
        assert s["a"].infos[1].cause.kind == "shutdown" and s["b"].infos[1].cause.kind == "killed"
        assert [c.state for c in sup.which_children()] == ["running"] * 3
        assert sup.restart_count == 1


async def test_one_for_all_with_os_processes(reports):
    rec = EventRecorder()
    sup = Supervisor([reports.spec(n) for n in "abc"], strategy="one_for_all", on_event=rec)
    async with sup:
        first = {name: pid for name, pid, _ in await reports.take(3)}
        assert set(first) == {"a", "b", "c"}
        assert [c.child.pid for c in sup.which_children()] == [first[n] for n in "abc"]
        since = len(rec.events)
        os.kill(first["b"], signal.SIGKILL)
        second = await reports.take(3)
        # spawned in start order (they may report in any order: python startup races)
        assert sorted(name for name, _, _ in second) == ["a", "b", "c"]
        assert all(pid != first[name] for name, pid, _ in second)
        assert next((e.child_id, e.exit) for e in rec.events[since:] if e.kind == "child_exited") == (
            "b", Exit("killed", signal=signal.SIGKILL))
        assert exited(rec, since) == [("b", "killed"), ("c", "shutdown"), ("a", "shutdown")]
        assert [e.child_id for e in rec.events[since:] if e.kind == "child_started"] == ["a", "b", "c"]
    assert exited(rec)[-3:] == [("c", "shutdown"), ("b", "shutdown"), ("a", "shutdown")]


async def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it():
    sup, s, rec, order = tree("rest_for_one")
    async with sup:
        since = len(rec.events)
        s["b"].current.crash()
        await rec.wait_for("child_started", "c", count=2)
        assert exited(rec, since) == [("b", "crashed"), ("c", "shutdown")]
        assert order == ["a", "b", "c", "b", "c"]
        assert len(s["a"].children) == 1 and s["a"].current.shutdown_calls == []
        assert s["c"].children[0].shutdown_calls == [(5.0, True)]
        since = len(rec.events)
        s["c"].current.crash()  # the last one: only itself
        await rec.wait_for("child_started", "c", count=3)
        assert exited(rec, since) == [("c", "crashed")]


async def test_transient_is_restarted_only_after_an_abnormal_exit():
    sup, s, rec, order = tree("one_for_one", restart=("transient", "transient", "permanent"))
    async with sup:
        s["a"].current.exit_normally()
        await rec.wait_for("child_exited", "a")
        s["b"].current.crash()
        await rec.wait_for("child_started", "b", count=2)
        s["c"].current.exit_normally()  # permanent: restarted even after a normal exit
        await rec.wait_for("child_started", "c", count=2)
        assert order == ["a", "b", "c", "b", "c"]
        states = {c.id: c.state for c in sup.which_children()}
        assert states == {"a": "stopped", "b": "running", "c": "running"}
        assert rec.of("child_restarting", "a") == []


async def test_temporary_is_never_restarted_and_removed():
    sup, s, rec, order = tree("one_for_one", restart=("permanent", "temporary", "permanent"))
    async with sup:
        s["b"].current.crash()
        await rec.wait_for("child_exited", "b")
        # A request is served after every message queued before it, a wrong restart included.
        with pytest.raises(ChildNotFoundError):
            await sup.delete_child("b")
        assert order == ["a", "b", "c"]
        assert [c.id for c in sup.which_children()] == ["a", "c"]
        assert rec.of("child_restarting", "b") == []


async def test_temporary_is_not_restarted_by_one_for_all_either():
    sup, s, rec, order = tree("one_for_all", restart=("permanent", "temporary", "permanent"))
    async with sup:
        s["a"].current.crash()
        await rec.wait_for("child_started", "c", count=2)
        assert order == ["a", "b", "c", "a", "c"]
        assert s["b"].children[0].shutdown_calls == [(5.0, False)]  # stopped for good
        assert [c.id for c in sup.which_children()] == ["a", "c"]
        assert len(s["b"].infos) == 1


async def test_stopped_children_stay_stopped_under_one_for_all():
    sup, s, rec, order = tree("one_for_all", restart=("transient", "permanent", "permanent"))
    async with sup:
        s["a"].current.exit_normally()
        await rec.wait_for("child_exited", "a")
        s["c"].current.crash()
        await rec.wait_for("child_started", "c", count=2)
        assert order == ["a", "b", "c", "b", "c"]
        assert [c.state for c in sup.which_children()] == ["stopped", "running", "running"]


async def test_simple_one_for_one_dynamic_children():
    rec, pool = EventRecorder(), FakeStarter("worker")
    sup = Supervisor([pool.spec()], strategy="simple_one_for_one", on_event=rec)
    async with sup:
        assert sup.which_children() == []
        ids = [await sup.start_child((n,)) for n in range(3)]
        assert ids == ["worker-1", "worker-2", "worker-3"]
        assert [i.args for i in pool.infos] == [(0,), (1,), (2,)]
        pool.children[1].crash()
        await rec.wait_for("child_started", "worker-2", count=2)
        assert pool.infos[-1].args == (1,) and pool.infos[-1].incarnation == 1
        assert [c.incarnation for c in sup.which_children()] == [0, 1, 0]
        await sup.terminate_child("worker-1")
        assert [c.id for c in sup.which_children()] == ["worker-2", "worker-3"]
        with pytest.raises(TypeError, match="tuple or list"):
            await sup.start_child(pool.spec())


async def test_dynamic_children_of_a_static_supervisor():
    sup, _, _, order = tree("one_for_one")
    async with sup:
        d = FakeStarter("d", started=order)
        assert await sup.start_child(d.spec(restart="transient")) == "d"
        with pytest.raises(ValueError, match="already has a child 'd'"):
            await sup.start_child(d.spec())
        exit = await sup.terminate_child("d")
        assert exit.kind == "shutdown"
        assert sup.which_children()[-1].state == "stopped"
        await sup.restart_child("d")
        assert sup.which_children()[-1].state == "running" and len(d.children) == 2
        await sup.terminate_child("d")
        await sup.delete_child("d")
        assert [c.id for c in sup.which_children()] == ["a", "b", "c"]
        from supervisor import ChildNotFoundError
        with pytest.raises(ChildNotFoundError, match=r"no child 'zz'.*'a', 'b', 'c'"):
            await sup.terminate_child("zz")
