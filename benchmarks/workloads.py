"""The workloads of `actorcore microbenchmark`, written once against Ray's API.

`build(ray, timing)` takes the framework module as a parameter (`actorcore` imported as
`ray`, or Ray itself) and returns the workloads; nothing in here imports either framework
at module level. The same file runs as a script under either framework's python:

    python benchmarks/workloads.py --framework actorcore [--quick] [--only a,b] [--init-only]
    /tmp/rayvenv/bin/python benchmarks/workloads.py --framework ray ...

and prints one `MICROBENCH {json}` line per event (hello, start, result, error) on stdout;
benchmarks/microbenchmark.py reads them. The workloads and their names are those of Ray's
`ray microbenchmark` (ray/_private/ray_perf.py), measured the way its `timeit` does (a pause,
a warmup, then a few timed runs; here shorter), all in one shared session as Ray does, plus
init_seconds (a fresh process each), get_100mb_zero_copy, mapreduce_2m_words_seconds,
placement_group_create_remove_per_s (a 1-bundle {"CPU": 1} group created, ready, removed), and
four large-object rates in GB/s (10**9 bytes/s) of a 100 MiB value (10 MiB with --quick), each
made once before it is timed:

- put_100mb_numpy_gbps: `put` of a numpy uint8 array, the ref dropped each time;
- put_100mb_bytes_gbps: the same with a `bytes` value;
- task_100mb_arg_by_ref_gbps: `get(touch.remote(ref))`, the array put once;
- task_100mb_arg_by_value_gbps: `get(touch.remote(array))`, the array passed by value each call;

where the task `touch` returns the array's nbytes plus its first and last elements: it reads
two of its pages, enough to prove the worker mapped the value, and copies nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass

MARKER = "MICROBENCH"

NUM_CPUS = 2
INIT_KWARGS = dict(
    address="local",  # a cluster of its own, even if another runs on this machine (Ray would join it)
    num_cpus=NUM_CPUS,
    include_dashboard=False,
    _node_ip_address="127.0.0.1",
    logging_level=logging.ERROR,
    log_to_driver=False,
)

# name -> (unit, higher_is_better), in the order they run (Ray's order for Ray's workloads).
METRICS = {
    "init_seconds": ("s", False),
    "single_client_get_calls": ("calls/s", True),
    "single_client_put_calls": ("calls/s", True),
    "single_client_put_gigabytes": ("GB/s", True),
    "single_client_wait_1k_refs": ("waits of 1k refs/s", True),
    "single_client_tasks_sync": ("tasks/s", True),
    "single_client_tasks_async": ("tasks/s", True),
    "1_1_actor_calls_sync": ("calls/s", True),
    "1_1_actor_calls_async": ("calls/s", True),
    "n_n_actor_calls_async": ("calls/s", True),
    "get_100mb_zero_copy": ("s", False),
    "mapreduce_2m_words_seconds": ("s", False),
    "actor_pool_map_items": ("items/s", True),
    "queue_put_get_items": ("round trips/s", True),
    "generator_items_per_s": ("items/s", True),
    "placement_group_create_remove_per_s": ("groups/s", True),
    "put_100mb_numpy_gbps": ("GB/s", True),
    "put_100mb_bytes_gbps": ("GB/s", True),
    "task_100mb_arg_by_ref_gbps": ("GB/s", True),
    "task_100mb_arg_by_value_gbps": ("GB/s", True),
}
SESSION_WORKLOADS = [name for name in METRICS if name != "init_seconds"]

MAPREDUCE_WORDS = 2_000_000
MAPREDUCE_PARTITIONS = 8
WORDS_PER_DOCUMENT = 10


@dataclass(frozen=True)
class Timing:
    """Ray's timeit: sleep, 1 s warmup, 4 timed runs of 2 s (here: shorter)."""

    pause: float
    warmup: float
    runs: int
    run_seconds: float
    mapreduce_min_runs: int
    mapreduce_seconds: float
    mapreduce_warmup: bool
    large_object_bytes: int  # the value of the *_100mb_*_gbps workloads


