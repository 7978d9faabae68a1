"""A process's task events: the state changes of the tasks it submits and runs, kept in a bounded
buffer and sent to its node's TaskHistory in batches (docs/architecture.md, "Task events and the
state API").

Recording is a dict update, one `deque.append` or one `list.extend` from any thread: no
message, no lock. Most tasks are a single event, the worker's end of a run that finished, and
that one is seven atoms appended to a flat list (`RUN_FIELDS`): no tuple per task stays alive
until the send, so a second of tasks gives the garbage collector nothing to track, and the batch
pickles as one flat list. On the loop, every `FLUSH_SECONDS` (or sooner, once `SEND_AT` runs are
buffered), what is buffered goes in one `TaskEventBatch`, told to the node. A buffer that fills
between two sends drops events and counts them, so a burst of tasks costs memory bounded by
`MAX_BUFFERED` and the state API can say what it lost.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections import deque
from itertools import islice
from typing import Any

from ..kernel import ActorRef, SerializationError
from ..protocol import TaskEventBatch
from ..task_records import (
    FAILED,
    FINISHED,
    OWNER_SAW_END,
    PENDING_NODE_ASSIGNMENT,
    RUN_FIELDS,
    RUNNING,
    TaskEvent,
    run_fields,
)

__all__ = ["FLUSH_SECONDS", "MAX_BUFFERED", "SEND_AT", "TaskEvents"]

#: How often a process sends its events to its node.
FLUSH_SECONDS = 1.0
#: The most events a process keeps between two sends; more are dropped (and counted).
MAX_BUFFERED = 100_000
#: A process sends its finished runs before the interval is up only once it holds this many, so
#: that a burst does not fill its buffer. Not sooner: each send wakes the process's loop thread
#: (a worker's runs are recorded on its execution thread) and its node, and with the tasks'
#: own processes busy that stall costs ten times its CPU time (measured on the 2-core machine,
#: `benchmarks/task_events.py`: a send every 1000 runs took 4-6% of async task throughput,
#: one a second none).
SEND_AT = MAX_BUFFERED // 2


class TaskEvents:
    """The task events of one process (any thread records; the loop sends).

    The owner side calls `submitted` when it submits a task, `done` when the task's returns are
    resolved, and `failed` for an attempt that failed without its worker saying so. The worker
    side calls `running` when it starts a task and `ended` when the task is over. Most tasks
    are one event: the worker's end, carrying the task's name, actor, submission and start
    times (a run that finished goes in the flat `runs` of its batch, `task_records.RUN_FIELDS`;
    any other event is a `TaskEvent` tuple). Only a task submitted before the last send and
    still waiting for a worker is sent PENDING by its owner (closed by `done` once over:
    `OWNER_SAW_END`), and only one started before the last send and still running is sent
    RUNNING by its worker, so the state API sees both within two sends, and a task done sooner
    is one event whatever the burst.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, history: ActorRef | None, source: dict[str, Any], *,
                 max_buffered: int = MAX_BUFFERED, flush_seconds: float = FLUSH_SECONDS,
                 send_at: int = SEND_AT) -> None:
        self._loop = loop
        self._history = history
        self._source = source
        self._buffer: deque[TaskEvent] = deque(maxlen=max_buffered)
        self._max = max_buffered
        #: the finished runs, `RUN_FIELDS` atoms each, one after the other
        self._runs: list = []
        self._max_run_atoms = max_buffered * RUN_FIELDS
        self._send_at_atoms = send_at * RUN_FIELDS
        self._send_soon = False
        self._flush_seconds = flush_seconds
        self._dropped = 0
        self._timer: asyncio.TimerHandle | None = None
        #: task id -> (attempt, submission time, name, type, actor id): submitted, neither done nor
        #: sent, in submission order
        self._pending: dict[str, tuple] = {}
        #: task id -> attempt: sent PENDING, not done
        self._sent_pending: dict[str, int] = {}
        self._last_flush = time.time()
        #: task id -> (attempt, start time, name, actor id, submission time, type): running here
        self._running: dict[str, tuple] = {}
        self._sent_running: set[str] = set()

    def record(self, task_id: str, attempt: int, state: str, fields: dict[str, Any] | tuple | None = None) -> None:
        """Note that attempt `attempt` of task `task_id` reached `state` now (any thread)."""
        buffer = self._buffer
        if len(buffer) == self._max:
            self._dropped += 1
        buffer.append((time.time(), task_id, attempt, state, fields, None))

    def submitted(self, task_id: str, attempt: int, when: float, name: str, kind: str, actor_id: str | None) -> None:
        """Attempt `attempt` of task `task_id`, named `name`, of Ray's type `kind`, of actor
        `actor_id` (None: a task), was submitted at `when` (any thread)."""
        self._pending[task_id] = (attempt, when, name, kind, actor_id)

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
            _, when, name, kind, actor_id = entry
            self.record(task_id, attempt, FAILED, (name, kind, actor_id, when, error))

    def running(self, task_id: str, attempt: int, name: str, actor_id: str | None, submitted: float,
                kind: str | None = None) -> None:
        """This process starts running attempt `attempt` of task `task_id`, named `name`, of actor
        `actor_id` (None: a task), submitted at `submitted` (0: not known); `kind` is Ray's task
        type where the actor id does not say it (`ACTOR_CREATION_TASK`) (any thread)."""
        self._running[task_id] = (attempt, time.time(), name, actor_id, submitted, kind)

    def ended(self, task_id: str, state: str, error: dict[str, Any] | None = None) -> None:
        """The task this process was running is over, in final `state`, with `error`'s fields if
        it failed (any thread)."""
        started = self._running.pop(task_id, None)
        if started is None:
            return
        if self._sent_running:
            self._sent_running.discard(task_id)
        attempt, start, name, actor_id, submitted, kind = started
        if state == FINISHED and kind is None:
            runs = self._runs
            if len(runs) >= self._max_run_atoms:
                self._dropped += 1
                return
            runs.extend((time.time(), task_id, attempt, name, actor_id, submitted, start))
            if len(runs) >= self._send_at_atoms and not self._send_soon and self._history is not None:
                self._send_soon = True
                try:
                    self._loop.call_soon_threadsafe(self.flush)
                except RuntimeError:  # the loop is closed: the process is ending
                    pass
            return
        buffer = self._buffer
        if len(buffer) == self._max:
            self._dropped += 1
        fields = run_fields(name, actor_id, submitted, kind)
        buffer.append((time.time(), task_id, attempt, state, fields if error is None else (*fields, error), start))

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
        self._send_soon = False
        buffer = self._buffer
        cutoff, self._last_flush = self._last_flush, time.time()
        self._send_long_pending(buffer, cutoff)
        running, sent = self._running, self._sent_running
        if len(running) > len(sent):
            for task_id, (attempt, start, name, actor_id, submitted, kind) in list(running.items()):
                if start <= cutoff and task_id not in sent:
                    sent.add(task_id)
                    fields = run_fields(name, actor_id, submitted, kind)
                    buffer.append((start, task_id, attempt, RUNNING, fields, start))
        runs = self._runs
        if not (buffer or runs or self._dropped):
            return
        events = [buffer.popleft() for _ in range(len(buffer))]
        count = len(runs)  # other threads may extend it meanwhile, by whole runs: those stay for the next send
        sent_runs = runs[:count]
        del runs[:count]
        dropped, self._dropped = self._dropped, 0
        self._send(events, sent_runs, dropped)

    def _send(self, events: list, runs: list, dropped: int) -> None:
        """Tell the node one batch, or two halves if it does not fit in a frame (the limit is
        ``ACTORCORE_MAX_FRAME_BYTES``; failures carry whole tracebacks); an event too large
        alone is dropped, and counted."""
        blob = pickle.dumps(runs, protocol=pickle.HIGHEST_PROTOCOL) if runs else b""
        try:
            self._history.tell(TaskEventBatch(events, dropped, self._source, blob, len(runs) // RUN_FIELDS))
            return
        except SerializationError:  # the only one a batch of strings and numbers meets: too large
            pass
        if len(events) + len(runs) // RUN_FIELDS <= 1:
            self._history.tell(TaskEventBatch([], dropped + 1, self._source, b"", 0))
            return
        if events and runs:
            parts = ((events, []), ([], runs))
        elif events:
            half = len(events) // 2
            parts = ((events[:half], []), (events[half:], []))
        else:
            half = len(runs) // RUN_FIELDS // 2 * RUN_FIELDS
            parts = (([], runs[:half]), ([], runs[half:]))
        self._send(*parts[0], dropped)
        self._send(*parts[1], 0)

    def _send_long_pending(self, buffer: deque, cutoff: float) -> None:
        """Buffer PENDING for the tasks submitted by `cutoff` (the last send) and still waiting."""
        pending, sent = self._pending, self._sent_pending
        while pending:
            head = list(islice(pending.items(), 1024))  # in C, under the GIL: `submitted` may insert meanwhile
            for task_id, (attempt, when, name, kind, actor_id) in head:
                if when > cutoff:
                    return
                del pending[task_id]
                sent[task_id] = attempt
                buffer.append((when, task_id, attempt, PENDING_NODE_ASSIGNMENT, (name, kind, actor_id), None))

    def _tick(self) -> None:
        self._timer = None
        try:
            self.flush()
        finally:
            self.start()


_SAW_END = {OWNER_SAW_END: True}
