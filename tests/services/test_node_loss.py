"""`actorcore supervise`: a service whose node is lost is re-placed on another node with its state.

A 3-node cluster started with the CLI: a head with no CPUs (it runs etcd and the daemon's
driver connects through it, but the service, which asks for a CPU, cannot run there) and two
nodes "B" and "C" with 2 CPUs each. The daemon (a real `actorcore supervise` process) keeps a
checkpointed counter service. A driver counts, the test waits for a checkpoint taken after the
last count, then the node running the service is lost, as when its machine goes away: its node
process and every process under it (its workers) are killed with -9 (their connections close at
once), or frozen with SIGSTOP (a hung or cut-off machine: only the expiry of the node's etcd
lease tells the cluster). The service must come back on the other node, restored from the
checkpoint, within the lease TTL plus a margin. The measured time is printed (`-s`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from actorcore.gcs.etcd_server import _free_port
from actorcore.testing import children_of, is_alive
from tests.multinode.conftest import LEASE_TTL, Cluster, _stop_cluster

CHECKPOINT_INTERVAL = 0.2
REPLACED_WITHIN = LEASE_TTL + 8.0  # seconds from the kill to the first answer from the other node

SPEC = f"""
[supervisor]
max_restarts = 10
period = 30

[services.moved]
class = "examples.services.counter:Counter"
kwargs = {{ start = 5 }}
resources = {{ CPU = 1 }}
checkpoint_interval = {CHECKPOINT_INTERVAL}
"""

# A driver's helpers: connect, wait for the service to answer from a process other than `not_pid`.
PRELUDE = """
import json, os, signal, time
import actorcore as ray
ray.init(address=%(address)r, namespace="services")

