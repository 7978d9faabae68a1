"""`actorcore supervise`: a real daemon process keeping services alive on a real cluster.

- kill -9 of a service's worker: back within 2 s, restored from its last checkpoint;
- kill -9 of the daemon, then a new daemon: it adopts the running services (same process, no
  restart), and restores an adopted service killed later;
- an invalid spec: rejected with a message naming the field, nothing started;
- no --address and no cluster: a detached daemon starts a local head (init(address="auto")
  reaches it) and stops it with itself.

One single-node cluster for the module (tests/services/conftest.py); every test stops its
daemon (SIGTERM: the services are checkpointed and killed) and the cluster is stopped at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from actorcore.testing import wait_until
from tests.services.helpers import PRELUDE, run, start_daemon, stop_daemon, wait_for_checkpoint, wait_for_log

SPEC = """
[supervisor]
max_restarts = 10
period = 10

[services.NAME]
class = "examples.services.counter:Counter"
kwargs = { start = 5 }
checkpoint_interval = 0.2
"""

def spec_file(tmp_path: Path, name: str) -> Path:
    """A spec of one counter service; each test names its own (checkpoints outlive a daemon)."""
    path = tmp_path / "services.toml"
    path.write_text(SPEC.replace("NAME", name))
    return path


@pytest.mark.timeout(150)
def test_a_killed_service_comes_back_with_its_checkpointed_state(cluster, tmp_path):
    log = tmp_path / "daemon.log"
    daemon = start_daemon(cluster, spec_file(tmp_path, "counter"), log)
    try:
        counted = run(cluster, """
            handle, pid = answer("counter")
            print(json.dumps({"counts": [ray.get(handle.incr.remote()) for _ in range(3)], "pid": pid}))
        """)
        assert counted["counts"] == [6, 7, 8]
        wait_for_checkpoint(cluster, "counter", {"count": 8}, log)
        found = run(cluster, f"""
            pid = {counted["pid"]}
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            handle, new_pid = answer("counter", not_pid=pid)
            back = time.monotonic() - killed
            print(json.dumps({{"back": back, "pid": pid, "new_pid": new_pid,
                              "count": ray.get(handle.get.remote()),
                              "restored": ray.get(handle.was_restored.remote())}}))
        """)
        assert found["new_pid"] != found["pid"]
        assert found["back"] < 15, found  # generous: benchmarks/services.py measures the latency
        assert found["count"] == 8 and found["restored"], found

        def counter_row() -> dict:
            status = cluster.cli("supervise-status", "--address", cluster.address, "--json")
            (row,) = [row for row in json.loads(status.stdout)["services"] if row["service"] == "counter"]
            return row

        # the new incarnation answers before the daemon's record of the restart lands in etcd
        row = wait_until(lambda: (row := counter_row())["pid"] == found["new_pid"] and row["state"] == "ALIVE"
                         and row["restarts"] >= 1 and row, 30,
                         "the status to show the new incarnation", details=counter_row)
        assert row["service"] == "counter" and row["state"] == "ALIVE"
        assert row["pid"] == found["new_pid"] and row["restarts"] == 1
        assert row["checkpoint_age"] is not None and row["checkpoint_age"] < 5
        table = cluster.cli("supervise-status", "--address", cluster.address).stdout
        assert "counter" in table and "ALIVE" in table
    finally:
        assert stop_daemon(daemon, log) == 0, log.read_text()
    # a graceful stop killed the service
    gone = run(cluster, """
        try:
            ray.get_actor("counter")
            print(json.dumps({"gone": False}))
        except ValueError:
            print(json.dumps({"gone": True}))
    """)
    assert gone["gone"], log.read_text()
    rows = json.loads(cluster.cli("supervise-status", "--address", cluster.address, "--json").stdout)["services"]
    assert [row["state"] for row in rows if row["service"] == "counter"] == ["STOPPED"]


@pytest.mark.timeout(150)
def test_sigterms_that_keep_coming_while_the_daemon_stops_end_it_cleanly(cluster, tmp_path):
    # A service manager may signal again while the daemon stops (and a shell's Ctrl-C repeats):
    # none of these signals, wherever it lands in the daemon's exit, may turn the exit into a kill.
    log = tmp_path / "daemon.log"
    daemon = start_daemon(cluster, spec_file(tmp_path, "repeat"), log)
    try:
        assert run(cluster, """
            handle, pid = answer("repeat")
            print(json.dumps({"count": ray.get(handle.incr.remote())}))
        """)["count"] == 6
        deadline = time.monotonic() + 60
        while daemon.poll() is None and time.monotonic() < deadline:
            daemon.send_signal(signal.SIGTERM)
            time.sleep(0.002)
        assert daemon.wait(1) == 0, log.read_text()
    finally:
        stop_daemon(daemon, log)


@pytest.mark.timeout(150)
def test_a_restarted_daemon_adopts_the_running_services(cluster, tmp_path):
    log = tmp_path / "daemon.log"
    spec = spec_file(tmp_path, "kept")
    daemon = start_daemon(cluster, spec, log)
    try:
        first = run(cluster, """
            handle, pid = answer("kept")
            print(json.dumps({"pid": pid, "count": ray.get(handle.incr.remote(10))}))
        """)
        daemon.kill()  # kill -9: no graceful stop
        daemon.wait()
        alone = run(cluster, """
            handle, pid = answer("kept")
            print(json.dumps({"pid": pid, "count": ray.get(handle.get.remote())}))
        """)
        assert alone == first  # the service outlives its daemon

        restarted = time.monotonic()
        daemon = start_daemon(cluster, spec, log)
        adopted = wait_for_log(daemon, log, "adopted a running service")
        print(f"\na restarted daemon adopted the service {adopted - restarted:.2f} s after it was started")
        # its predecessor's process is surely gone: no wait for the predecessor's lease to expire
        assert "the leading daemon's process is gone" in log.read_text(), log.read_text()
        time.sleep(1.0)  # a window for a wrong restart to happen in: there is no event to wait for
        after = run(cluster, """
            handle, pid = answer("kept")
            print(json.dumps({"pid": pid, "count": ray.get(handle.get.remote())}))
        """)
        assert after == first, log.read_text()  # the same process, nothing restarted
        rows = json.loads(cluster.cli("supervise", "status", "--address", cluster.address, "--json").stdout)["services"]
        (row,) = [row for row in rows if row["service"] == "kept"]
        assert row["restarts"] == 0 and row["pid"] == first["pid"]

        # an adopted service (its owner, the first daemon, is gone) is watched through its process
        wait_for_checkpoint(cluster, "kept", {"count": first["count"]}, log)
        again = run(cluster, """
            handle, pid = answer("kept")
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            handle, new_pid = answer("kept", not_pid=pid)
            print(json.dumps({"back": time.monotonic() - killed, "count": ray.get(handle.get.remote()),
                              "restored": ray.get(handle.was_restored.remote())}))
        """)
        assert again["back"] < 15 and again["count"] == first["count"] and again["restored"], again
    finally:
        assert stop_daemon(daemon, log) == 0, log.read_text()


@pytest.mark.timeout(60)
def test_an_invalid_spec_is_rejected_naming_the_field_and_starts_nothing(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.replace("NAME", "counter").replace('kwargs = { start = 5 }', 'restart = "sometimes"'))
    home = tmp_path / "home"  # an empty ACTORCORE_HOME: no cluster here, none may be started
    env = {**os.environ, "ACTORCORE_HOME": str(home),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-m", "actorcore", "supervise", str(spec)], env=env,
                            capture_output=True, text=True, timeout=50, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid spec" in result.stderr and "'restart'" in result.stderr and "counter" in result.stderr
    assert not (home / "nodes").exists() or not list((home / "nodes").iterdir())  # no local head started
    assert not (home / "cluster.json").exists()

    spec.write_text(SPEC.replace("NAME", "counter")
                    .replace("examples.services.counter:Counter", "examples.services.counter:Nope"))
    result = subprocess.run([sys.executable, "-m", "actorcore", "supervise", str(spec)], env=env,
                            capture_output=True, text=True, timeout=50, check=False)
    assert result.returncode == 2 and "'class'" in result.stderr and "Nope" in result.stderr, result.stderr
    assert not (home / "nodes").exists() or not list((home / "nodes").iterdir())


@pytest.mark.timeout(120)
def test_without_an_address_a_detached_daemon_starts_a_local_head_and_stops_it(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACTORCORE_TOKEN", None)
    pid_file = tmp_path / "daemon.pid"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "actorcore", *args], env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    started = cli("supervise", str(spec_file(tmp_path, "local")), "--detach", "--pid-file", str(pid_file))
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        code = textwrap.dedent("""
            import actorcore as ray
            from actorcore.testing import wait_until

            def connected():
                try:
                    ray.init(address="auto", namespace="services")
                    return ray.get_actor("local")
                except Exception:
                    ray.shutdown()
                    raise

            handle = wait_until(connected, 60, "the detached daemon's service", interval=0.2, retry_on=(Exception,))
            print(ray.get(handle.incr.remote()))
        """)
        driver = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                timeout=90, check=False)
        assert driver.returncode == 0 and driver.stdout.strip() == "6", driver.stdout + driver.stderr
        status = cli("supervise-status")
        assert status.returncode == 0 and "local" in status.stdout and "ALIVE" in status.stdout, status
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_file.exists(), 60, "the daemon to stop on SIGTERM")
        wait_until(lambda: not list((home / "nodes").glob("*.json")), 60,  # the head it started is stopped too
                   "the daemon's local head to stop")
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        cli("stop")


@pytest.mark.timeout(150)
def test_a_service_busy_in_a_long_call_is_adopted_not_restarted(cluster, tmp_path):
    log, spec = tmp_path / "daemon.log", tmp_path / "services.toml"
    spec.write_text('[services.busy]\nclass = "tests.services.flaky:Sleeper"\n')
    daemon = start_daemon(cluster, spec, log)
    busy = None
    try:
        found = run(cluster, """
            handle, pid = answer("busy")
            print(json.dumps({"pid": pid}))
        """)
        daemon.kill()  # kill -9, then a new daemon while the service is in a 5 s call
        daemon.wait()
        code = """
            handle, pid = answer("busy")
            call = handle.sleep.remote(5)
            print("CALLING", flush=True)
            assert ray.get(call, timeout=60) == 5
            print(json.dumps({"pid": ray.get(handle.pid.remote())}))
        """
        busy = subprocess.Popen([sys.executable, "-c", PRELUDE % {"address": cluster.address} + textwrap.dedent(code)],
                                env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert busy.stdout.readline().strip() == "CALLING", busy.stderr.read()
        daemon = start_daemon(cluster, spec, log)
        wait_for_log(daemon, log, "adopted a running service", timeout=60)  # its ping waited for the call
        out, err = busy.communicate(timeout=60)
        assert busy.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == found  # the same process, never restarted
        assert log.read_text().count("started a service") == 1, log.read_text()
    finally:
        if busy is not None and busy.poll() is None:
            busy.kill()
            busy.communicate()
        assert stop_daemon(daemon, log) == 0, log.read_text()
