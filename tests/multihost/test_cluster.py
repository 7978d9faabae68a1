"""A cluster across three hosts that share nothing but the network: joining, placement,
objects, actors and the lecture's MapReduce (docs/architecture.md, "Multi-host tests")."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from .conftest import drive

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def test_nodes_on_three_hosts_join_at_their_own_addresses(cluster):
    hosts = cluster.hosts
    for host in hosts.values():  # each host has its own home: one node file each
        assert [r["node_ip"] for r in cluster.node_records(host)] == [host.address]
    nodes = drive(cluster, "b", "result(ray.nodes())")
    assert sorted((n["NodeManagerAddress"], n["Alive"]) for n in nodes) == [
        ("10.77.0.1", True), ("10.77.0.2", True), ("10.77.0.3", True)]
    assert {n["NodeID"] for n in nodes} == {cluster.nodes[name]["node_id"] for name in hosts}
    assert [host.run(["hostname"]).stdout.strip() for host in hosts.values()] == ["a", "b", "c"]


def test_a_task_needing_a_resource_only_host_b_has_runs_on_b(cluster):
    placed = drive(cluster, "a", """
result([ray.get(where.options(resources={name: 1}).remote()) for name in ("A", "B", "C")])
""")
    assert placed == [[name, cluster.nodes[name]["node_id"]] for name in ("a", "b", "c")]


def test_a_100_mb_object_made_on_b_is_read_on_c_and_by_the_driver_on_a(cluster):
    expected = hashlib.sha256(np.random.default_rng(7).integers(0, 256, 100 * MIB, dtype=np.uint8)).hexdigest()
    seen = drive(cluster, "a", f"""
import hashlib
import numpy as np

@ray.remote(resources={{"B": 1}})
def make():
    return np.random.default_rng(7).integers(0, 256, {100 * MIB}, dtype=np.uint8)

@ray.remote(resources={{"C": 1}})
def digest(array):
    return socket.gethostname(), array.nbytes, hashlib.sha256(array).hexdigest()

ref = make.remote()
on_c = ray.get(digest.remote(ref))
here = ray.get(ref)
result({{"on_c": on_c, "driver": [socket.gethostname(), here.nbytes, hashlib.sha256(here).hexdigest()]}})
""")
    assert seen["on_c"] == ["c", 100 * MIB, expected]
    assert seen["driver"] == ["a", 100 * MIB, expected]


def test_an_actor_on_another_host_keeps_its_state_between_calls(cluster):
    calls = drive(cluster, "a", """
@ray.remote(resources={"C": 1})
class Counter:
    def __init__(self):
        self.count = 0
    def add(self, n):
        self.count += n
        return socket.gethostname(), self.count

counter = Counter.remote()
result([ray.get(counter.add.remote(n)) for n in (1, 2, 3)])
""")
    assert calls == [["c", 1], ["c", 3], ["c", 6]]


def test_the_lectures_mapreduce_counts_the_words_across_hosts(cluster):
    """examples/lecture/06_mapreduce.py as printed, but for its `init` (the lecture's starts a
    local cluster): its tasks are scheduled on the nodes of the 3 hosts, the driver runs on host a."""
    program = (ROOT / "examples" / "lecture" / "06_mapreduce.py").read_text()
    assert program.count("ray.init(num_cpus=8)\n") == 1
    code = program.replace("import actorcore as ray\nray.init(num_cpus=8)\n", "")
    output = cluster.driver(cluster.hosts["a"], code).stdout.splitlines()
    corpus = subprocess.check_output([sys.executable, "-c", "import this"]).split()
    words = corpus[:3 * (len(corpus) // 3)]
    counted = [line.rsplit(": ", 1) for line in output if line.count(": ") == 1 and not line.startswith("Mapper")]
    assert {word: int(n) for word, n in counted} == Counter(word.lower().decode() for word in words)
    assert sum(line.startswith("Mapper ") for line in output) == 9
