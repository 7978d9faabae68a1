"""What task events cost: `python -m benchmarks.task_events [--rounds N] [--tasks N] [--json]`.

Task events (docs/architecture.md, "Task events and the state API") are on by default;
``ACTORCORE_TASK_EVENTS=0`` turns them off for the processes that inherit it. Comparing two
sessions, one with and one without, mostly measures the noise between two sets of processes
on a shared machine (which core each lands on, what else runs): ±10% here. So this benchmark
runs one session and turns the events off and on inside the very same processes, round after
round: in the driver (its task manager's buffer) and in the workers (each call carries the
setting, and its worker applies it as the call starts). Each round runs, in both settings:

- tasks_sync_per_s: `get(f.remote())` one at a time (the microbenchmark's single_client_tasks_sync);
- tasks_async_per_s: batches of 1000 `f.remote()` then one `get` (single_client_tasks_async);
- actor_calls_sync_per_s: `get(a.f.remote())` one at a time (1_1_actor_calls_sync);
- actor_calls_async_per_s: batches of 1000 `a.f.remote()` then one `get` (1_1_actor_calls_async).

It reports the median of each over the rounds, for each setting, and their ratio on / off
(> 0.95: under 5% lost). What the events cost outside these processes (the node's
TaskHistory applying the batches a process sends every second) is in the figures too: it runs
on the same 2 cores, during the phase whose events it applies, but for the last second's; so
each phase lasts seconds, and a pause of `SETTLE` s (not timed) between two phases keeps the
last batch of one from being applied during the next.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

__all__ = ["main"]

SETTLE = 1.5  # seconds between two timed phases: the processes' last batches are applied meanwhile


def _apply(on: bool, saved: dict) -> None:
    """Events on or off in this process (a driver or a worker), restoring its own buffer."""
    from actorcore import runtime

    core = runtime.current()
    if "events" not in saved:
        saved["events"] = core.task_events
    events = saved["events"] if on else None
    core.task_events = events
    core.task_manager.events = events


def _session(rounds: int, tasks: int) -> dict[str, dict[str, list[float]]]:
    import actorcore as ray

    ray.init(num_cpus=2)
    worker_saved: dict = {}

    @ray.remote
    def f(on):
        _apply(on, worker_saved)

    @ray.remote
    class A:
        def __init__(self):
            self.saved = {}

        def f(self, on):
            _apply(on, self.saved)

    actor = A.remote()
    driver_saved: dict = {}
    runs: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}}
    batches = max(tasks * 5 // 1000, 1)
    try:
        for setting in (True, False, True):  # warm up both, every worker told
            _apply(setting, driver_saved)
            ray.get([f.remote(setting) for _ in range(500)] + [actor.f.remote(setting) for _ in range(50)])
        for round_ in range(rounds):
            for on in ((True, False) if round_ % 2 == 0 else (False, True)):
                _apply(on, driver_saved)
                ray.get([f.remote(on) for _ in range(200)] + [actor.f.remote(on)])  # every worker switched
                figures = runs["on" if on else "off"]
                time.sleep(SETTLE)
                start = time.perf_counter()
                for _ in range(tasks):
                    ray.get(f.remote(on))
                figures.setdefault("tasks_sync_per_s", []).append(tasks / (time.perf_counter() - start))
                time.sleep(SETTLE)
                start = time.perf_counter()
                for _ in range(batches):
                    ray.get([f.remote(on) for _ in range(1000)])
                figures.setdefault("tasks_async_per_s", []).append(batches * 1000 / (time.perf_counter() - start))
                time.sleep(SETTLE)
                start = time.perf_counter()
                for _ in range(tasks):
                    ray.get(actor.f.remote(on))
                figures.setdefault("actor_calls_sync_per_s", []).append(tasks / (time.perf_counter() - start))
                time.sleep(SETTLE)
                start = time.perf_counter()
                for _ in range(batches):
                    ray.get([actor.f.remote(on) for _ in range(1000)])
                figures.setdefault("actor_calls_async_per_s", []).append(
                    batches * 1000 / (time.perf_counter() - start))
                print(f"round {round_ + 1} events {'on' if on else 'off'}: "
                      f"{ {k: round(v[-1]) for k, v in figures.items()} }", file=sys.stderr)
    finally:
        ray.shutdown()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.task_events", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each setting (default 4)")
    parser.add_argument("--tasks", type=int, default=6000, help="sync tasks and calls per phase (async: 5x)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    runs = _session(args.rounds, args.tasks)
    medians = {setting: {key: statistics.median(values) for key, values in figures.items()}
               for setting, figures in runs.items()}
    ratios = {key: medians["on"][key] / medians["off"][key] for key in medians["on"]}
    if args.json:
        print(json.dumps({"medians": medians, "on_over_off": ratios, "runs": runs}))
        return 0
    print(f"{'metric':<26}{'events on':>12}{'events off':>12}{'on/off':>8}")
    for key, ratio in ratios.items():
        print(f"{key:<26}{medians['on'][key]:>12.1f}{medians['off'][key]:>12.1f}{ratio:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