FULL = Timing(pause=0.5, warmup=1.0, runs=4, run_seconds=1.0,
              mapreduce_min_runs=3, mapreduce_seconds=6.0, mapreduce_warmup=True,
              large_object_bytes=100 * 1024 * 1024)
QUICK = Timing(pause=0.0, warmup=0.05, runs=2, run_seconds=0.15,
               mapreduce_min_runs=1, mapreduce_seconds=0.0, mapreduce_warmup=False,
               large_object_bytes=10 * 1024 * 1024)


def emit(event: str, **fields) -> None:
    print(MARKER, json.dumps({"event": event, **fields}), flush=True)


def timeit(fn, multiplier: float, timing: Timing) -> dict:
    """Ray's ray_microbenchmark_helpers.timeit, with the durations of `timing`."""
    time.sleep(timing.pause)
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < timing.warmup:
        fn()
        count += 1
    step = count // 10 + 1
    stats = []
    for _ in range(timing.runs):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < timing.run_seconds:
            for _ in range(step):
                fn()
            count += step
        stats.append(multiplier * count / (time.perf_counter() - start))
    return {"value": statistics.fmean(stats), "sd": statistics.pstdev(stats), "samples": stats}


def make_corpus(num_words: int = MAPREDUCE_WORDS, num_partitions: int = MAPREDUCE_PARTITIONS):
    """Deterministic corpus: partitions of bytes documents (lines of 10 words), Zipf-like."""
    import numpy as np

    rng = np.random.default_rng(20240601)
    vocab_size = 20_000
    lengths = rng.integers(2, 10, size=vocab_size)
    letters = rng.integers(ord("a"), ord("z") + 1, size=int(lengths.sum()), dtype=np.uint8).tobytes()
    vocab, offset = [], 0
    for length in lengths.tolist():
        vocab.append(letters[offset:offset + length])
        offset += length
    ranks = (vocab_size * rng.random(num_words) ** 3).astype(np.int64)  # skewed: a few very common words
    words = [vocab[i] for i in ranks.tolist()]
    documents = [b" ".join(words[i:i + WORDS_PER_DOCUMENT]) for i in range(0, num_words, WORDS_PER_DOCUMENT)]
    chunk = len(documents) // num_partitions
    return [documents[i * chunk:(i + 1) * chunk] for i in range(num_partitions)]


