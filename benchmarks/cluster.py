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

--hosts: the 3-node cluster twice, actorcore only: on loopback as above, then across three
hosts made with network, mount and UTS namespaces on this machine (actorcore.testing_hosts:
each host its own address on a private switch, its own /dev/shm, HOME and hostname; the head
on host a with the driver, the other nodes joined from hosts b and c with the cluster's
credentials). It reports the three 3-node metrics of both and their quotient hosts/loopback
(what crossing a network stack, rather than loopback, costs). Needs root and `ip`, `unshare`,
`nsenter`; exits with code 2 and the reason where the machine cannot make namespaces.

Ratios, as in benchmarks/microbenchmark.py: actorcore/Ray for rates, Ray/actorcore for times,
so > 1 always means actorcore did better. Progress goes to stderr; the table (or, with --json,
one JSON object {"actorcore": ..., "ray": ..., "ratios": ...}) to stdout. --quick: 10 MB
objects, fewer tasks and repetitions, for smoke tests.
`python -m benchmarks.cluster --hosts [--json] [--quick]`: see --hosts above.
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


class HostsCluster:
    """The benchmark's 3-node cluster across hosts of actorcore.testing_hosts (a, b, c; the head
    and the driver on a); `stop()` kills every process of the hosts and removes them."""

    def __init__(self, python: str) -> None:
        from actorcore.testing_hosts import ClusterOnHosts, Network

        self.python = python
        self.network = Network()
        self.cluster = ClusterOnHosts(self.network)
        self.node_ids: list[str] = []

    def start(self) -> None:
        for index, name in enumerate(NODE_RESOURCES):
            host = self.network.add_host(name.lower())
            start = self.cluster.join if index else self.cluster.start_head
            start(host, num_cpus=NUM_CPUS, resources={name: 1})
        self.node_ids = sorted(record["node_id"] for record in self.cluster.nodes.values())

    def run_driver(self, args: list[str], timeout: float) -> tuple[list[dict], str | None]:
        """The benchmark's driver on host a (see `_report.run_driver`)."""
        host = self.cluster.hosts["a"]
        self.cluster.credentials_for(host)
        env = {**host.env, "PYTHONPATH": str(_report.ROOT)}
        return _report.run_driver(self.python, SCRIPT, MARKER, [*args, "--address", self.cluster.address], env,
                                  timeout, "actorcore across hosts", progress,
                                  prefix=host.command([], cwd=_report.ROOT))

    def stop(self) -> None:
        self.network.close()


def run_across_hosts(python: str, quick: bool, timeout: float) -> dict:
    """actorcore's 3-node metrics on HostsCluster: as `run_framework` returns them."""
    out = {"framework": "actorcore", "setting": "hosts", "python": python, "version": None, "metrics": {},
           "clusters": []}
    started = time.monotonic()
    progress("actorcore: starting a 3-node cluster across 3 namespaced hosts ...")
    record = {"nodes": 3, "hosts": list(NODE_RESOURCES)}
    out["clusters"].append(record)
    cluster = HostsCluster(python)
    try:
        try:
            cluster.start()
        except (RuntimeError, AssertionError, subprocess.TimeoutExpired) as error:
            events, failure = [], f"cluster start failed: {error}"
        else:
            record["node_ids"] = cluster.node_ids
            record["address"] = cluster.cluster.address
            progress(f"actorcore: cluster up across hosts in {time.monotonic() - started:.1f} s; "
                     "running the driver ...")
            args = ["--framework", "actorcore", "--nodes", "3", *(["--quick"] if quick else [])]
            events, failure = cluster.run_driver(args, timeout)
    finally:
        cluster.stop()
    record["seconds"] = time.monotonic() - started
    _report.collect(METRICS, out, events, failure, SHAPES[3], progress)
    out["metrics"] = {name: out["metrics"][name] for name in METRICS if name in SHAPES[3]}
    return out


def hosts_vs_loopback(report: dict) -> dict[str, float | None]:
    """Per 3-node metric: its value across hosts divided by its value on loopback."""
    quotients = {}
    for name in SHAPES[3]:
        hosts = report["actorcore_hosts"]["metrics"][name].get("value")
        loopback = report["actorcore"]["metrics"][name].get("value")
        quotients[name] = hosts / loopback if hosts and loopback else None
    return quotients


