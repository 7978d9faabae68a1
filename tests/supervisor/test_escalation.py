"""Restart intensity: giving up, escalation to the parent, failed restarts, orderly stop.

The tests that need time to pass use a ManualClock; the others run on the real clock, with
all their restarts well inside a 10 s ``period``.
"""

import asyncio

import pytest

from supervisor import ChildStartError, Supervisor, supervisor_spec
from supervisor.testing import EventRecorder, FakeStarter, ManualClock

pytestmark = pytest.mark.timeout(30)


def exited(rec, supervisor, since=0):
    return [(e.child_id, e.exit.kind) for e in rec.events[since:]
            if e.kind == "child_exited" and e.supervisor == supervisor]


async def test_intensity_exceeded_stops_all_in_reverse_order_and_exits_abnormally():
    rec = EventRecorder()
    s = {n: FakeStarter(n) for n in "abc"}
    sup = Supervisor([x.spec() for x in s.values()], max_restarts=2, period=10.0, name="top", on_event=rec)
    await sup.start()
    for n in (2, 3):
        s["a"].current.crash()
        await rec.wait_for("child_started", "a", count=n)
    since = len(rec.events)
    s["a"].current.crash()  # third restart within 10 s: more than 2
    exit = await sup.wait()
    assert exit.kind == "restarts_exhausted" and exit.abnormal
    assert "more than 2 restarts in 10 s" in str(exit) and "'a'" in str(exit)
    assert exited(rec, "top", since) == [("a", "crashed"), ("c", "shutdown"), ("b", "shutdown")]
    assert rec.of("intensity_exceeded")[0].child_id == "a"
    assert [c.state for c in sup.which_children()] == ["stopped"] * 3
    assert sup.restart_count == 2
    assert await sup.shutdown() is exit  # already ended: same exit


async def test_restarts_further_apart_than_the_period_are_forgiven():
    rec, a, clock = EventRecorder(), FakeStarter("a"), ManualClock()
    sup = Supervisor([a.spec()], max_restarts=2, period=10.0, on_event=rec, clock=clock)
    async with sup:
        for n in range(2, 12):  # a restart every 5 s: never more than 2 in 10 s
            a.current.crash()
            await rec.wait_for("child_started", "a", count=n)
            clock.advance(5.0)
        assert sup.state == "running" and sup.restart_count == 10
        a.current.crash()  # t=50: with the one at t=45, 2 in 10 s
        await rec.wait_for("child_started", "a", count=12)
        clock.advance(4.9)
        a.current.crash()  # t=54.9: 45, 50 and 54.9 are 3 in 10 s
        exit = await asyncio.wait_for(sup.wait(), 5)
    assert exit.kind == "restarts_exhausted"
    assert sup.restart_count == 11 and rec.of("intensity_exceeded")[0].time == pytest.approx(54.9)


async def test_a_nested_supervisor_times_restarts_on_the_clock_it_is_given():
    rec, x, clock = EventRecorder(), FakeStarter("x"), ManualClock()
    sub = supervisor_spec("sub", [x.spec()], max_restarts=1, period=10.0, on_event=rec, clock=clock)
    async with Supervisor([sub], name="root", on_event=rec, clock=clock):
        x.current.crash()
        await rec.wait_for("child_started", "x", count=2)
        clock.advance(10.0)
        x.current.crash()  # the first restart left sub's window: it restarts x again
        await rec.wait_for("child_started", "x", count=3)
        assert rec.of("intensity_exceeded") == []
        x.current.crash()  # two within 10 s: sub gives up and root restarts it
        await rec.wait_for("child_started", "sub", count=2, supervisor="root")
        assert rec.of("intensity_exceeded")[0].supervisor == "sub"


def test_a_clock_must_be_a_clock():
    with pytest.raises(TypeError, match=r"clock=.*not a Clock"):
        Supervisor([], clock=object())
    with pytest.raises(TypeError, match="not a Clock"):
        supervisor_spec("sub", [], clock=42)


async def test_escalation_to_the_parent_supervisor():
    rec = EventRecorder()
    x = FakeStarter("x")
    s = {n: FakeStarter(n) for n in "abc"}
    sub = supervisor_spec("sub", [v.spec() for v in s.values()], max_restarts=1, period=10.0, on_event=rec)
    root = Supervisor([x.spec(), sub], max_restarts=1, period=10.0, name="root", on_event=rec)
    await root.start()
    assert sub.type == "supervisor" and sub.shutdown == "infinity"

    # round 1: the sub-supervisor gives up; root restarts it (a fresh tree)
    s["a"].current.crash()
    await rec.wait_for("child_started", "a", count=2, supervisor="sub")
    since = len(rec.events)
    s["a"].current.crash()
    started = await rec.wait_for("child_started", "sub", count=2, supervisor="root")
    assert exited(rec, "sub", since) == [("a", "crashed"), ("c", "shutdown"), ("b", "shutdown")]
    sub_exit = rec.of("child_exited", "sub", supervisor="root")[0].exit
    assert sub_exit.kind == "restarts_exhausted" and sub_exit.abnormal
    assert started.incarnation == 1
    assert [len(v.children) for v in s.values()] == [3, 2, 2]  # a fresh a, b and c
    assert [c.state for c in started.child.which_children()] == ["running"] * 3
    assert len(x.children) == 1  # one_for_one: x untouched

    # round 2: sub gives up again; root has had 1 restart in 10 s, so it gives up too
    for _ in range(2):
        s["a"].current.crash()
        await rec.wait_for("child_exited", "a", count=len(rec.of("child_exited", "a")) + 1)
    exit = await root.wait()
    assert exit.kind == "restarts_exhausted"
    assert "'sub'" in str(exit) and "restarts_exhausted" in str(exit)
    assert x.current.exit.kind == "shutdown"
    assert all(c.exited for v in s.values() for c in v.children)
    assert exited(rec, "root")[-2:] == [("sub", "restarts_exhausted"), ("x", "shutdown")]


