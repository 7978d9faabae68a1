"""Node failure and membership changes in a 3-node CLI cluster (docs/architecture.md,
"Failure semantics")."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

import numpy as np
import pytest

import actorcore as ray
from actorcore import api
from actorcore.testing import children_of, wait_until

from .conftest import LEASE_TTL

pytestmark = pytest.mark.timeout(180)


@ray.remote
def node_of():
    return ray.get_runtime_context().get_node_id()


@pytest.mark.parametrize("fresh_cluster", [2], indirect=True)
def test_a_killed_node_is_seen_dead_its_replicated_objects_survive_and_work_moves_on(fresh_cluster):
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    victim = cluster.nodes["C"]

    @ray.remote(resources={"C": 1})
    def make():
        return np.arange(4 * 1024 * 1024, dtype=np.int64)  # 32 MiB: in shared memory on node C

    ref = make.remote()
    ray.wait([ref], timeout=60)
    core = api._runtime()
    payload = wait_until(lambda: (p := core.objects[ref.id].payload) is not None and p.replicas and p,
                          30, "a replica of the object")
    assert payload.node == victim["node_id"] and payload.replicas[0] != victim["node_id"]

    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: any(n["NodeID"] == victim["node_id"] and not n["Alive"] for n in ray.nodes()),
                LEASE_TTL + 30, "the killed node to be reported dead")
    seen_dead = time.monotonic() - killed
    print(f"\nnode killed with -9 reported dead after {seen_dead:.2f} s (lease TTL {LEASE_TTL} s)")

    value = ray.get(ref, timeout=30)
    assert value[0] == 0 and value[-1] == 4 * 1024 * 1024 - 1 and len(value) == 4 * 1024 * 1024
    survivors = {cluster.nodes["A"]["node_id"], cluster.nodes["B"]["node_id"]}
    assert set(ray.get([node_of.remote() for _ in range(8)], timeout=60)) <= survivors
    status = cluster.cli("status", "--json").stdout
    assert victim["node_id"] in status


def test_a_request_no_node_can_satisfy_warns_and_runs_once_a_node_that_can_joins(fresh_cluster):
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    with pytest.warns(UserWarning, match="no node of the cluster"):
        ref = node_of.options(resources={"D": 1}).remote()
    ready, _ = ray.wait([ref], timeout=1.0)
    assert ready == []
    record = cluster.start_node("D", num_cpus=1)
    assert ray.get(ref, timeout=60) == record["node_id"]


def test_tasks_on_a_hung_node_are_retried_elsewhere_once_its_lease_expires(fresh_cluster):
    """A node that stops answering (SIGSTOP: a hung or cut-off machine) keeps its TCP
    connections open; once its etcd lease expires everyone drops them and its work fails over."""
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    victim = cluster.nodes["C"]

    started = tempfile.mkdtemp(prefix="actorcore-started-")

    @ray.remote
    def slow(seconds, index):
        if os.path.isdir(started):  # (a run again after the freeze comes when the test is done with it)
            open(os.path.join(started, str(index)), "w").close()  # "I am running"
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    # One task per node, so one of them runs on node C.
    try:
        refs = [slow.options(scheduling_strategy="SPREAD").remote(3.0, i) for i in range(3)]
        wait_until(lambda: len(os.listdir(started)) == 3, 30, "the three tasks to start")
    finally:
        shutil.rmtree(started, ignore_errors=True)
    frozen = [victim["pid"], *children_of(victim["pid"])]
    assert len(frozen) > 1, "node C has no worker"
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        seen = ray.get(refs, timeout=LEASE_TTL + 20)
        elapsed = time.monotonic() - start
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert victim["node_id"] not in seen
    assert len(seen) == 3
    print(f"\nthe tasks of a frozen node finished elsewhere {elapsed:.2f} s after it froze")


def test_an_object_lost_with_its_node_is_made_again_by_its_task(fresh_cluster):
    """No replica (object_replicas=1): the owner runs the task that made it again (lineage)."""
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    victim = cluster.nodes["C"]

    @ray.remote(num_returns=2)
    def make(seed):
        return np.full(1024 * 1024, seed, dtype=np.int64), ray.get_runtime_context().get_node_id()

    pairs = [make.options(scheduling_strategy="SPREAD").remote(seed) for seed in range(3)]
    # Only the small node ids are read now: no copy of an array leaves the node that made it.
    made_on = ray.get([node for _, node in pairs])
    assert victim["node_id"] in made_on
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: any(n["NodeID"] == victim["node_id"] and not n["Alive"] for n in ray.nodes()),
                LEASE_TTL + 30, "the killed node to be reported dead")
    core = api._runtime()
    for seed, (array_ref, _) in enumerate(pairs):
        array = ray.get(array_ref, timeout=60)
        assert int(array[0]) == seed and len(array) == 1024 * 1024
        assert core.objects[array_ref.id].payload.node != victim["node_id"]  # made again elsewhere


def test_a_chain_of_objects_lost_with_their_node_is_made_again_recursively(fresh_cluster):
    """b = transform(a), both made on the node that dies, a's ref long dropped: getting b runs
    a's task again, then b's (lineage, recursively)."""
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    victim = cluster.nodes["C"]

    @ray.remote
    def make(seed):
        return np.full(256 * 1024, seed, dtype=np.int64)

    @ray.remote(num_returns=2)
    def transform(array):
        return array * 2, ray.get_runtime_context().get_node_id()

    # SPREAD takes the nodes in turn: the i-th `make` and the i-th `transform` share a node.
    firsts = [make.options(scheduling_strategy="SPREAD").remote(i) for i in range(6)]
    pairs = [transform.options(scheduling_strategy="SPREAD").remote(a) for a in firsts]
    # Only the small node ids are read now: no copy of an array leaves the node that made it.
    made_on = ray.get([node for _, node in pairs])
    del firsts  # only the lineage keeps them now
    assert made_on.count(victim["node_id"]) >= 1
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: any(n["NodeID"] == victim["node_id"] and not n["Alive"] for n in ray.nodes()),
                LEASE_TTL + 30, "the killed node to be reported dead")
    core = api._runtime()
    for i, (array_ref, _) in enumerate(pairs):
        array = ray.get(array_ref, timeout=60)
        assert int(array[0]) == 2 * i and len(array) == 256 * 1024
        assert core.objects[array_ref.id].payload.node != victim["node_id"]  # made again elsewhere
