"""An outsider who can write to the cluster's etcd (but holds no token) plants or rewrites
records: each is refused with `TamperedRecordError` (naming the key) and logged, never
unpickled, never used to connect (docs/architecture.md, "Security model").

The cluster is real (a head started with the CLI: its etcd, its node, its workers); the
attacker writes with a plain `EtcdClient` holding etcd's client certificate but not the
cluster token (an etcd shared with others, a leaked certificate, a backup restored by hand).
A planted pickle would create a marker file if it were ever loaded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import pickle
import socket
import uuid
from pathlib import Path

import pytest

from actorcore.gcs import EtcdClient, SealedEtcd, TamperedRecordError
from actorcore.gcs.schema import DEFAULT_CLUSTER, key
from actorcore.kernel.ref import parse_uri
from actorcore.protocol import GetFunction, ListNodes
from actorcore.services.instances import checkpoint_key
from actorcore.testing import wait_until
from tests.multinode.conftest import _session, _start_cluster
from tests.services.helpers import start_daemon, stop_daemon, wait_for_log

pytestmark = pytest.mark.timeout(180)

REFUSED = "not written by this cluster"


class _CreatesFile:
    """Unpickling it opens (creates) ``path``: the attacker's code, made harmless and visible."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _payload(marker: Path) -> bytes:
    return pickle.dumps(_CreatesFile(marker))


@pytest.fixture(scope="module")
def cluster():
    import actorcore as ray

    with _session(_start_cluster(resources=("A",))) as cluster:
        ray.init(address=cluster.address, namespace="security")
        yield cluster


def _token(cluster) -> str:
    return (cluster.home / "token").read_text().strip()


def _etcd(cluster, action, *, sealed: bool = False):
    """``await action(client)`` with a plain client (the attacker's) or one sealed with the token."""

    auth = json.loads((cluster.home / "cluster.json").read_text()).get("etcd_auth")

    async def run():
        client = await EtcdClient.connect(cluster.address, timeout=10, auth=auth)
        try:
            return await action(SealedEtcd(client, _token(cluster)) if sealed else client)
        finally:
            await client.close()

    return asyncio.run(run())


def _core():
    from actorcore import api

    return api._runtime()


@pytest.mark.timeout(120)
def test_a_rewritten_named_actor_record_is_refused_and_nothing_is_unpickled(cluster, tmp_path):
    import actorcore as ray

    @ray.remote
    class Service:
        def ping(self):
            return "pong"

    service = Service.options(name="svc").remote()
    assert ray.get(service.ping.remote(), timeout=60) == "pong"
    actor_key = key(DEFAULT_CLUSTER, "actors", service._actorcore_actor_id)
    record = json.loads(_etcd(cluster, lambda c: c.get(actor_key), sealed=True))
    marker = tmp_path / "pwned"
    forged = {**record, "handle": base64.b64encode(_payload(marker)).decode()}
    _etcd(cluster, lambda c: c.put(actor_key, json.dumps(forged).encode()))

    with pytest.raises(TamperedRecordError) as refused:
        ray.get_actor("svc")
    assert refused.value.key == actor_key
    assert actor_key in str(refused.value) and REFUSED in str(refused.value)
    assert not marker.exists(), "the attacker's pickle was loaded"
    ray.kill(service)


@pytest.mark.timeout(120)
def test_a_sealed_record_moved_to_another_key_is_refused(cluster):
    import actorcore as ray

    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    first, second = Named.options(name="first").remote(), Named.options(name="second").remote()
    assert ray.get([first.ping.remote(), second.ping.remote()], timeout=60) == ["pong", "pong"]
    first_key = key(DEFAULT_CLUSTER, "actors", first._actorcore_actor_id)
    second_key = key(DEFAULT_CLUSTER, "actors", second._actorcore_actor_id)

    async def move(client):  # the raw bytes of a valid record, put at another key
        await client.put(first_key, await client.get(second_key))

    _etcd(cluster, move)
    with pytest.raises(TamperedRecordError, match="its seal does not match"):
        ray.get_actor("first")
    assert ray.get(ray.get_actor("second").ping.remote(), timeout=60) == "pong"  # untouched: still served
    ray.kill(first)
    ray.kill(second)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("forgery", ["wrong bytes, no seal", "right hash, no seal", "sealed, wrong hash"])
