"""What task events cost: `python -m benchmarks.task_events [--rounds N] [--tasks N] [--json]`.

Task events (docs/architecture.md, "Task events and the state API") are on by default;
``ACTORCORE_TASK_EVENTS=0`` turns them off. This benchmark runs the same driver with events on
and off, alternately, `--rounds` times each (alternating spreads the noise of a shared machine
over both), and reports for each mode the median of:

- tasks_sync_per_s: `get(f.remote())` one at a time, as the microbenchmark's
  single_client_tasks_sync;
- tasks_async_per_s: batches of 1000 `f.remote()` then one `get`, as single_client_tasks_async;
- actor_calls_sync_per_s: `get(a.f.remote())` one at a time;
- cpu_us_per_task: the CPU time (user + system) of the driver, its node and the workers, for the
  whole run divided by the tasks and calls it ran: what the events cost even where the
  throughput hides it (a core left idle pays for them).

and the ratio events on / off of each (throughput: > 0.95 means under 5% lost).

Each run is this file with `--driver` in a fresh process with its own ACTORCORE_HOME, so the
node and its workers inherit the setting and are children of the driver: their CPU time is in
the driver's `RUSAGE_CHILDREN` once `shutdown()` has waited for the node.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["main"]

MODES = {"on": "1", "off": "0"}


def _drive(tasks: int) -> dict[str, float]:
    import actorcore as ray

    ray.init(num_cpus=2)

    @ray.remote
    def f():
        return None

    @ray.remote
    class A:
        def f(self):
            return None

    actor = A.remote()
    ray.get([f.remote() for _ in range(200)])
    ray.get(actor.f.remote())
    result: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(tasks):
        ray.get(f.remote())
    result["tasks_sync_per_s"] = tasks / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(tasks * 5 // 1000):
        ray.get([f.remote() for _ in range(1000)])
    result["tasks_async_per_s"] = (tasks * 5 // 1000 * 1000) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(tasks):
        ray.get(actor.f.remote())
    result["actor_calls_sync_per_s"] = tasks / (time.perf_counter() - start)
    ray.shutdown()
    ran = 200 + 1 + tasks + tasks * 5 // 1000 * 1000 + tasks
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    result["cpu_us_per_task"] = cpu / ran * 1e6
    return result


def _run(mode: str, tasks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="actorcore-events-") as home:
        env = {**os.environ, "ACTORCORE_HOME": home, "ACTORCORE_TASK_EVENTS": MODES[mode]}
        done = subprocess.run([sys.executable, "-m", "benchmarks.task_events", "--driver", "--tasks", str(tasks)],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the driver with events {mode} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.task_events", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode (default 3)")
    parser.add_argument("--tasks", type=int, default=2000, help="sync tasks and calls per run (async: 5x)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        print(json.dumps(_drive(args.tasks)))
        return 0
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for round_ in range(args.rounds):
        for mode in (MODES if round_ % 2 == 0 else reversed(MODES)):
            runs[mode].append(_run(mode, args.tasks))
            print(f"round {round_ + 1} events {mode}: {runs[mode][-1]}", file=sys.stderr)
    medians = {mode: {key: statistics.median(run[key] for run in results) for key in results[0]}
               for mode, results in runs.items()}
    ratios = {key: medians["on"][key] / medians["off"][key] for key in medians["on"]}
    if args.json:
        print(json.dumps({"medians": medians, "on_over_off": ratios, "runs": runs}))
        return 0
    print(f"{'metric':<24}{'events on':>12}{'events off':>12}{'on/off':>8}")
    for key, ratio in ratios.items():
        print(f"{key:<24}{medians['on'][key]:>12.1f}{medians['off'][key]:>12.1f}{ratio:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
