"""Task events from a process's buffer to its node's TaskHistory, in one process: records merged
from out-of-order events, bounded history, filters, the newest first, and drops counted.

The TaskHistory is the real actor in a real (socket-less) actor system, and the buffer is the
real `TaskEvents` telling it; asks to the history come after the batches (one mailbox), so
nothing waits on time.
"""

from __future__ import annotations

import pickle
import time

import pytest

from actorcore.core.task_events import TaskEvents
from actorcore.kernel.remote.connections import MessageTooLargeError
from actorcore.node.task_history import TaskHistory
from actorcore.protocol import CountTaskStates, ListTaskRecords, WorkerDied
from actorcore.task_records import (
    FAILED,
    FINISHED,
    PENDING_NODE_ASSIGNMENT,
    RUNNING,
    apply_event,
    merge_records,
    new_record,
)
from actorcore.testing import async_wait_until

pytestmark = pytest.mark.timeout(30)

OWNER = {"node_id": "n1", "worker_pid": 10, "job_id": "01"}
WORKER = {"node_id": "n2", "worker_pid": 20, "job_id": "01"}


def test_a_record_keeps_the_furthest_state_whatever_the_order_of_its_events():
    record = new_record("t1", 0)
    apply_event(record, (3.0, "t1", 0, FINISHED, None, 2.0), (("node_id", "n2"), ("worker_pid", 20)))
    apply_event(record, (1.0, "t1", 0, PENDING_NODE_ASSIGNMENT, {"name": "f", "node_id": None}, None))
    apply_event(record, (2.0, "t1", 0, RUNNING, None, 2.0), (("node_id", "n9"), ("worker_pid", 90)))  # kept: known
    assert record["state"] == FINISHED
    assert (record["name"], record["node_id"], record["worker_pid"]) == ("f", "n2", 20)
    assert (record["creation_time_ms"], record["start_time_ms"], record["end_time_ms"]) == (1000, 2000, 3000)


def test_partial_records_of_two_nodes_merge_into_one():
    owner_side = new_record("t1", 0)
    apply_event(owner_side, (1.0, "t1", 0, PENDING_NODE_ASSIGNMENT, {"name": "f", "type": "NORMAL_TASK"}, None))
    worker_side = new_record("t1", 0)
    apply_event(worker_side, (2.0, "t1", 0, RUNNING, None, 2.0), (("node_id", "n2"),))
    apply_event(worker_side, (3.0, "t1", 0, FAILED, {"error_type": "TASK_EXECUTION_EXCEPTION"}, 2.0))
    merged = merge_records([worker_side, owner_side])
    assert merged["state"] == FAILED
    assert (merged["name"], merged["type"], merged["node_id"]) == ("f", "NORMAL_TASK", "n2")
    assert [e["state"] for e in merged["events"]] == [PENDING_NODE_ASSIGNMENT, RUNNING, FAILED]
    with pytest.raises(ValueError, match="at least one record"):
        merge_records([])


async def test_events_reach_the_history_in_batches_and_list_newest_first(system):
    history = system.spawn(TaskHistory, name="task_history")
    owner = TaskEvents(system.loop, history, OWNER)
    worker = TaskEvents(system.loop, history, WORKER)
    for index in range(3):
        owner.record(f"t{index}", 0, PENDING_NODE_ASSIGNMENT, {"name": f"f{index}"})
    worker.running("t0", 0, "f0", None, 0.5)
    worker.ended("t0", FINISHED)
    worker.flush()  # the worker's batch comes first: its records are merged all the same
    owner.flush()
    records, total, dropped = await history.ask(ListTaskRecords(), timeout=5)
    assert total == 3 and dropped == 0
    assert [r["task_id"] for r in records] == ["t2", "t1", "t0"]
    done = records[2]
    assert (done["state"], done["name"], done["node_id"], done["worker_pid"], done["job_id"]) == (
        FINISHED, "f0", "n2", 20, "01")
    assert [e["state"] for e in merge_records([done])["events"]] == [PENDING_NODE_ASSIGNMENT, RUNNING, FINISHED]
    assert [r["state"] for r in records[:2]] == [PENDING_NODE_ASSIGNMENT] * 2


