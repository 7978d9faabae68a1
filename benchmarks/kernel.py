"""Actor-kernel microbenchmarks: `python -m benchmarks.kernel [--json] [--ray-python PATH]`.

Prints messages/s for in-process and cross-process tells, the sequential cross-process ask
round trip, and the time from kill -9 of a supervised child process until its replacement
runs. With `--ray-python` (the python of a virtualenv where Ray is installed) it also runs
benchmarks/ray_baseline.py there, in the same run, and prints actorcore/Ray ratios.

One sender process and one receiver process (this one and a child started by it) talk over
the kernel's transports: the Unix-socket stream (same host, the default) and the TCP stream
(other hosts; on loopback here, so without TLS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from actorcore.cluster_files import new_token
from actorcore.env import TOKEN_ENV
from actorcore.kernel import Actor, ActorSystem, run

#: The cluster token of the benchmark's systems; the serving child inherits it.
TOKEN = os.environ.setdefault(TOKEN_ENV, new_token())

ROOT = Path(__file__).resolve().parents[1]


class Counter(Actor):
    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message):
        if message is None:
            return self.count
        self.count += 1
        return message


async def _in_process_tells(n: int) -> float:
    system = await ActorSystem.start(uds=False, token=TOKEN)
    try:
        ref = system.spawn(Counter)
        await ref.ask(None)
        started = time.perf_counter()
        for i in range(n):
            ref.tell(i)
        assert await ref.ask(None, timeout=120) == n
        return n / (time.perf_counter() - started)
    finally:
        await system.shutdown()


async def _serve(transport: str) -> None:
    tcp = "127.0.0.1:0" if transport == "tcp" else None
    system = await ActorSystem.start(tcp=tcp, uds=transport == "uds", token=TOKEN)
    ref = system.spawn(Counter, name="counter")
    print(ref.to_uri(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await system.shutdown(timeout=1)


async def _cross_process(transport: str, tells: int, asks: int) -> dict:
    child = subprocess.Popen(  # noqa: ASYNC220 - started before anything is measured
        [sys.executable, "-m", "benchmarks.kernel", "--serve", transport],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        uri = child.stdout.readline().strip()
        system = await ActorSystem.start(uds=False, token=TOKEN)
        try:
            ref = system.ref_from_uri(uri)
            for _ in range(200):  # connect and warm up
                await ref.ask(0)
            before = await ref.ask(None)
            started = time.perf_counter()
            for i in range(tells):
                ref.tell(i)
            assert await ref.ask(None, timeout=300) == before + tells
            tell_rate = tells / (time.perf_counter() - started)
            latencies = []
            for i in range(asks):
                t0 = time.perf_counter()
                await ref.ask(i)
                latencies.append(time.perf_counter() - t0)
            return {
                "tell_per_s": tell_rate,
                "ask_per_s": asks / sum(latencies),
                "ask_median_us": statistics.median(latencies) * 1e6,
                "ask_p99_us": sorted(latencies)[int(len(latencies) * 0.99)] * 1e6,
            }
        finally:
            await system.shutdown()
    finally:
        child.stdin.close()
        child.wait(10)


async def _supervised_restart(rounds: int) -> dict:
    from supervisor import Supervisor, process_spec

    ready = "import sys; sys.stdout.write('r'); sys.stdout.flush(); sys.stdin.read()"
    started: asyncio.Queue = asyncio.Queue()
    exited: asyncio.Queue = asyncio.Queue()

    def on_event(event) -> None:
        if event.kind == "child_started":
            started.put_nowait(event.child)
        elif event.kind == "child_exited":
            exited.put_nowait(time.perf_counter())

    spec = process_spec("child", [sys.executable, "-c", ready],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    supervisor = Supervisor([spec], max_restarts=rounds + 1, period=3600, on_event=on_event)
    restart_ms, detect_ms = [], []
    await supervisor.start()
    try:
        child = await started.get()
        await child.process.stdout.read(1)
        for _ in range(rounds):
            t0 = time.perf_counter()
            os.kill(child.pid, signal.SIGKILL)
            detect_ms.append((await exited.get() - t0) * 1e3)
            child = await started.get()
            await child.process.stdout.read(1)
            restart_ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        await supervisor.shutdown()
    return {"restart_ms": statistics.median(restart_ms), "detect_ms": statistics.median(detect_ms)}


async def _all(args) -> dict:
    results: dict = {}
    results["tell_inprocess_per_s"] = await _in_process_tells(args.tells * 5)
    uds = await _cross_process("uds", args.tells, args.asks)
    results["tell_crossprocess_per_s"] = uds["tell_per_s"]
    results["ask_crossprocess_sync_per_s"] = uds["ask_per_s"]
    results["ask_crossprocess_median_us"] = uds["ask_median_us"]
    results["ask_crossprocess_p99_us"] = uds["ask_p99_us"]
    tcp = await _cross_process("tcp", args.tells, args.asks)
    results["tell_crossprocess_tcp_per_s"] = tcp["tell_per_s"]
    results["ask_crossprocess_tcp_per_s"] = tcp["ask_per_s"]
    results["ask_crossprocess_tcp_median_us"] = tcp["ask_median_us"]
    results["ask_crossprocess_tcp_p99_us"] = tcp["ask_p99_us"]
    restart = await _supervised_restart(args.restarts)
    results["supervised_restart_ms"] = restart["restart_ms"]
    results["supervised_exit_detected_ms"] = restart["detect_ms"]
    return results


def _ray(ray_python: str) -> dict:
    out = subprocess.run(
        [ray_python, str(ROOT / "benchmarks" / "ray_baseline.py")],
        check=False, capture_output=True, text=True, timeout=900,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RAY_BASELINE ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"the Ray baseline failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1].split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description="actor-kernel microbenchmarks")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tells", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=5_000)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--ray-python", help="python of a virtualenv with Ray: adds Ray's figures and ratios")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run(_serve(args.serve))
        return
    results = run(_all(args))
    if args.ray_python:
        ray = _ray(args.ray_python)
        results["ray"] = ray
        results["ratio_vs_ray"] = {
            "tell_crossprocess": results["tell_crossprocess_per_s"] / ray["actor_call_async_per_s"],
            "ask_crossprocess_sync": results["ask_crossprocess_sync_per_s"] / ray["actor_call_sync_per_s"],
            "restart_speedup": ray["actor_restart_ms"] / results["supervised_restart_ms"],
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
