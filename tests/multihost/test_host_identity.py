"""Cloned hosts (the same hostname and /etc/machine-id, as cloned VMs or containers sharing
/etc/machine-id have): a driver still takes a node of its own host, never the clone's."""

from __future__ import annotations

import pytest

from actorcore.testing_hosts import ClusterOnHosts, Network

from .conftest import DRIVER_PRELUDE, LEASE_TTL

pytestmark = pytest.mark.timeout(300)


def test_a_driver_on_a_clone_of_the_head_uses_its_own_node():
    with Network() as network:
        head = network.add_host("a", machine_id="0" * 32, hostname="clone")
        twin = network.add_host("b", machine_id="0" * 32, hostname="clone")
        cluster = ClusterOnHosts(network, lease_ttl=LEASE_TTL)
        cluster.start_head(head, resources={"A": 1})
        (joined,) = [cluster.join(twin, resources={"B": 1})]
        completed = cluster.driver(twin, DRIVER_PRELUDE + (
            "result(ray.get_runtime_context().get_node_id())\n"), timeout=120)
        assert f'RESULT "{joined["node_id"]}"' in completed.stdout, completed
