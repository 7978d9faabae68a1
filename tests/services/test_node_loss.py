"""`actorcore supervise`: a service whose node is lost is re-placed on another node with its state.

A 3-node cluster started with the CLI: a head with no CPUs (it runs etcd and the daemon's
driver connects through it, but the service, which asks for a CPU, cannot run there) and two
nodes "B" and "C" with 2 CPUs each. The daemon (a real `actorcore supervise` process) keeps a
checkpointed counter service. A driver counts, the test waits for a checkpoint holding the
last count, then the node running the service is lost, as when its machine goes away: its node
process and every process under it (its workers) are killed with -9 (their connections close at
once), or frozen with SIGSTOP (a hung or cut-off machine: only the expiry of the node's etcd
lease tells the cluster). The service must come back on the other node, restored from the
checkpoint, within the lease TTL plus a margin. The measured time is printed (`-s`).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from actorcore.gcs.etcd_server import _free_port
from actorcore.testing import children_of, is_alive, wait_until
from tests.multinode.conftest import LEASE_TTL, Cluster, _start_cluster, _stop_cluster
from tests.services.helpers import run, service_rows, start_daemon, stop_daemon, wait_for_checkpoint, wait_for_log

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


def service_row(cluster: Cluster, name: str) -> dict | None:
    rows = [row for row in service_rows(cluster) if row.get("service") == name or row.get("name") == name]
    return rows[0] if rows else None


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children, their children, ...)."""
    found, queue = [], [pid]
    while queue:
        for child in children_of(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


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
        daemon = start_daemon(cluster, spec, log)

        counted = run(cluster, """
            handle, pid = answer("moved")
            counts = [ray.get(handle.incr.remote()) for _ in range(3)]
            print(json.dumps({"counts": counts, "pid": pid}))
        """, log)
        assert counted["counts"] == [6, 7, 8]

        wait_for_checkpoint(cluster, "moved", {"count": 8}, log)
        row = service_row(cluster, "moved")
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
                         30, "supervise-status to show the new incarnation", details=log.read_text)
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
                assert stop_daemon(daemon, log) == 0, log.read_text()
        finally:
            _stop_cluster(cluster)


@pytest.mark.timeout(120)
def test_a_daemon_whose_own_node_is_lost_exits_and_says_why(tmp_path):
    """The daemon reaches the cluster through the node of its machine; without it the daemon can
    do nothing, so it exits (code 1) at once, leaving the services to the next daemon."""
    cluster = _start_cluster(resources=("A",))
    spec, log = cluster.home / "services.toml", cluster.home / "daemon.log"
    spec.write_text('[services.alone]\nclass = "examples.services.counter:Counter"\n')
    daemon = start_daemon(cluster, spec, log)
    try:
        wait_for_log(daemon, log, "supervising")
        os.kill(cluster.nodes["A"]["pid"], signal.SIGKILL)
        killed = time.monotonic()
        assert daemon.wait(60) == 1, log.read_text()
        print(f"\nthe daemon exited {time.monotonic() - killed:.2f} s after its node was killed")
        assert "the node this daemon reaches the cluster through is gone" in log.read_text()
        assert "its node process ended" in log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        _stop_cluster(cluster)
