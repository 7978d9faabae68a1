"""A host whose processes are all killed with -9 (as in a crash of the machine's software):
the cluster sees its node dead, work and actors go on elsewhere, and a driver on that host gets
a clear error rather than a hang (docs/architecture.md, "Failure semantics")."""

from __future__ import annotations

import time

import pytest

from actorcore.testing import wait_until

from .conftest import LEASE_TTL, DriverFailed, LiveDriver

pytestmark = pytest.mark.timeout(180)

# A named actor that only b or c can host (each has one "pool"), restarted without limit.
MAKE_SERVICE = """
@ray.remote(resources={"pool": 1}, max_restarts=-1)
class Service:
    def host(self):
        return socket.gethostname()

service = Service.options(name="service", namespace="multihost").remote()
result(ray.get(service.host.remote()))
"""

# Wait until node NODE_ID is reported dead; then call the service until it answers (a call
# in flight when its host died fails with ActorDiedError, as on one machine).
AFTER_THE_DEATH_OF = """
import time
while not any(n["NodeID"] == {node_id!r} and not n["Alive"] for n in ray.nodes()):
    time.sleep(0.05)
seen_dead_after = time.monotonic() - {since!r}
while True:
    try:
        answer = ray.get(service.host.remote(), timeout=30)
        break
    except ray.exceptions.ActorDiedError:
        time.sleep(0.1)
named = ray.get_actor("service", namespace="multihost")
result({{"seen_dead_after": seen_dead_after, "service": answer, "named": ray.get(named.host.remote(), timeout=30),
        "tasks": ray.get([where.remote() for _ in range(6)], timeout=60)}})
"""


def test_kill_9_of_a_hosts_processes_moves_its_work_and_fails_its_driver_clearly(fresh_cluster):
    cluster = fresh_cluster
    owner = LiveDriver(cluster, "a")
    victim = owner.run(MAKE_SERVICE)
    survivor = {"b": "c", "c": "b"}[victim]
    stranded = LiveDriver(cluster, victim)  # a driver on the host that is about to lose its node
    assert stranded.run("result(ray.get(where.remote())[0])") in ("a", "b", "c")

    since = time.monotonic()  # the same clock in every process of the machine
    killed = cluster.hosts[victim].kill_processes(sparing=(stranded.process.pid,))
    assert cluster.nodes[victim]["pid"] in killed

    after = owner.run(AFTER_THE_DEATH_OF.format(node_id=cluster.nodes[victim]["node_id"], since=since),
                      timeout=120)
    print(f"\nhost {victim} killed with -9: its node reported dead after {after['seen_dead_after']:.2f} s "
          f"(lease TTL {LEASE_TTL} s)")
    assert after["service"] == after["named"] == survivor
    assert cluster.nodes[victim]["node_id"] not in {node for _, node in after["tasks"]}

    with pytest.raises(DriverFailed) as failed:  # no hang: the node is gone, the driver is told so
        stranded.run("result(ray.get(where.remote(), timeout=60))", timeout=120)
    assert failed.value.error_type == "RayError"
    assert "unreachable" in failed.value.message, failed.value.message
    stranded.close()

    again = cluster.driver(cluster.hosts[victim], "print('joined')", check=False, timeout=120)
    assert again.returncode == 1 and "joined" not in again.stdout
    assert f"ConnectionError: no node of the cluster at {cluster.address} runs on this host" in again.stderr
    assert f"start a node here with `actorcore start --address {cluster.address}`" in again.stderr
    assert "submit it as a job: `actorcore job submit --address http://" in again.stderr
    owner.close()
    wait_until(lambda: not cluster.hosts[victim].processes(), 30, f"no process left on host {victim}")
