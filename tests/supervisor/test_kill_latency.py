"""A kill -9 of a ProcessChild is seen as such and its replacement runs, round after round.

How fast (kill -9 to replacement running, exit detection) is measured, not asserted, by
``benchmarks/kernel.py`` (``supervised_restart_ms``, ``supervised_exit_detected_ms``): a
loaded machine must not fail this test. Each round is still bounded (5 s per replacement).
"""

import os
import signal
import statistics
import time

import pytest

from supervisor import Supervisor
from supervisor.testing import EventRecorder

pytestmark = pytest.mark.timeout(60)


async def test_kill9_is_seen_and_the_child_replaced_each_time(reports):
    rec = EventRecorder()
    sup = Supervisor([reports.spec("w")], max_restarts=20, period=60, on_event=rec)
    totals, reactions = [], []
    async with sup:
        _, pid, _ = await reports.next()
        for n in range(2, 8):
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            name, new_pid, t_up = await reports.next(timeout=5)
            totals.append(t_up - t0)
            assert new_pid != pid and name == "w"
            exited = rec.of("child_exited", "w")[-1]
            started = await rec.wait_for("child_started", "w", count=n)
            assert exited.exit.kind == "killed" and exited.exit.signal == signal.SIGKILL
            assert started.incarnation == n - 1 and started.child.pid == new_pid
            reactions.append(started.time - exited.time)
            pid = new_pid
    ms = [round(t * 1000, 1) for t in totals]
    print(f"\nkill -9 -> replacement running (python startup included), ms: {ms}; "
          f"median {statistics.median(totals) * 1000:.1f} ms")
    print(f"exit seen -> replacement spawned, ms: {[round(r * 1000, 2) for r in reactions]}")
    assert sup.restart_count == 6