def test_a_planted_exported_function_is_refused(cluster, tmp_path, forgery):
    marker = tmp_path / "pwned"
    payload = _payload(marker)
    benign = pickle.dumps(len)
    if forgery == "wrong bytes, no seal":  # under the id of a benign function
        function_id, sealed = hashlib.sha1(benign + uuid.uuid4().bytes).hexdigest(), False
    elif forgery == "right hash, no seal":
        payload += uuid.uuid4().hex.encode()  # a fresh id: no node has it in memory
        function_id, sealed = hashlib.sha1(payload).hexdigest(), False
    else:  # as a buggy member could write it: a valid seal on bytes of another id
        function_id, sealed = hashlib.sha1(benign + uuid.uuid4().bytes).hexdigest(), True
    function_key = key(DEFAULT_CLUSTER, "functions", function_id)
    _etcd(cluster, lambda c: c.put(function_key, payload), sealed=sealed)

    core = _core()
    with pytest.raises(TamperedRecordError) as refused:
        core.system.ask_sync(core.gcs, GetFunction(function_id), timeout=60)
    assert refused.value.key == function_key and REFUSED in str(refused.value)
    if sealed:
        assert f"do not hash to the function id {function_id}" in str(refused.value)
    assert not marker.exists()


def _listeners(tmp_path):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    uds = socket.socket(socket.AF_UNIX)
    uds_name = f"\0actorcore-attacker-{uuid.uuid4().hex}"
    uds.bind(uds_name)
    uds.listen(16)
    for listener in (tcp, uds):
        listener.setblocking(False)
    return tcp, uds, uds_name


def _connections(*listeners) -> int:
    count = 0
    for listener in listeners:
        while True:
            try:
                peer, _ = listener.accept()
            except BlockingIOError:
                break
            peer.close()
            count += 1
    return count


def _pointed_at(record: dict, node_id: str, tcp: str, uds: str) -> dict:
    """``record`` with every endpoint it names moved to the attacker's listeners."""
    host = record["host_id"].split("/", 1)[0] + "/" + node_id
    uris = {}
    for name, uri in record["uris"].items():
        address, actor_id = parse_uri(uri)
        uris[name] = (f"actorcore://{address.system_id}/{actor_id}?host={host}&tcp={tcp}"
                      f"&uds={uds.replace(chr(0), '%00')}")
    return {**record, "node_id": node_id, "host_id": host, "kernel": tcp, "transfer": tcp, "uris": uris}


@pytest.mark.timeout(150)
def test_a_planted_node_record_is_never_connected_to(cluster, tmp_path):
    import actorcore as ray

    core = _core()
    (head,) = [n for n in core.system.ask_sync(core.gcs, ListNodes(), timeout=30) if n["alive"]]
    tcp, uds, uds_name = _listeners(tmp_path)
    tcp_address = f"127.0.0.1:{tcp.getsockname()[1]}"
    # A node of its own, head and oldest: the one a driver on this machine would pick.
    planted = {**_pointed_at(head, "evil0000", tcp_address, uds_name), "head": True, "start_time": 0}
    planted_key = key(DEFAULT_CLUSTER, "nodes", "evil0000")
    _etcd(cluster, lambda c: c.put(planted_key, json.dumps(planted).encode()))
    try:
        driver = cluster.driver(
            "import actorcore as ray\n"
            f"ray.init(address={cluster.address!r})\n"
            "@ray.remote\n"
            "def f(x):\n"
            "    return x + 1\n"
            "print('RESULT', ray.get(f.remote(1), timeout=60))\n"
            "print('NODES', sorted(n['NodeID'] for n in ray.nodes()))\n", timeout=120)
        assert driver.returncode == 0, driver.stdout + driver.stderr
        assert "RESULT 2" in driver.stdout
        assert f"NODES {[head['node_id']]}" in driver.stdout, driver.stdout
        assert [row["NodeID"] for row in ray.nodes()] == [head["node_id"]]
        assert _connections(tcp, uds) == 0, "a process of the cluster connected where a forged record said"
        status = cluster.cli("status", "--json")
        assert [n["node_id"] for n in json.loads(status.stdout)["nodes"]] == [head["node_id"]]
        assert planted_key in status.stderr and REFUSED in status.stderr, status.stderr
    finally:
        tcp.close()
        uds.close()
        _etcd(cluster, lambda c: c.delete(planted_key))


