"""A process's task events: the state changes of the tasks it submits and runs, kept in a bounded
buffer and sent to its node's TaskHistory in batches (docs/architecture.md, "Task events and the
state API").

Recording is a dict update or one `deque.append` from any thread: no message, no lock,
nothing per task beyond that; most tasks are a single event (see `TaskEvents`). On the loop,
every `FLUSH_SECONDS` the buffer is drained into one `TaskEventBatch`, told to the node. A
buffer that fills between two flushes drops its oldest events and counts them, so a burst of
tasks costs memory bounded by `MAX_BUFFERED` and the state API can say what it lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from itertools import islice
from typing import Any

from ..kernel import ActorRef
from ..protocol import TaskEventBatch
from ..task_records import FAILED, OWNER_SAW_END, PENDING_NODE_ASSIGNMENT, RUNNING, TaskEvent

__all__ = ["FLUSH_SECONDS", "MAX_BUFFERED", "TaskEvents"]

#: How often a process sends its events to its node.
FLUSH_SECONDS = 1.0
#: The most events a process keeps between two sends; older ones are dropped (and counted).
MAX_BUFFERED = 100_000


class TaskEvents:
    """The task events of one process (any thread records; the loop sends).

    The owner side calls `submitted` when it submits a task, `done` when the task's returns are
    resolved, and `failed` for an attempt that failed without its worker saying so. The worker
    side calls `running` when it starts a task and `ended` when the task is over. Most tasks
    are one event: the worker's end, carrying the task's name, type, actor, submission and
    start times. Only a task submitted before the last send and still waiting for a worker is
    sent PENDING by its owner (closed by `done` once over: `OWNER_SAW_END`), and only one
    started before the last send and still running is sent RUNNING by its worker, so the state
    API sees both within two sends, and a task done sooner is one event whatever the burst.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, history: ActorRef | None, source: dict[str, Any], *,
                 max_buffered: int = MAX_BUFFERED,
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self._loop = loop
        self._history = history
        self._source = source
        self._buffer: deque[TaskEvent] = deque(maxlen=max_buffered)
        self._max = max_buffered
        self._flush_seconds = flush_seconds
        self._dropped = 0
        self._timer: asyncio.TimerHandle | None = None
        #: task id -> (attempt, submission time, (name, type, actor id)): submitted, neither done nor
        #: sent, in submission order
        self._pending: dict[str, tuple[int, float, tuple]] = {}
        #: task id -> attempt: sent PENDING, not done
        self._sent_pending: dict[str, int] = {}
        self._last_flush = time.time()
        #: task id -> (attempt, start time, (name, type, actor id, submission time)): running here
        self._running: dict[str, tuple[int, float, tuple]] = {}
        self._sent_running: set[str] = set()

    def record(self, task_id: str, attempt: int, state: str, fields: dict[str, Any] | tuple | None = None) -> None:
        """Note that attempt `attempt` of task `task_id` reached `state` now (any thread)."""
        buffer = self._buffer
        if len(buffer) == self._max:
            self._dropped += 1
        buffer.append((time.time(), task_id, attempt, state, fields, None))

    def submitted(self, task_id: str, attempt: int, when: float, what: tuple) -> None:
        """Attempt `attempt` of task `task_id` was submitted at `when`; `what` is its ``(name,
        type, actor id)`` (any thread)."""
        self._pending[task_id] = (attempt, when, what)

    def done(self, task_id: str) -> None:
        """The task's attempt is over as far as its owner is concerned. If it was sent pending,
        its record here is closed: its end is recorded where it ran (loop thread)."""
        if self._pending.pop(task_id, None) is not None or not self._sent_pending:
            return
        attempt = self._sent_pending.pop(task_id, None)
        if attempt is not None:
            self.record(task_id, attempt, PENDING_NODE_ASSIGNMENT, _SAW_END)

    def failed(self, task_id: str, attempt: int, error: dict[str, Any]) -> None:
        """Attempt `attempt` of the task failed before its worker could say how (the worker
        died, the call was cancelled before it ran): recorded here, with what its submission
        said of it unless that was sent already (loop thread)."""
        entry = self._pending.pop(task_id, None)
        if entry is None and self._sent_pending:
            self._sent_pending.pop(task_id, None)
        if entry is None or entry[0] != attempt:
            self.record(task_id, attempt, FAILED, error)
        else:
            self.record(task_id, attempt, FAILED, (*entry[2], entry[1], error))

    def running(self, task_id: str, attempt: int, what: tuple) -> None:
        """This process starts running attempt `attempt` of task `task_id`; `what` is its
        ``(name, type, actor id, submission time or None)`` (any thread)."""
        self._running[task_id] = (attempt, time.time(), what)

    def ended(self, task_id: str, state: str, error: dict[str, Any] | None = None) -> None:
        """The task this process was running is over, in final `state`, with `error`'s fields if
        it failed (any thread)."""
        started = self._running.pop(task_id, None)
        if started is None:
            return
        if self._sent_running:
            self._sent_running.discard(task_id)
        buffer = self._buffer
        if len(buffer) == self._max:
            self._dropped += 1
        attempt, start, what = started
        buffer.append((time.time(), task_id, attempt, state, what if error is None else (*what, error), start))

    def start(self) -> None:
        """Send the events every `flush_seconds` from now on (loop thread)."""
        if self._history is not None and self._timer is None:
            self._timer = self._loop.call_later(self._flush_seconds, self._tick)

    def stop(self) -> None:
        """Send what is buffered and stop sending (loop thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def flush(self) -> None:
        """Send the buffered events to the node now, as one batch (loop thread)."""
        if self._history is None:
            return
        buffer = self._buffer
        cutoff, self._last_flush = self._last_flush, time.time()
        self._send_long_pending(buffer, cutoff)
        running, sent = self._running, self._sent_running
        if len(running) > len(sent):
            for task_id, (attempt, start, what) in list(running.items()):
                if start <= cutoff and task_id not in sent:
                    sent.add(task_id)
                    buffer.append((start, task_id, attempt, RUNNING, what, start))
        if not (buffer or self._dropped):
            return
        events = [buffer.popleft() for _ in range(len(buffer))]
        dropped, self._dropped = self._dropped, 0
        self._history.tell(TaskEventBatch(events, dropped, self._source))

    def _send_long_pending(self, buffer: deque, cutoff: float) -> None:
        """Buffer PENDING for the tasks submitted by `cutoff` (the last send) and still waiting."""
        pending, sent = self._pending, self._sent_pending
        while pending:
            head = list(islice(pending.items(), 1024))  # in C, under the GIL: `submitted` may insert meanwhile
            for task_id, (attempt, when, what) in head:
                if when > cutoff:
                    return
                del pending[task_id]
                sent[task_id] = attempt
                buffer.append((when, task_id, attempt, PENDING_NODE_ASSIGNMENT, what, None))

    def _tick(self) -> None:
        self._timer = None
        try:
            self.flush()
        finally:
            self.start()


_SAW_END = {OWNER_SAW_END: True}
