"""What runtime envs cost: `python -m benchmarks.runtime_env [--mib N] [--rounds N] [--json]`.

Two figures the issue asks for (docs/architecture.md, "Runtime environments"):

- job_first_task_cold_s / job_first_task_cached_s: on a cluster started with `actorcore start
  --head` (a private ACTORCORE_HOME), a job's driver (a fresh Python process) calls
  `init(address=..., runtime_env={"working_dir": DIR})` with DIR holding N MiB (default 10) of
  incompressible files plus a module, and runs one task that imports the module: the time from
  `init` to that task's result, measured in the driver. Cold: the first job (the directory is
  packed, uploaded, extracted on the node, a worker started for it). Cached: a second job with
  the same directory but its own `env_vars` (so no worker of the first job is reused): the
  package is found in the cluster and on the node; a worker still has to start.
- worker_start_s, by runtime env: in one session, the median time of `get(f.remote())` for a
  task with ``max_calls=1`` (each one needs a new worker: its worker retires after it), with
  no runtime env, with `env_vars`, and with the N MiB working_dir (its package already set
  up on the node): what a runtime env adds to starting a worker.

Progress goes to stderr; a table (or, with --json, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

DRIVER = """
import json, sys, time
import actorcore as ray
start = time.perf_counter()
ray.init(address=sys.argv[1], runtime_env={"working_dir": sys.argv[2], "env_vars": {"JOB": sys.argv[3]}})

@ray.remote
def first():
    import shipped
    return shipped.NAME

assert ray.get(first.remote()) == "shipped"
print(json.dumps({"seconds": time.perf_counter() - start}))
ray.shutdown()
"""


def _working_dir(root: Path, mib: int) -> Path:
    directory = root / "working_dir"
    (directory / "data").mkdir(parents=True)
    (directory / "shipped.py").write_text("NAME = 'shipped'\n")
    for index in range(mib):
        (directory / "data" / f"blob{index}.bin").write_bytes(os.urandom(1 << 20))
    return directory


def _jobs(directory: Path, root: Path) -> dict[str, float]:
    home = root / "home"
    env = {**os.environ, "ACTORCORE_HOME": str(home)}
    env.pop("ACTORCORE_TOKEN", None)
    env.pop("ACTORCORE_ADDRESS", None)

    def cli(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "actorcore", *args], env=env, check=True, capture_output=True,
                       timeout=120)

    from actorcore.gcs.etcd_server import _free_port

    address = f"127.0.0.1:{_free_port()}"
    cli("start", "--head", "--port", address.rsplit(":", 1)[1], "--num-cpus", "2", "--no-include-dashboard")
    try:
        figures = {}
        for name in ("cold", "cached"):
            result = subprocess.run([sys.executable, "-c", DRIVER, address, str(directory), name], env=env,
                                    check=True, capture_output=True, text=True, timeout=300)
            figures[f"job_first_task_{name}_s"] = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
            print(f"job, {name}: {figures[f'job_first_task_{name}_s']:.2f} s", file=sys.stderr)
        return figures
    finally:
        cli("stop")


def _worker_starts(directory: Path, rounds: int) -> dict[str, float]:
    import actorcore as ray

    ray.init(num_cpus=2)

    @ray.remote(max_calls=1)
    def fresh():
        return os.getpid()

    envs = {"none": None, "env_vars": {"env_vars": {"MODE": "bench"}},
            "working_dir": {"working_dir": str(directory), "env_vars": {"MODE": "bench"}}}
    figures = {}
    try:
        for name, runtime_env in envs.items():
            task = fresh.options(runtime_env=runtime_env) if runtime_env else fresh
            ray.get(task.remote())  # set up once: its package extracted, its first worker started
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                ray.get(task.remote())
                times.append(time.perf_counter() - start)
            figures[f"worker_start_{name}_s"] = statistics.median(times)
            print(f"worker start, {name}: {figures[f'worker_start_{name}_s'] * 1000:.0f} ms", file=sys.stderr)
    finally:
        ray.shutdown()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtime_env", description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=10, help="MiB of files in the working_dir (default 10)")
    parser.add_argument("--rounds", type=int, default=10, help="worker starts timed per runtime env (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="actorcore-bench-runtime-env-"))
    try:
        directory = _working_dir(root, args.mib)
        figures = {**_jobs(directory, root), **_worker_starts(directory, args.rounds)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
        return 0
    for name, value in figures.items():
        print(f"{name:<32}{value:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
