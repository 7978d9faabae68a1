"""A host cut off the network (its link down) and plugged back in (docs/architecture.md,
"Failure semantics"): the cluster sees the cut-off node dead and restarts its named actor on
another host; the cut-off node, which lost its lease, downs itself (stops its workers and
exits with one log line) and never comes back under its id; once the link is back the cluster
is usable and the named actor keeps its name (a stale incarnation cannot free it).
"""

from __future__ import annotations

import time

import pytest

from actorcore.testing import is_alive, wait_until

from .conftest import LEASE_TTL, DriverFailed, LiveDriver, cluster_on_hosts
from .test_failures import AFTER_THE_DEATH_OF, MAKE_SERVICE

pytestmark = pytest.mark.timeout(180)

NAME_WATCH_SECONDS = 5  # after healing, the name must resolve throughout this long


@pytest.fixture(scope="module")
def healed_partition():
    """One partition and its healing, observed: {"victim", "survivor", "cut_off", "healed"}."""
    with cluster_on_hosts() as cluster:
        owner = LiveDriver(cluster, "a")
        victim = owner.run(MAKE_SERVICE)
        host, record = cluster.hosts[victim], cluster.nodes[victim]
        since = time.monotonic()
        host.disconnect()
        cut_off = owner.run(AFTER_THE_DEATH_OF.format(node_id=record["node_id"], since=since), timeout=120)
        print(f"\nhost {victim} cut off: its node reported dead after {cut_off['seen_dead_after']:.2f} s "
              f"(lease TTL {LEASE_TTL} s)")
        host.reconnect()
        # A node declared dead never comes back: it downs itself.
        wait_until(lambda: not is_alive(record["pid"]), LEASE_TTL + 60,
                   f"the cut-off node of host {victim} to down itself", interval=0.2)
        log = host.path(record["log"]).read_text(errors="replace")
        yield {"victim": victim, "survivor": {"b": "c", "c": "b"}[victim], "cut_off": cut_off,
               "owner": owner, "record": record, "log": log}
        owner.close()


def test_a_cut_off_host_is_seen_dead_and_its_named_actor_answers_from_another_host(healed_partition):
    cut_off, survivor = healed_partition["cut_off"], healed_partition["survivor"]
    assert cut_off["service"] == cut_off["named"] == survivor
    assert healed_partition["record"]["node_id"] not in {node for _, node in cut_off["tasks"]}


def test_once_the_link_is_back_the_cluster_runs_tasks_and_the_actor_still_answers(healed_partition):
    owner, survivor = healed_partition["owner"], healed_partition["survivor"]
    after = owner.run("result([ray.get(service.host.remote(), timeout=30), "
                      "ray.get([where.remote() for _ in range(6)], timeout=60)])")
    assert after[0] == survivor
    assert len(after[1]) == 6


def test_the_cut_off_node_downed_itself_and_stays_dead(healed_partition):
    record, owner = healed_partition["record"], healed_partition["owner"]
    log = healed_partition["log"]
    assert f"node {record['node_id']} downs itself" in log, log[-3000:]
    nodes = owner.run("result(ray.nodes())")
    assert [n["Alive"] for n in nodes if n["NodeID"] == record["node_id"]] == [False]


def test_once_the_link_is_back_the_named_actor_is_still_found_by_its_name(healed_partition):
    owner, survivor = healed_partition["owner"], healed_partition["survivor"]
    found = owner.run(f"""
import time
deadline, answers = time.monotonic() + {NAME_WATCH_SECONDS}, []
while time.monotonic() < deadline:
    try:
        answers.append(ray.get(ray.get_actor("service", namespace="multihost").host.remote(), timeout=30))
    except ValueError as error:
        answers.append(str(error))
    time.sleep(0.2)
result(answers)
""", timeout=120)
    assert set(found) == {survivor}, found
    with pytest.raises(DriverFailed) as taken:  # the name is the live instance's: no second one
        owner.run('Service.options(name="service", namespace="multihost").remote(); result(None)')
    assert taken.value.error_type == "ActorAlreadyExistsError"
