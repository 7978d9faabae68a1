"""A real cluster on loopback, started with the CLI: a head (with its etcd) and two joined nodes.

Each node has 2 CPUs and a custom resource of its own ("A", "B", "C"), so tests can say where
work must land. Nodes live in `ACTORCORE_HOME` = a temporary directory; `actorcore stop` at
the end stops them, their workers and the head's etcd, and removes their shared memory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from actorcore.gcs.etcd_server import _free_port

LEASE_TTL = 2
NODE_MEMORY = 10**9  # each node's memory resource, in bytes
NODE_STORE = 1 << 30  # each node's object store capacity, in bytes


@dataclass
class Cluster:
    home: Path
    address: str
    env: dict
    nodes: dict = field(default_factory=dict)  # resource name -> node record from the node files

    def cli(self, *args: str, timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "actorcore", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"actorcore {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    replicas: int = 1
    lease_ttl: float | None = LEASE_TTL  # None: the default TTL

    def start_node(self, resource: str, *, head: bool = False, num_cpus: int = 2) -> dict:
        before = {record["node_id"] for record in self.node_records()}
        args = ["start", "--num-cpus", str(num_cpus), "--resources", json.dumps({resource: 1}),
                "--memory", str(NODE_MEMORY), "--object-store-memory", str(NODE_STORE)]
        if head:
            args += ["--head", "--port", self.address.rsplit(":", 1)[1], "--object-replicas", str(self.replicas)]
            if self.lease_ttl is not None:
                args += ["--lease-ttl", str(self.lease_ttl)]
        else:
            args += ["--address", self.address]
        self.cli(*args)
        (record,) = [r for r in self.node_records() if r["node_id"] not in before]
        self.nodes[resource] = record
        return record

    def node_records(self) -> list[dict]:
        folder = self.home / "nodes"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def driver(self, code: str, timeout: float = 90) -> subprocess.CompletedProcess:
        """Run `code` in a second driver process (another Python process calling init)."""
        return subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)


def _start_cluster(resources=("A", "B", "C"), replicas: int = 1, lease_ttl: float | None = LEASE_TTL):
    home = Path(tempfile.mkdtemp(prefix="actorcore-cluster-"))
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACTORCORE_TOKEN", None)
    cluster = Cluster(home, f"127.0.0.1:{_free_port()}", env, replicas=replicas, lease_ttl=lease_ttl)
    try:
        for index, resource in enumerate(resources):
            cluster.start_node(resource, head=index == 0)
    except BaseException:
        _stop_cluster(cluster)
        raise
    return cluster


def etcd_pid(home) -> int:
    """The pid of the etcd server the head of the cluster at ``home`` runs."""
    from actorcore.testing import processes_of

    for pid in processes_of(home):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"etcd":
            return pid
    raise AssertionError("no etcd process found for the cluster")


def unstarted_cluster(prefix: str) -> Cluster:
    """A cluster not started yet: its own ACTORCORE_HOME (a new temporary folder, removed when
    it stops), a free etcd address, the default lease TTL, and an environment for its commands
    without a token of the caller's."""
    from actorcore.gcs.etcd_server import _free_port

    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACTORCORE_TOKEN", None)
    return Cluster(home, f"127.0.0.1:{_free_port()}", env, lease_ttl=None)


def _stop_cluster(cluster: Cluster) -> None:
    try:
        cluster.cli("stop", check=False)
    finally:
        shutil.rmtree(cluster.home, ignore_errors=True)


@contextmanager
def _session(cluster: Cluster):
    """Inside, this process's ACTORCORE_HOME is the cluster's (a driver started here finds its
    files); on the way out the driver (if any) is shut down, ACTORCORE_HOME is restored to what
    it was, and the cluster is stopped."""
    import actorcore as ray

    previous = os.environ.get("ACTORCORE_HOME")
    os.environ["ACTORCORE_HOME"] = str(cluster.home)
    try:
        yield cluster
    finally:
        try:
            ray.shutdown()
        finally:
            if previous is None:
                os.environ.pop("ACTORCORE_HOME", None)
            else:
                os.environ["ACTORCORE_HOME"] = previous
            _stop_cluster(cluster)


@pytest.fixture(scope="module")
def cluster():
    """A 3-node cluster shared by a module's tests; the test process is its driver."""
    import actorcore as ray

    with _session(_start_cluster()) as cluster:
        ray.init(address=cluster.address)
        yield cluster


@pytest.fixture
def fresh_cluster(request):
    """A 3-node cluster of one's own (for tests that kill nodes); no driver connected.

    `@pytest.mark.parametrize("fresh_cluster", [k], indirect=True)` sets object_replicas=k.
    """
    with _session(_start_cluster(replicas=getattr(request, "param", 1))) as cluster:
        yield cluster
