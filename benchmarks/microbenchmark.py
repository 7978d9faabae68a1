"""`actorcore microbenchmark [--json] [--quick] [--only NAME,...] [--ray-python PATH | --no-ray] [--cluster | --spill]`.

Ray's `ray microbenchmark` workloads (ray/_private/ray_perf.py), plus init_seconds,
get_100mb_zero_copy and mapreduce_2m_words_seconds, run under actorcore and then under Ray
in the same invocation. The workloads live once in benchmarks/workloads.py, written against
Ray's API with the framework as a parameter; this module runs that file as a script twice:
with this python (`--framework actorcore`) and with Ray's python (`--framework ray`, by
default /tmp/rayvenv/bin/python when it exists). Both get `init(num_cpus=2)` on loopback.

Each framework runs init_seconds in fresh processes, then every other workload in one
shared session (as Ray's script does). A workload that fails is reported with its error; one
that hangs (no result within the timeout) is reported as hung, its process group is killed,
and the remaining workloads continue in a new session.

Ratios: for rates (higher is better) actorcore/Ray; for times Ray/actorcore (the speedup),
so a ratio > 1 always means actorcore did better. Progress goes to stderr; the table (or,
with --json, one JSON object) to stdout. Before either framework runs, this process measures
the machine's memcpy speed once (`memcpy_gbps` in the report, a line under the table): the
ceiling of the large-object rates.

--cluster runs benchmarks/cluster.py instead (3-node clusters on this machine, both frameworks);
--spill runs benchmarks/spill.py (put 3x a small object store's capacity, get it all back).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    from . import report as _report
    from . import workloads as _workloads
except ImportError:  # run as a script: python benchmarks/microbenchmark.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import report as _report  # type: ignore[no-redef]
    import workloads as _workloads  # type: ignore[no-redef]

METRICS = _workloads.METRICS
SESSION_WORKLOADS = _workloads.SESSION_WORKLOADS
MARKER = _workloads.MARKER
WORKLOADS_SCRIPT = Path(_workloads.__file__).resolve()
ROOT = WORKLOADS_SCRIPT.parents[1]


def progress(message: str) -> None:
    print(f"[microbenchmark] {message}", file=sys.stderr, flush=True)


class _Child:
    """One workloads.py process: reads its MICROBENCH lines, forwards the rest to stderr."""

    def __init__(self, python: str, args: list[str], label: str) -> None:
        env = dict(os.environ)
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        env["PYTHONUNBUFFERED"] = "1"
        self.label = label
        self.proc = subprocess.Popen(
            [python, str(WORKLOADS_SCRIPT), *args], cwd=str(ROOT), env=env,
            stdout=subprocess.PIPE, stderr=None, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self._buffer = b""

    def next_event(self, timeout: float):
        """The next event dict; None at EOF; raises TimeoutError after `timeout` seconds of silence."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(MARKER + " "):
                    try:
                        return json.loads(text[len(MARKER) + 1:])
                    except json.JSONDecodeError:
                        pass
                if text.strip():
                    print(f"  [{self.label}] {text}", file=sys.stderr, flush=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                if self._buffer:
                    self._buffer += b"\n"
                    continue
                return None
            self._buffer += chunk

    def finish(self, kill: bool = False) -> int | None:
        """Wait for the process; with kill, SIGTERM it, then SIGKILL its process group."""
        if kill and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this child leads (start_new_session)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.proc.stdout.close()
        return code


def run_framework(framework: str, python: str, quick: bool, timeout: float,
                  only: tuple[str, ...] | None = None) -> dict:
    """The metrics of one framework (all, or those named in `only`):
    {framework, version, python, metrics: {name: record}}."""
    out = {"framework": framework, "python": python, "version": None, "metrics": {}}
    metrics = out["metrics"]

    # init_seconds: each sample in a fresh process.
    samples, extras, errors = [], [], []
    for rep in range(0 if only is not None and "init_seconds" not in only else 1 if quick else 3):
        progress(f"{framework}: init_seconds (fresh process {rep + 1})")
        child = _Child(python, ["--framework", framework, "--init-only"], framework)
        event = None
        try:
            while True:
                event = child.next_event(timeout)
                if event is None or event["event"] in ("result", "error"):
                    break
        except TimeoutError:
            event = {"event": "error", "metric": "init_seconds",
                     "error": f"hung: no init()+first task result within {timeout:.0f} s"}
            child.finish(kill=True)
        else:
            code = child.finish()
            if event is None:
                event = {"event": "error", "metric": "init_seconds",
                         "error": f"process exited with code {code} before reporting"}
        if event["event"] == "result":
            samples.append(event["value"])
            extras.append({k: event[k] for k in ("init_call_s", "first_task_s", "import_s", "shutdown_s")})
        else:
            errors.append(event["error"])
            progress(f"{framework}: init_seconds FAILED: {event['error']}")
    unit, higher = METRICS["init_seconds"]
    if only is not None and "init_seconds" not in only:
        pass
    elif samples:
        metrics["init_seconds"] = {
            "value": statistics.median(samples), "samples": samples, "unit": unit,
            "higher_is_better": higher, "details": extras, **({"errors": errors} if errors else {})}
    else:
        metrics["init_seconds"] = {**_report.failed(METRICS, "init_seconds", errors[0]), "errors": errors}

    # The rest: one shared session; a new one after a hang or crash.
    remaining = [name for name in SESSION_WORKLOADS if only is None or name in only]
    while remaining:
        progress(f"{framework}: starting a session for {len(remaining)} workload(s)")
        child = _Child(python, ["--framework", framework, "--only", ",".join(remaining),
                                *(["--quick"] if quick else [])], framework)
        current, started = None, time.monotonic()
        try:
            while True:
                event = child.next_event(timeout)
                if event is None:
                    break
                kind = event["event"]
                if kind == "hello":
                    out["version"] = event.get("version")
                elif kind == "start":
                    current, started = event["metric"], time.monotonic()
                    progress(f"{framework}: {current} ...")
                elif kind in ("result", "error"):
                    name = _report.take_result(METRICS, out, event, progress)
                    if name in remaining:
                        remaining.remove(name)
                    current = None
        except TimeoutError:
            victim = current or remaining[0]
            waited = time.monotonic() - started if current else timeout
            error = (f"hung: no result within {timeout:.0f} s (ran {waited:.0f} s); process group killed"
                     if current else f"hung: the session did not start within {timeout:.0f} s")
            progress(f"{framework}: {victim} {error}")
            child.finish(kill=True)
            metrics[victim] = _report.failed(METRICS, victim, error)
            remaining.remove(victim)
            continue
        code = child.finish()
        if remaining:
            victim = current or remaining[0]
            error = f"process exited with code {code} " + (f"during {victim}" if current else "before starting it")
            progress(f"{framework}: {victim} FAILED: {error}")
            metrics[victim] = _report.failed(METRICS, victim, error)
            remaining.remove(victim)
    return out


def render_table(report: dict) -> str:
    shown = {name: METRICS[name] for name in report["metrics"]}
    lines = _report.table(shown, report, ("actorcore/Ray (rate)", "Ray/actorcore (time)"), extras=("zero_copy",))
    notes = _report.notes(report, setting=f", num_cpus={_workloads.NUM_CPUS} each")
    return "\n".join([*lines, "", _report.memcpy_note(report), *notes])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorcore microbenchmark", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _report.add_arguments(parser, quick="short runs, for smoke tests",
                          timeout="seconds without a result before a workload counts as hung "
                          "(default 180, 90 with --quick)")
    parser.add_argument("--only", metavar="NAME,...",
                        help="run only these workloads (comma-separated metric names; default: all)")
    parser.add_argument("--cluster", action="store_true",
                        help="run the cluster benchmarks instead (benchmarks/cluster.py: 3 nodes on this machine)")
    parser.add_argument("--spill", action="store_true",
                        help="run the spill benchmark instead (benchmarks/spill.py: 3x a small store's capacity)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "cluster", False):
        try:
            from . import cluster
        except ImportError:  # run as a script
            import cluster  # type: ignore[no-redef]
        return cluster.run(args)
    if getattr(args, "spill", False):
        try:
            from . import spill
        except ImportError:  # run as a script
            import spill  # type: ignore[no-redef]
        return spill.run(args)
    timeout = args.timeout or (90.0 if args.quick else 180.0)
    only = _selected(getattr(args, "only", None))
    ray_python, skipped = _report.ray_python(args)
    if skipped:
        progress(f"Ray will not run ({skipped}): actorcore's figures only")

    metrics = {name: METRICS[name] for name in (only or METRICS)}
    report = {"quick": bool(args.quick), "num_cpus": _workloads.NUM_CPUS,
              "ratio_definition": _report.RATIO_DEFINITION, "metrics": _report.metric_units(metrics)}
    report["memcpy_gbps"] = _report.memcpy_gbps()
    progress(f"memcpy on this machine: {report['memcpy_gbps']:.2f} GB/s")
    started = time.monotonic()
    report["actorcore"] = run_framework("actorcore", sys.executable, args.quick, timeout, only)
    if ray_python:
        report["ray"] = run_framework("ray", ray_python, args.quick, timeout, only)
        ray_metrics = report["ray"]["metrics"]
        if all(record.get("value") is None for record in ray_metrics.values()):
            progress("Ray produced no figures (see errors above)")
    else:
        report["ray"] = None
        report["ray_skipped_reason"] = skipped
    report["ratios"] = _report.ratios(metrics, report)
    report["wall_seconds"] = time.monotonic() - started
    return _report.output(report, args.json, render_table)


def _selected(only: str | None) -> tuple[str, ...] | None:
    """The metric names `--only` gives, in METRICS order; SystemExit naming any unknown one."""
    if only is None:
        return None
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise SystemExit(f"--only: unknown workload(s) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(METRICS)}")
    return tuple(name for name in METRICS if name in names)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
