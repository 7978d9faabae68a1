"""What benchmarks/microbenchmark.py, cluster.py and services.py share to compare actorcore with Ray:
their common options, which Ray's python to run, the ratios and the printed report; and, for
cluster.py and services.py, a driver process run with a timeout (run_driver) and a cluster started
with actorcore's CLI in a temporary ACTORCORE_HOME (CliCluster). Nothing here imports a framework
at module level: the drivers import this module under Ray's python too.

Each tool has a metrics table, name -> (unit, higher_is_better), and a report with one result
per framework, {"version": ..., "metrics": {name: record}} under "actorcore" and "ray" (None
when Ray did not run), where a record's "value" is None when the metric failed (its "error"
says why, starting with "hung" when it timed out). This module computes the ratios and prints
the table: a row per metric, and notes below it on the versions and on every failure.

Ratios: actorcore/Ray for rates (higher is better), Ray/actorcore for times, so a ratio > 1
always means actorcore did better. Beside the large-object rates a report states the machine's
memcpy speed (`memcpy_gbps`), the ceiling a one-copy store can reach.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

Metrics = Mapping[str, tuple[str, bool]]  # name -> (unit, higher_is_better)

RATIO_DEFINITION = ("actorcore/Ray for rates (higher is better), Ray/actorcore for times "
                    "(lower is better): > 1 means actorcore did better")
DEFAULT_RAY_PYTHON = Path("/tmp/rayvenv/bin/python")
ROOT = Path(__file__).resolve().parents[1]  # the repository: the drivers' working directory


def add_arguments(parser: argparse.ArgumentParser, quick: str, timeout: str) -> None:
    """--json, --quick, --ray-python, --no-ray, --timeout; `quick`, `timeout`: what those two mean here."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--ray-python", metavar="PATH",
                        help=f"python of a virtualenv with Ray (default: {DEFAULT_RAY_PYTHON} if it exists)")
    parser.add_argument("--no-ray", action="store_true", help="run actorcore only")
    parser.add_argument("--timeout", type=float, default=None, help=timeout)


MEMCPY_BYTES = 100 * 1024 * 1024
MEMCPY_REPEATS = 10


def memcpy_gbps(nbytes: int = MEMCPY_BYTES, repeats: int = MEMCPY_REPEATS) -> float:
    """This process's memcpy speed in GB/s (10**9 bytes/s): the best of `repeats` numpy copies of
    `nbytes` into memory already written once (warm: no page faults), on one thread."""
    import numpy as np

    source = np.ones(nbytes, dtype=np.uint8)
    target = np.ones(nbytes, dtype=np.uint8)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return nbytes / best / 1e9


def memcpy_note(report: dict) -> str:
    """The line a table prints under it about `report["memcpy_gbps"]`."""
    return (f"memcpy on this machine: {fmt(report.get('memcpy_gbps'))} GB/s (numpy copy of "
            f"{MEMCPY_BYTES // 2 ** 20} MiB into warm memory, one thread, best of {MEMCPY_REPEATS}).")


