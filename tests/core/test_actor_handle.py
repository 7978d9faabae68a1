"""An actor handle's own attributes cannot hide the actor's methods, whatever their names."""

from __future__ import annotations

import actorcore as ray


@ray.remote
class Private:
    def _name(self):
        return "name"

    def _owner(self):
        return "owner"

    def _worker(self):
        return "worker"

    def _actor_id(self):
        return "actor id"

    def _methods(self):
        return "methods"


@ray.remote
def call_all(handle):
    return ray.get([handle._name.remote(), handle._owner.remote(), handle._worker.remote()])


def test_methods_named_like_handle_internals_are_called_through_the_handle(cluster):
    actor = Private.remote()
    assert ray.get([actor._name.remote(), actor._owner.remote(), actor._worker.remote(),
                    actor._actor_id.remote(), actor._methods.remote()], timeout=60) == [
        "name", "owner", "worker", "actor id", "methods"]


def test_a_handle_passed_to_a_task_still_reaches_those_methods(cluster):
    actor = Private.remote()
    assert ray.get(call_all.remote(actor), timeout=60) == ["name", "owner", "worker"]
    ray.kill(actor)