def build(ray, timing: Timing) -> dict:
    """The workloads against `ray` (a module with Ray Core's API); name -> callable."""
    import numpy as np

    # ---- remote definitions, as in ray_perf.py ----
    @ray.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def small_value_arg(self, x):
            return b"ok"

    @ray.remote
    def small_value():
        return b"ok"

    @ray.remote
    def touch(array):
        return array.nbytes + int(array[0]) + int(array[-1])

    @ray.remote
    def small_values(count):
        for _ in range(count):
            yield b"ok"

    n_cpu = max(1, multiprocessing.cpu_count() // 2)
    nn_calls = 5000
    nn_tasks = 4

    @ray.remote
    def work(actors):
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(nn_calls)])

    # ---- the lecture's map/reduce ----
    def map_function(document):
        for word in document.lower().split():
            yield word, 1

    @ray.remote
    def apply_map(corpus, num_partitions=3):
        map_results = [[] for _ in range(num_partitions)]
        for document in corpus:
            for result in map_function(document):
                first_letter = result[0].decode("utf-8")[0]
                word_index = ord(first_letter) % num_partitions
                map_results[word_index].append(result)
        return map_results

    @ray.remote
    def apply_reduce(*results):
        reduce_results = {}
        for res in results:
            for key, value in res:
                if key not in reduce_results:
                    reduce_results[key] = 0
                reduce_results[key] += value
        return reduce_results

    workloads = {}

    def workload(fn):
        workloads[fn.__name__] = fn
        return fn

    @workload
    def single_client_get_calls():
        value = ray.put(0)
        return timeit(lambda: ray.get(value), 1, timing)

    @workload
    def single_client_put_calls():
        return timeit(lambda: ray.put(0), 1, timing)

    @workload
    def single_client_put_gigabytes():
        arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)
        return timeit(lambda: ray.put(arr), 8 * 0.1, timing)

    @workload
    def single_client_wait_1k_refs():
        def wait_multiple_refs():
            num_objs = 1000
            not_ready = [small_value.remote() for _ in range(num_objs)]
            fetch_local = True
            for _ in range(num_objs):
                _ready, not_ready = ray.wait(not_ready, fetch_local=fetch_local)
                if fetch_local:
                    fetch_local = False

        return timeit(wait_multiple_refs, 1, timing)

    @workload
    def single_client_tasks_sync():
        return timeit(lambda: ray.get(small_value.remote()), 1, timing)

    @workload
    def single_client_tasks_async():
        return timeit(lambda: ray.get([small_value.remote() for _ in range(1000)]), 1000, timing)

    @workload
    def _1_1_actor_calls_sync():
        a = Actor.remote()
        return timeit(lambda: ray.get(a.small_value.remote()), 1, timing)

    @workload
    def _1_1_actor_calls_async():
        a = Actor.remote()
        return timeit(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000, timing)

    @workload
    def n_n_actor_calls_async():
        a = [Actor.remote() for _ in range(n_cpu)]
        return timeit(lambda: ray.get([work.remote(a) for _ in range(nn_tasks)]), nn_tasks * nn_calls, timing)

    @workload
    def get_100mb_zero_copy():
        arr = np.ones(100 * 1024 * 1024, dtype=np.uint8)
        ref = ray.put(arr)
        first_started = time.perf_counter()
        result = ray.get(ref)
        first_get = time.perf_counter() - first_started
        if not isinstance(result, np.ndarray):
            raise TypeError(f"get() of a numpy array returned a {type(result).__qualname__}")
        correct = result.shape == arr.shape and result.dtype == arr.dtype and bool(
            result[::4096].all() and int(result.sum()) == arr.size)
        writeable, owndata = bool(result.flags.writeable), bool(result.flags.owndata)
        del result
        rate = timeit(lambda: ray.get(ref), 1, timing)
        return {"value": 1.0 / rate["value"], "sd": None, "samples": [1.0 / s for s in rate["samples"]],
                "gets_per_s": rate["value"], "first_get_s": first_get,
                "zero_copy": (not writeable) and (not owndata),
                "writeable": writeable, "owndata": owndata, "correct": correct}

    @workload
    def mapreduce_2m_words_seconds():
        t0 = time.perf_counter()
        partitions = make_corpus()
        corpus_s = time.perf_counter() - t0
        num_partitions = MAPREDUCE_PARTITIONS

        def run_once():
            map_results = [
                apply_map.options(num_returns=num_partitions).remote(data, num_partitions)
                for data in partitions
            ]
            outputs = [apply_reduce.remote(*[partition[i] for partition in map_results])
                       for i in range(num_partitions)]
            return {k: v for output in ray.get(outputs) for k, v in output.items()}

        if timing.mapreduce_warmup:
            run_once()
        times, counts = [], None
        started = time.perf_counter()
        while len(times) < timing.mapreduce_min_runs or time.perf_counter() - started < timing.mapreduce_seconds:
            t0 = time.perf_counter()
            counts = run_once()
            times.append(time.perf_counter() - t0)
            if len(times) >= 10:
                break
        total = sum(counts.values())
        if total != MAPREDUCE_WORDS:
            raise AssertionError(f"word count summed to {total}, expected {MAPREDUCE_WORDS}")
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:3]
        return {"value": statistics.fmean(times), "sd": statistics.pstdev(times), "samples": times,
                "distinct_words": len(counts), "total_words": total,
                "top_words": [[k.decode(), v] for k, v in top], "corpus_build_s": corpus_s}

    @workload
    def actor_pool_map_items():
        pool = _library(ray, "").ActorPool([Actor.remote(), Actor.remote()])
        items = range(1000)
        return timeit(lambda: list(pool.map(lambda actor, item: actor.small_value_arg.remote(item), items)),
                      len(items), timing)

    @workload
    def queue_put_get_items():
        queue = _library(ray, "queue").Queue()

        def round_trip():
            queue.put(0)
            queue.get()

        try:
            return timeit(round_trip, 1, timing)
        finally:
            queue.shutdown()

    @workload
    def generator_items_per_s():
        def consume_stream():
            for ref in small_values.remote(1000):
                ray.get(ref)

        return timeit(consume_stream, 1000, timing)

    @workload
    def placement_group_create_remove_per_s():
        module = _library(ray, "placement_group")

        def create_ready_remove():
            group = module.placement_group([{"CPU": 1}])
            ray.get(group.ready())
            module.remove_placement_group(group)

        return timeit(create_ready_remove, 1, timing)

    # ---- large values: GB/s of a value made once ----
    large_bytes = timing.large_object_bytes
    gigabytes = large_bytes / 1e9

    def large_array():
        return np.ones(large_bytes, dtype=np.uint8)  # every page written: no lazily mapped zeros

    def large_rate(fn) -> dict:
        return {**timeit(fn, gigabytes, timing), "object_bytes": large_bytes}

    def check_touch(ref) -> None:
        got = ray.get(ref)
        if got != large_bytes + 2:
            raise AssertionError(f"the task saw nbytes + first + last = {got}, expected {large_bytes + 2}")

    @workload
    def put_100mb_numpy_gbps():
        arr = large_array()
        return large_rate(lambda: ray.put(arr))

    @workload
    def put_100mb_bytes_gbps():
        data = large_array().tobytes()
        return large_rate(lambda: ray.put(data))

    @workload
    def task_100mb_arg_by_ref_gbps():
        ref = ray.put(large_array())
        check_touch(touch.remote(ref))
        return large_rate(lambda: ray.get(touch.remote(ref)))

    @workload
    def task_100mb_arg_by_value_gbps():
        arr = large_array()
        check_touch(touch.remote(arr))
        return large_rate(lambda: ray.get(touch.remote(arr)))

    return {name.lstrip("_"): fn for name, fn in workloads.items()}


