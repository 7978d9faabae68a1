"""list_named_actors and get_node_ip_address, from the driver and from a task."""

from __future__ import annotations

import ipaddress

import pytest

import actorcore as ray
from actorcore.testing import wait_until
from actorcore.util import get_node_ip_address, list_named_actors

from .conftest import NAMESPACE

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("cluster")]


@ray.remote
class Named:
    def ping(self):
        return "pong"


@ray.remote
def names_seen_by_a_task():
    return list_named_actors(), get_node_ip_address()


def test_named_actors_of_this_namespace_and_of_all():
    here = Named.options(name="here").remote()
    detached = Named.options(name="kept", lifetime="detached").remote()
    elsewhere = Named.options(name="away", namespace="other-ns").remote()
    anonymous = Named.remote()
    try:
        ray.get([actor.ping.remote() for actor in (here, detached, elsewhere, anonymous)])
        assert sorted(list_named_actors()) == ["here", "kept"]
        everything = list_named_actors(all_namespaces=True)
        assert sorted(everything, key=lambda d: (d["namespace"], d["name"])) == [
            {"name": "away", "namespace": "other-ns"},
            {"name": "here", "namespace": NAMESPACE},
            {"name": "kept", "namespace": NAMESPACE},
        ]
        names, _ = ray.get(names_seen_by_a_task.remote(), timeout=60)  # a task runs in its driver's namespace
        assert sorted(names) == ["here", "kept"]
    finally:
        for actor in (here, detached, elsewhere, anonymous):
            ray.kill(actor)


def test_a_killed_actor_is_not_listed():
    gone = Named.options(name="gone").remote()
    ray.get(gone.ping.remote())
    assert "gone" in list_named_actors()
    ray.kill(gone)
    wait_until(lambda: "gone" not in list_named_actors(), 30, "the killed actor's name to go")


def test_get_node_ip_address_is_the_nodes_address():
    address = get_node_ip_address()
    ipaddress.ip_address(address)
    assert address == ray.nodes()[0]["NodeManagerAddress"]
    _, in_task = ray.get(names_seen_by_a_task.remote(), timeout=60)
    assert in_task == address
