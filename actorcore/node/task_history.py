"""The node's task history: the records of the tasks its processes submitted and ran, built from
their event batches and kept within a bound (docs/architecture.md, "Task events and the state
API").

Processes tell it `TaskEventBatch`es (`core/task_events.py`); it merges each event into the record
of its task's attempt (`task_records.apply_event`); a task's only event so far is kept as it came,
and made a record at its second event or when it is listed. A batch's finished runs (most events)
are kept as they came, still pickled, until the history is asked or other events arrive: a node
nobody asks spends next to nothing on them. Read, each run is one tuple of its atoms, made in C.
Past `max_tasks` records it forgets the oldest finished ones first (then the oldest), a tenth at a
time, and counts them with the events the processes dropped. A worker's death (`WorkerDied`, from
the pool) fails the records of what it was running. `ListTaskRecords` answers the state API's
fan-out: the newest matching records first. A record here may be partial (the owner's side or the
worker's); the state API merges the nodes' answers. `CountTaskStates` answers the node's
``actorcore_tasks`` metric without merging: a task counts on the node that ran it, and on its
owner's node until a worker starts it (the owner's side of a task that ran on another node is
marked `OWNER_SAW_END` when it ends, and no longer counts; the worker's side of a task its worker
died running, `WORKER_GONE`, counts only where its owner's side is too).
"""

from __future__ import annotations

import pickle
import time
from collections import Counter, deque
from itertools import islice, repeat
from typing import Any

from ..kernel import Actor
from ..protocol import CountTaskStates, ListTaskRecords, TaskEventBatch, WorkerDied
from ..task_records import (
    FAILED,
    FINISHED,
    OWNER_SAW_END,
    RUN_FIELDS,
    RUNNING,
    WORKER_FIELDS,
    WORKER_GONE,
    apply_event,
    new_record,
    run_event,
)

__all__ = ["MAX_TASKS", "TaskHistory", "matches"]

#: The most task attempts a node remembers (Ray's GCS keeps 100k by default).
MAX_TASKS = 100_000

_FINAL = (FINISHED, FAILED)


