"""init/shutdown as whole programs: reinit rules, output forwarding, cleanup, driver death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]


def run_program(source: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)


SESSION = "from actorcore import api; print('session', api._local.node_id, api._local.etcd.pid, flush=True)"


def session_of(output: str) -> tuple[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("session "))
    _, session, etcd_pid = line.split()
    return session, int(etcd_pid)


def processes_of(session: str, etcd_pid: int) -> list[str]:
    """The node and worker processes of one session, and its etcd, if still running."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines()
            if session in line or line.split()[0] == str(etcd_pid)]


def shm_segments(session: str) -> list[str]:
    return [name for name in os.listdir("/dev/shm") if session in name]


def test_init_twice_shutdown_then_init_and_output_with_pid():
    result = run_program("""
        import actorcore as ray
        ray.init(num_cpus=2)
        try:
            ray.init()
        except RuntimeError as error:
            print("second init:", "twice" in str(error))
        ray.init(ignore_reinit_error=True)

        @ray.remote
        def hello(i):
            import os
            print(f"hello from a worker {i}")
            return os.getpid()

        pid = ray.get(hello.remote(1))
        ray.shutdown()
        print("initialized after shutdown:", ray.is_initialized())
        ray.init(num_cpus=1)
        again = ray.get(hello.remote(2)) > 0
        ray.shutdown()
        print("again:", again)
        print("worker pid", pid)
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "second init: True" in lines
    assert "initialized after shutdown: False" in lines
    assert "again: True" in lines
    pid = next(line.split()[-1] for line in lines if line.startswith("worker pid"))
    assert f"(pid={pid}) hello from a worker 1" in lines


def test_shutdown_leaves_nothing_behind_and_memory_stays_flat():
    result = run_program("""
        import os, numpy as np
        import actorcore as ray
        ray.init(num_cpus=2)
        """ + SESSION + """
        array = np.ones(10 * 1024 * 1024, dtype=np.uint8)

        def rss_mb():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

        def shm_mb():  # memory held (the arena is a sparse file)
            return sum(os.stat(os.path.join("/dev/shm", n)).st_blocks * 512 for n in os.listdir("/dev/shm")
                       if n.startswith("actorcore")) / 2**20

        for i in range(2000):
            ref = ray.put(array)
            assert ray.get(ref)[0] == 1
            del ref
            if i == 100:
                baseline = rss_mb()
        print("rss growth MB", round(rss_mb() - baseline))
        from actorcore.testing import wait_until
        wait_until(lambda: shm_mb() <= 50, 30, "the shared memory of the dropped objects to be freed",
                   details=lambda: f"{shm_mb():.0f} MB still held")
        print("shm MB", round(shm_mb()))
        ray.shutdown()
    """, timeout=80)
    assert result.returncode == 0, result.stderr
    growth = int(next(line for line in result.stdout.splitlines() if line.startswith("rss growth")).split()[-1])
    in_shm = int(next(line for line in result.stdout.splitlines() if line.startswith("shm MB")).split()[-1])
    assert growth < 200, f"driver memory grew by {growth} MB over 2000 put/get/drop of 10 MB"
    assert in_shm <= 50, f"{in_shm} MB of shared memory still held"
    session, etcd_pid = session_of(result.stdout)
    assert processes_of(session, etcd_pid) == []
    assert shm_segments(session) == []


def test_killed_driver_takes_its_cluster_down():
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        import actorcore as ray
        ray.init(num_cpus=2)
        """ + SESSION + """
        kept = ray.put(b"x" * (1 << 20))

        @ray.remote
        def f():
            return 1

        ray.get(f.remote())
        print("ready", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        session, etcd_pid = session_of(driver.stdout.readline())
        assert driver.stdout.readline().strip() == "ready"
        assert processes_of(session, etcd_pid), "the cluster should be running"
        assert shm_segments(session), "the put should be in shared memory"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        wait_until(lambda: not (processes_of(session, etcd_pid) or shm_segments(session)), 30,
                   "the killed driver's cluster to end and free its shared memory",
                   details=lambda: (processes_of(session, etcd_pid), shm_segments(session)))
        assert processes_of(session, etcd_pid) == []
        assert shm_segments(session) == []
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_workers_import_user_modules_like_the_driver(tmp_path):
    (tmp_path / "helpers_for_test.py").write_text("def triple(x):\n    return 3 * x\n")
    (tmp_path / "main.py").write_text(textwrap.dedent("""
        import os
        import actorcore as ray
        from helpers_for_test import triple

        @ray.remote
        def use_module(x):
            import helpers_for_test
            return helpers_for_test.triple(x), os.getcwd(), os.environ.get("SEEN_BY_WORKERS")

        ray.init(num_cpus=1)
        print(ray.get(use_module.remote(5)) == (15, os.getcwd(), "yes"), triple(1))
        ray.shutdown()
    """))
    result = subprocess.run([sys.executable, "main.py"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, "SEEN_BY_WORKERS": "yes"}, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True 3"
