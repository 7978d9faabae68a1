"""Cluster benchmarks, actorcore vs Ray:
`python -m benchmarks.cluster [--json] [--quick] [--no-ray] [--ray-python PATH]`.

Also `actorcore microbenchmark --cluster ...` (benchmarks/microbenchmark.py hands over here).

What it measures, on clusters of several nodes on this one machine (each node: 2 CPUs and a
custom resource of its own, "A", "B", "C"; the driver is attached to node A, the head):

- cross_node_100mb_gbps: a fresh 100 MB numpy array made by a task pinned to node A is the
  argument of a task pinned to node C; once the producer's ref is ready, the driver times the
  consumer from submission to result (the transfer A -> C, plus one task round trip). GB/s,
  median of several repetitions, each with a new object (never a cached copy).
- cross_node_task_rtt_ms: sequential `get(ping.remote())` of a trivial task pinned to node B;
  median round trip in ms.
- tasks_per_s_3_nodes, tasks_per_s_1_node: `get([nap.remote() for _ in range(N)])` with tasks
  that sleep 5 ms (not CPU work: this machine has 2 cores, so only sleeping tasks can show
  whether the scheduler uses every node's slots) on 3 nodes x 2 CPUs, then on 1 node x 2 CPUs.
  scaling_3_vs_1 is their quotient (ideal: 3).

How: for each framework, each cluster shape (3 nodes, then 1 node) gets a new cluster and one
driver process, run with a timeout, one after the other (never two at once: the machine has 2
cores). actorcore's cluster is started with its CLI (`actorcore start --head` / `--address`)
in a temporary ACTORCORE_HOME and always stopped (`actorcore stop`) and removed afterwards;
its driver is this python running this file with `--driver`. Ray's driver is Ray's python
(default /tmp/rayvenv/bin/python) running this file with `--driver`: it builds the cluster
itself with `ray.cluster_utils.Cluster`, in its own process group, which is killed if it hangs.
The workloads are written once against Ray's API (`build(ray, sizes)`), the framework passed
in as `ray`.

Ratios, as in benchmarks/microbenchmark.py: actorcore/Ray for rates, Ray/actorcore for times,
so > 1 always means actorcore did better. Progress goes to stderr; the table (or, with --json,
one JSON object {"actorcore": ..., "ray": ..., "ratios": ...}) to stdout. --quick: 10 MB
objects, fewer tasks and repetitions, for smoke tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

try:
    from . import report as _report
except ImportError:  # run as a script (the drivers): python benchmarks/cluster.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import report as _report  # type: ignore[no-redef]

MARKER = "CLUSTERBENCH"
SCRIPT = Path(__file__).resolve()

NUM_CPUS = 2  # per node
NODE_RESOURCES = ("A", "B", "C")  # one custom resource per node, in the order the nodes start
PIN = 0.001  # the amount of a node's resource a task asks for to be pinned there
NAP_SECONDS = 0.005

# name -> (unit, higher_is_better), in the order they are reported.
METRICS = {
    "cross_node_100mb_gbps": ("GB/s", True),
    "cross_node_task_rtt_ms": ("ms", False),
    "tasks_per_s_3_nodes": ("tasks/s", True),
    "tasks_per_s_1_node": ("tasks/s", True),
    "scaling_3_vs_1": ("x", True),
}
# cluster shape (number of nodes) -> the workloads its driver runs, in this order.
SHAPES = {
    3: ["cross_node_task_rtt_ms", "cross_node_100mb_gbps", "tasks_per_s_3_nodes"],
    1: ["tasks_per_s_1_node"],
}


@dataclass(frozen=True)
class Sizes:
    object_bytes: int
    transfer_reps: int
    rtt_calls: int
    tasks: int
    task_reps: int


FULL = Sizes(object_bytes=100 * 1024 * 1024, transfer_reps=7, rtt_calls=300, tasks=1200, task_reps=3)
QUICK = Sizes(object_bytes=10 * 1024 * 1024, transfer_reps=3, rtt_calls=40, tasks=120, task_reps=1)


# ---------------------------------------------------------------------------------------------
# The driver side: runs under either framework's python (nothing here imports a framework at
# module level).


def emit(event: str, **fields) -> None:
    print(MARKER, json.dumps({"event": event, **fields}), flush=True)


def say(message: str) -> None:
    print(f"[cluster driver] {message}", file=sys.stderr, flush=True)


def build(ray, sizes: Sizes) -> dict:
    """The workloads against `ray` (a module with Ray Core's API); name -> callable -> record."""
    import numpy as np

    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    @ray.remote(resources={"A": PIN})
    def produce(nbytes, seed):
        return np.full(nbytes, seed % 251, dtype=np.uint8)

    @ray.remote(resources={"C": PIN})
    def consume(arr):
        return int(arr.nbytes), int(arr[:: max(1, arr.size // 64)].sum())

    @ray.remote(resources={"B": PIN})
    def ping():
        return 0

    @ray.remote
    def nap():
        time.sleep(NAP_SECONDS)
        return ray.get_runtime_context().get_node_id()

    def check_placement():
        """Tasks pinned to A, B, C run on three distinct nodes (else nothing is cross-node)."""
        ids = ray.get([where.options(resources={name: PIN}).remote() for name in NODE_RESOURCES])
        if len(set(ids)) != len(NODE_RESOURCES):
            raise AssertionError(f"tasks pinned to nodes {NODE_RESOURCES} ran on nodes {ids}")
        return ids

    def cross_node_task_rtt_ms():
        check_placement()
        ray.get([ping.remote() for _ in range(5)])
        for _ in range(20):  # warm up the path driver -> B
            ray.get(ping.remote())
        samples = []
        for _ in range(sizes.rtt_calls):
            t0 = time.perf_counter()
            ray.get(ping.remote())
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        return {"value": statistics.median(samples), "samples_n": len(samples),
                "p10_ms": samples[len(samples) // 10], "p90_ms": samples[len(samples) * 9 // 10],
                "mean_ms": statistics.fmean(samples)}

    def one_transfer(nbytes, seed):
        ref = produce.remote(nbytes, seed)
        ray.wait([ref], fetch_local=False)  # the producer is done; nothing is fetched to the driver
        t0 = time.perf_counter()
        size, checksum = ray.get(consume.remote(ref))
        elapsed = time.perf_counter() - t0
        expected = (seed % 251) * len(range(0, nbytes, max(1, nbytes // 64)))
        if size != nbytes or checksum != expected:
            raise AssertionError(f"consumer saw {size} bytes (checksum {checksum}), expected {nbytes} ({expected})")
        del ref
        return elapsed

    def cross_node_100mb_gbps():
        check_placement()
        small = [one_transfer(1024, seed) for seed in range(3)]  # workers up on A and C; the fixed cost
        one_transfer(sizes.object_bytes, 250)  # warmup at full size (not counted)
        times = [one_transfer(sizes.object_bytes, seed) for seed in range(sizes.transfer_reps)]
        rates = [sizes.object_bytes / t / 1e9 for t in times]
        return {"value": statistics.median(rates), "samples": rates, "object_bytes": sizes.object_bytes,
                "median_s": statistics.median(times), "small_object_roundtrip_ms": statistics.median(small) * 1000}

    def tasks_per_s(nodes):
        def run():
            ray.get([nap.options(resources={name: PIN}).remote() for name in NODE_RESOURCES[:nodes]])
            ray.get([nap.remote() for _ in range(max(12, sizes.tasks // 4))])  # warmup: workers on every node
            rates, where_ran = [], []
            for _ in range(sizes.task_reps):
                t0 = time.perf_counter()
                where_ran = ray.get([nap.remote() for _ in range(sizes.tasks)])
                rates.append(sizes.tasks / (time.perf_counter() - t0))
            spread = sorted((where_ran.count(node) for node in set(where_ran)), reverse=True)
            ideal = nodes * NUM_CPUS / NAP_SECONDS
            value = statistics.median(rates)
            return {"value": value, "samples": rates, "tasks": sizes.tasks, "nodes": nodes,
                    "ideal_tasks_per_s": ideal, "efficiency": value / ideal,
                    "tasks_per_node": spread}
        return run

    return {
        "cross_node_task_rtt_ms": cross_node_task_rtt_ms,
        "cross_node_100mb_gbps": cross_node_100mb_gbps,
        "tasks_per_s_3_nodes": tasks_per_s(3),
        "tasks_per_s_1_node": tasks_per_s(1),
    }


def import_framework(framework: str):
    if framework == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray
    else:
        import actorcore as ray
    return ray


def wait_for_resources(ray, names, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = ray.cluster_resources()
        if all(have.get(name, 0) >= 1 for name in names):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster has resources {have}, still no {list(names)} after {timeout:.0f} s")
        time.sleep(0.2)


def driver_main(argv: list[str]) -> int:
    """One cluster shape under one framework: `--driver --framework F --nodes N [--address A] [--quick]`."""
    parser = argparse.ArgumentParser(prog="benchmarks/cluster.py --driver")
    parser.add_argument("--framework", choices=["actorcore", "ray"], required=True)
    parser.add_argument("--nodes", type=int, choices=sorted(SHAPES), required=True)
    parser.add_argument("--address", help="actorcore: the cluster's etcd (Ray's driver makes its own cluster)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.framework == "actorcore" and not args.address:
        parser.error("--framework actorcore needs --address (the cluster started with `actorcore start`)")

    import logging

    ray = import_framework(args.framework)
    emit("hello", framework=args.framework, version=getattr(ray, "__version__", "?"),
         python=sys.executable, pid=os.getpid())
    names = NODE_RESOURCES[:args.nodes]
    cluster = None
    try:
        address = args.address
        if args.framework == "ray":
            from ray.cluster_utils import Cluster

            t0 = time.perf_counter()
            cluster = Cluster()
            for index, name in enumerate(names):
                cluster.add_node(num_cpus=NUM_CPUS, resources={name: 1}, object_store_memory=1024 ** 3,
                                 **({"include_dashboard": False} if index == 0 else {}))
            address = cluster.address
            say(f"ray cluster of {args.nodes} node(s) up in {time.perf_counter() - t0:.1f} s")
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        try:
            wait_for_resources(ray, names)
            workloads = build(ray, QUICK if args.quick else FULL)
            for metric in SHAPES[args.nodes]:
                emit("start", metric=metric)
                t0 = time.perf_counter()
                try:
                    result = workloads[metric]()
                except Exception as error:  # noqa: BLE001 - any failure is reported as the metric's error
                    emit("error", metric=metric, error=f"{type(error).__name__}: {error}",
                         traceback=traceback.format_exc(), elapsed_s=time.perf_counter() - t0)
                else:
                    emit("result", metric=metric, elapsed_s=time.perf_counter() - t0, **result)
        finally:
            ray.shutdown()
    finally:
        if cluster is not None:
            cluster.shutdown()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent side: clusters, driver processes, the report.


def progress(message: str) -> None:
    print(f"[cluster benchmark] {message}", file=sys.stderr, flush=True)


class ActorcoreCluster(_report.CliCluster):
    """A cluster started with actorcore's CLI in a temporary ACTORCORE_HOME; `stop()` always cleans up."""

    def __init__(self, python: str, nodes: int) -> None:
        super().__init__(python, prefix="actorcore-clusterbench-")
        self.nodes = nodes
        self.node_ids: list[str] = []

    def start(self) -> None:
        for index, name in enumerate(NODE_RESOURCES[:self.nodes]):
            where = ["--head", "--port", self.address.rsplit(":", 1)[1]] if index == 0 else ["--address", self.address]
            self.cli("start", *where, "--num-cpus", str(NUM_CPUS), "--resources", json.dumps({name: 1}))
        folder = self.home / "nodes"
        self.node_ids = sorted(json.loads(p.read_text())["node_id"] for p in folder.glob("*.json"))

    def stop(self) -> None:
        try:
            self.cli("stop")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


def _collect(out: dict, events: list[dict], failure: str | None, expected: list[str]) -> None:
    metrics = out["metrics"]
    current = None
    for event in events:
        kind = event.get("event")
        if kind == "hello":
            out["version"] = event.get("version")
        elif kind == "start":
            current = event["metric"]
        elif kind in ("result", "error"):
            name = event["metric"]
            record = _report.record(METRICS, event)
            if kind == "error":
                progress(f"{out['framework']}: {name} FAILED: {event['error']}")
                for line in event.get("traceback", "").rstrip().splitlines():
                    progress(f"    {line}")
            else:
                progress(f"{out['framework']}: {name} = {_report.fmt(record['value'])} {record['unit']}")
            metrics[name] = record
            current = None
    for name in expected:
        if name not in metrics:
            why = failure or "the driver ended without reporting it"
            when = f" (during {name})" if name == current else " (before it started)"
            metrics[name] = _report.failed(METRICS, name, why + when)
            progress(f"{out['framework']}: {name} FAILED: {metrics[name]['error']}")


def run_framework(framework: str, python: str, quick: bool, timeout: float) -> dict:
    """All metrics of one framework: {framework, version, python, metrics: {name: record}, clusters}."""
    out = {"framework": framework, "python": python, "version": None, "metrics": {}, "clusters": []}
    for nodes, expected in SHAPES.items():
        args = ["--framework", framework, "--nodes", str(nodes), *(["--quick"] if quick else [])]
        started = time.monotonic()
        if framework == "ray":
            progress(f"ray: {nodes}-node cluster (ray.cluster_utils.Cluster) and its driver ...")
            env = {"RAY_USAGE_STATS_ENABLED": "0", **os.environ}
            events, failure = _report.run_driver(python, SCRIPT, MARKER, args, env, timeout, framework, progress)
            out["clusters"].append({"nodes": nodes, "seconds": time.monotonic() - started})
        else:
            progress(f"actorcore: starting a {nodes}-node cluster with `actorcore start` ...")
            cluster = ActorcoreCluster(python, nodes)
            record = {"nodes": nodes, "home": str(cluster.home), "address": cluster.address}
            out["clusters"].append(record)
            try:
                try:
                    cluster.start()
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    events, failure = [], f"cluster start failed: {error}"
                else:
                    record["node_ids"] = cluster.node_ids
                    progress(f"actorcore: cluster up in {time.monotonic() - started:.1f} s; running the driver ...")
                    events, failure = _report.run_driver(python, SCRIPT, MARKER, [*args, "--address", cluster.address],
                                                         cluster.env, timeout, framework, progress)
            finally:
                try:
                    cluster.stop()
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    progress(f"actorcore: {error}")
                    record["stop_error"] = str(error)
            record["seconds"] = time.monotonic() - started
        _collect(out, events, failure, expected)
    three = out["metrics"].get("tasks_per_s_3_nodes", {}).get("value")
    one = out["metrics"].get("tasks_per_s_1_node", {}).get("value")
    unit, higher = METRICS["scaling_3_vs_1"]
    out["metrics"]["scaling_3_vs_1"] = (
        {"value": three / one, "unit": unit, "higher_is_better": higher, "ideal": 3.0} if three and one
        else _report.failed(METRICS, "scaling_3_vs_1", "needs both tasks_per_s figures"))
    out["metrics"] = {name: out["metrics"][name] for name in METRICS}
    return out


def render_table(report: dict) -> str:
    lines = _report.table(METRICS, report, ("actorcore/Ray (higher is better)", "Ray/actorcore (lower is better)"))
    size = (QUICK if report["quick"] else FULL).object_bytes / 2 ** 20
    notes = [(f"nodes of {NUM_CPUS} CPUs on one machine; object {size:.0f} MiB; tasks sleep "
              f"{NAP_SECONDS * 1000:.0f} ms (ideal scaling_3_vs_1: 3).")]
    notes.append(f"{report['wall_seconds']:.0f} s in all; load average (1, 5, 15 min) "
                 f"{' '.join(f'{x:.2f}' for x in report['loadavg_start'])} at the start, "
                 f"{' '.join(f'{x:.2f}' for x in report['loadavg_end'])} at the end.")
    return "\n".join([*lines, "", *notes, *_report.notes(report)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _report.add_arguments(parser, quick="small sizes, for smoke tests",
                          timeout="seconds one cluster's driver may run before it counts as hung "
                          "(default 600, 120 with --quick)")


def run(args: argparse.Namespace) -> int:
    """Run both frameworks (or actorcore only) and print the report; 1 if an actorcore metric failed."""
    timeout = args.timeout or (120.0 if args.quick else 600.0)
    ray_python, skipped = _report.ray_python(args)
    if skipped:
        progress(f"Ray will not run ({skipped}): actorcore's figures only")

    started = time.monotonic()
    report = {"benchmark": "cluster", "quick": bool(args.quick), "num_cpus_per_node": NUM_CPUS,
              "sizes": (QUICK if args.quick else FULL).__dict__,
              "ratio_definition": _report.RATIO_DEFINITION, "metrics": _report.metric_units(METRICS)}
    report["loadavg_start"] = os.getloadavg()  # the machine is shared: how busy it was
    report["actorcore"] = run_framework("actorcore", sys.executable, args.quick, timeout)
    if ray_python:
        report["ray"] = run_framework("ray", ray_python, args.quick, timeout)
    else:
        report["ray"] = None
        report["ray_skipped_reason"] = skipped
    report["ratios"] = _report.ratios(METRICS, report)
    report["wall_seconds"] = time.monotonic() - started
    report["loadavg_end"] = os.getloadavg()
    return _report.output(report, args.json, render_table)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--driver"]:
        return driver_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
