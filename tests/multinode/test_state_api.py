"""The state API and its CLI on a real two-node cluster started with `actorcore start` (a head
serving the dashboard, and a second node): actors (one whose worker was killed: DEAD with its
cause), tasks (one failing), objects (a put in the driver, a returned one), a placement group,
the workers and drivers; `list_*`, `get_*`, `summarize_*`, filters and their errors, the same
through `actorcore list|get|summary|memory`, and the dashboard's task and object listings."""

from __future__ import annotations

import json
import os
import signal

import pytest
import yaml

import actorcore as ray
from actorcore.gcs.etcd_server import _free_port
from actorcore.testing import wait_until
from actorcore.util import state
from actorcore.util.placement_group import placement_group
from tests.multinode.conftest import NODE_STORE, Cluster, _session, unstarted_cluster

pytestmark = pytest.mark.timeout(240)


@ray.remote
def square(x):
    return x * x


@ray.remote
def fails():
    raise ValueError("bad input for the state test")


@ray.remote
class Keeper:
    def where(self):
        return os.getpid(), ray.get_runtime_context().get_node_id()


class World:
    """What the module's workload made, to check the answers against."""


@pytest.fixture(scope="module")
def world():
    cluster = unstarted_cluster("actorcore-state-")
    home = cluster.home
    dashboard_port = _free_port()
    with _session(cluster):
        cluster.cli("start", "--head", "--port", cluster.address.rsplit(":", 1)[1], "--num-cpus", "2",
                    "--resources", '{"A": 1}', "--object-store-memory", str(1 << 28),
                    "--dashboard-port", str(dashboard_port))
        (head,) = cluster.node_records()
        cluster.start_node("B")
        ray.init(address=cluster.address)
        w = World()
        w.cluster, w.head, w.other = cluster, head["node_id"], cluster.nodes["B"]["node_id"]
        w.dashboard_port = dashboard_port
        w.token = (home / "token").read_text().strip()
        w.keeper = Keeper.options(name="keeper", resources={"B": 0.5}).remote()
        w.keeper_pid, node = ray.get(w.keeper.where.remote(), timeout=60)
        assert node == w.other
        doomed = Keeper.options(name="doomed", resources={"A": 0.1}).remote()
        w.doomed_pid, _ = ray.get(doomed.where.remote(), timeout=60)
        os.kill(w.doomed_pid, signal.SIGKILL)
        assert ray.get([square.options(resources={"A": 0.1}).remote(i) for i in range(3)], timeout=60) == [0, 1, 4]
        with pytest.raises(ValueError, match="bad input"):
            ray.get(fails.remote(), timeout=60)
        w.big = ray.put(b"x" * 300_000)  # in the head's object store
        w.small = ray.put("small")
        w.returned = square.remote(7)
        assert ray.get(w.returned, timeout=60) == 49
        w.group = placement_group([{"A": 0.2}])
        ray.get(w.group.ready(), timeout=60)
        yield w


def _by_name(actors, name):
    return next((a for a in actors if a.name == name), None)


def test_nodes(world):
    nodes = state.list_nodes()
    assert [(n.node_id, n.state, n.is_head_node) for n in nodes] == [
        (world.head, "ALIVE", True), (world.other, "ALIVE", False)]
    assert nodes[0].node_ip == "127.0.0.1" and nodes[0].resources_total["A"] == 1.0
    assert nodes[1]["resources_total"]["B"] == 1.0  # read as a mapping too
    assert state.get_node(world.other).node_id == world.other
    assert state.get_node("no-such-node") is None
    assert [n.node_id for n in state.list_nodes(filters=[("is_head_node", "=", "False")])] == [world.other]