async def test_a_failing_restart_is_retried_and_counted():
    rec = EventRecorder()
    a = FakeStarter("a")
    sup = Supervisor([a.spec()], max_restarts=3, period=10.0, on_event=rec)
    async with sup:
        a.fail_next(2)
        a.current.crash()
        await rec.wait_for("child_started", "a", count=2)
        assert len(rec.of("child_start_failed", "a")) == 2
        assert sup.restart_count == 3
        assert [i.incarnation for i in a.infos] == [0, 1, 1, 1]  # retried with the same number
        assert sup.which_children()[0].restarts == 1


async def test_failing_restarts_exhaust_the_intensity():
    rec = EventRecorder()
    a, b = FakeStarter("a"), FakeStarter("b")
    sup = Supervisor([a.spec(), b.spec()], strategy="one_for_all", max_restarts=2, period=10.0, on_event=rec)
    await sup.start()
    b.fail_next(10)
    a.current.crash()
    exit = await sup.wait()
    assert exit.kind == "restarts_exhausted"
    assert "failed to restart" in str(exit)
    assert len(rec.of("child_start_failed", "b")) == 2
    # each attempt started a again, then stopped it when b failed
    assert all(c.exited for c in a.children) and len(a.children) == 3


async def test_unlimited_restarts():
    rec = EventRecorder()
    a = FakeStarter("a")
    async with Supervisor([a.spec()], max_restarts=-1, period=1.0, on_event=rec) as sup:
        for n in range(2, 30):
            a.current.crash()
            await rec.wait_for("child_started", "a", count=n)
        assert sup.restart_count == 28


async def test_start_failure_stops_the_started_children_and_names_the_child():
    rec = EventRecorder()
    s = {n: FakeStarter(n) for n in "abc"}
    s["b"].fail_next()
    sup = Supervisor([v.spec() for v in s.values()], name="app", on_event=rec)
    with pytest.raises(ChildStartError, match="Supervisor 'app': child 'b' failed to start") as info:
        await sup.start()
    assert info.value.child_id == "b" and isinstance(info.value.__cause__, RuntimeError)
    assert s["a"].current.shutdown_calls == [(5.0, False)]
    assert s["c"].infos == []
    exit = await sup.wait()
    assert exit.kind == "crashed" and "'b'" in str(exit)


async def test_start_function_returning_a_non_child_is_a_clear_error():
    from supervisor import ChildSpec
    sup = Supervisor([ChildSpec("bad", lambda info: 42)])
    with pytest.raises(ChildStartError, match="returned 42, which is not a Child"):
        await sup.start()


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (dict(strategy="one_for_some"), "strategy='one_for_some'.*'one_for_one'"),
        (dict(max_restarts=-2), "max_restarts=-2.*-1 for unlimited"),
        (dict(max_restarts=1.5), "max_restarts=1.5"),
        (dict(period=0), "period=0.*math.inf"),
        (dict(name=""), "name=''"),
    ],
)
def test_bad_supervisor_flags(flags, pattern):
    with pytest.raises(ValueError, match=pattern):
        Supervisor([], **flags)


def test_bad_children():
    a = FakeStarter("a")
    with pytest.raises(ValueError, match="two children have id 'a'"):
        Supervisor([a.spec(), a.spec()])
    with pytest.raises(ValueError, match="exactly one child spec"):
        Supervisor([a.spec(), FakeStarter("b").spec()], strategy="simple_one_for_one")
    with pytest.raises(TypeError, match="not a ChildSpec"):
        Supervisor([("a", a)])
    with pytest.raises(ValueError, match="strategy='x'"):
        supervisor_spec("sub", [], strategy="x")


def test_policy_is_readable_data():
    a = FakeStarter("a")
    sup = Supervisor([a.spec()], strategy="rest_for_one", max_restarts=5, period=30, name="db")
    assert (sup.strategy, sup.max_restarts, sup.period, sup.name) == ("rest_for_one", 5, 30.0, "db")
    assert sup.child_specs[0].id == "a"
    assert repr(sup) == (
        "Supervisor(name='db', strategy='rest_for_one', max_restarts=5, period=30.0, "
        "children=['a'], state='new')"
    )
