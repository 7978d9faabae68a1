"""Recovery times of services, actorcore vs Ray:
`python -m benchmarks.services [--json] [--quick] [--no-ray] [--ray-python PATH]`.

What it measures (each several times; the median is reported, in ms):

- service_kill9_to_call_ms: actorcore: a counter service under `actorcore supervise`
  (examples.services.counter:Counter, checkpointed every 0.2 s). The driver counts, waits until
  the checkpoint in etcd holds that count, kills the service's worker with -9 and times until
  the first call answered by the new incarnation; that incarnation must hold the count
  (restored from the checkpoint before any call). Ray has no supervisor and no checkpoints: its
  figure is the one of the nearest thing, an actor with max_restarts=-1 (next metric), whose
  state is NOT restored (it starts from its constructor again).
- actor_kill9_to_call_ms: the same kill -9 of an actor's worker, then calls retried (any error)
  until one is answered by the new process, for a plain actor with max_restarts=-1 under both
  frameworks (no state restored in either): like for like.
- daemon_kill9_to_adopted_ms (actorcore only): kill -9 of the `actorcore supervise` daemon, then
  a new daemon is started at once: from the kill to the new daemon's log saying it adopted every
  service still running (none may be restarted). One daemon leads per cluster, under an etcd
  lease; a daemon started on the machine where the killed leader's process is surely gone takes
  over at once (without it, it would wait for the lease: the cluster's TTL, here the minimum,
  LEASE_TTL s). The record also says when the new daemon began to lead.

How: actorcore runs on a single-node cluster started with its CLI (`actorcore start --head`)
in a temporary ACTORCORE_HOME, with the daemon (`python -m actorcore supervise SPEC --address`)
and a driver process (this file with `--driver`); the daemon is stopped with SIGTERM, the
cluster with `actorcore stop`, the home removed. Ray's driver is Ray's python (default
/tmp/rayvenv/bin/python) running this file with `--driver`: `ray.init()` starts a local Ray in
its own process group, with its session files in a temporary directory. After each driver,
every process marked with that driver's environment marker that is still alive is killed (as
benchmarks/cluster.py does), and the report notes anything new left in /dev/shm. Ratios as in
benchmarks/report.py: Ray/actorcore for times, so > 1 means actorcore recovered faster.
Progress goes to stderr, the table (or --json) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

try:
    from . import report as _report
except ImportError:  # run as a script (the drivers): python benchmarks/services.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import report as _report  # type: ignore[no-redef]

MARKER = "SERVICEBENCH"
SCRIPT = Path(__file__).resolve()

# name -> (unit, higher_is_better), in the order they are reported.
METRICS = {
    "service_kill9_to_call_ms": ("ms", False),
    "actor_kill9_to_call_ms": ("ms", False),
    "daemon_kill9_to_adopted_ms": ("ms", False),
}
SERVICE = "bench"
REPLICAS = 3  # the service's actors: bench-0, bench-1, bench-2 (the daemon must adopt them all)
CHECKPOINT_INTERVAL = 0.2
SPEC = f"""
[supervisor]
max_restarts = 100
period = 10

[services.{SERVICE}]
class = "examples.services.counter:Counter"
replicas = {REPLICAS}
checkpoint_interval = {CHECKPOINT_INTERVAL}
"""
LEASE_TTL = 2  # the head's --lease-ttl (the minimum): how long a killed daemon's lease lasts
LEADING = "leading: this daemon keeps the services"  # the daemon's log line once it leads
ADOPTED = "adopted a running service"  # the daemon's log line, once per actor it adopts
STARTED = "started a service"  # ... and once per actor it (re)starts


# ---------------------------------------------------------------------------------------------
# The driver side: runs under either framework's python (nothing here imports a framework at
# module level).


def emit(event: str, **fields) -> None:
    print(MARKER, json.dumps({"event": event, **fields}), flush=True)


def first_answer(ray, handle_of, old_pid: int | None, timeout: float = 60.0):
    """(handle, pid): the first incarnation other than `old_pid` to answer `pid()`; any error
    (the actor is dead, restarting, its name not yet taken again) means: ask again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            handle = handle_of()
            pid = ray.get(handle.pid.remote(), timeout=5)
            if pid != old_pid:
                return handle, pid
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.002)


def summary(samples: list[float], **facts) -> dict:
    return {"value": statistics.median(samples), "samples": samples, "min": min(samples), "max": max(samples),
            **facts}


