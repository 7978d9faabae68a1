"""The spill benchmark, actorcore vs Ray:
`python -m benchmarks.spill [--json] [--quick] [--no-ray] [--ray-python PATH] [--timeout S]`.

Also `python -m benchmarks.microbenchmark --spill ...` (benchmarks/microbenchmark.py hands over here).

What it measures: a driver starts a one-node session whose object store holds CAPACITY bytes
(`init(num_cpus=2, object_store_memory=CAPACITY)`, Ray's keyword; 400 MiB), puts distinct numpy
uint8 arrays of 100 MiB totalling 3x the capacity (12 arrays), keeping every ref, then gets every
one back in the order they were put (the first were spilled first) and checks each, byte by byte
(its own fill value, its index in its first 8 bytes). --quick: 80 MiB, 24 arrays of 10 MiB (Ray
refuses a store under 75 MB).

- spill_put_gbps: the bytes put / the time of the puts, in GB/s (10**9 bytes/s). Each put is
  timed alone (making its array is not). Two thirds of the bytes are put once the store is full,
  so those puts make room by spilling: this is the rate of `put` under spilling. Beside it:
  within_capacity_gbps, the puts while the store had room, and beyond_capacity_gbps, the others.
- restore_get_gbps: the bytes got back / the time of the gets, GB/s; each get timed alone (its
  check is not: check_seconds gives that time).

The machine's memcpy speed (memcpy_gbps, measured here first) is stated beside the figures.

How: each framework's driver is this file run with `--driver` by that framework's python, in a
process of its own with a timeout (run_driver of benchmarks/report.py: what it leaves running is
killed). Its TMPDIR, and for actorcore its ACTORCORE_HOME, is a fresh temporary directory: Ray's
session and spill files (`$TMPDIR/ray/session_*`) and actorcore's land there. Once the driver is
gone, what is left in that directory is reported (leftover_files, leftover_bytes: spill files a
framework did not delete; Ray keeps its session's logs), then removed; for actorcore, so are its
node's shared-memory segments (segments_left). A framework whose init() refuses
`object_store_memory`, or whose cluster_resources() does not then give a store of at most that
capacity (as Ray's does, under "object_store_memory"), gets both metrics failed saying so.

Ratios, as in benchmarks/microbenchmark.py: actorcore/Ray, so > 1 means actorcore did better.
Progress goes to stderr; the table (or, with --json, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

try:
    from . import report as _report
    from . import workloads as _workloads
except ImportError:  # run as a script (the drivers): python benchmarks/spill.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import report as _report  # type: ignore[no-redef]
    import workloads as _workloads  # type: ignore[no-redef]

__all__ = ["FULL", "METRICS", "QUICK", "Sizes", "main", "run"]

MARKER = "SPILLBENCH"
SCRIPT = Path(__file__).resolve()
MIB = 1024 * 1024
CAPACITY_SLACK = 1.1  # how much more than asked the store may report holding (rounding)

# name -> (unit, higher_is_better), in the order they are measured.
METRICS = {
    "spill_put_gbps": ("GB/s", True),
    "restore_get_gbps": ("GB/s", True),
}


@dataclass(frozen=True)
class Sizes:
    capacity_bytes: int  # init(object_store_memory=...)
    object_bytes: int
    objects: int  # objects * object_bytes = 3 * capacity_bytes


FULL = Sizes(capacity_bytes=400 * MIB, object_bytes=100 * MIB, objects=12)
QUICK = Sizes(capacity_bytes=80 * MIB, object_bytes=10 * MIB, objects=24)


# ---------------------------------------------------------------------------------------------
# The driver side: runs under either framework's python (nothing here imports a framework at
# module level).


def emit(event: str, **fields) -> None:
    print(MARKER, json.dumps({"event": event, **fields}), flush=True)


def fill_of(index: int) -> int:
    """The byte the array of `index` is filled with (its first 8 bytes hold the index)."""
    return (index * 37 + 11) % 256


def make_array(np, nbytes: int, index: int):
    array = np.full(nbytes, fill_of(index), dtype=np.uint8)
    array[:8] = np.frombuffer(index.to_bytes(8, "little"), dtype=np.uint8)
    return array


def check_array(np, value, nbytes: int, index: int) -> None:
    """AssertionError unless `value` is the array `make_array` made for `index`."""
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.shape != (nbytes,):
        raise AssertionError(f"object {index}: got {type(value).__qualname__} "
                             f"{getattr(value, 'dtype', '')} {getattr(value, 'shape', '')}, "
                             f"expected a uint8 array of {nbytes} bytes")
    header = int.from_bytes(value[:8].tobytes(), "little")
    wrong = int(np.count_nonzero(value[8:] != fill_of(index)))
    if header != index or wrong:
        raise AssertionError(f"object {index}: came back with index {header} and {wrong} byte(s) "
                             f"other than {fill_of(index)}")


def spill_and_restore(ray, np, sizes: Sizes):
    """Puts, then gets: yields ("spill_put_gbps", record), then ("restore_get_gbps", record)."""
    nbytes = sizes.object_bytes
    refs, put_seconds = [], []
    for index in range(sizes.objects):
        array = make_array(np, nbytes, index)
        started = time.perf_counter()
        refs.append(ray.put(array))
        put_seconds.append(time.perf_counter() - started)
        del array
    fits = sizes.capacity_bytes // nbytes  # the puts made while the store had room
    total = nbytes * sizes.objects
    yield "spill_put_gbps", {
        "value": total / sum(put_seconds) / 1e9,
        "within_capacity_gbps": fits * nbytes / sum(put_seconds[:fits]) / 1e9,
        "beyond_capacity_gbps": (sizes.objects - fits) * nbytes / sum(put_seconds[fits:]) / 1e9,
        "put_seconds": put_seconds, "put_median_s": statistics.median(put_seconds),
        **sizes.__dict__, "total_bytes": total,
    }
    get_seconds, check_seconds = [], 0.0
    for index, ref in enumerate(refs):
        started = time.perf_counter()
        value = ray.get(ref)
        get_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        check_array(np, value, nbytes, index)
        check_seconds += time.perf_counter() - started
        del value
    yield "restore_get_gbps", {
        "value": total / sum(get_seconds) / 1e9, "get_seconds": get_seconds,
        "get_median_s": statistics.median(get_seconds), "check_seconds": check_seconds,
        "all_correct": True, **sizes.__dict__, "total_bytes": total,
    }


def capacity_applied(ray, sizes: Sizes) -> bool:
    """Whether the session's store holds at most the capacity asked for, as cluster_resources()
    states it (Ray gives the capacity there as "object_store_memory"); if not, both metrics fail
    saying so (nothing would spill: the figures would not be those of spilling)."""
    reported = ray.cluster_resources().get("object_store_memory")
    if reported is not None and 0 < reported <= sizes.capacity_bytes * CAPACITY_SLACK:
        return True
    for metric in METRICS:
        emit("error", metric=metric, capacity_reported=reported,
             error=f"the object store's capacity was not applied: init(object_store_memory="
                   f"{sizes.capacity_bytes}), then cluster_resources() gives object_store_memory={reported!r}")
    return False


def driver_main(argv: list[str]) -> int:
    """One framework's run: `--driver --framework F [--quick]`."""
    parser = argparse.ArgumentParser(prog="benchmarks/spill.py --driver")
    parser.add_argument("--framework", choices=["actorcore", "ray"], required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    import numpy as np

    ray = _workloads.import_framework(args.framework)
    emit("hello", framework=args.framework, version=getattr(ray, "__version__", "?"),
         python=sys.executable, pid=os.getpid())
    try:
        ray.init(**_workloads.INIT_KWARGS, object_store_memory=sizes.capacity_bytes)
    except Exception as error:  # noqa: BLE001 - reported as both metrics' error
        for metric in METRICS:
            emit("error", metric=metric, traceback=traceback.format_exc(),
                 error=f"init(object_store_memory={sizes.capacity_bytes}) failed: {type(error).__name__}: {error}")
        return 0
    try:
        emit("node", node_id=ray.get_runtime_context().get_node_id())
        if not capacity_applied(ray, sizes):
            return 0
        steps = spill_and_restore(ray, np, sizes)
        for metric in METRICS:
            emit("start", metric=metric)
            started = time.perf_counter()
            try:
                name, result = next(steps)
            except Exception as error:  # noqa: BLE001 - any failure is reported as the metric's error
                emit("error", metric=metric, error=f"{type(error).__name__}: {error}",
                     traceback=traceback.format_exc(), elapsed_s=time.perf_counter() - started)
                break
            emit("result", metric=name, elapsed_s=time.perf_counter() - started, **result)
    finally:
        ray.shutdown()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent side: the drivers, what they leave behind, the report.


def progress(message: str) -> None:
    print(f"[spill benchmark] {message}", file=sys.stderr, flush=True)


def leftovers(folder: Path) -> dict:
    """The files left under `folder`: {leftover_files, leftover_bytes}."""
    files = [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()]
    sizes = []
    for path in files:
        try:
            sizes.append(path.stat().st_size)
        except OSError:  # removed meanwhile
            sizes.append(0)
    return {"leftover_files": len(files), "leftover_bytes": sum(sizes)}


def node_segments(node_id: str | None) -> list[str]:
    """The shared-memory segments of actorcore's node `node_id` still present."""
    if not node_id:
        return []
    from actorcore.objects import list_segments  # (the orchestrator's side: not run under Ray)

    return list(list_segments(node_id))


def run_framework(framework: str, python: str, quick: bool, timeout: float) -> dict:
    """One framework's metrics: {framework, version, python, metrics, leftover_files,
    leftover_bytes[, segments_left]}."""
    out = {"framework": framework, "python": python, "version": None, "metrics": {}}
    scratch = Path(tempfile.mkdtemp(prefix="spillbench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_TMPDIR", "ACTORCORE_ADDRESS", "ACTORCORE_TOKEN")}
    env.update(TMPDIR=str(scratch), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(_report.ROOT))
    if framework == "actorcore":
        env["ACTORCORE_HOME"] = str(scratch / "home")
    progress(f"{framework}: driver (TMPDIR {scratch}) ...")
    args = ["--framework", framework, *(["--quick"] if quick else [])]
    try:
        events, failure = _report.run_driver(python, SCRIPT, MARKER, args, env, timeout, framework, progress)
    finally:
        out.update(leftovers(scratch))
        shutil.rmtree(scratch, ignore_errors=True)
    node_id = next((event.get("node_id") for event in events if event.get("event") == "node"), None)
    if framework == "actorcore":
        out["segments_left"] = node_segments(node_id)
    _report.collect(METRICS, out, events, failure, list(METRICS), progress)
    return out


def render_table(report: dict) -> str:
    lines = _report.table(METRICS, report, ("actorcore/Ray (higher is better)", "Ray/actorcore (lower is better)"))
    sizes = Sizes(**report["sizes"])
    notes = [(f"object store of {sizes.capacity_bytes // MIB} MiB; {sizes.objects} distinct arrays of "
              f"{sizes.object_bytes // MIB} MiB put (3x the store), then all got back and checked."),
             _report.memcpy_note(report)]
    for side in ("actorcore", "ray"):
        result = report.get(side)
        if result is not None:
            notes.append(f"{side} left {result['leftover_files']} file(s), "
                         f"{result['leftover_bytes'] / MIB:.1f} MiB in its TMPDIR (removed)"
                         + (f"; shared-memory segments left: {result['segments_left']}"
                            if result.get("segments_left") else "") + ".")
    return "\n".join([*lines, "", *notes, *_report.notes(report)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _report.add_arguments(parser, quick="an 80 MiB store and 10 MiB arrays, for smoke tests",
                          timeout="seconds one driver may run before it counts as hung "
                          "(default 600, 180 with --quick)")


def run(args: argparse.Namespace) -> int:
    """Run both frameworks (or actorcore only) and print the report; 1 if an actorcore metric failed."""
    timeout = args.timeout or (180.0 if args.quick else 600.0)
    ray_python, skipped = _report.ray_python(args)
    if skipped:
        progress(f"Ray will not run ({skipped}): actorcore's figures only")
    started = time.monotonic()
    report = {"benchmark": "spill", "quick": bool(args.quick), "sizes": (QUICK if args.quick else FULL).__dict__,
              "ratio_definition": _report.RATIO_DEFINITION, "metrics": _report.metric_units(METRICS)}
    report["memcpy_gbps"] = _report.memcpy_gbps()
    progress(f"memcpy on this machine: {report['memcpy_gbps']:.2f} GB/s")
    report["actorcore"] = run_framework("actorcore", sys.executable, args.quick, timeout)
    if ray_python:
        report["ray"] = run_framework("ray", ray_python, args.quick, timeout)
    else:
        report["ray"] = None
        report["ray_skipped_reason"] = skipped
    report["ratios"] = _report.ratios(METRICS, report)
    report["wall_seconds"] = time.monotonic() - started
    return _report.output(report, args.json, render_table)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--driver"]:
        return driver_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spill", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
