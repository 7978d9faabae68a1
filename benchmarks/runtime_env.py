"""What runtime envs cost, against Ray: `python -m benchmarks.runtime_env [--mib N] [--rounds N]
[--json] [--ray-python PATH | --no-ray]`.

Two figures the issue asks for (docs/architecture.md, "Runtime environments"), each taken the
same way for actorcore and for Ray (the same scripts, `import actorcore as ray` or `import ray`,
run with each one's python):

- job_first_task_cold_s / job_first_task_cached_s: on a cluster started with `actorcore start
  --head` / `ray start --head` (private folders), a job's driver (a fresh Python process) calls
  `init(address=..., runtime_env={"working_dir": DIR})` with DIR holding N MiB (default 10) of
  incompressible files plus a module, and runs one task that imports the module: the time from
  `init` to that task's result, measured in the driver. Cold: the first job (the directory is
  packed, uploaded, extracted on the node, a worker started for it). Cached: a second job with
  the same directory but its own `env_vars` (so no worker of the first job is reused): the
  package is found in the cluster and on the node; a worker still has to start.
- worker_start_s, by runtime env: in a local session, the median time of `get(f.remote())`
  for a task with ``max_calls=1`` (each one needs a new worker: its worker retires after it),
  with no runtime env, with a task's `env_vars`, and (in a second session, since Ray takes a
  local directory at the job level only) with the job's N MiB working_dir, its package already
  set up on the node: what a runtime env adds to starting a worker.

Ratios are Ray's time over actorcore's (> 1: actorcore is faster). Progress goes to stderr; a
table (or, with --json, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .report import fmt, layout, ray_python

__all__ = ["main"]

FIGURES = ("job_first_task_cold_s", "job_first_task_cached_s", "worker_start_none_s", "worker_start_env_vars_s",
           "worker_start_working_dir_s")

DRIVER = """
import json, sys, time
import {module} as ray
start = time.perf_counter()
ray.init(address=sys.argv[1], runtime_env={{"working_dir": sys.argv[2], "env_vars": {{"JOB": sys.argv[3]}}}})

@ray.remote
def first():
    import shipped
    return shipped.NAME

assert ray.get(first.remote()) == "shipped"
print(json.dumps({{"seconds": time.perf_counter() - start}}))
ray.shutdown()
"""

WORKER_STARTS = """
import json, os, statistics, sys, time
import {module} as ray
directory, rounds, temp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
job_env = {{"working_dir": directory}} if sys.argv[4] == "working_dir" else None  # (Ray takes a local
ray.init(num_cpus=2, runtime_env=job_env,  # working_dir at the job level only)
         **({{"_temp_dir": temp}} if ray.__name__ == "ray" else {{}}))

@ray.remote(max_calls=1)
def fresh():
    return os.getpid()

envs = {{"working_dir": None}} if job_env else {{"none": None, "env_vars": {{"env_vars": {{"MODE": "bench"}}}}}}
figures = {{}}
for name, runtime_env in envs.items():
    task = fresh.options(runtime_env=runtime_env) if runtime_env else fresh
    ray.get(task.remote())  # set up once: its package extracted, its first worker started
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        ray.get(task.remote())
        times.append(time.perf_counter() - start)
    figures[f"worker_start_{{name}}_s"] = statistics.median(times)