def answer(name, not_pid=None, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            handle = ray.get_actor(name)
            pid = ray.get(handle.pid.remote(), timeout=2)
            if pid != not_pid:
                return handle, pid
        except Exception:
            if time.time() > deadline:
                raise
        time.sleep(0.02)
"""


def start_cluster_without_head_cpus() -> Cluster:
    """The multinode suite's CLI cluster (tests.multinode.conftest), but a head with 0 CPUs:
    head "H", then "B" and "C" with 2 CPUs each."""
    home = Path(tempfile.mkdtemp(prefix="actorcore-cluster-"))
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACTORCORE_TOKEN", None)
    cluster = Cluster(home, f"127.0.0.1:{_free_port()}", env)
    try:
        cluster.start_node("H", head=True, num_cpus=0)
        cluster.start_node("B")
        cluster.start_node("C")
    except BaseException:
        _stop_cluster(cluster)
        raise
    return cluster


def service_rows(cluster: Cluster) -> list[dict]:
    """`supervise-status --json`'s rows: a list of rows, or {"daemon": ..., "services": [rows]}."""
    result = cluster.cli("supervise-status", "--address", cluster.address, "--json")
    found = json.loads(result.stdout)
    return found["services"] if isinstance(found, dict) else found


def service_row(cluster: Cluster, name: str) -> dict | None:
    rows = [row for row in service_rows(cluster) if row.get("service") == name or row.get("name") == name]
    return rows[0] if rows else None


def wait_until(predicate, seconds: float, what: str, details=lambda: ""):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}\n{details()}")
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children, their children, ...)."""
    found, queue = [], [pid]
    while queue:
        for child in children_of(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


def run(cluster: Cluster, code: str, log: Path) -> dict:
    """Run `code` in a new driver; its last line of output, as JSON (on failure: the driver's
    output and the daemon's log)."""
    result = cluster.driver(PRELUDE % {"address": cluster.address} + textwrap.dedent(code), timeout=120)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n-- the daemon's log:\n{log.read_text()}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("loss", ["killed", "frozen"])
def test_a_service_on_a_lost_node_is_re_placed_on_another_node_with_its_state(loss):
    """killed: kill -9 of the node and its workers (their connections close at once);
    frozen: SIGSTOP of them (a hung or cut-off machine: connections stay open, silent), so only
    the expiry of the node's lease tells the cluster; they are killed at the end."""
    cluster = start_cluster_without_head_cpus()
    log = cluster.home / "daemon.log"  # (the spec and the log live in the cluster's own temporary home)
    daemon = None
    victims: list[int] = []
    try:
        spec = cluster.home / "services.toml"
        spec.write_text(SPEC)
        with open(log, "ab") as out:
            daemon = subprocess.Popen([sys.executable, "-m", "actorcore", "supervise", str(spec),
                                       "--address", cluster.address], env=cluster.env, stdout=out,
                                      stderr=subprocess.STDOUT)

        counted = run(cluster, """
            handle, pid = answer("moved")
            counts = [ray.get(handle.incr.remote()) for _ in range(3)]
            print(json.dumps({"counts": counts, "pid": pid, "after": time.time()}))
        """, log)
        assert counted["counts"] == [6, 7, 8]

        def fresh_checkpoint() -> dict | None:
            """The service's row once its last checkpoint is surely later than the last incr:
            saved at least 2 intervals after it (the CLI's clock is read after `asked`, so
            `asked - age` is a lower bound of the save time)."""
            asked = time.time()
            row = service_row(cluster, "moved")
            age = row and row.get("checkpoint_age")
            if age is not None and asked - age - 0.05 > counted["after"] + 2 * CHECKPOINT_INTERVAL:
                return row
            return None

        row = wait_until(fresh_checkpoint, 30, "a checkpoint taken after the last incr", log.read_text)
        assert row["state"] == "ALIVE" and row["pid"] == counted["pid"], row
        homes = {record["node_id"]: name for name, record in cluster.nodes.items()}
        assert homes.get(row["node"]) in ("B", "C"), (row, homes)  # never on the CPU-less head
        lost = cluster.nodes[homes[row["node"]]]
        other = cluster.nodes["C" if homes[row["node"]] == "B" else "B"]
        victims = [lost["pid"], *descendants(lost["pid"])]
        assert counted["pid"] in victims, (counted, victims)

        moved = run(cluster, f"""
            handle, pid = answer("moved")
            assert pid == {counted["pid"]}, pid
            for victim in {victims!r}:  # the node and its workers: the machine is gone
                try:
                    os.kill(victim, {signal.SIGKILL if loss == "killed" else signal.SIGSTOP:d})
                except ProcessLookupError:
                    pass
            killed = time.monotonic()
            handle, new_pid = answer("moved", not_pid=pid, timeout={REPLACED_WITHIN + 20})
            back = time.monotonic() - killed
            print(json.dumps({{"back": back, "new_pid": new_pid, "count": ray.get(handle.get.remote()),
                              "restored": ray.get(handle.was_restored.remote())}}))
        """, log)
        how = "killed with -9" if loss == "killed" else "frozen (SIGSTOP)"
        print(f"\nservice re-placed on the other node {moved['back']:.2f} s after its node was "
              f"{how} (lease TTL {LEASE_TTL} s, bound {REPLACED_WITHIN} s)")
        if loss == "killed":
            assert not any(is_alive(pid) for pid in victims)
        assert moved["new_pid"] in descendants(other["pid"]), (moved, other)  # a worker of the other node
        assert moved["count"] == 8 and moved["restored"], moved  # the last checkpoint's state
        assert moved["back"] < REPLACED_WITHIN, (moved, log.read_text())

        row = wait_until(lambda: (r := service_row(cluster, "moved")) and r["pid"] == moved["new_pid"] and r,
                         30, "supervise-status to show the new incarnation", log.read_text)
        assert row["state"] == "ALIVE" and row["node"] == other["node_id"] and row["restarts"] >= 1, row
        assert daemon.poll() is None, log.read_text()
    finally:
        for victim in victims if loss == "frozen" else ():  # (a stopped process cannot exit: its pid is not reused)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            if daemon is not None:
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
                try:
                    code = daemon.wait(60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
                    code = None
                assert code == 0, f"the daemon did not stop cleanly on SIGTERM ({code}):\n{log.read_text()}"
        finally:
            _stop_cluster(cluster)
