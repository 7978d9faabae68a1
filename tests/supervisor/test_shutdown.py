"""Shutdown: reverse start order, per-child timeouts, kill after timeout, parallel pools.

Shutdown timeouts are real time (they are not on the supervisor's clock); each test bounds the
whole shutdown with ``asyncio.wait_for`` and checks that a timeout was waited out, never that
it took less than some wall-clock time.
"""

import asyncio
import signal
import time

import pytest

from supervisor import ChildSpec, Supervisor, SupervisorStoppedError, supervisor_spec
from supervisor.testing import EventRecorder, FakeChild, FakeStarter, capture_logs

from ._procs import IGNORE_TERM

pytestmark = pytest.mark.timeout(30)


async def test_children_stop_in_reverse_start_order_with_their_own_timeouts():
    rec = EventRecorder()
    a, b, c = FakeStarter("a"), FakeStarter("b"), FakeStarter("c")
    sup = Supervisor([a.spec(shutdown="brutal_kill"), b.spec(shutdown=2.5), c.spec(shutdown="infinity")],
                     on_event=rec)
    await sup.start()
    assert sup.state == "running"
    exit = await sup.shutdown()
    assert exit.kind == "shutdown" and not exit.abnormal
    assert [e.child_id for e in rec.of("child_exited")] == ["c", "b", "a"]
    assert [x.current.shutdown_calls for x in (a, b, c)] == [[(0.0, False)], [(2.5, False)], [(None, False)]]
    assert sup.state == "stopped" and await sup.wait() is exit
    assert rec.of("supervisor_exited")[0].exit is exit


async def test_nested_trees_stop_depth_first_in_reverse_order():
    rec, order = EventRecorder(), []
    s = {n: FakeStarter(n, started=order) for n in ("a", "b", "x", "y")}
    sub = supervisor_spec("sub", [s["x"].spec(), s["y"].spec()], on_event=rec)
    async with Supervisor([s["a"].spec(), sub, s["b"].spec()], name="root", on_event=rec):
        assert order == ["a", "x", "y", "b"]
    assert [e.child_id for e in rec.of("child_exited")] == ["b", "y", "x", "sub", "a"]


async def test_a_process_that_ignores_sigterm_is_killed_after_its_timeout(reports):
    rec = EventRecorder()
    spec = reports.spec("deaf", before=IGNORE_TERM, shutdown=0.3)
    sup = Supervisor([spec], on_event=rec)
    await sup.start()
    await reports.next()  # SIGTERM is ignored from now on
    t0 = time.monotonic()
    await asyncio.wait_for(sup.shutdown(), 10)
    elapsed = time.monotonic() - t0
    exit = rec.of("child_exited", "deaf")[0].exit
    assert exit.kind == "shutdown" and exit.signal == signal.SIGKILL
    assert "after ignoring SIGTERM for 0.3 s" in str(exit)
    assert elapsed >= 0.3, elapsed


async def test_simple_one_for_one_children_stop_in_parallel():
    rec, stopping, all_stopping = EventRecorder(), [], asyncio.Event()

    class StopsWithTheOthers(FakeChild):
        async def shutdown(self, timeout, *, restarting=False):
            stopping.append(self.name)
            if len(stopping) == 5:
                all_stopping.set()
            await all_stopping.wait()  # stopped one after the other, the first would wait forever
            return await super().shutdown(timeout, restarting=restarting)

    template = ChildSpec("w", lambda info: StopsWithTheOthers(f"w{info.args[0]}"))
    sup = Supervisor([template], strategy="simple_one_for_one", on_event=rec)
    await sup.start()
    for n in range(5):
        await sup.start_child((n,))
    exit = await asyncio.wait_for(sup.shutdown(), 10)
    assert exit.kind == "shutdown" and sorted(stopping) == [f"w{n}" for n in range(5)]
    assert len(rec.of("child_exited")) == 5


async def test_supervisor_shutdown_timeout_kills_the_children():
    deaf, other = FakeStarter("deaf", ignore_shutdown=True), FakeStarter("other")
    sup = Supervisor([deaf.spec(shutdown="infinity"), other.spec()])
    await sup.start()
    t0 = time.monotonic()
    exit = await asyncio.wait_for(sup.shutdown(timeout=0.2), 5)
    assert time.monotonic() - t0 >= 0.2
    assert exit.kind == "shutdown" and "killed" in str(exit)
    assert other.current.exit.kind == "shutdown"
    assert deaf.current.exit.signal == signal.SIGKILL
    assert deaf.current.shutdown_calls == [(None, False), (0.0, False)]


async def test_brutal_shutdown_of_a_nested_supervisor():
    rec, deaf = EventRecorder(), FakeStarter("deaf", ignore_shutdown=True)
    sub = supervisor_spec("sub", [deaf.spec(shutdown="infinity")], shutdown="brutal_kill")
    async with Supervisor([sub], on_event=rec):
        pass
    assert deaf.current.exit.signal == signal.SIGKILL
    assert rec.of("child_exited", "sub")[0].exit.kind == "shutdown"


async def test_requests_after_shutdown_fail_clearly_and_waiters_resolve():
    a = FakeStarter("a")
    sup = Supervisor([a.spec()], name="s")
    with pytest.raises(SupervisorStoppedError, match="'s' is new; start"):
        await sup.start_child(a.spec())
    await sup.start()
    waiters = [asyncio.ensure_future(sup.wait()) for _ in range(3)]
    pending = asyncio.ensure_future(sup.terminate_child("a"))
    stop = asyncio.ensure_future(sup.shutdown())
    exit = await asyncio.wait_for(stop, 5)
    assert (await pending).kind == "shutdown"
    assert [await w for w in waiters] == [exit] * 3
    with pytest.raises(SupervisorStoppedError, match="'s' is stopped"):
        await sup.start_child(a.spec())
    with pytest.raises(Exception, match="already started"):
        await sup.start()


async def test_shutdown_before_start_and_context_manager():
    sup = Supervisor([FakeStarter("a").spec()])
    assert (await sup.shutdown()).kind == "shutdown"
    a = FakeStarter("a")
    async with Supervisor([a.spec()]) as sup2:
        assert sup2.which_children()[0].child is a.current
    assert a.current.exit.kind == "shutdown"


async def test_on_event_errors_are_logged_not_fatal():
    def broken(event):
        raise RuntimeError("callback bug")

    a = FakeStarter("a")
    with capture_logs() as logs:
        async with Supervisor([a.spec()], on_event=broken):
            pass
    assert a.current.exit.kind == "shutdown"
    errors = [e for e in logs if e["event"] == "on_event callback failed"]
    assert errors and errors[0]["log_level"] == "error" and errors[0]["event_kind"] == "child_started"


async def test_restarts_are_logged():
    a = FakeStarter("a")
    rec = EventRecorder()
    with capture_logs() as logs:
        async with Supervisor([a.spec()], on_event=rec, name="logged"):
            a.current.crash()
            await rec.wait_for("child_started", "a", count=2)
    restart = [e for e in logs if e["event"] == "child exited; restarting"]
    assert restart[0]["log_level"] == "info" and restart[0]["supervisor"] == "logged"