def test_actors_alive_and_dead_with_its_cause(world):
    def both():
        actors = state.list_actors()
        doomed, keeper = _by_name(actors, "doomed"), _by_name(actors, "keeper")
        return (doomed, keeper) if doomed and doomed.state == "DEAD" and keeper and keeper.pid else None

    doomed, keeper = wait_until(both, 30, "the killed actor DEAD and the other ALIVE",
                                details=state.list_actors)
    assert (keeper.state, keeper.class_name, keeper.node_id, keeper.pid) == ("ALIVE", "Keeper", world.other,
                                                                             world.keeper_pid)
    assert doomed.node_id == world.head and doomed.pid == world.doomed_pid
    assert doomed.death_cause.startswith(f"its worker process (pid {world.doomed_pid}) died"), doomed.death_cause
    assert state.get_actor(keeper.actor_id) == keeper
    assert state.get_actor("0" * 12) is None
    assert [a.name for a in state.list_actors(filters=[("state", "=", "dead")])] == ["doomed"]
    assert [a.name for a in state.list_actors(filters=[("state", "!=", "DEAD")])] == ["keeper"]
    summary = state.summarize_actors()["cluster"]
    assert summary["total_actors"] == 2
    assert summary["summary"]["Keeper"]["state_counts"] == {"ALIVE": 1, "DEAD": 1}


def test_tasks_finished_and_failed(world):
    def listed():
        tasks = state.list_tasks(filters=[("func_or_class_name", "=", "square")], limit=1000)
        failed = state.list_tasks(filters=[("state", "=", "FAILED"), ("name", "=", "fails")])
        done = [t for t in tasks if t.state == "FINISHED"]
        return (done, failed) if len(done) == 4 and len(failed) == 1 else None

    done, (failed,) = wait_until(listed, 30, "4 finished squares and the failed task",
                                 details=lambda: state.list_tasks(limit=1000))
    assert {t.node_id for t in done} <= {world.head, world.other}
    assert all(t.type == "NORMAL_TASK" and t.worker_pid for t in done)
    assert failed.error_type == "TASK_EXECUTION_EXCEPTION" and "bad input for the state test" in failed.error_message
    assert state.get_task(failed.task_id).state == "FAILED"
    assert state.get_task(world.returned).func_or_class_name == "square"  # the task of an ObjectRef
    assert state.get_task("nope") is None
    assert len(state.list_tasks(filters=[("func_or_class_name", "=", "square")], limit=2)) == 2
    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"]["square"]["state_counts"]["FINISHED"] == 4
    assert summary["summary"]["fails"]["state_counts"] == {"FAILED": 1}
    assert summary["total_tasks"] >= 5


def test_objects_owned_by_the_driver(world):
    me = ray.get_runtime_context().get_worker_id()
    objects = {o.object_id: o for o in state.list_objects(filters=[("pid", "=", os.getpid())], limit=1000)}
    big, small, returned = objects[world.big.hex()], objects[world.small.hex()], objects[world.returned.hex()]
    for obj in (big, small, returned):
        assert (obj.type, obj.pid, obj.owner_worker_id, obj.reference_type, obj.task_status) == (
            "DRIVER", os.getpid(), me, "LOCAL_REFERENCE", "FINISHED")
        assert obj.owner_node_id == world.head and obj.call_site == "disabled"
    assert big.object_size > 300_000 and big.in_shared_memory and big.node_id == world.head and not big.spilled
    assert small.object_size < 1000 and not small.in_shared_memory
    assert state.get_objects(world.big.hex()) == [big]
    assert state.get_objects("no-such-object") == []
    summary = state.summarize_objects()["cluster"]
    assert summary["total_objects"] >= 3 and summary["total_size_mb"] > 0.28
    assert summary["summary"]["disabled"]["ref_type_counts"]["LOCAL_REFERENCE"] >= 3


def test_workers_and_drivers(world):
    workers = wait_until(lambda: [w for w in state.list_workers() if w.pid == world.keeper_pid], 30,
                         "the actor's worker to be listed")
    assert (workers[0].node_id, workers[0].worker_type, workers[0].is_alive) == (world.other, "WORKER", True)
    (driver,) = state.list_workers(filters=[("worker_type", "=", "DRIVER")])
    assert (driver.pid, driver.node_id) == (os.getpid(), world.head)
    assert driver.worker_id == ray.get_runtime_context().get_worker_id()
    assert state.get_worker(driver.worker_id).pid == os.getpid()
    assert {w.node_id for w in state.list_workers()} == {world.head, world.other}


def test_placement_groups_and_jobs(world):
    (group,) = state.list_placement_groups()
    assert (group.placement_group_id, group.state) == (world.group.id.hex(), "CREATED")
    assert group.bundles[0]["node_id"] == world.head and group.bundles[0]["unit_resources"] == {"A": 0.2}
    assert state.get_placement_group(group.placement_group_id) == group
    assert state.list_jobs() == []