def ray_python(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(Ray's python, None), or (None, why Ray will not run): --no-ray, --ray-python, else
    DEFAULT_RAY_PYTHON if it exists."""
    if args.no_ray:
        return None, "--no-ray"
    if args.ray_python:
        return args.ray_python, None
    if DEFAULT_RAY_PYTHON.exists():
        return str(DEFAULT_RAY_PYTHON), None
    return None, f"no --ray-python and {DEFAULT_RAY_PYTHON} does not exist"


def ratio(metrics: Metrics, name: str, ours: dict | None, theirs: dict | None) -> float | None:
    """> 1 means actorcore did better: actorcore/Ray for rates, Ray/actorcore for times."""
    a = (ours or {}).get("value")
    r = (theirs or {}).get("value")
    if not a or not r or not all(map(math.isfinite, (a, r))):
        return None
    return a / r if metrics[name][1] else r / a


def ratios(metrics: Metrics, report: dict) -> dict[str, float | None]:
    """name -> ratio of report["actorcore"] to report["ray"] (None where either has no figure)."""
    theirs = (report.get("ray") or {}).get("metrics", {})
    return {name: ratio(metrics, name, report["actorcore"]["metrics"].get(name), theirs.get(name))
            for name in metrics}


def metric_units(metrics: Metrics) -> dict[str, dict]:
    """The metrics table as the JSON report states it: name -> {unit, higher_is_better}."""
    return {name: {"unit": unit, "higher_is_better": higher} for name, (unit, higher) in metrics.items()}


def failed(metrics: Metrics, name: str, error: str) -> dict:
    """The record of a metric with no figure."""
    unit, higher = metrics[name]
    return {"value": None, "error": error, "unit": unit, "higher_is_better": higher}


def record(metrics: Metrics, event: dict, drop: Iterable[str] = ()) -> dict:
    """The record of a driver's "result" or "error" event: its fields but "event", "metric" and
    `drop`, with the metric's unit; an error's has no value."""
    unit, higher = metrics[event["metric"]]
    skip = {"event", "metric", *drop}
    out = {k: v for k, v in event.items() if k not in skip}
    out.update(unit=unit, higher_is_better=higher)
    if event["event"] == "error":
        out["value"] = None
    return out


def take_result(metrics: Metrics, out: dict, event: dict, progress: Callable[[str], None]) -> str:
    """Record a driver's "result" or "error" event in `out` (a framework's result), say it
    through `progress`, and return the metric's name."""
    name = event["metric"]
    out["metrics"][name] = record(metrics, event)
    if event["event"] == "error":
        progress(f"{out['framework']}: {name} FAILED: {event['error']}")
        for line in event.get("traceback", "").rstrip().splitlines():
            progress(f"    {line}")
    else:
        progress(f"{out['framework']}: {name} = {fmt(event['value'])} {metrics[name][0]}")
    return name


def collect(metrics: Metrics, out: dict, events: list[dict], failure: str | None, expected: Iterable[str],
            progress: Callable[[str], None]) -> None:
    """Fill `out` (a framework's result) from a driver's events: its "version" from the hello
    event, a record in out["metrics"] per result or error; each of `expected` with no event
    fails with `failure` (or "the driver ended without reporting it") and when it was lost."""
    current = None
    for event in events:
        kind = event.get("event")
        if kind == "hello":
            out["version"] = event.get("version")
        elif kind == "start":
            current = event["metric"]
        elif kind in ("result", "error"):
            take_result(metrics, out, event, progress)
            current = None
    for name in expected:
        if name not in out["metrics"]:
            why = failure or "the driver ended without reporting it"
            when = f" (during {name})" if name == current else " (before it started)"
            out["metrics"][name] = failed(metrics, name, why + when)
            progress(f"{out['framework']}: {name} FAILED: {out['metrics'][name]['error']}")


def fmt(value) -> str:
    """A figure to about three significant digits; "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(record: dict | None, extras: Iterable[str] = ()) -> str:
    """A record's value, FAILED or HUNG; then ` (key=value)` for each of `extras` it has."""
    if record is None:
        return "-"
    if record.get("value") is None:
        return "HUNG" if str(record.get("error", "")).startswith("hung") else "FAILED"
    text = fmt(record["value"])
    for key in extras:
        if key in record:
            text += f" ({key}={fmt(record[key])})"
    return text


def layout(rows: list[list[str]], left: Iterable[int]) -> list[str]:
    """Rows (the first is the header) as lines of aligned columns, with a rule under the header;
    the columns numbered in `left` are aligned left, the others right."""
    left = set(left)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(text.ljust(width) if i in left else text.rjust(width)
                               for i, (text, width) in enumerate(zip(row, widths, strict=False))).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def table(metrics: Metrics, report: dict, ratio_is: tuple[str, str], extras: Iterable[str] = ()) -> list[str]:
    """A row per metric: name, unit, actorcore's figure and, when Ray ran, Ray's, the ratio and
    what it divides (ratio_is: the wording for rates, for times)."""
    ours = report["actorcore"]["metrics"]
    with_ray = report.get("ray") is not None
    theirs = report["ray"]["metrics"] if with_ray else {}
    extras = tuple(extras)
    rows = [["metric", "unit", "actorcore"] + (["Ray", "ratio", "ratio is"] if with_ray else [])]
    for name, (unit, higher) in metrics.items():
        row = [name, unit, cell(ours.get(name), extras)]
        if with_ray:
            value = report["ratios"].get(name)
            row += [cell(theirs.get(name), extras), "-" if value is None else f"{value:.2f}x",
                    ratio_is[0] if higher else ratio_is[1]]
        rows.append(row)
    return layout(rows, left=(0, 1, 5))  # metric, unit, "ratio is"


def notes(report: dict, setting: str = "") -> list[str]:
    """The versions compared (`setting`: how, appended to them), or why Ray did not run; then
    every failed metric of either framework with its error."""
    if report.get("ray") is not None:
        versions = f"actorcore {report['actorcore'].get('version')} vs Ray {report['ray'].get('version')}"
        lines = [f"{versions}{setting}; ratio > 1 means actorcore did better."]
    else:
        lines = [f"Ray not run: {report.get('ray_skipped_reason')}; actorcore's figures only."]
    for side in ("actorcore", "ray"):
        for name, record in ((report.get(side) or {}).get("metrics") or {}).items():
            if record.get("value") is None:
                lines.append(f"{side} {name}: {record.get('error')}")
    return lines


def output(report: dict, as_json: bool, render: Callable[[dict], str]) -> int:
    """Print the report (one JSON object, or the table `render` makes of it) on stdout; the exit
    code: 1 if an actorcore metric has no figure, else 0."""
    print(json.dumps(report, indent=2) if as_json else render(report))
    return 1 if any(record.get("value") is None for record in report["actorcore"]["metrics"].values()) else 0


def sweep(name: str, value: str, grace: float = 5.0) -> int:
    """Wait up to `grace` s for the processes with `name=value` in their environment to exit,
    then SIGKILL the rest; how many were left."""
    from actorcore.testing import processes_with_env  # (the orchestrator's side: not run under Ray)

    deadline = time.monotonic() + grace
    while (left := processes_with_env(name, value)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(left)


def run_driver(python: str, script: Path, marker: str, args: list[str], env: dict, timeout: float, label: str,
               progress: Callable[[str], None], prefix: Iterable[str] = ()) -> tuple[list[dict], str | None]:
    """Run `python script --driver *args` (its own process group) for at most `timeout` s: (the
    events it printed as `marker {json}` lines, failure or None). Its other output goes to stderr.
    `prefix`: a command that runs it elsewhere and then execs it (e.g. on a host of
    actorcore.testing_hosts), so that the driver is still the process started here.

    Everything the driver starts (Ray's nodes and workers) inherits a marker in its environment;
    what is still alive once the driver is gone is killed (Ray's workers run in process groups of
    their own, so killing the driver's group may miss them).
    """
    run_name, run_id = f"{marker}_RUN", uuid.uuid4().hex
    env = {**env, run_name: run_id, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*prefix, python, str(script), "--driver", *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=None, stdin=subprocess.DEVNULL, start_new_session=True)
    failure = None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        failure = f"hung: no end within {timeout:.0f} s; process group killed"
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
            try:
                os.killpg(proc.pid, sig)  # the group this driver leads (start_new_session): Ray's nodes too
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        out, _ = proc.communicate()
    else:
        if proc.returncode != 0:
            failure = f"driver exited with code {proc.returncode}"
    if leftovers := sweep(run_name, run_id):
        progress(f"{label}: killed {leftovers} process(es) the driver left behind")
    events = []
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(marker + " "):
            try:
                events.append(json.loads(line[len(marker) + 1:]))
                continue
            except json.JSONDecodeError:
                pass
        if line.strip():
            print(f"  [{label}] {line}", file=sys.stderr, flush=True)
    return events, failure


class CliCluster:
    """A cluster to start with actorcore's CLI (`cli("start", ...)`) in a temporary ACTORCORE_HOME,
    its etcd on a free loopback port (`address`); `env` is the environment of its processes."""

    def __init__(self, python: str, prefix: str) -> None:
        from actorcore.gcs.etcd_server import _free_port

        self.python = python
        self.home = Path(tempfile.mkdtemp(prefix=prefix))
        self.address = f"127.0.0.1:{_free_port()}"
        self.env = {**os.environ, "ACTORCORE_HOME": str(self.home), "PYTHONPATH": str(ROOT)}
        self.env.pop("ACTORCORE_TOKEN", None)
        self.env.pop("ACTORCORE_ADDRESS", None)

    def cli(self, *args: str, timeout: float = 120) -> None:
        """`actorcore ARGS` in this cluster's home; RuntimeError with its output if it fails."""
        result = subprocess.run([self.python, "-m", "actorcore", *args], check=False, env=self.env, capture_output=True,
                                text=True, timeout=timeout, cwd=str(ROOT), stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"`actorcore {' '.join(args)}` failed with code {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
