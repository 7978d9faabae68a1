"""Misbehaving children and supervisor bugs: logged at error, never a hang, nothing left running."""

import asyncio

import pytest

from supervisor import ChildSpec, Exit, Supervisor
from supervisor.testing import EventRecorder, FakeChild, FakeStarter, capture_logs

pytestmark = pytest.mark.timeout(30)


async def test_a_bug_in_the_supervisor_is_logged_and_stops_the_tree():
    rec = EventRecorder()
    a, b = FakeStarter("a"), FakeStarter("b")
    sup = Supervisor([a.spec(), b.spec()], on_event=rec)

    async def buggy(message):
        raise ZeroDivisionError("supervisor bug")

    with capture_logs() as logs:
        await sup.start()
        sup._on_child_exited = buggy  # type: ignore[method-assign]
        a.current.crash()
        exit = await asyncio.wait_for(sup.wait(), 5)
    assert exit.kind == "crashed" and isinstance(exit.error, ZeroDivisionError)
    assert b.current.exit.kind == "shutdown"
    assert any(e["event"] == "supervisor failed; stopping its children" and e["log_level"] == "error"
               for e in logs)
    with pytest.raises(Exception, match="stopped"):
        await sup.start_child(FakeStarter("c").spec())


class BrokenChild(FakeChild):
    async def shutdown(self, timeout, *, restarting=False):
        self.end(Exit("killed"))
        raise RuntimeError("shutdown bug")


async def test_a_child_whose_wait_or_shutdown_raises():
    rec = EventRecorder()

    class BadWait(FakeChild):
        fail = True

        async def wait(self):
            await asyncio.sleep(0)
            if BadWait.fail:
                BadWait.fail = False
                raise RuntimeError("wait bug")
            return await super().wait()

    sup = Supervisor([ChildSpec("w", lambda info: BadWait()), ChildSpec("s", lambda info: BrokenChild())],
                     on_event=rec)
    with capture_logs() as logs:
        await sup.start()
        await rec.wait_for("child_started", "w", count=2)  # the wait() bug counts as a crash
        exit = await asyncio.wait_for(sup.shutdown(), 5)
    assert exit.kind == "shutdown"
    assert rec.of("child_exited", "w")[0].exit.kind == "crashed"
    assert rec.of("child_exited", "s")[0].exit.kind == "crashed"
    assert {e["event"] for e in logs if e["log_level"] == "error"} >= {"child.wait() failed", "child.shutdown() failed"}


async def test_async_start_functions_and_a_crash_during_start():
    rec, order = EventRecorder(), []

    async def start_a(info):
        await asyncio.sleep(0)  # an async start that suspends
        child = FakeChild("a")
        order.append("a")
        if info.incarnation == 0:
            child.crash()  # dies at once: handled once start() is done
        return child

    b = FakeStarter("b", started=order)
    async with Supervisor([ChildSpec("a", start_a), b.spec()], on_event=rec) as sup:
        await rec.wait_for("child_started", "a", count=2)
        assert order == ["a", "b", "a"]
        assert sup.which_children()[0].incarnation == 1


async def test_a_stop_queued_behind_a_crash_does_not_restart_it():
    rec = EventRecorder()
    a = FakeStarter("a")
    sup = Supervisor([a.spec()], on_event=rec)
    await sup.start()
    a.current.crash()
    exit = await sup.shutdown()
    assert exit.kind == "shutdown" and len(a.children) == 1