print(json.dumps(figures))
ray.shutdown()
"""


def _working_dir(root: Path, mib: int) -> Path:
    directory = root / "working_dir"
    (directory / "data").mkdir(parents=True)
    (directory / "shipped.py").write_text("NAME = 'shipped'\n")
    for index in range(mib):
        (directory / "data" / f"blob{index}.bin").write_bytes(os.urandom(1 << 20))
    return directory


class _Framework:
    """How to start and stop a head of actorcore (`python` None: this one) or of Ray (its python)."""

    def __init__(self, name: str, python: str, root: Path) -> None:
        self.name, self.python, self.root = name, python, root
        root.mkdir()
        self.short = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # Ray's socket paths must stay short
        self.env = {**os.environ, "ACTORCORE_HOME": str(root / "home"), "RAY_USAGE_STATS_ENABLED": "0",
                    "HOME": str(root), "TMPDIR": str(root)}  # Ray keeps an auth token in ~/.ray
        for variable in ("ACTORCORE_TOKEN", "ACTORCORE_ADDRESS", "RAY_ADDRESS"):
            self.env.pop(variable, None)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([self.python, *args], check=False, env=self.env, capture_output=True, text=True,
                                timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args[:3])} exited with {result.returncode}:\n"
                               f"{result.stderr[-3000:]}")
        return result

    def start_head(self, port: int) -> None:
        if self.name == "actorcore":
            self.run("-m", "actorcore", "start", "--head", "--port", str(port), "--num-cpus", "2",
                     "--no-include-dashboard", timeout=120)
        else:
            self.run("-m", "ray.scripts.scripts", "start", "--head", "--port", str(port), "--num-cpus", "2",
                     "--include-dashboard", "false", "--temp-dir", str(self.short / "head"), timeout=120)

    def stop_head(self) -> None:
        module = "actorcore" if self.name == "actorcore" else "ray.scripts.scripts"
        self.run("-m", module, "stop", timeout=120)

    def script(self, text: str, *args: str) -> dict:
        result = self.run("-c", text.format(module=self.name if self.name == "ray" else "actorcore"), *args,
                          timeout=600)
        sys.stderr.write(result.stderr if self.name == "actorcore" else "")
        return json.loads(result.stdout.strip().splitlines()[-1])


def _measure(framework: _Framework, directory: Path, rounds: int) -> dict[str, float]:
    try:
        figures = _jobs(framework, directory)
        for mode in ("plain", "working_dir"):
            figures.update(framework.script(WORKER_STARTS, str(directory), str(rounds), str(framework.short / mode),
                                            mode))
    finally:
        shutil.rmtree(framework.short, ignore_errors=True)
    for name, seconds in figures.items():
        print(f"{framework.name}: {name}: {seconds:.3f} s", file=sys.stderr)
    return figures


def _jobs(framework: _Framework, directory: Path) -> dict[str, float]:
    """The first task of a cold job and of a cached one, on a head started for them."""
    from actorcore.gcs.etcd_server import _free_port

    port = _free_port()
    framework.start_head(port)
    try:
        return {f"job_first_task_{name}_s": framework.script(DRIVER, f"127.0.0.1:{port}", str(directory),
                                                             name)["seconds"]
                for name in ("cold", "cached")}
    finally:
        framework.stop_head()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtime_env", description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=10, help="MiB of files in the working_dir (default 10)")
    parser.add_argument("--rounds", type=int, default=10, help="worker starts timed per runtime env (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ray-python", metavar="PATH", help="python of a virtualenv with Ray")
    parser.add_argument("--no-ray", action="store_true", help="run actorcore only")
    args = parser.parse_args(argv)
    ray, skipped = ray_python(args)
    root = Path(tempfile.mkdtemp(prefix="actorcore-bench-runtime-env-"))
    report: dict = {"actorcore": {}, "ray": None, "ratios": {}, "ray_skipped_reason": skipped}
    try:
        directory = _working_dir(root, args.mib)
        report["actorcore"] = _measure(_Framework("actorcore", sys.executable, root / "actorcore"), directory,
                                       args.rounds)
        if ray:
            report["ray"] = _measure(_Framework("ray", ray, root / "ray"), directory, args.rounds)
            report["ratios"] = {name: report["ray"][name] / report["actorcore"][name] for name in FIGURES}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
        return 0
    rows = [["figure", "actorcore s"] + (["Ray s", "Ray/actorcore"] if ray else [])]
    for name in FIGURES:
        row = [name, fmt(report["actorcore"][name])]
        if ray:
            row += [fmt(report["ray"][name]), f"{report['ratios'][name]:.2f}x"]
        rows.append(row)
    print("\n".join(layout(rows, left=(0,))))
    if not ray:
        print(f"Ray not run: {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