def _library(ray, module: str):
    """``ray.util`` (``module=""``) or one of its submodules, of the framework module ``ray``."""
    import importlib

    return importlib.import_module(f"{ray.__name__}.util{'.' + module if module else ''}")


def import_framework(framework: str):
    if framework == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray
    else:
        import actorcore as ray
    return ray


def measure_init(framework: str) -> None:
    """init_seconds: cold init() + the first task's round trip, in this (fresh) process."""
    t0 = time.perf_counter()
    ray = import_framework(framework)
    import_s = time.perf_counter() - t0

    @ray.remote
    def first():
        return 1

    t0 = time.perf_counter()
    ray.init(**INIT_KWARGS)
    init_only = time.perf_counter() - t0
    assert ray.get(first.remote()) == 1
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.shutdown()
    emit("result", metric="init_seconds", value=total, init_call_s=init_only,
         first_task_s=total - init_only, import_s=import_s, shutdown_s=time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["actorcore", "ray"], required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(SESSION_WORKLOADS),
                        help="comma-separated workloads to run in one session, in this order")
    parser.add_argument("--init-only", action="store_true", help="measure init_seconds and exit")
    args = parser.parse_args(argv)

    if args.init_only:
        emit("start", metric="init_seconds")
        try:
            measure_init(args.framework)
        except Exception as error:  # noqa: BLE001 - any failure is reported as the metric's error
            emit("error", metric="init_seconds", error=f"{type(error).__name__}: {error}",
                 traceback=traceback.format_exc())
        return 0

    names = [name for name in args.only.split(",") if name]
    unknown = [name for name in names if name not in SESSION_WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    ray = import_framework(args.framework)
    emit("hello", framework=args.framework, version=getattr(ray, "__version__", "?"),
         python=sys.executable, pid=os.getpid())
    ray.init(**INIT_KWARGS)
    try:
        workloads = build(ray, QUICK if args.quick else FULL)
        for name in names:
            emit("start", metric=name)
            t0 = time.perf_counter()
            try:
                result = workloads[name]()
            except Exception as error:  # noqa: BLE001 - any failure is reported as the metric's error
                emit("error", metric=name, error=f"{type(error).__name__}: {error}",
                     traceback=traceback.format_exc(), elapsed_s=time.perf_counter() - t0)
            else:
                emit("result", metric=name, elapsed_s=time.perf_counter() - t0, **result)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