def render_hosts_table(report: dict) -> str:
    rows = [["metric", "unit", "loopback", "across hosts", "hosts/loopback"]]
    for name in SHAPES[3]:
        unit = METRICS[name][0]
        quotient = report["hosts_vs_loopback"][name]
        rows.append([name, unit, _report.cell(report["actorcore"]["metrics"][name]),
                     _report.cell(report["actorcore_hosts"]["metrics"][name]),
                     "-" if quotient is None else f"{quotient:.2f}x"])
    size = (QUICK if report["quick"] else FULL).object_bytes / 2 ** 20
    notes = [(f"actorcore, 3 nodes of {NUM_CPUS} CPUs; object {size:.0f} MiB; loopback: every node on 127.0.0.1; "
             "across hosts: each node on a namespaced host of its own (own address, /dev/shm, HOME)."),
             (f"{report['wall_seconds']:.0f} s in all; load average (1, 5, 15 min) "
             f"{' '.join(f'{x:.2f}' for x in report['loadavg_start'])} at the start, "
             f"{' '.join(f'{x:.2f}' for x in report['loadavg_end'])} at the end.")]
    for side in ("actorcore", "actorcore_hosts"):
        for name, record in report[side]["metrics"].items():
            if record.get("value") is None:
                notes.append(f"{side} {name}: {record.get('error')}")
    return "\n".join([*_report.layout(rows, left=(0, 1)), "", *notes])


def run_hosts(args: argparse.Namespace) -> int:
    """--hosts: the 3-node metrics on loopback and across namespaced hosts; 1 if one failed, 2
    if this machine cannot make hosts."""
    from actorcore.testing_hosts import unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"benchmarks.cluster --hosts: cannot make hosts on this machine: {reason}", file=sys.stderr)
        return 2
    timeout = args.timeout or (120.0 if args.quick else 600.0)
    started = time.monotonic()
    report = {"benchmark": "cluster", "mode": "hosts", "quick": bool(args.quick), "num_cpus_per_node": NUM_CPUS,
              "sizes": (QUICK if args.quick else FULL).__dict__,
              "ratio_definition": "hosts_vs_loopback: the value across hosts / the value on loopback",
              "metrics": _report.metric_units({name: METRICS[name] for name in SHAPES[3]})}
    report["loadavg_start"] = os.getloadavg()
    report["actorcore"] = run_framework("actorcore", sys.executable, args.quick, timeout, shapes=(3,))
    report["actorcore_hosts"] = run_across_hosts(sys.executable, args.quick, timeout)
    report["hosts_vs_loopback"] = hosts_vs_loopback(report)
    report["wall_seconds"] = time.monotonic() - started
    report["loadavg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2) if args.json else render_hosts_table(report))
    figures = [*report["actorcore"]["metrics"].values(), *report["actorcore_hosts"]["metrics"].values()]
    return 1 if any(record.get("value") is None for record in figures) else 0


def run_framework(framework: str, python: str, quick: bool, timeout: float, shapes: tuple[int, ...] = (3, 1)) -> dict:
    """The metrics of one framework on clusters of `shapes` nodes: {framework, version, python,
    metrics: {name: record}, clusters}."""
    out = {"framework": framework, "python": python, "version": None, "metrics": {}, "clusters": []}
    for nodes in shapes:
        expected = SHAPES[nodes]
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
        _report.collect(METRICS, out, events, failure, expected, progress)
    if set(shapes) != set(SHAPES):
        out["metrics"] = {name: out["metrics"][name] for name in METRICS if name in out["metrics"]}
        return out
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
    parser.add_argument("--hosts", action="store_true",
                        help="actorcore's 3-node cluster on loopback and across namespaced hosts of this "
                             "machine, compared (needs root; Ray is not run)")


def run(args: argparse.Namespace) -> int:
    """Run both frameworks (or actorcore only) and print the report; 1 if an actorcore metric failed.
    With --hosts: `run_hosts`."""
    if getattr(args, "hosts", False):
        return run_hosts(args)
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
