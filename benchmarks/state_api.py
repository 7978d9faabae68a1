"""The state API's task listing over a full task history: `python -m benchmarks.state_api
[--tasks N] [--json]`.

What it measures: a driver starts a local node (`init(num_cpus=1)`), fills the node's
TaskHistory with N finished task attempts (default 100,000, the history's bound; one in a
hundred failed), told as the event batches processes send (each attempt: submitted with its
name, then finished or failed on a worker with its start time), and times, each
alone, the calls a user makes on such a cluster:

- list_default_seconds: `list_tasks()` (the newest 100);
- list_filtered_seconds: `list_tasks(filters=[("state", "=", "FAILED")])`;
- list_all_seconds: `list_tasks(limit=N)` (every record, as `actorcore list tasks --limit N`);
- summarize_seconds: `summarize_tasks()`.

Each call asks the node for its records over the kernel, merges them per attempt, filters and
sorts them and makes the TaskState records. The goal (issue 15): under 1 s for a list over
100k finished tasks. Progress goes to stderr; a table (or, with --json, one JSON object) to
stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main"]

BATCH = 5_000


def _fill(core, count: int) -> None:
    """Tell the node's TaskHistory `count` finished attempts (1% failed), in batches."""
    from actorcore.protocol import ListTaskRecords, TaskEventBatch
    from actorcore.task_records import FAILED, FINISHED, PENDING_NODE_ASSIGNMENT

    history = core.system.ref_from_uri(core.node.task_history)
    source = {"node_id": core.node_id, "job_id": core.job_id, "worker_id": "benchworker", "worker_pid": 4242}
    now = time.time()
    for start in range(0, count, BATCH):
        events = []
        for i in range(start, min(start + BATCH, count)):
            task_id = f"bench{i:08x}"
            when = now + i * 1e-6
            events.append((when, task_id, 0, PENDING_NODE_ASSIGNMENT, (f"work_{i % 7}", "NORMAL_TASK", None), None))
            if i % 100 == 99:
                events.append((when, task_id, 0, FAILED,
                               {"error_type": "TASK_EXECUTION_EXCEPTION", "error_message": "ValueError: no"}, when))
            else:
                events.append((when, task_id, 0, FINISHED, None, when))
        history.tell(TaskEventBatch(events, 0, source))
    _records, total, _dropped = core.system.ask_sync(history, ListTaskRecords((), 1), timeout=120)
    if total < count:
        raise SystemExit(f"the history holds {total} records, not {count}")


def _timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.state_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="finished task attempts in the history")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import actorcore as ray
    from actorcore import runtime
    from actorcore.util.state import list_tasks, summarize_tasks

    ray.init(num_cpus=1, include_dashboard=False)
    try:
        core = runtime.require()
        print(f"filling the task history with {args.tasks} attempts...", file=sys.stderr)
        _fill(core, args.tasks)
        list_tasks()  # warm up (imports, connections)
        default, listed = _timed(list_tasks)
        assert len(listed) == min(100, args.tasks)
        filtered, failed = _timed(lambda: list_tasks(filters=[("state", "=", "FAILED")], limit=args.tasks))
        assert len(failed) == args.tasks // 100
        everything, listed = _timed(lambda: list_tasks(limit=args.tasks))
        assert len(listed) == args.tasks
        summarized, summary = _timed(summarize_tasks)
        assert summary["cluster"]["total_tasks"] == args.tasks
    finally:
        ray.shutdown()
    result = {"tasks": args.tasks, "list_default_seconds": round(default, 3),
              "list_filtered_seconds": round(filtered, 3), "list_all_seconds": round(everything, 3),
              "summarize_seconds": round(summarized, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
