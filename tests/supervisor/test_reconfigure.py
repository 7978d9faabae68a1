"""Changing a running tree: replace_child keeps the start order, reconfigure changes the policy."""

import pytest

from supervisor import ChildStartError, Supervisor
from supervisor.testing import EventRecorder, FakeStarter

pytestmark = pytest.mark.timeout(30)


async def test_replace_child_restarts_it_from_the_new_spec_in_its_place():
    rec, order = EventRecorder(), []
    a, b, c = (FakeStarter(n, started=order) for n in "abc")
    b2 = FakeStarter("b", started=order)
    async with Supervisor([a.spec(), b.spec(), c.spec()], strategy="rest_for_one", on_event=rec) as sup:
        first_b = b.current
        new = await sup.replace_child(b2.spec(shutdown=1.0))
        assert first_b.shutdown_calls and new is b2.current
        assert [info.id for info in sup.which_children()] == ["a", "b", "c"]
        assert a.current.shutdown_calls == [] and c.current.shutdown_calls == []  # untouched
        assert sup.restart_count == 0  # a change, not a failure
        order.clear()
        b2.current.crash()  # rest_for_one still sees b before c
        await rec.wait_for("child_started", "c", count=2)
        assert order == ["b", "c"] and len(b.children) == 1


async def test_replace_child_that_fails_to_start_stays_stopped_with_the_new_spec():
    a, b = FakeStarter("a"), FakeStarter("b")
    async with Supervisor([a.spec()]) as sup:
        b_as_a = FakeStarter("a")
        b_as_a.fail_next()
        with pytest.raises(ChildStartError, match="'a' failed to start"):
            await sup.replace_child(b_as_a.spec())
        (info,) = sup.which_children()
        assert info.state == "stopped" and info.spec.start is b_as_a
        await sup.restart_child("a")
        assert len(b_as_a.children) == 1
        with pytest.raises(KeyError, match="no child 'b'"):
            await sup.replace_child(b.spec())


async def test_reconfigure_changes_the_intensity_and_strategy():
    rec = EventRecorder()
    a, b = FakeStarter("a"), FakeStarter("b")
    sup = Supervisor([a.spec(), b.spec()], max_restarts=1, period=60, name="top", on_event=rec)
    await sup.start()
    sup.reconfigure(strategy="one_for_all", max_restarts=5)
    assert (sup.strategy, sup.max_restarts, sup.period) == ("one_for_all", 5, 60.0)
    for n in (2, 3, 4):
        a.current.crash()
        await rec.wait_for("child_started", "b", count=n)  # one_for_all: b restarts with a
    assert sup.state == "running"
    with pytest.raises(ValueError, match="max_restarts=-5"):
        sup.reconfigure(max_restarts=-5)
    with pytest.raises(ValueError, match="simple_one_for_one"):
        sup.reconfigure(strategy="simple_one_for_one")
    await sup.shutdown()
