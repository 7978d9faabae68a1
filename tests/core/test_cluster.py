"""The cluster view in process: capacity, feasibility, SPREAD's turns and node deaths."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from actorcore.protocol import ClusterView, SubscribeLogs

from .fakes import FakeSystem, cluster_of

pytestmark = pytest.mark.usefixtures("no_dangling_tasks")


def node(cpus: float, host: str, **resources) -> dict:
    return {"resources": {"CPU": cpus, **resources}, "host_id": host, "uris": {"pool": f"pool-{host}"}}


@pytest.fixture
async def system():
    return FakeSystem(asyncio.get_running_loop())


async def test_capacity_counts_the_leases_of_a_shape_every_node_can_hold(system):
    cluster = cluster_of(system, {}, nodes={"n1": node(4, "h1"), "n2": node(3, "h2", GPU=1)})
    assert cluster.capacity((("CPU", 2.0),)) == 2 + 1
    assert cluster.capacity((("CPU", 1.0), ("GPU", 1.0))) == 1
    assert cluster.capacity((("CPU", 2.0),), "n2") == 1
    assert cluster.capacity((("GPU", 4.0),)) == 1  # none fits now: one, so a lease is asked for


async def test_a_shape_no_node_can_hold_is_warned_about_once(system):
    cluster = cluster_of(system, {"CPU": 2})
    with pytest.warns(UserWarning, match="no node of the cluster has that much"):
        cluster.warn_if_infeasible((("CPU", 8.0),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: no more warnings
        cluster.warn_if_infeasible((("CPU", 8.0),))
        cluster.warn_if_infeasible((("CPU", 1.0),))


async def test_spread_takes_the_nodes_that_fit_in_turn(system):
    cluster = cluster_of(system, {}, nodes={"n1": node(1, "h1"), "n2": node(1, "h2"), "n3": node(0, "h3")})
    targets = [cluster.spread_target((("CPU", 1.0),)) for _ in range(4)]
    assert sorted(targets[:2]) == ["n1", "n2"] and targets[2:] == targets[:2]
    assert cluster.spread_target((("CPU", 2.0),)) is None


async def test_a_dead_node_is_dropped_its_host_disconnected_and_new_nodes_send_their_logs(system):
    cluster = cluster_of(system, {}, nodes={"n1": node(1, "h1"), "n2": node(1, "h2")})
    cluster.log_sink = system.ref("sink")
    cluster.apply(ClusterView({"n1": node(1, "h1"), "n3": node(2, "h3")}, dead=("n2",), object_replicas=2))
    assert not cluster.is_live("n2") and "n2" in cluster.dead_nodes and cluster.is_live("n3")
    assert system.disconnected == ["h2"] and cluster.object_replicas == 2
    assert system.ref("pool-h3").told == [SubscribeLogs(system.ref("sink"))]