class TaskHistory(Actor):
    """Task records of one node, from its processes' event batches."""

    def __init__(self, max_tasks: int = MAX_TASKS) -> None:
        self.max_tasks = max_tasks
        #: (task id, attempt) -> its record, or its only event so far: ``(event, worker fields, job
        #: id)``, or a finished run's `RUN_FIELDS` atoms followed by ``(worker fields, job id)``
        self.records: dict[tuple[str, int], dict[str, Any] | tuple] = {}  # the oldest first
        #: batches' finished runs not read yet, the oldest first: (pickled runs, how many, (worker
        #: fields, job id))
        self.unread: deque[tuple[bytes, int, tuple]] = deque()
        self.unread_runs = 0
        #: events the processes dropped plus records forgotten here
        self.dropped = 0
        #: worker pid -> the keys of the records it sent RUNNING (some may have ended since)
        self.running: dict[int | None, list[tuple[str, int]]] = {}

    async def receive(self, message):
        if isinstance(message, TaskEventBatch):
            self._add(message)
            return None
        if isinstance(message, ListTaskRecords):
            self._read()
            return self._list(message.filters, message.limit)
        if isinstance(message, CountTaskStates):
            self._read()
            return self._count()
        if isinstance(message, WorkerDied) and self.running.get(message.pid):
            self._read()  # its last runs may have ended some of them
            self._worker_died(message.pid, message.how)
        return None

    def _add(self, batch: TaskEventBatch) -> None:
        source = batch.source
        job_id = source.get("job_id")
        worker = tuple((name, source[name]) for name in WORKER_FIELDS if source.get(name) is not None)
        self.dropped += batch.dropped
        if batch.events:
            self._read()  # the records stay in the order their events came
            self._add_events(batch.events, worker, job_id)
        if batch.run_count:
            self.unread.append((batch.runs, batch.run_count, (worker, job_id)))
            self.unread_runs += batch.run_count
            while self.unread_runs - self.unread[0][1] >= self.max_tasks:  # a burst nobody asked about
                _, count, _ = self.unread.popleft()
                self.unread_runs -= count
                self.dropped += count

    def _read(self) -> None:
        """Make records of the finished runs not read yet."""
        while self.unread:
            runs, count, context = self.unread.popleft()
            self.unread_runs -= count
            self._add_runs(pickle.loads(runs), context)
            self._bound()

    def _bound(self) -> None:
        if len(self.records) > self.max_tasks:
            self._forget(len(self.records) - self.max_tasks + self.max_tasks // 10)

    def _add_events(self, events: list, worker: tuple, job_id: str | None) -> None:
        records = self.records
        for event in events:
            key = (event[1], event[2])
            if event[3] == RUNNING:  # rare: only a task running at its worker's send
                self._note_running(key, worker)
            record = records.get(key)
            if record is None:  # most tasks are one event: kept as it came until a second one
                records[key] = (event, worker, job_id)
                continue
            if type(record) is tuple:
                record = records[key] = _unpacked(record)
            elif WORKER_GONE in record and event[5] is None:
                del record[WORKER_GONE]  # its owner's side is here too: it counts here after all
            apply_event(record, event, worker)
        self._bound()

    def _note_running(self, key: tuple[str, int], worker: tuple) -> None:
        """Remember that the worker of `worker` (its batch's fields) sent `key` RUNNING."""
        keys = self.running.setdefault(dict(worker).get("worker_pid"), [])
        keys.append(key)
        if len(keys) >= 64 and (len(keys) & (len(keys) - 1)) == 0:  # at each power of two: drop the ended
            keys[:] = [key for key in keys if self._is_running(key)]

    def _is_running(self, key: tuple[str, int]) -> bool:
        record = self.records.get(key)
        if record is None:
            return False
        if type(record) is tuple:
            return len(record) < RUN_FIELDS and record[0][3] == RUNNING
        return record["state"] == RUNNING

    def _worker_died(self, pid: int, how: str) -> None:
        """Close the records of the tasks worker `pid` was running when it died: FAILED with Ray's
        WORKER_DIED, no longer counted here (`WORKER_GONE`) unless their owner's side is here."""
        failure = {"error_type": "WORKER_DIED", "error_message": f"the worker running it died: {how}"}
        now = time.time()
        for key in self.running.pop(pid, ()):
            if not self._is_running(key):
                continue
            record = self._record(key)
            apply_event(record, (now, key[0], key[1], FAILED, failure, None))
            record[WORKER_GONE] = True

    def _add_runs(self, runs: list, context: tuple) -> None:
        """Add a batch's finished runs (`RUN_FIELDS` atoms each, flat): one tuple each, made and
        stored in C, unless one's task already has a record here (then all go as other events)."""
        records = self.records
        ids, attempts = runs[1::RUN_FIELDS], runs[2::RUN_FIELDS]
        keys = list(zip(ids, attempts, strict=True))
        rows = zip(runs[0::RUN_FIELDS], ids, attempts, *(runs[field::RUN_FIELDS] for field in range(3, RUN_FIELDS)),
                   repeat(context))
        if records.keys().isdisjoint(keys):
            records.update(zip(keys, rows, strict=True))
        else:  # rare: as other events
            self._add_events([run_event(row) for row in rows], *context)

    def _forget(self, count: int) -> None:
        records = self.records
        finished: list = []
        oldest = iter(records.items())  # the oldest first: most of them are finished
        while len(finished) < count:
            chunk = list(islice(oldest, count - len(finished)))
            if not chunk:
                break
            finished += [key for key, record in chunk
                         if (len(record) > RUN_FIELDS or record[0][3] in _FINAL if type(record) is tuple
                             else record["state"] in _FINAL)]
        for key in finished:
            del records[key]
        for key in list(islice(records, count - len(finished))):
            del records[key]
        self.dropped += count

    def _count(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for record in self.records.values():
            if type(record) is tuple:
                if len(record) > RUN_FIELDS:
                    counts[FINISHED] += 1
                    continue
                event = record[0]
                fields = event[4]
                if event[5] is not None or type(fields) is not dict or OWNER_SAW_END not in fields:
                    counts[event[3]] += 1
            elif ("start_time_ms" in record or OWNER_SAW_END not in record) and WORKER_GONE not in record:
                counts[record["state"]] += 1
        return dict(counts)

    def _list(self, filters: tuple, limit: int) -> tuple[list[dict[str, Any]], int, int]:
        records = self.records
        if not filters:
            keys = list(islice(reversed(records), limit))
            return [self._record(key) for key in keys], len(records), self.dropped
        found = []
        total = 0
        for key in list(reversed(records)):
            record = self._record(key)
            if matches(record, filters):
                total += 1
                if len(found) < limit:
                    found.append(record)
        return found, total, self.dropped

    def _record(self, key: tuple[str, int]) -> dict[str, Any]:
        """The record of `key` as a dict (made once from a single event, then kept)."""
        record = self.records[key]
        if type(record) is tuple:
            record = self.records[key] = _unpacked(record)
        return record


def _unpacked(packed: tuple) -> dict[str, Any]:
    """A record from its first event, as `_add` keeps it: ``(event, worker fields, job id)`` or a
    finished run's atoms then ``(worker fields, job id)``."""
    if len(packed) > RUN_FIELDS:
        event, (worker, job_id) = run_event(packed), packed[RUN_FIELDS]
    else:
        event, worker, job_id = packed
    record = new_record(event[1], event[2])
    record["job_id"] = job_id
    apply_event(record, event, worker)
    return record


def matches(record: dict[str, Any], filters: tuple) -> bool:
    """Whether `record` passes every ``(field, "=" | "!=", value)`` filter; values compare as
    strings, without case (as Ray's state API compares them)."""
    for field, predicate, value in filters:
        equal = str(record.get(field)).lower() == str(value).lower()
        if equal != (predicate == "="):
            return False
    return True
