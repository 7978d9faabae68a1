"""The owner's two-phase reservation of a placement group, in process, against fake Schedulers:
a refused prepare releases what the other nodes prepared and the group stays PENDING until a
later attempt reserves every bundle; a node lost between the phases starts it over."""

from __future__ import annotations

import asyncio

import pytest

from actorcore.core.placement_groups import PlacementGroups
from actorcore.protocol import CommitBundles, GetResources, PrepareBundles, ReleaseBundles

from .fakes import FakeSystem, cluster_of, settle

pytestmark = [pytest.mark.usefixtures("no_dangling_tasks"), pytest.mark.timeout(30)]

NODES = ("n1", "n2", "n3")


@pytest.fixture
async def system():
    return FakeSystem(asyncio.get_running_loop())


@pytest.fixture
async def groups(system):
    nodes = {n: {"resources": {"CPU": 2.0}, "host_id": f"h-{n}", "uris": {"scheduler": f"sched-{n}"}}
             for n in NODES}
    cluster = cluster_of(system, {}, nodes=nodes)
    part = PlacementGroups(system, system.ref("owner"), cluster, None, system.ref("gcs"))
    yield part
    removal = asyncio.ensure_future(part._remove("g"))  # ends its attempts
    await answer(system, ReleaseBundles, True)
    await removal
    await answer(system, GetResources, {})  # an attempt that was under way ends


def scheduler(system: FakeSystem, node: str):
    return system.ref("scheduler" if node == "n1" else f"sched-{node}")  # n1 is this process's node


async def answer(system: FakeSystem, kind: type, reply, only: tuple = NODES) -> list:
    """Answer every pending ask of `kind` to the Schedulers of `only`; the messages answered."""
    await settle()
    answered = []
    for node in only:
        for message, future in scheduler(system, node).asked(kind):
            future.set_result(reply(node) if callable(reply) else reply)
            answered.append((node, message))
    await settle()
    return answered


def state(groups: PlacementGroups) -> str:
    return groups._groups["g"].state


async def test_a_refused_prepare_releases_the_others_and_a_later_attempt_reserves_all(system, groups):
    groups.create("g", [{"CPU": 1}] * 3, "STRICT_SPREAD", "", False)
    await answer(system, GetResources, {"CPU": 2.0})
    prepared = await answer(system, PrepareBundles, lambda node: node != "n3")  # n3 refuses
    assert sorted(node for node, _ in prepared) == list(NODES)
    released = {node: message for node in NODES for message in scheduler(system, node).told
                if isinstance(message, ReleaseBundles)}
    assert set(released) == {"n1", "n2"}  # what was prepared, and only that
    assert all(m.prepared_only and not m.removed for m in released.values())
    assert not any(scheduler(system, node).asked(CommitBundles) for node in NODES)
    assert state(groups) == "PENDING"

    groups._wake()  # what a node joining or resources coming free does: the next attempt, now
    await answer(system, GetResources, {"CPU": 2.0})
    await answer(system, PrepareBundles, True)
    committed = await answer(system, CommitBundles, True)
    assert sorted(node for node, _ in committed) == list(NODES)
    assert state(groups) == "CREATED"
    assert sorted(groups._groups["g"].nodes.values()) == list(NODES)


async def test_a_node_lost_between_the_phases_starts_the_group_over(system, groups):
    groups.create("g", [{"CPU": 1}] * 2, "STRICT_SPREAD", "", False)
    await answer(system, GetResources, {"CPU": 2.0}, only=("n1", "n2"))
    await answer(system, GetResources, {"CPU": 0.0}, only=("n3",))
    await answer(system, PrepareBundles, True)
    await answer(system, CommitBundles, lambda node: node == "n1")  # n2 is gone by phase two
    released = [node for node in NODES for message in scheduler(system, node).told
                if isinstance(message, ReleaseBundles)]
    assert sorted(released) == ["n1", "n2"] and state(groups) == "PENDING"
    assert groups._groups["g"].nodes == {}


async def test_a_group_that_fits_nowhere_now_asks_nothing_of_the_nodes(system, groups):
    groups.create("g", [{"CPU": 3}], "PACK", "", False)
    assert await answer(system, PrepareBundles, False, only=("n1",))  # the one-phase try on this node
    await answer(system, GetResources, {"CPU": 2.0})
    assert not any(scheduler(system, node).asked(PrepareBundles) for node in NODES)
    assert state(groups) == "PENDING"