def test_bad_input_is_a_clear_error(world):
    with pytest.raises(ValueError, match="'colour' is not a filterable field of actors"):
        state.list_actors(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="unsupported predicate '>'"):
        state.list_nodes(filters=[("state", ">", "A")])
    with pytest.raises(ValueError, match=r"a filter is \(field, '=' or '!=', value\)"):
        state.list_workers(filters=["state=ALIVE"])
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        state.list_objects(limit=0)
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        state.list_tasks(timeout=0)
    with pytest.raises(ValueError, match="an id is a non-empty string"):
        state.get_actor("")


def test_an_address_names_the_drivers_own_cluster_or_none(world):
    assert [n.node_id for n in state.list_nodes(address=world.cluster.address)] == [world.head, world.other]
    with pytest.raises(ValueError, match=r"this driver is connected to the cluster at .* it cannot ask the one at "
                                         r"127\.0\.0\.1:1"):
        state.list_nodes(address="127.0.0.1:1")
    # a process without init() opens a session of its own (here: the cluster of its ACTORCORE_HOME)
    code = ("from actorcore.util import state; "
            "print(sorted(o.object_id for o in state.list_objects(limit=1000)))")
    result = world.cluster.driver(code)
    assert result.returncode == 0 and world.big.hex() in result.stdout, result.stderr


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_list(world):
    cluster = world.cluster
    actors = json.loads(cluster.cli("list", "actors", "--format", "json").stdout)
    assert {(a["name"], a["state"]) for a in actors} == {("keeper", "ALIVE"), ("doomed", "DEAD")}
    dead = yaml.safe_load(cluster.cli("list", "actors", "--filter", "state=DEAD", "--format", "yaml").stdout)
    assert [a["pid"] for a in dead] == [world.doomed_pid]
    table = cluster.cli("list", "actors", "-f", "name!=doomed").stdout
    assert "Total: 1" in table and "ACTOR_ID" in table and "keeper" in table and "doomed" not in table
    assert "DEATH_CAUSE" not in table and "DEATH_CAUSE" in cluster.cli("list", "actors", "--detail").stdout
    nodes = json.loads(cluster.cli("list", "nodes", "--format", "json", "--address", cluster.address).stdout)
    assert [n["node_id"] for n in nodes] == [world.head, world.other]
    failed = json.loads(cluster.cli("list", "tasks", "--filter", "state=FAILED", "--format", "json").stdout)
    assert [(t["name"], t["error_type"]) for t in failed] == [("fails", "TASK_EXECUTION_EXCEPTION")]
    objects = json.loads(cluster.cli("list", "objects", "--format", "json", "--limit", "1000").stdout)
    assert world.big.hex() in {o["object_id"] for o in objects}
    assert len(json.loads(cluster.cli("list", "objects", "--format", "json", "--limit", "1").stdout)) == 1
    workers = json.loads(cluster.cli("list", "workers", "--format", "json").stdout)
    assert os.getpid() in {w["pid"] for w in workers if w["worker_type"] == "DRIVER"}
    groups = json.loads(cluster.cli("list", "placement-groups", "--format", "json").stdout)
    assert [g["state"] for g in groups] == ["CREATED"]
    assert "Total: 0" in cluster.cli("list", "jobs").stdout


def test_cli_get_and_summary(world):
    cluster = world.cluster
    keeper = state.list_actors(filters=[("name", "=", "keeper")])[0]
    record = yaml.safe_load(cluster.cli("get", "actors", keeper.actor_id).stdout)
    assert (record["name"], record["pid"], record["node_id"]) == ("keeper", world.keeper_pid, world.other)
    node = json.loads(cluster.cli("get", "nodes", world.head, "--format", "json").stdout)
    assert node["is_head_node"] is True
    missing = cluster.cli("get", "actors", "nope", check=False)
    assert missing.returncode == 1 and "no actor with id 'nope'" in missing.stderr
    tasks = json.loads(cluster.cli("summary", "tasks", "--format", "json").stdout)["cluster"]
    assert tasks["summary"]["fails"]["state_counts"] == {"FAILED": 1}
    table = cluster.cli("summary", "actors").stdout
    assert "total_actors: 2" in table and "ALIVE: 1, DEAD: 1" in table
    assert "total_objects" in cluster.cli("summary", "objects").stdout


