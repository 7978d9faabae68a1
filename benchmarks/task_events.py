"""What task events cost: `python -m benchmarks.task_events [--seconds S] [--sync-slice N] [--control]
[--only W,...] [--no-pin] [--json]`.

Task events (docs/architecture.md, "Task events and the state API") are on by default;
``ACTORCORE_TASK_EVENTS=0`` turns them off for the processes that inherit it. Comparing two
sessions, one with and one without, mostly measures the noise between two sets of processes
on a shared machine (which core each lands on, what else runs): ±10% here, and even two
phases of one session a few seconds apart differ by that much. So this benchmark compares
calls recorded and calls not recorded inside the very same processes, interleaved: each call
says which it is with Ray's per-call option ``enable_task_events``, which its owner and its
worker both obey (so "off" still pays the one check of the option, as every call does). It
runs the microbenchmark's four hot paths:

- tasks_sync: `get(f.remote())` one at a time (the microbenchmark's single_client_tasks_sync);
- tasks_async: batches of `f.remote()` then one `get` (single_client_tasks_async);
- actor_calls_sync: `get(a.f.remote())` one at a time (1_1_actor_calls_sync);
- actor_calls_async: batches of `a.f.remote()` then one `get` (1_1_actor_calls_async).

Each workload runs for `--seconds` in slices (5000 calls for the async ones; one call for the
sync ones, or `--sync-slice`), in groups of four: on, off, off, on, then off, on, on, off, and
so on, so that a drift of the machine's speed weighs on both settings alike. A group's
figure is its throughput with events on over its throughput off; the benchmark reports the
median over the groups (> 0.95: under 5% lost), their quartiles, and the ratio of the totals
(for one-call slices, the ratio of the mean latencies: the figure to read).

`--control` records no call in either setting: the figures it gives are the benchmark's own
noise (an A/A test), the yardstick for the ones above.

The driver is pinned to one core and the workers to the other (`--no-pin`: not): the
driver's loop and the workers spin briefly around each reply (docs/architecture.md), and two
spinning processes the kernel happens to put on one core run at half speed or less until it
moves one, which swings a slice's throughput far more than the events do.

What events cost outside the calls that make them is measured on its own, per event, against
the session's CPU time per task (every process of the session, from /proc): a process
pickling and sending its buffer (about once a second: a send can land in an "off" slice
or call as well), and the node's TaskHistory receiving the batch and, once it is asked,
reading it into records.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time

__all__ = ["main"]

WORKLOADS = {"tasks_sync": 1000, "tasks_async": 5000, "actor_calls_sync": 1000, "actor_calls_async": 5000}
#: calls per slice of the sync workloads, by default: one, alternating call by call
SYNC_SLICE = 1
_ORDER = ((True, False, False, True), (False, True, True, False))


def _session_cpu_seconds() -> float:
    """CPU time (user + system) spent so far by this process and every process under it."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    ticks = 0
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid in stats:
            ticks += int(stats[pid][11]) + int(stats[pid][12])  # utime, stime: fields 14 and 15 of stat
        todo.extend(children.get(pid, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


def _pin_session() -> None:
    """Every thread of this process on the first CPU, every thread of the workers on the second."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    for pid in [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                is_worker = b"actorcore.worker" in file.read()
            cpu = cpus[0] if pid == os.getpid() else cpus[1] if is_worker else None
            if cpu is not None:
                for thread in os.listdir(f"/proc/{pid}/task"):
                    os.sched_setaffinity(int(thread), {cpu})
        except OSError:
            continue


class _Collect:
    """Stands for the node's TaskHistory: keeps what it is told."""

    def __init__(self, told: list) -> None:
        self.tell = told.append


#: runs per batch in the per-event figures: about a second of a busy worker's, as it sends them
BATCH = 10_000


def _seconds_per_event(batches: int = 20) -> tuple[float, float]:
    """What one event costs outside the call that made it, in a history already full of
    records: its process sending it (pickling its buffer) plus the node receiving it
    (unpickling the message, keeping its runs); and the node reading it when the history is
    next asked (into records, forgetting the oldest)."""
    from actorcore.core.task_events import TaskEvents
    from actorcore.node.task_history import MAX_TASKS, TaskHistory
    from actorcore.task_records import FINISHED

    sending = [0.0]

    def batch(first: int) -> bytes:
        sent: list = []
        events = TaskEvents(None, _Collect(sent), {"node_id": "n" * 32, "worker_id": "w" * 32, "pid": 1},
                            send_at=BATCH + 1)
        submitted = time.time()
        for index in range(first, first + BATCH):
            task_id = f"{index:016x}{os.urandom(4).hex()}"
            events.running(task_id, 0, "f", None, submitted)
            events.ended(task_id, FINISHED)
        start = time.process_time()
        events.flush()
        blob = pickle.dumps(sent[0], protocol=5)  # as the kernel sends it
        sending[0] += time.process_time() - start
        return blob

    history = TaskHistory()
    for index in range(MAX_TASKS // BATCH):
        history._add(pickle.loads(batch(index * BATCH)))
    history._read()
    sending[0] = 0.0
    blobs = [batch(MAX_TASKS + index * BATCH) for index in range(batches)]
    start = time.process_time()
    for blob in blobs:
        history._add(pickle.loads(blob))
    arrived = time.process_time()
    history._read()
    count = batches * BATCH
    return (sending[0] + arrived - start) / count, (time.process_time() - arrived) / count


def _session(seconds: float, pin: bool, sync_slice: int, control: bool, only: list[str]) -> dict:
    import actorcore as ray

    ray.init(num_cpus=2)

    @ray.remote
    def f():
        pass

    @ray.remote
    class A:
        def f(self):
            pass

    actor = A.remote()
    task_handles = {True: f.options(enable_task_events=not control), False: f.options(enable_task_events=False)}
    call_handles = {True: actor.f.options(enable_task_events=not control),
                    False: actor.f.options(enable_task_events=False)}

    def run(workload: str, on: bool, count: int) -> float:
        remote = (task_handles if workload.startswith("tasks") else call_handles)[on].remote
        start = time.perf_counter()
        if workload.endswith("_sync"):
            for _ in range(count):
                ray.get(remote())
        else:
            ray.get([remote() for _ in range(count)])
        return time.perf_counter() - start

    result: dict = {"groups": {}, "totals": {}, "cpu_seconds_per_task": {}}
    try:
        for workload, default_count in WORKLOADS.items():
            if workload not in only:
                continue
            count = sync_slice if workload.endswith("_sync") else default_count
            for on in (False, True, False, True):  # warm up: every worker has run both settings
                run(workload, on, default_count)
            if pin:
                _pin_session()
            groups, totals = [], {True: 0.0, False: 0.0}
            cpu, tasks, end = _session_cpu_seconds(), 0, time.perf_counter() + seconds
            while time.perf_counter() < end:
                spent = {True: 0.0, False: 0.0}
                for on in _ORDER[len(groups) % 2]:
                    spent[on] += run(workload, on, count)
                    tasks += count
                groups.append(spent[False] / spent[True])
                totals[True] += spent[True]
                totals[False] += spent[False]
            result["groups"][workload] = groups
            result["totals"][workload] = totals[False] / totals[True]
            result["cpu_seconds_per_task"][workload] = (_session_cpu_seconds() - cpu) / tasks
            print(f"{workload}: {len(groups)} groups, {tasks / (totals[True] + totals[False]):.0f} calls/s",
                  file=sys.stderr)
    finally:
        ray.shutdown()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.task_events", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="how long each workload runs (default 120: 8 minutes in all)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="leave the processes where the kernel puts them")
    parser.add_argument("--sync-slice", type=int, default=SYNC_SLICE,
                        help="calls per slice of the sync workloads (default 1: alternate call by call)")
    parser.add_argument("--control", action="store_true",
                        help="no call recorded in either setting: the benchmark's own noise (an A/A test)")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help=f"the workloads to run, comma-separated (default: all of {', '.join(WORKLOADS)})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.sync_slice < 1:
        parser.error(f"--sync-slice must be at least 1, not {args.sync_slice}")
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown or not only:
        parser.error(f"--only takes workloads among {', '.join(WORKLOADS)}, not {args.only!r}")
    result = _session(args.seconds, args.pin, args.sync_slice, args.control, only)
    node_per_event, node_read_per_event = _seconds_per_event()
    figures = {}
    for workload, groups in result["groups"].items():
        quartiles = statistics.quantiles(groups, n=4) if len(groups) > 1 else [groups[0]] * 3
        per_task = result["cpu_seconds_per_task"][workload]
        figures[workload] = {"median": statistics.median(groups), "q1": quartiles[0], "q3": quartiles[2],
                             "totals": result["totals"][workload], "groups": len(groups),
                             "session_cpu_us_per_task": per_task * 1e6,
                             "node_share": node_per_event / per_task,
                             "node_share_when_asked": node_read_per_event / per_task}
    if args.json:
        print(json.dumps({"node_cpu_us_per_event": node_per_event * 1e6,
                          "node_cpu_us_per_event_when_asked": node_read_per_event * 1e6, "workloads": figures}))
        return 0
    print(f"throughput with events {'off (control)' if args.control else 'on'} / off, "
          f"{args.seconds:.0f} s of alternating slices per workload")
    print(f"{'workload':<19}{'median':>8}{'q1-q3':>14}{'totals':>8}{'groups':>8}{'CPU us/task':>13}"
          f"{'sends':>8}{'when asked':>12}")
    for workload, figure in figures.items():
        print(f"{workload:<19}{figure['median']:>8.3f}{figure['q1']:>8.3f}-{figure['q3']:.3f}"
              f"{figure['totals']:>8.3f}{figure['groups']:>8}{figure['session_cpu_us_per_task']:>13.0f}"
              f"{figure['node_share']:>8.2%}{figure['node_share_when_asked']:>11.2%}")
    print(f"sends: {node_per_event * 1e6:.2f} us CPU per event to pickle and send it, and for the node to receive "
          f"it; {node_read_per_event * 1e6:.2f} us more once the node's history is asked (list, summary, the tasks "
          f"metric). Both over the session's CPU per task: add 'sends' to the loss the median or totals show, and "
          f"'when asked' too for a cluster whose tasks are listed or scraped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