async def test_a_task_running_across_two_sends_is_sent_running_then_finished_once(system):
    history = system.spawn(TaskHistory)
    worker = TaskEvents(system.loop, history, WORKER)
    created = time.time()
    await async_wait_until(lambda: time.time() > created, 5, "the clock to move")
    worker.running("long", 0, "long", None, 0.0)
    worker.running("short", 0, "short", "actor-1", 0.0)
    worker.ended("short", FAILED, {"error_type": "TASK_EXECUTION_EXCEPTION", "error_message": "boom"})
    started = time.time()
    await async_wait_until(lambda: time.time() > started, 5, "the clock to move")
    worker.flush()  # "long" started after the last send: not sent yet
    records, _, _ = await history.ask(ListTaskRecords(), timeout=5)
    assert [r["task_id"] for r in records] == ["short"]
    worker.flush()  # it started before this send's last: sent RUNNING
    records, _, _ = await history.ask(ListTaskRecords(), timeout=5)
    states = {r["task_id"]: r for r in records}
    assert states["long"]["state"] == RUNNING and states["long"]["node_id"] == "n2"
    assert "end_time_ms" not in states["long"]
    assert (states["short"]["state"], states["short"]["error_message"]) == (FAILED, "boom")
    assert (states["short"]["type"], states["short"]["actor_id"]) == ("ACTOR_TASK", "actor-1")
    worker.flush()  # nothing new: "long" is not sent RUNNING again
    worker.ended("long", FINISHED)
    worker.ended("never-started", FINISHED)  # not running here: ignored
    worker.flush()
    records, total, _ = await history.ask(ListTaskRecords(), timeout=5)
    long = next(r for r in records if r["task_id"] == "long")
    assert total == 2 and long["state"] == FINISHED
    assert long["start_time_ms"] <= long["end_time_ms"]


async def test_filters_compare_without_case_and_limit_keeps_the_total(system):
    history = system.spawn(TaskHistory)
    events = TaskEvents(system.loop, history, OWNER)
    for index in range(5):
        events.record(f"t{index}", 0, PENDING_NODE_ASSIGNMENT, {"name": "even" if index % 2 == 0 else "odd"})
    events.record("t4", 0, FAILED)
    events.flush()
    records, total, _ = await history.ask(ListTaskRecords((("name", "=", "EVEN"),), limit=2), timeout=5)
    assert total == 3 and [r["task_id"] for r in records] == ["t4", "t2"]
    records, total, _ = await history.ask(
        ListTaskRecords((("name", "=", "even"), ("state", "!=", "failed"))), timeout=5)
    assert total == 2 and [r["task_id"] for r in records] == ["t2", "t0"]


async def test_a_full_history_forgets_finished_tasks_first_and_counts_them(system):
    history = system.spawn(TaskHistory, 10)
    events = TaskEvents(system.loop, history, OWNER)
    for index in range(10):
        events.record(f"t{index}", 0, PENDING_NODE_ASSIGNMENT)
    for index in range(0, 10, 2):
        events.record(f"t{index}", 0, FINISHED)
    events.record("t10", 0, PENDING_NODE_ASSIGNMENT)
    events.flush()
    records, total, dropped = await history.ask(ListTaskRecords(limit=100), timeout=5)
    # 11 > 10: 2 go (one over, plus a tenth), the oldest finished ones
    assert dropped == 2 and total == 9
    assert sorted(r["task_id"] for r in records) == sorted(f"t{i}" for i in (1, 3, 4, 5, 6, 7, 8, 9, 10))


async def test_a_full_buffer_drops_its_oldest_events_and_says_how_many(system):
    history = system.spawn(TaskHistory)
    events = TaskEvents(system.loop, history, OWNER, max_buffered=4)
    for index in range(7):
        events.record(f"t{index}", 0, PENDING_NODE_ASSIGNMENT)
    events.flush()
    records, total, dropped = await history.ask(ListTaskRecords(), timeout=5)
    assert (total, dropped) == (4, 3)
    assert [r["task_id"] for r in records] == ["t6", "t5", "t4", "t3"]


async def test_the_buffer_sends_on_its_own_every_interval_and_at_stop(system):
    history = system.spawn(TaskHistory)
    events = TaskEvents(system.loop, history, OWNER, flush_seconds=0.05)
    events.start()
    events.record("t1", 0, PENDING_NODE_ASSIGNMENT)

    async def listed() -> int:
        return (await history.ask(ListTaskRecords(), timeout=5))[1]

    await async_wait_until(listed, 10, "the buffer to send its event on its own")
    events.record("t2", 0, PENDING_NODE_ASSIGNMENT)
    events.stop()
    assert await listed() == 2
    events.record("t3", 0, PENDING_NODE_ASSIGNMENT)  # stopped: nothing is sent until a flush
    assert await listed() == 2


