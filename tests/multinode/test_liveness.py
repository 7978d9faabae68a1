"""Failure detection in a 3-node CLI cluster (docs/architecture.md, "Failure semantics"): a dead
process is seen at once from its closed connection, a frozen node by its lease, a node that lost
its lease downs itself and never comes back under its id, and CPU starvation kills nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import actorcore as ray
from actorcore.testing import children_of, is_alive, wait_until

from .conftest import LEASE_TTL, _session, _start_cluster

pytestmark = pytest.mark.timeout(180)

STARVATION_SECONDS = 30


def _seen_dead(node_id: str) -> bool:
    return any(n["NodeID"] == node_id and not n["Alive"] for n in ray.nodes())


def _alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def test_a_killed_node_is_seen_dead_from_its_closed_connection_long_before_its_lease_expires():
    """With a 30 s lease, only the closed connection (confirmed by a refused reconnect) can make
    the node be seen dead within 15 s."""
    with _session(_start_cluster(lease_ttl=30)) as cluster:
        ray.init(address=cluster.address)
        victim = cluster.nodes["C"]
        os.kill(victim["pid"], signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: _seen_dead(victim["node_id"]), 15, "the killed node seen dead before its lease expires")
        print(f"\nnode killed with -9 seen dead after {time.monotonic() - killed:.3f} s (lease TTL 30 s)")
        assert _alive_nodes() == {cluster.nodes["A"]["node_id"], cluster.nodes["B"]["node_id"]}


def test_a_frozen_node_is_seen_dead_by_its_lease_and_once_thawed_downs_itself_for_good(fresh_cluster):
    """SIGSTOP keeps a node's connections open: its lease decides. Thawed, it learns that it was
    declared dead, stops its workers and exits with one clear log line; it never registers again."""
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    victim = cluster.nodes["C"]
    frozen = [victim["pid"], *children_of(victim["pid"])]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_until(lambda: _seen_dead(victim["node_id"]), LEASE_TTL + 30, "the frozen node to be seen dead")
        print(f"\nnode frozen (SIGSTOP) seen dead after {time.monotonic() - stopped:.3f} s (lease TTL {LEASE_TTL} s)")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not any(is_alive(pid) for pid in frozen), 30, "the thawed node and its workers to exit")
    log = (cluster.home / "logs" / f"node-{victim['node_id']}.log").read_text()
    assert f"node {victim['node_id']} downs itself: its etcd lease expired and the cluster declared it dead" in log
    assert victim["node_id"] not in _alive_nodes() and _seen_dead(victim["node_id"])
    assert _alive_nodes() == {cluster.nodes["A"]["node_id"], cluster.nodes["B"]["node_id"]}


@pytest.mark.timeout(240)
def test_nodes_starved_of_cpu_are_not_declared_dead():
    """A busy loop on every core for 30 s, with the default lease TTL: every node stays alive."""
    with _session(_start_cluster(lease_ttl=None)) as cluster:
        ray.init(address=cluster.address)
        nodes = {record["node_id"]: record["pid"] for record in cluster.nodes.values()}
        assert _alive_nodes() == set(nodes)
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(os.cpu_count() or 2)]
        try:
            started = time.monotonic()
            while time.monotonic() - started < STARVATION_SECONDS:
                assert all(is_alive(pid) for pid in nodes.values()), "a node process ended under CPU starvation"
                time.sleep(1.0)  # (the load is the point: this loop only samples)
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        assert _alive_nodes() == set(nodes), ray.nodes()
        assert not [n for n in ray.nodes() if not n["Alive"]]
        for node_id in nodes:
            log = (cluster.home / "logs" / f"node-{node_id}.log").read_text()
            assert "downs itself" not in log and "node died" not in log, log
