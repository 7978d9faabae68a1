"""Helpers of the supervise tests: a real daemon process against a real cluster, and drivers."""

from __future__ import annotations

import asyncio
import json
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from actorcore.testing import wait_until

# A driver's helpers: connect, wait for a service to answer.
PRELUDE = """
import json, os, signal, time
import actorcore as ray
from actorcore.testing import wait_until
ray.init(address=%(address)r, namespace="services")

def answer(name, not_pid=None, timeout=60):
    def answered():
        handle = ray.get_actor(name)
        pid = ray.get(handle.pid.remote(), timeout=2)
        return pid != not_pid and (handle, pid)
    what = f"service {name!r} to answer" + (f" from a pid other than {not_pid}" if not_pid else "")
    return wait_until(answered, timeout, what, interval=0.02, retry_on=(Exception,))
"""



def start_daemon(cluster, spec_file: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "actorcore", "supervise", str(spec_file),
                                 "--address", cluster.address], env=cluster.env, stdout=out,
                                stderr=subprocess.STDOUT)


def stop_daemon(daemon: subprocess.Popen, log: Path) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        raise AssertionError(f"the daemon did not stop on SIGTERM:\n{log.read_text()}") from None


def stop_daemons(*daemons: tuple[subprocess.Popen | None, Path]) -> None:
    """Stop every running daemon of ``(daemon, log)`` (SIGCONT first: it may be frozen), then
    fail if one did not stop cleanly: a failure never leaves the others running."""
    failures = []
    for daemon, log in daemons:
        if daemon is None or daemon.poll() is not None:
            continue
        daemon.send_signal(signal.SIGCONT)
        try:
            code = stop_daemon(daemon, log)
        except AssertionError as error:
            failures.append(str(error))
            continue
        if code != 0:
            failures.append(f"daemon {daemon.pid} exited with {code}:\n{log.read_text()}")
    assert not failures, "\n".join(failures)


def run(cluster, code: str, log: Path | None = None) -> dict:
    """Run ``code`` (after PRELUDE) in a new driver; its last line of output, as JSON. On failure
    the message has the driver's output (and the daemon's log, if given)."""
    result = cluster.driver(PRELUDE % {"address": cluster.address} + textwrap.dedent(code), timeout=120)
    daemon_log = f"\n-- the daemon's log:\n{log.read_text()}" if log is not None else ""
    assert result.returncode == 0, result.stdout + result.stderr + daemon_log
    return json.loads(result.stdout.strip().splitlines()[-1])


def service_rows(cluster) -> list[dict]:
    """The rows of `actorcore supervise status --json`."""
    return json.loads(cluster.cli("supervise", "status", "--address", cluster.address, "--json").stdout)["services"]


def wait_for_log(daemon: subprocess.Popen, log: Path, text: str, timeout: float = 60, count: int = 1) -> float:
    """Wait until ``text`` appears ``count`` times in the daemon's log; the monotonic time it did."""
    wait_until(lambda: log.read_text(errors="replace").count(text) >= count, timeout,
               f"{text!r} (x{count}) in the daemon's log", details=log.read_text, interval=0.02)
    return time.monotonic()


def checkpoint_of(cluster, name: str):
    """The state in the last checkpoint the daemon stored for ``name`` (None: no checkpoint)."""
    from actorcore.gcs.schema import DEFAULT_CLUSTER
    from actorcore.gcs.sealed import SealedEtcd
    from actorcore.services.instances import checkpoint_key

    async def read() -> bytes | None:
        token = (cluster.home / "token").read_text().strip()
        auth = json.loads((cluster.home / "cluster.json").read_text()).get("etcd_auth")
        async with await SealedEtcd.connect(cluster.address, secret=token, auth=auth, timeout=5) as etcd:
            return await etcd.get(checkpoint_key(DEFAULT_CLUSTER, name))

    blob = asyncio.run(read())
    return pickle.loads(blob) if blob is not None else None


def wait_for_checkpoint(cluster, name: str, state, log: Path | None = None) -> None:
    """Wait until the daemon has stored a checkpoint of ``name`` holding ``state``."""
    wait_until(lambda: checkpoint_of(cluster, name) == state, 30, f"a checkpoint of {name} holding {state!r}",
               details=log.read_text if log is not None else None)