async def test_a_dead_workers_running_tasks_fail_and_count_only_where_their_owner_is(system):
    history = system.spawn(TaskHistory)
    dead = TaskEvents(system.loop, history, WORKER)  # pid 20
    alive = TaskEvents(system.loop, history, {**WORKER, "worker_pid": 21})
    owner = TaskEvents(system.loop, history, OWNER)
    created = time.time()
    await async_wait_until(lambda: time.time() > created, 5, "the clock to move")
    dead.running("remote-owner", 0, "f", None, 1.0)
    dead.running("local-owner", 0, "g", None, 1.0)
    dead.running("ended", 0, "e", None, 1.0)
    alive.running("other", 0, "h", None, 1.0)
    started = time.time()
    await async_wait_until(lambda: time.time() > started, 5, "the clock to move")
    for events in (dead, alive, dead, alive):  # the second send of each: its tasks sent RUNNING
        events.flush()
    assert await history.ask(CountTaskStates(), timeout=5) == {RUNNING: 4}
    dead.ended("ended", FINISHED)
    dead.flush()  # its last run, unread when the death comes
    history.tell(WorkerDied(20, "it was killed by SIGKILL"))
    records, total, _ = await history.ask(ListTaskRecords(), timeout=5)
    by_id = {record["task_id"]: record for record in records}
    assert total == 4 and by_id["ended"]["state"] == FINISHED
    for task_id in ("remote-owner", "local-owner"):
        assert (by_id[task_id]["state"], by_id[task_id]["error_type"], by_id[task_id]["error_message"]) == (
            FAILED, "WORKER_DIED", "the worker running it died: it was killed by SIGKILL")
        assert by_id[task_id]["start_time_ms"] <= by_id[task_id]["end_time_ms"]
    assert by_id["other"]["state"] == RUNNING
    # Its owners count their own FAILED of them: here only the live worker's task counts...
    assert await history.ask(CountTaskStates(), timeout=5) == {RUNNING: 1, FINISHED: 1}
    # ...until an owner on this node says its side: then the task counts here, once.
    owner.failed("local-owner", 0, {"error_type": "WORKER_DIED", "error_message": "its worker died"})
    owner.flush()
    assert await history.ask(CountTaskStates(), timeout=5) == {RUNNING: 1, FINISHED: 1, FAILED: 1}


async def test_an_owner_sends_the_tasks_pending_since_before_its_last_send_and_closes_them_when_done(system):
    history = system.spawn(TaskHistory)
    owner = TaskEvents(system.loop, history, OWNER)
    created = time.time()
    owner.submitted("quick", 0, 1.0, "f", "NORMAL_TASK", None)
    owner.done("quick")  # done before any send: the owner sends nothing of it
    owner.submitted("slow", 0, 2.0, "g", "NORMAL_TASK", None)  # submitted before the last send
    await async_wait_until(lambda: time.time() > created, 5, "the clock to move")
    fresh = time.time()
    owner.submitted("fresh", 0, fresh, "h", "NORMAL_TASK", None)  # after it: not sent at the next send
    await async_wait_until(lambda: time.time() > fresh, 5, "the clock to move")
    owner.flush()
    records, total, _ = await history.ask(ListTaskRecords(), timeout=5)
    assert total == 1 and (records[0]["task_id"], records[0]["state"], records[0]["name"]) == (
        "slow", PENDING_NODE_ASSIGNMENT, "g")
    assert records[0]["creation_time_ms"] == 2000
    assert await history.ask(CountTaskStates(), timeout=5) == {PENDING_NODE_ASSIGNMENT: 1}
    owner.flush()  # "fresh" was submitted before this send's last: sent now
    records, total, _ = await history.ask(ListTaskRecords(), timeout=5)
    assert total == 2 and [record["task_id"] for record in records] == ["fresh", "slow"]
    owner.done("slow")  # it ran on another node: its record here is closed, and no longer counted
    owner.done("fresh")
    owner.flush()
    assert await history.ask(CountTaskStates(), timeout=5) == {}


async def test_finished_runs_are_sent_as_soon_as_a_batch_is_full_and_read_when_asked(system):
    history = system.spawn(TaskHistory)
    worker = TaskEvents(system.loop, history, WORKER, send_at=3)
    _run(worker, "r0", "r1", "r2")

    async def listed() -> int:
        return (await history.ask(ListTaskRecords(), timeout=5))[1]

    await async_wait_until(listed, 10, "the full batch to be sent without a flush")
    records, total, dropped = await history.ask(ListTaskRecords(), timeout=5)
    assert (total, dropped) == (3, 0)
    assert [r["task_id"] for r in records] == ["r2", "r1", "r0"]
    assert (records[0]["state"], records[0]["type"], records[0]["name"], records[0]["node_id"]) == (
        FINISHED, "NORMAL_TASK", "f", "n2")
    assert records[0]["creation_time_ms"] == 1000 and records[0]["start_time_ms"] <= records[0]["end_time_ms"]
    assert await history.ask(CountTaskStates(), timeout=5) == {FINISHED: 3}


