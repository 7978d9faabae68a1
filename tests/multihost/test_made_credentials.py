"""A cluster across hosts whose credentials were made before it, as for a Kubernetes Secret
(`actorcore credentials new`), for a name none of the hosts has ("actorcore-head", the head's
Service): the head starts with them (`start --head --credentials`), a node on another host
joins with a copy, and tasks and a 5 MB object cross between them. Every connection is TLS
(etcd, the kernel's streams, the object transfer) to an address the certificate does not name;
each end checks the cluster's name instead."""

from __future__ import annotations

import sys

import pytest

from actorcore.testing_hosts import HOST_HOME, ClusterOnHosts, Network

from .conftest import drive

pytestmark = pytest.mark.timeout(300)


def test_a_cluster_started_with_made_credentials_works_across_hosts():
    with Network() as network:
        head, other = network.add_host("a"), network.add_host("b")
        cluster = ClusterOnHosts(network)
        made = f"{HOST_HOME}/made-credentials.json"
        head.run([sys.executable, "-m", "actorcore", "credentials", "new", "--address",
                  f"actorcore-head:{cluster.PORT}", "--out", made])
        copy = other.path(made)
        copy.write_bytes(head.path(made).read_bytes())
        copy.chmod(0o600)

        cluster.head = head
        head.run([sys.executable, "-m", "actorcore", "start", "--head", "--node-ip-address", head.address,
                  "--port", str(cluster.PORT), "--credentials", made, "--num-cpus", "1", "--resources", '{"A": 1}'])
        other.run([sys.executable, "-m", "actorcore", "start", "--address", cluster.address, "--credentials", made,
                   "--num-cpus", "1", "--resources", '{"B": 1}'])
        for host in (head, other):
            host.run([sys.executable, "-m", "actorcore", "health"])

        placed = drive(cluster, "b", """
@ray.remote
def size(data):
    return len(data)
data = ray.put(b"x" * 5_000_000)
hosts = [ray.get(where.options(resources={name: 1}).remote())[0] for name in ("A", "B")]
sizes = [ray.get(size.options(resources={name: 1}).remote(data)) for name in ("A", "B")]
result([hosts, sizes])
""")
        assert placed == [["a", "b"], [5_000_000, 5_000_000]]
