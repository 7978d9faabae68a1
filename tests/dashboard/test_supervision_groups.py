"""Users' supervision groups published on a real head: a group's record in etcd and in
``/api/supervision`` (policy, owner, members with their actor, node and pid), updated after a
member's worker is killed (its restart and last failure), removed by ``group.stop()``; removed
when the owner process ends without stopping it; kept, DEAD with its cause, by a group that gave
up, until ``stop()``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import actorcore as ray
from actorcore.gcs.schema import DEFAULT_CLUSTER
from actorcore.supervision_records import group_key
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(180)


@ray.remote
class Store:
    def pid(self):
        return os.getpid()


@ray.remote
class Api:
    def pid(self):
        return os.getpid()


def _record(dashboard, group_id: str) -> dict | None:
    """The group's record as etcd holds it (None: there is none)."""
    from actorcore.gcs.sealed import SealedEtcd

    async def read() -> bytes | None:
        auth = json.loads((dashboard.cluster.home / "cluster.json").read_text()).get("etcd_auth")
        async with await SealedEtcd.connect(dashboard.cluster.address, secret=dashboard.token, auth=auth,
                                            timeout=5) as etcd:
            return await etcd.get(group_key(DEFAULT_CLUSTER, group_id))

    blob = asyncio.run(read())
    return json.loads(blob) if blob is not None else None


def _listed(dashboard, group_id: str) -> dict | None:
    groups = [g for g in dashboard.api("supervision")["groups"] if g["group_id"] == group_id]
    return groups[0] if groups else None


def test_a_group_is_published_updated_at_a_restart_and_removed_when_stopped(dashboard):
    group = ray.supervise([ray.ChildSpec("store", Store), ray.ChildSpec("api", Api)], strategy="rest_for_one",
                          max_restarts=3, period=30, name="web")
    store_pid = ray.get(group["store"].pid.remote(), timeout=60)
    record = wait_until(lambda: _record(dashboard, group.group_id), 30, "the group's record in etcd")
    assert (record["name"], record["state"], record["strategy"], record["max_restarts"], record["period"]) == (
        "web", "RUNNING", "rest_for_one", 3, 30.0)
    assert record["owner"]["pid"] == os.getpid() and record["owner"]["driver"] is True
    assert record["restarts"] == 0 and record["last_failure"] is None
    assert [(m["id"], m["class_name"], m["state"], m["restarts"], m["actor_id"]) for m in record["members"]] == [
        ("store", "Store", "ALIVE", 0, group["store"]._actorcore_actor_id),
        ("api", "Api", "ALIVE", 0, group["api"]._actorcore_actor_id)]

    os.kill(store_pid, signal.SIGKILL)  # rest_for_one: store and api are restarted

    def restarted():
        listed = _listed(dashboard, group.group_id)
        members = {m["id"]: m for m in (listed or {}).get("members", [])}
        done = listed and listed["restarts"] == 2 and all(m["state"] == "ALIVE" for m in members.values())
        return (listed, members) if done and members["store"]["pid"] not in (None, store_pid) else None

    listed, members = wait_until(restarted, 60, "the restart in /api/supervision",
                                 details=lambda: _listed(dashboard, group.group_id))
    assert members["store"]["restarts"] == 1 and members["api"]["restarts"] == 1
    assert members["store"]["pid"] == ray.get(group["store"].pid.remote(), timeout=60)
    assert members["store"]["node_id"] == dashboard.head_node_id
    assert "crashed" in members["store"]["last_failure"]["exit"]
    assert f"pid {store_pid}" in members["store"]["last_failure"]["exit"]
    assert members["api"]["last_failure"] is None  # stopped by its sibling's restart: not a failure
    assert listed["last_failure"]["child"] == "store"
    assert _record(dashboard, group.group_id)["restarts"] == 2

    group.stop()
    wait_until(lambda: _record(dashboard, group.group_id) is None, 30, "the record removed after stop()")
    assert _listed(dashboard, group.group_id) is None


def test_a_group_whose_owner_ends_is_removed(dashboard, tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        import actorcore as ray

        @ray.remote
        class Worker:
            def ping(self):
                return "pong"

        ray.init(address={dashboard.cluster.address!r})
        group = ray.supervise([ray.ChildSpec("worker", Worker)], name="orphaned")
        ray.get(group["worker"].ping.remote(), timeout=60)
        print(group.group_id, flush=True)
        sys.stdin.readline()
        os._exit(0)  # no stop(), no shutdown()
    """))
    env = {**os.environ, "ACTORCORE_HOME": str(dashboard.cluster.home)}
    owner = subprocess.Popen([sys.executable, str(script)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        group_id = owner.stdout.readline().strip()
        assert group_id, "the owner did not start its group"
        listed = wait_until(lambda: _listed(dashboard, group_id), 30, "the owner's group in /api/supervision")
        assert listed["name"] == "orphaned" and listed["owner"]["pid"] == owner.pid
        owner.stdin.write("\n")
        owner.stdin.flush()
        assert owner.wait(timeout=60) == 0
        wait_until(lambda: _record(dashboard, group_id) is None, 60, "the record removed once its owner ended")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_group_that_gave_up_keeps_its_record_until_stopped(dashboard):
    group = ray.supervise([ray.ChildSpec("only", Store)], max_restarts=0, period=30, name="fragile")
    pid = ray.get(group["only"].pid.remote(), timeout=60)
    wait_until(lambda: _record(dashboard, group.group_id), 30, "the group's record in etcd")
    os.kill(pid, signal.SIGKILL)
    cause = group.dead.result(timeout=60)
    def dead():
        record = _record(dashboard, group.group_id)
        return record if record and record["state"] == "DEAD" else None

    record = wait_until(dead, 30, "the group's record DEAD")
    assert record["cause"] == cause and "gave up" in cause
    assert record["members"][0]["state"] == "DEAD" and f"pid {pid}" in record["last_failure"]["exit"]
    group.stop()
    wait_until(lambda: _record(dashboard, group.group_id) is None, 30, "the record removed by stop()")