async def test_a_finished_run_merges_with_its_owners_event_on_the_same_node(system):
    history = system.spawn(TaskHistory)
    owner = TaskEvents(system.loop, history, OWNER)
    worker = TaskEvents(system.loop, history, WORKER)
    owner.record("t1", 0, PENDING_NODE_ASSIGNMENT, ("f", "ACTOR_TASK", "actor-1"))
    owner.flush()
    worker.running("t1", 0, "f", "actor-1", 0.0)
    worker.ended("t1", FINISHED)
    worker.running("c1", 0, "Actor.__init__", "actor-1", 0.0, "ACTOR_CREATION_TASK")
    worker.ended("c1", FINISHED)
    worker.flush()
    records, total, _ = await history.ask(ListTaskRecords(), timeout=5)
    assert total == 2
    by_id = {r["task_id"]: r for r in records}
    assert (by_id["t1"]["state"], by_id["t1"]["type"], by_id["t1"]["actor_id"], by_id["t1"]["worker_pid"]) == (
        FINISHED, "ACTOR_TASK", "actor-1", 20)
    assert [e["state"] for e in merge_records([by_id["t1"]])["events"]] == [
        PENDING_NODE_ASSIGNMENT, RUNNING, FINISHED]
    assert (by_id["c1"]["type"], by_id["c1"]["state"]) == ("ACTOR_CREATION_TASK", FINISHED)


async def test_unread_runs_past_the_bound_lose_their_oldest_batches_and_count_them(system):
    history = system.spawn(TaskHistory, 5)
    worker = TaskEvents(system.loop, history, WORKER)
    for batch in range(3):
        _run(worker, *(f"b{batch}-{index}" for index in range(3)))
        worker.flush()
    records, total, dropped = await history.ask(ListTaskRecords(), timeout=5)
    # 9 runs unread: the first batch went unread (6 are still over 5); reading the rest forgets 1 + a tenth (0)
    assert (total, dropped) == (5, 4)
    assert [r["task_id"] for r in records] == ["b2-2", "b2-1", "b2-0", "b1-2", "b1-1"]


async def test_a_full_buffer_of_runs_drops_the_newest_and_says_how_many(system):
    history = system.spawn(TaskHistory)
    worker = TaskEvents(system.loop, history, WORKER, max_buffered=2)
    _run(worker, "r0", "r1", "r2")
    worker.flush()
    records, total, dropped = await history.ask(ListTaskRecords(), timeout=5)
    assert (total, dropped) == (2, 1)
    assert [r["task_id"] for r in records] == ["r1", "r0"]


async def test_a_batch_too_large_for_a_frame_goes_in_parts_and_an_event_too_large_alone_is_dropped(system):
    history = system.spawn(TaskHistory)
    limited = _FrameLimited(history, 4000)
    worker = TaskEvents(system.loop, limited, WORKER)
    _run(worker, *(f"r{index:03d}" for index in range(100)))  # about 7 KB pickled
    worker.running("boom", 0, "f", None, 1.0)
    worker.ended("boom", FAILED, {"error_type": "TASK_EXECUTION_EXCEPTION", "error_message": "x" * 10_000})
    worker.flush()
    records, total, dropped = await history.ask(ListTaskRecords(limit=1000), timeout=5)
    assert (total, dropped) == (100, 1)
    assert sorted(record["task_id"] for record in records) == [f"r{index:03d}" for index in range(100)]
    assert len(limited.sizes) > 2 and max(limited.sizes) <= 4000


class _FrameLimited:
    """The real history behind a frame limit of `limit` bytes, refused as a remote ref refuses it."""

    def __init__(self, history, limit: int) -> None:
        self.history, self.limit, self.sizes = history, limit, []

    def tell(self, batch) -> None:
        size = len(pickle.dumps(batch, protocol=5))
        if size > self.limit:
            raise MessageTooLargeError(f"a batch of {size} bytes")
        self.sizes.append(size)
        self.history.tell(batch)


def _run(worker: TaskEvents, *task_ids: str) -> None:
    """`worker` runs each task, named "f" and submitted at 1.0, to the end."""
    for task_id in task_ids:
        worker.running(task_id, 0, "f", None, 1.0)
        worker.ended(task_id, FINISHED)