def actor_restarts(ray, reps: int) -> dict:
    """kill -9 of a max_restarts=-1 actor's worker -> first call answered by its new process."""

    @ray.remote(max_restarts=-1)
    class Counter:
        def __init__(self):
            self.count = 0

        def incr(self):
            self.count += 1
            return self.count

        def pid(self):
            return os.getpid()

    actor = Counter.remote()
    _, pid = first_answer(ray, lambda: actor, None)
    samples, counts = [], []
    for _ in range(reps):
        ray.get(actor.incr.remote())
        os.kill(pid, signal.SIGKILL)
        killed = time.perf_counter()
        _, pid = first_answer(ray, lambda: actor, pid)
        samples.append((time.perf_counter() - killed) * 1000)
        counts.append(ray.get(actor.incr.remote()))  # 1: the state was not restored
    ray.kill(actor)
    return summary(samples, state_restored=any(count > 1 for count in counts))


class Checkpoints:
    """actorcore only: reads a service's checkpoint from the cluster's etcd (as the daemon wrote it)."""

    def __init__(self, address: str) -> None:
        import asyncio

        from actorcore import cluster_files
        from actorcore.gcs.etcd_client import EtcdClient

        self.cluster, auth = cluster_files.cluster_at(address)
        self.loop = asyncio.new_event_loop()
        self.etcd = self.loop.run_until_complete(EtcdClient.connect(address, auth=auth, timeout=10))

    def count(self, name: str) -> int | None:
        from actorcore.services.instances import checkpoint_key

        blob = self.loop.run_until_complete(self.etcd.get(checkpoint_key(self.cluster, name)))
        return pickle.loads(blob)["count"] if blob else None

    def wait_for(self, name: str, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(name) != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the checkpoint of {name} did not reach {count} within {timeout:.0f} s")
            time.sleep(0.01)

    def close(self) -> None:
        self.loop.run_until_complete(self.etcd.close())
        self.loop.close()


def service_restarts(ray, reps: int, address: str) -> dict:
    """actorcore only: kill -9 of a supervised service's worker -> first call answered by the
    new incarnation, which must hold the checkpointed count."""
    from actorcore.services.daemon import NAMESPACE

    name = f"{SERVICE}-0"
    checkpoints = Checkpoints(address)
    try:
        handle, pid = first_answer(ray, lambda: ray.get_actor(name, namespace=NAMESPACE), None)
        samples = []
        for _ in range(reps):
            expected = ray.get(handle.incr.remote())
            checkpoints.wait_for(name, expected)  # the state the new incarnation must have
            os.kill(pid, signal.SIGKILL)
            killed = time.perf_counter()
            handle, pid = first_answer(ray, lambda: ray.get_actor(name, namespace=NAMESPACE), pid)
            samples.append((time.perf_counter() - killed) * 1000)
            count, restored = ray.get([handle.get.remote(), handle.was_restored.remote()])
            if count != expected or not restored:
                raise AssertionError(f"the new incarnation holds {count} (restored: {restored}), not {expected}")
    finally:
        checkpoints.close()
    return summary(samples, state_restored=True)


def driver_main(argv: list[str]) -> int:
    """`--driver --framework F --reps N [--address A]`: the metrics of one framework, as events."""
    parser = argparse.ArgumentParser(prog="benchmarks/services.py --driver")
    parser.add_argument("--framework", choices=["actorcore", "ray"], required=True)
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--address", help="actorcore: the cluster the daemon supervises on")
    parser.add_argument("--temp-dir", help="ray: its session directory's parent (removed by the parent)")
    args = parser.parse_args(argv)

    import logging

    if args.framework == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 _temp_dir=args.temp_dir)
        workloads = {"actor_kill9_to_call_ms": lambda: actor_restarts(ray, args.reps)}
    else:
        import actorcore as ray

        ray.init(address=args.address, logging_level=logging.ERROR)
        workloads = {"service_kill9_to_call_ms": lambda: service_restarts(ray, args.reps, args.address),
                     "actor_kill9_to_call_ms": lambda: actor_restarts(ray, args.reps)}
    emit("hello", framework=args.framework, version=getattr(ray, "__version__", "?"))
    try:
        for metric, workload in workloads.items():
            emit("start", metric=metric)
            try:
                result = workload()
            except Exception as error:  # noqa: BLE001 - any failure is reported as the metric's error
                emit("error", metric=metric, error=f"{type(error).__name__}: {error}",
                     traceback=traceback.format_exc())
            else:
                emit("result", metric=metric, **result)
    finally:
        ray.shutdown()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent side: the cluster, the daemon, the drivers, the report.


def progress(message: str) -> None:
    print(f"[services benchmark] {message}", file=sys.stderr, flush=True)


