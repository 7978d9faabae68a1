"""A process's task events: the state changes of the tasks it submits and runs, kept in a bounded
buffer and sent to its node's TaskHistory in batches (docs/architecture.md, "Task events and the
state API").

Recording is one `deque.append` from any thread: no message, no lock, nothing per task beyond
that (a task that runs here is one event, sent once it ended, or RUNNING first if it runs
across a send). On the loop, every `FLUSH_SECONDS` the buffer is drained into one `TaskEventBatch`, told to
the node. A buffer that fills between two flushes drops its oldest events and counts them, so a
burst of tasks costs memory bounded by `MAX_BUFFERED` and the state API can say what it lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from ..kernel import ActorRef
from ..protocol import TaskEventBatch
from ..task_records import RUNNING, TaskEvent

__all__ = ["FLUSH_SECONDS", "MAX_BUFFERED", "TaskEvents"]

#: How often a process sends its events to its node.
FLUSH_SECONDS = 1.0
#: The most events a process keeps between two sends; older ones are dropped (and counted).
MAX_BUFFERED = 100_000


class TaskEvents:
    """The task events of one process (any thread records; the loop sends).

    The owner side calls `record` (a task submitted, retried, or failed without running); the
    worker side calls `running` when it starts a task and `ended` when the task is over. A
    task that ends between two sends is sent as one event (its start time among its fields);
    one still running at a send is sent RUNNING then, so the state API sees it running.
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
        self._running: dict[str, tuple[int, float]] = {}  # task id -> (attempt, start time)
        self._sent_running: set[str] = set()

    def record(self, task_id: str, attempt: int, state: str, fields: dict[str, Any] | tuple | None = None) -> None:
        """Note that attempt `attempt` of task `task_id` reached `state` now (any thread)."""
        buffer = self._buffer
        if len(buffer) == self._max:
            self._dropped += 1
        buffer.append((time.time(), task_id, attempt, state, fields, None))

    def running(self, task_id: str, attempt: int) -> None:
        """This process starts running attempt `attempt` of task `task_id` (any thread)."""
        self._running[task_id] = (attempt, time.time())

    def ended(self, task_id: str, state: str, fields: dict[str, Any] | None = None) -> None:
        """The task this process was running is over, in final `state` (any thread)."""
        started = self._running.pop(task_id, None)
        if started is None:
            return
        if self._sent_running:
            self._sent_running.discard(task_id)
        buffer = self._buffer
        if len(buffer) == self._max:
            self._dropped += 1
        buffer.append((time.time(), task_id, started[0], state, fields, started[1]))

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
        running, sent = self._running, self._sent_running
        if len(running) > len(sent):
            for task_id, (attempt, start) in list(running.items()):
                if task_id not in sent:
                    sent.add(task_id)
                    self._buffer.append((start, task_id, attempt, RUNNING, None, start))
        buffer = self._buffer
        if not (buffer or self._dropped):
            return
        events = [buffer.popleft() for _ in range(len(buffer))]
        dropped, self._dropped = self._dropped, 0
        self._history.tell(TaskEventBatch(events, dropped, self._source))

    def _tick(self) -> None:
        self._timer = None
        try:
            self.flush()
        finally:
            self.start()