@pytest.mark.timeout(120)
def test_a_rewritten_node_record_is_ignored_by_the_nodes(cluster, tmp_path):
    core = _core()
    (head,) = [n for n in core.system.ask_sync(core.gcs, ListNodes(), timeout=30) if n["alive"]]
    original = {k: v for k, v in head.items() if k != "alive"}
    head_key = key(DEFAULT_CLUSTER, "nodes", head["node_id"])
    tcp, uds, _ = _listeners(tmp_path)
    rewritten = {**original, "transfer": f"127.0.0.1:{tcp.getsockname()[1]}"}
    probe = {**original, "node_id": "probe0000", "host_id": original["host_id"] + "-probe"}
    probe_key = key(DEFAULT_CLUSTER, "nodes", "probe0000")
    try:
        _etcd(cluster, lambda c: c.put(head_key, json.dumps(rewritten).encode()))
        # A sealed record written after it: once the nodes see it, they have seen the rewrite.
        _etcd(cluster, lambda c: c.put(probe_key, json.dumps(probe).encode()), sealed=True)
        wait_until(lambda: "probe0000" in [n["node_id"] for n in core.system.ask_sync(core.gcs, ListNodes())],
                   30, "the probe record in the node's view")
        nodes = {n["node_id"]: n for n in core.system.ask_sync(core.gcs, ListNodes(), timeout=30)}
        assert nodes[head["node_id"]]["transfer"] == head["transfer"]  # the rewrite was not taken
        assert _connections(tcp, uds) == 0
    finally:
        tcp.close()
        uds.close()

        async def restore(client):
            await client.delete(probe_key)
            await client.put(head_key, json.dumps(original).encode())

        _etcd(cluster, restore, sealed=True)


SPEC = """
[supervisor]
max_restarts = 2
period = 60

[services.tampered]
class = "examples.services.counter:Counter"
kwargs = { start = 5 }
checkpoint_interval = 0.2
"""


@pytest.mark.timeout(180)
def test_a_planted_service_checkpoint_is_refused_by_the_daemon(cluster, tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = checkpoint_key(DEFAULT_CLUSTER, "tampered")
    _etcd(cluster, lambda c: c.put(checkpoint, _payload(marker)))
    spec = tmp_path / "services.toml"
    spec.write_text(SPEC)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(cluster, spec, log)
    try:
        wait_for_log(daemon, log, "the services could not start", timeout=90)
        (line,) = [line for line in log.read_text().splitlines() if "the services could not start" in line]
        assert checkpoint in line and REFUSED in line, log.read_text()
        assert "etcd record refused: not written by this cluster" in log.read_text()
    finally:
        stop_daemon(daemon, log)

        async def clean(client):
            await client.delete(checkpoint)

        _etcd(cluster, clean)
    assert not marker.exists(), "the attacker's checkpoint was unpickled"
    rows = json.loads(cluster.cli("supervise", "status", "--address", cluster.address, "--json").stdout)["services"]
    assert all(row["state"] != "ALIVE" for row in rows if row["service"] == "tampered"), rows
