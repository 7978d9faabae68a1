"""The round-robin service handle (actorcore.services.handles) on a real local cluster, and the
KV example service as a plain object.

The replicas are named actors made by the test itself in the namespace ``services``, named as
``actorcore supervise`` names them (``echo-0``, ``echo-1``, ...; one replica: ``solo``).
"""

from __future__ import annotations

import threading

import pytest

import actorcore as ray
from actorcore.exceptions import ActorDiedError
from actorcore.services.handles import ServiceHandle, service_handle
from examples.services.kv import KV


class Echo:
    def __init__(self, name: str) -> None:
        self.name = name

    def whoami(self) -> str:
        return self.name

    def add(self, a: int, b: int = 0) -> int:
        return a + b


RemoteEcho = ray.remote(Echo)


def make(name: str):
    return RemoteEcho.options(name=name, namespace="services").remote(name)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def echoes(cluster):
    actors = {f"echo-{i}": make(f"echo-{i}") for i in range(3)}
    ray.get([actor.whoami.remote() for actor in actors.values()], timeout=60)
    return actors


@pytest.mark.timeout(120)
def test_round_robin_over_the_replicas(echoes):
    handle = service_handle("echo")
    assert isinstance(handle, ServiceHandle)
    assert handle.replicas == ["echo-0", "echo-1", "echo-2"] and len(handle) == 3
    names = ray.get([handle.whoami.remote() for _ in range(6)], timeout=30)
    assert names == ["echo-0", "echo-1", "echo-2"] * 2
    assert ray.get(handle.add.remote(2, b=3), timeout=30) == 5


@pytest.mark.timeout(120)
def test_a_single_replica_has_no_suffix(cluster):
    make("solo")
    handle = service_handle("solo")
    assert handle.replicas == ["solo"] and len(handle) == 1
    assert ray.get([handle.whoami.remote() for _ in range(3)], timeout=30) == ["solo"] * 3


@pytest.mark.timeout(60)
def test_a_missing_service_is_a_clear_error(cluster):
    with pytest.raises(ValueError, match=r"'nothing-here'.*'services'.*actorcore supervise"):
        service_handle("nothing-here")


@pytest.mark.timeout(60)
def test_an_unknown_method_is_an_attribute_error(echoes):
    with pytest.raises(AttributeError, match="no_such_method"):
        service_handle("echo").no_such_method.remote()


@pytest.mark.timeout(120)
def test_a_replaced_replica_is_reached_after_a_refresh(echoes):
    handle = service_handle("echo")
    ray.kill(echoes["echo-1"])
    # As documented: calls to the dead replica fail like any actor call ...
    refs = [handle.whoami.remote() for _ in range(3)]
    assert ray.get(refs[0], timeout=30) == "echo-0"
    with pytest.raises(ActorDiedError):
        ray.get(refs[1], timeout=30)
    assert ray.get(refs[2], timeout=30) == "echo-2"
    # ... until the handle looks the replicas up again (the daemon would remake it under its name).
    echoes["echo-1"] = make("echo-1")
    handle.refresh()
    assert handle.replicas == ["echo-0", "echo-1", "echo-2"]
    names = ray.get([handle.whoami.remote() for _ in range(6)], timeout=30)
    assert sorted(names[:3]) == ["echo-0", "echo-1", "echo-2"] and names[:3] == names[3:]


@pytest.mark.timeout(120)
def test_a_refresh_keeps_the_replicas_after_a_gap(cluster):
    # gap-0, gap-1, gap-2; gap-1 dies: the refresh still finds gap-2 (a replica seen before)
    actors = [make(f"gap-{i}") for i in range(3)]
    handle = service_handle("gap")
    ray.kill(actors[1])
    handle.refresh()
    assert handle.replicas == ["gap-0", "gap-2"]
    answers = ray.get([handle.whoami.remote() for _ in range(4)], timeout=30)
    assert sorted(answers) == ["gap-0", "gap-0", "gap-2", "gap-2"]


@pytest.mark.timeout(10)
def test_kv_as_a_plain_object():
    kv = KV()
    kv.put("b", 2)
    kv.put("a", 1)
    assert kv.get("a") == 1 and kv.get("zz") is None and kv.get("zz", 7) == 7
    assert kv.keys() == ["a", "b"] and kv.size() == 2
    assert kv.delete("b") is True and kv.delete("b") is False and kv.keys() == ["a"]
    assert isinstance(kv.pid(), int) and not kv.was_restored()

    state = kv.__checkpoint__()
    kv.put("a", 100)  # the checkpoint is a copy
    assert state == {"a": 1}
    again = KV()
    again.__restore__(state)
    assert again.was_restored() and again.keys() == ["a"] and again.get("a") == 1
    again.put("c", 3)
    assert state == {"a": 1}  # and the restore too


@pytest.mark.timeout(60)
def test_a_call_that_cannot_be_sent_raises_and_the_handle_still_works(echoes):
    handle = service_handle("echo")
    with pytest.raises(TypeError):
        handle.add.remote(threading.Lock())  # .remote() raises: refreshed, tried once more, raised
    assert handle.replicas == ["echo-0", "echo-1", "echo-2"]
    assert ray.get(handle.add.remote(1, b=1), timeout=30) == 2
