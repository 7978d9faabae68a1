"""Ray's figures for the kernel benchmark, run with the python of a virtualenv holding Ray.

Prints one line `RAY_BASELINE {json}` (Ray's own log lines may surround it): actor calls/s
without waiting (the closest thing Ray has to a tell), sequential
`ray.get(actor.method.remote())` round trips, and the time from kill -9 of an actor's worker
until a restarted incarnation answers (max_restarts=-1).
"""

import json
import os
import signal
import statistics
import time

import ray

MARKER = "RAY_BASELINE"

@ray.remote(max_restarts=-1)
class Counter:
    def __init__(self):
        self.count = 0

    def add(self, x):
        self.count += 1
        return x

    def pid(self):
        return os.getpid()


def main():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        actor = Counter.remote()
        ray.get([actor.add.remote(0) for _ in range(200)])
        n = 20_000
        started = time.perf_counter()
        refs = [actor.add.remote(i) for i in range(n)]
        ray.get(refs[-1])
        async_rate = n / (time.perf_counter() - started)
        del refs
        latencies = []
        for i in range(2_000):
            t0 = time.perf_counter()
            ray.get(actor.add.remote(i))
            latencies.append(time.perf_counter() - t0)
        restart_ms = []
        for _ in range(5):
            pid = ray.get(actor.pid.remote())
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    if ray.get(actor.pid.remote(), timeout=30) != pid:
                        break
                except ray.exceptions.RayActorError:
                    time.sleep(0.001)
            restart_ms.append((time.perf_counter() - t0) * 1e3)
        print(MARKER, json.dumps({
            "ray_version": ray.__version__,
            "actor_call_async_per_s": async_rate,
            "actor_call_sync_per_s": len(latencies) / sum(latencies),
            "actor_call_sync_median_us": statistics.median(latencies) * 1e6,
            "actor_restart_ms": statistics.median(restart_ms),
        }))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