def test_cli_memory(world):
    out = world.cluster.cli("memory", "--sort-by", "PID").stdout
    assert f"--- Summary for node {world.head} (127.0.0.1) ---" in out
    assert world.big.hex() in out and "LOCAL_REFERENCE" in out and str(os.getpid()) in out
    assert "Aggregate object store stats across all nodes" in out
    report = json.loads(world.cluster.cli("memory", "--format", "json").stdout)
    (group,) = [g for g in report["groups"] if g["group"] == world.head]
    assert group["summary"]["LOCAL_REFERENCE"] >= 3 and group["summary"]["bytes"] > 300_000
    sizes = [r["object_size"] or 0 for r in group["references"]]
    assert sizes == sorted(sizes, reverse=True)  # OBJECT_SIZE by default, largest first
    assert report["totals"]["object_store_capacity"] == (1 << 28) + NODE_STORE


def test_cli_usage_errors_exit_2(world):
    cluster = world.cluster
    for args, message in [(("list", "actors", "--filter", "colour=red"), "'colour' is not a filterable field"),
                          (("list", "actors", "--filter", "state"), "expected KEY=VALUE or KEY!=VALUE"),
                          (("list", "things"), "invalid choice: 'things'"),
                          (("list", "tasks", "--limit", "0"), "argument --limit: must be >= 1"),
                          (("get", "jobs", "x"), "invalid choice: 'jobs'"),
                          (("memory", "--sort-by", "COLOUR"), "invalid choice: 'COLOUR'")]:
        result = cluster.cli(*args, check=False)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_cli_without_a_cluster_fails_clearly(tmp_path):
    env = {**os.environ, "ACTORCORE_HOME": str(tmp_path)}
    result = Cluster(tmp_path, "", env).cli("list", "actors", check=False)
    assert result.returncode == 1 and "no cluster to ask" in result.stderr


# -- the dashboard ---------------------------------------------------------------------------------


def test_dashboard_lists_tasks_and_objects(world):
    import http.client

    def api(path):
        connection = http.client.HTTPConnection("127.0.0.1", world.dashboard_port, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {world.token}"})
            answer = connection.getresponse()
            assert answer.status == 200
            return json.loads(answer.read())
        finally:
            connection.close()

    tasks = api("/api/tasks?limit=1000")
    assert tasks["available"] is True
    failed = [t for t in tasks["tasks"] if t["state"] == "FAILED"]
    assert [t["name"] for t in failed] == ["fails"] and "bad input" in failed[0]["error_message"]
    objects = api("/api/objects?limit=1")["objects"]
    assert [o["object_id"] for o in objects] == [world.big.hex()]  # the largest first


def test_a_process_that_does_not_answer_makes_the_answer_incomplete(world):
    os.kill(world.keeper_pid, signal.SIGSTOP)
    try:
        with pytest.raises(state.RayStateApiException, match=f"process {world.keeper_pid} .* did not answer"):
            state.list_workers(timeout=2)
        assert world.keeper_pid not in {w.pid for w in state.list_workers(timeout=2, raise_on_missing_output=False)}
        result = world.cluster.cli("list", "objects", "--timeout", "2", check=False)
        assert result.returncode == 1 and "the answer is incomplete" in result.stderr
    finally:
        os.kill(world.keeper_pid, signal.SIGCONT)
    assert world.keeper_pid in {w.pid for w in state.list_workers()}


def test_a_spilled_object_is_listed_as_spilled(world):
    value = b"s" * (100 << 20)  # three of them do not fit in the head's 256 MiB store: the first is spilled
    refs = [ray.put(value) for _ in range(3)]
    try:
        objects = {o.object_id: o for o in state.list_objects(filters=[("pid", "=", os.getpid())], limit=1000)}
        assert objects[refs[0].hex()].spilled is True
        assert objects[refs[2].hex()].spilled is False and objects[refs[2].hex()].in_shared_memory
    finally:
        del refs