def collect(out: dict, events: list[dict], failure: str | None) -> None:
    """The drivers' events into out["metrics"]; a metric it started but never reported failed."""
    current = None
    for event in events:
        if event["event"] == "hello":
            out["version"] = event.get("version")
        elif event["event"] == "start":
            current = event["metric"]
        elif event["event"] in ("result", "error"):
            name, current = event["metric"], None
            record = _report.record(METRICS, event, drop=("traceback",))
            if event["event"] == "error":
                progress(f"{out['framework']}: {name} FAILED: {event['error']}\n{event.get('traceback', '')}")
            else:
                progress(f"{out['framework']}: {name} = {_report.fmt(record['value'])} ms")
            out["metrics"][name] = record
    if current is not None:
        out["metrics"][current] = _report.failed(METRICS, current, f"{failure or 'the driver ended'} (during it)")


class Supervised(_report.CliCluster):
    """A single-node actorcore cluster (its own ACTORCORE_HOME) and an `actorcore supervise`
    daemon on it; `close()` stops both and removes the home, whatever happened."""

    def __init__(self, python: str) -> None:
        super().__init__(python, prefix="actorcore-servicebench-")
        self.spec = self.home / "services.toml"
        self.spec.write_text(SPEC)
        self.log = self.home / "daemon.log"
        self.daemon: subprocess.Popen | None = None

    def start(self) -> None:
        self.cli("start", "--head", "--port", self.address.rsplit(":", 1)[1], "--num-cpus", "8",
                 "--lease-ttl", str(LEASE_TTL))
        self.start_daemon()
        self.wait_log(f"{STARTED}", REPLICAS, offset=0)

    def start_daemon(self) -> None:
        with open(self.log, "ab") as out:
            self.daemon = subprocess.Popen([self.python, "-m", "actorcore", "supervise", str(self.spec),
                                            "--address", self.address], env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT, cwd=str(_report.ROOT), stdin=subprocess.DEVNULL)

    def wait_log(self, text: str, times: int, offset: int, timeout: float = 60.0) -> str:
        """The daemon's log after `offset` once `text` is in it `times` times."""
        deadline = time.monotonic() + timeout
        while (tail := self.log.read_text()[offset:]).count(text) < times:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.daemon.returncode}):\n{tail[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not {times} times in the daemon's log within {timeout:.0f} s")
            time.sleep(0.005)
        return tail

    def adoption(self, reps: int) -> dict:
        """kill -9 of the daemon, a new one at once: from the kill to its log saying it adopted all."""
        samples, leading = [], []
        for _ in range(reps):
            offset = len(self.log.read_text())
            self.daemon.kill()
            killed = time.perf_counter()
            self.daemon.wait()
            self.start_daemon()
            self.wait_log(LEADING, 1, offset)
            leading.append((time.perf_counter() - killed) * 1000)
            tail = self.wait_log(ADOPTED, REPLICAS, offset)
            samples.append((time.perf_counter() - killed) * 1000)
            if STARTED in tail:
                raise AssertionError(f"the new daemon restarted a service instead of adopting it:\n{tail}")
        return summary(samples, services=REPLICAS, lease_ttl_s=LEASE_TTL,
                       leading_after_ms=statistics.median(leading))

    def close(self) -> None:
        try:
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.send_signal(signal.SIGTERM)
                try:
                    self.daemon.wait(60)
                except subprocess.TimeoutExpired:
                    progress("actorcore: the daemon did not stop on SIGTERM; killed")
                    self.daemon.kill()
                    self.daemon.wait()
            self.cli("stop")
        finally:
            from actorcore.testing import processes_of

            for pid in processes_of(self.home):
                progress(f"actorcore: killing process {pid}, left behind")
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.home, ignore_errors=True)


def run_actorcore(reps: int, timeout: float) -> dict:
    out = {"framework": "actorcore", "python": sys.executable, "version": None, "metrics": {}}
    progress("actorcore: a head node (`actorcore start --head`) and `actorcore supervise` ...")
    supervised = Supervised(sys.executable)
    why = "not measured"
    try:
        supervised.start()
        progress(f"actorcore: {REPLICAS} services up; the driver kills workers ...")
        argv = ["--framework", "actorcore", "--reps", str(reps), "--address", supervised.address]
        events, failure = _report.run_driver(sys.executable, SCRIPT, MARKER, argv,
                                             supervised.env, timeout, "actorcore", progress)
        collect(out, events, failure)
        progress("actorcore: kill -9 of the daemon, then a new one, which adopts the services ...")
        try:
            record = supervised.adoption(reps)
        except Exception as error:  # noqa: BLE001 - any failure is reported as the metric's error
            out["metrics"]["daemon_kill9_to_adopted_ms"] = _report.failed(
                METRICS, "daemon_kill9_to_adopted_ms", f"{type(error).__name__}: {error}")
        else:
            collect(out, [{"event": "result", "metric": "daemon_kill9_to_adopted_ms", **record}], None)
    except Exception as error:  # noqa: BLE001 - the cluster or daemon did not start
        progress(f"actorcore: {type(error).__name__}: {error}")
        why = f"setup failed: {type(error).__name__}: {error}"
    finally:
        supervised.close()
    for name in METRICS:
        out["metrics"].setdefault(name, _report.failed(METRICS, name, why))
    return out


def run_ray(python: str, reps: int, timeout: float) -> dict:
    out = {"framework": "ray", "python": python, "version": None, "metrics": {}}
    progress("ray: ray.init() and its driver ...")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp_dir = tempfile.mkdtemp(prefix="ray-servicebench-")  # Ray's session files (else /tmp/ray, kept)
    try:
        events, failure = _report.run_driver(python, SCRIPT, MARKER,
                                             ["--framework", "ray", "--reps", str(reps), "--temp-dir", temp_dir],
                                             env, timeout, "ray", progress)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    collect(out, events, failure)
    actor = out["metrics"].get("actor_kill9_to_call_ms") or _report.failed(
        METRICS, "actor_kill9_to_call_ms", failure or "not reported")
    out["metrics"]["actor_kill9_to_call_ms"] = actor
    # Ray's nearest thing to a supervised service: the same restarting actor (no state restored).
    out["metrics"]["service_kill9_to_call_ms"] = {**actor, "as": "actor_kill9_to_call_ms"}
    return out


def render_table(report: dict) -> str:
    lines = _report.table(METRICS, report, ("actorcore/Ray (higher is better)", "Ray/actorcore (lower is better)"))
    notes = [
        f"median of {report['reps']} kills each; ratio > 1 means actorcore recovered faster.",
        "service_kill9_to_call_ms: actorcore restores the service's checkpointed state before its first call;",
        ("  Ray has no supervisor or checkpoints: its figure is actor_kill9_to_call_ms (max_restarts=-1), "
         "state NOT restored."),
        (f"daemon_kill9_to_adopted_ms: actorcore only (no Ray counterpart): {REPLICAS} services adopted, none "
         f"restarted; the new daemon, on the same machine, sees the old one's process gone and leads without "
         f"waiting for its etcd lease (TTL {LEASE_TTL} s)."),
        (f"{report['wall_seconds']:.0f} s in all; load average (1 min) {report['loadavg_start'][0]:.2f} at the start, "
         f"{report['loadavg_end'][0]:.2f} at the end."),
    ]
    if report["shm_left"]:
        notes.append(f"left in /dev/shm: {', '.join(report['shm_left'])}")
    return "\n".join([*lines, "", *notes, *_report.notes(report)])


def run(args: argparse.Namespace) -> int:
    """Run both frameworks (or actorcore only) and print the report; 1 if an actorcore metric failed."""
    reps = args.reps or (3 if args.quick else 7)
    timeout = args.timeout or 180.0
    ray_python, skipped = _report.ray_python(args)
    if skipped:
        progress(f"Ray will not run ({skipped}): actorcore's figures only")
    shm_before = set(os.listdir("/dev/shm"))
    started = time.monotonic()
    report = {"benchmark": "services", "quick": bool(args.quick), "reps": reps,
              "ratio_definition": _report.RATIO_DEFINITION, "metrics": _report.metric_units(METRICS),
              "loadavg_start": os.getloadavg()}
    report["actorcore"] = run_actorcore(reps, timeout)
    if ray_python:
        report["ray"] = run_ray(ray_python, reps, timeout)
    else:
        report["ray"], report["ray_skipped_reason"] = None, skipped
    report["ratios"] = _report.ratios(METRICS, report)
    report["wall_seconds"] = time.monotonic() - started
    report["loadavg_end"] = os.getloadavg()
    report["shm_left"] = sorted(set(os.listdir("/dev/shm")) - shm_before)
    return _report.output(report, args.json, render_table)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--driver"]:
        return driver_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.services", description=__doc__.splitlines()[0])
    _report.add_arguments(parser, quick="3 kills per metric instead of 7",
                          timeout="seconds a driver may run before it counts as hung (default 180)")
    parser.add_argument("--reps", type=int, help="kills per metric (default 7, 3 with --quick)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
