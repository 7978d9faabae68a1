"""Chaos (e): a one_for_all supervision group of 3 actors (actorcore.supervise) while calls flow.

One member's process is killed → all 3 are restarted, in start order, and no call is lost
(max_task_retries=-1 redelivers the calls in flight); once the restarts exceed the group's
window the group escalates: it is reported dead with a cause naming the child and its failure,
every member is dead for good (calls raise ActorDiedError with that cause, watchers complete)
and their processes are gone. Prints what was lost, which must be nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import actorcore as ray
from actorcore import ChildSpec, supervise, watch
from actorcore import exceptions as exc
from actorcore.testing import is_alive, wait_until

pytestmark = pytest.mark.timeout(180)


@ray.remote
class Keeper:
    def __init__(self, name, log):
        self.seen = []
        with open(log, "a") as f:
            f.write(f"{name} {os.getpid()}\n")

    def pid(self):
        return os.getpid()

    def record(self, seq):
        self.seen.append(seq)
        return seq


def _report(name: str, lost: int, **facts) -> None:
    details = ", ".join(f"{k}={v}" for k, v in facts.items())
    print(f"\n[chaos {name}] lost: {lost}; {details}")


def test_e_a_one_for_all_group_restarts_in_order_then_escalates(tmp_path):
    ray.init(num_cpus=4)
    try:
        log = tmp_path / "starts.log"
        ids = ("a", "b", "c")
        specs = [ChildSpec(i, Keeper, args=(i, str(log)), options={"max_task_retries": -1}) for i in ids]
        group = supervise(specs, strategy="one_for_all", max_restarts=2, period=60, name="trio")
        watches = {i: watch(group[i]) for i in ids}

        def pids() -> dict[str, int]:
            return {i: ray.get(group[i].pid.remote(), timeout=30) for i in ids}

        calls: list[tuple[int, object]] = []
        stop = threading.Event()

        def traffic() -> None:
            seq = 0
            while not stop.is_set():
                calls.append((seq, group[ids[seq % 3]].record.remote(seq)))
                seq += 1
                time.sleep(0.002)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        restart_times = []
        try:
            before = pids()
            for victim in ("b", "c"):  # two crashes: within the window of 2 restarts
                time.sleep(0.3)
                log.write_text("")
                start = time.monotonic()
                os.kill(before[victim], signal.SIGKILL)
                after = wait_until(  # calls made meanwhile wait for the restart: none fails
                    lambda old=before: (now := pids()) and all(now[i] != old[i] for i in ids) and now,
                    60, f"the group to restart all 3 (before: {before})", interval=0, details=pids)
                restart_times.append(round(time.monotonic() - start, 3))
                starts = [line.split() for line in log.read_text().splitlines()]
                assert [name for name, _ in starts] == list(ids), starts  # all 3, in start order
                assert {name: int(pid) for name, pid in starts} == after
                assert not any(w.done() for w in watches.values())  # restarts are not deaths
                before = after
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join()

        lost = []
        for seq, ref in calls:
            try:
                if ray.get(ref, timeout=30) != seq:
                    lost.append(seq)
            except Exception as error:  # noqa: BLE001 - anything but the answer is a loss
                lost.append((seq, repr(error)))
        assert group.restarts == {"a": 2, "b": 2, "c": 2}

        # A third crash within the window: the group gives up and reports why.
        start = time.monotonic()
        os.kill(before["a"], signal.SIGKILL)
        cause = group.dead.result(timeout=30)
        escalated_in = round(time.monotonic() - start, 3)
        assert cause.startswith("its supervision group 'trio' gave up: more than 2 restart(s) in 60 s; "
                                f"last failure: child 'a' crashed (its worker process (pid {before['a']}) died")
        for i in ids:
            assert watches[i].result(timeout=10) == cause
            with pytest.raises(exc.ActorDiedError) as raised:
                ray.get(group[i].record.remote(-1), timeout=30)
            assert raised.value.cause == cause
        wait_until(lambda: not any(is_alive(pid) for pid in before.values()), 30, "every member's process to end",
                   details=lambda: {i: p for i, p in before.items() if is_alive(p)})

        _report("e", len(lost), calls=len(calls), restart_times_s=restart_times,
                escalated_in_s=escalated_in, cause=cause, lost_calls=lost[:10])
        assert not lost
    finally:
        ray.shutdown()
