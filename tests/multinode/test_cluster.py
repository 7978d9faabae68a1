"""A 3-node cluster started with the CLI: placement, spillback, SPREAD, cross-node objects,
named actors across drivers, status, and the token on every gRPC endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

import actorcore as ray
from actorcore.testing import is_alive, wait_until

from .conftest import NODE_MEMORY, NODE_STORE

pytestmark = pytest.mark.timeout(180)


@ray.remote
def node_of(_=None):
    return ray.get_runtime_context().get_node_id()


@ray.remote
class Where:
    def node(self):
        return ray.get_runtime_context().get_node_id()


def test_three_nodes_are_alive_with_their_resources(cluster):
    nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
    assert set(nodes) == {record["node_id"] for record in cluster.nodes.values()}
    for resource, record in cluster.nodes.items():
        assert nodes[record["node_id"]]["Resources"] == {"CPU": 2.0, resource: 1.0, "memory": NODE_MEMORY,
                                                           "object_store_memory": NODE_STORE}
    assert ray.cluster_resources() == {"CPU": 6.0, "A": 1.0, "B": 1.0, "C": 1.0, "memory": 3 * NODE_MEMORY,
                                      "object_store_memory": 3 * NODE_STORE}


def test_tasks_and_actors_land_where_their_resources_are(cluster):
    for resource, record in cluster.nodes.items():
        assert ray.get(node_of.options(resources={resource: 1}).remote()) == record["node_id"]
        actor = Where.options(resources={resource: 1}).remote()
        assert ray.get(actor.node.remote()) == record["node_id"]
        ray.kill(actor)


def test_a_driver_uses_the_workers_of_every_node(cluster):
    @ray.remote
    def slow_node():
        time.sleep(1.0)
        return ray.get_runtime_context().get_node_id()

    # 6 CPUs in the cluster, 2 on the driver's node: the other nodes' workers (leased as soon
    # as the tasks are submitted, but maybe started only then) take their share. (How well the
    # work scales with the nodes is measured by benchmarks/cluster.py.)
    seen = ray.get([slow_node.remote() for _ in range(12)])
    assert set(seen) == {record["node_id"] for record in cluster.nodes.values()}


def test_spread_places_tasks_on_every_node(cluster):
    seen = ray.get([node_of.options(scheduling_strategy="SPREAD").remote() for _ in range(9)])
    assert set(seen) == {record["node_id"] for record in cluster.nodes.values()}


def test_a_full_node_spills_work_back_to_another(cluster):
    @ray.remote(resources={"A": 1})
    class Hog:
        def ready(self):
            return True

    # Both of node A's CPUs busy with actors that need 1 CPU each: a task that needs a CPU
    # still runs at once, on another node.
    hogs = [Hog.options(num_cpus=1, resources={}).remote() for _ in range(2)]
    try:
        assert ray.get([h.ready.remote() for h in hogs]) == [True, True]
        assert ray.get(node_of.remote(), timeout=30) in {r["node_id"] for r in cluster.nodes.values()}
    finally:
        for hog in hogs:
            ray.kill(hog)


def test_a_100_mb_object_made_on_one_node_is_read_on_another(cluster):
    @ray.remote(resources={"A": 1})
    def make():
        return np.arange(100 * 1024 * 1024 // 8, dtype=np.int64)

    @ray.remote(resources={"C": 1})
    def check(array):
        start = time.perf_counter()
        n = len(array)
        ok = bool(array[0] == 0 and array[-1] == n - 1 and int(array.sum()) == (n - 1) * n // 2)
        return ok, array.nbytes, ray.get_runtime_context().get_node_id(), time.perf_counter() - start

    ref = make.remote()
    ray.wait([ref], timeout=60)
    start = time.perf_counter()
    ok, nbytes, node, _ = ray.get(check.remote(ref), timeout=60)
    elapsed = time.perf_counter() - start
    assert ok and nbytes == 100 * 1024 * 1024
    assert node == cluster.nodes["C"]["node_id"]
    print(f"\n100 MB pulled from node A to node C and checked in {elapsed:.3f} s "
          f"({nbytes / elapsed / 1e9:.2f} GB/s including the task)")
    # The driver (on the head, node A) reads it too, and a copy made by `put` on the driver's
    # node reaches node B intact.
    assert int(ray.get(ref)[-1]) == 100 * 1024 * 1024 // 8 - 1
    big = ray.put(np.ones(30 * 1024 * 1024 // 8))

    @ray.remote(resources={"B": 1})
    def total(array):
        return float(array.sum())

    assert ray.get(total.remote(big), timeout=60) == 30 * 1024 * 1024 // 8


def test_a_named_actor_is_reached_from_a_second_driver(cluster):
    counter = Where.options(name="shared-where", namespace="multi", lifetime="detached",
                            resources={"B": 1}).remote()
    node_b = ray.get(counter.node.remote())
    code = (
        "import actorcore as ray\n"
        "ray.init(address='auto', namespace='multi')\n"
        "actor = ray.get_actor('shared-where')\n"
        "print('NODE', ray.get(actor.node.remote()))\n"
        "ray.shutdown()\n"
    )
    result = cluster.driver(code)
    assert result.returncode == 0, result.stderr
    assert f"NODE {node_b}" in result.stdout
    ray.kill(counter)


@pytest.mark.timeout(120)
def test_a_named_actor_found_the_moment_it_is_created_answers(cluster, tmp_path):
    """Another driver that looks the name up as soon as it is registered resolves the actor with
    its owner: the owner knows the actor before its name is visible (it once answered "unknown
    actor", and the borrower kept that answer for good)."""
    stop = tmp_path / "stop"
    code = (
        "import json, os, sys, time\n"
        "import actorcore as ray\n"
        "from actorcore.exceptions import ActorDiedError\n"
        "ray.init(address='auto', namespace='race')\n"
        "found = {'ok': 0, 'unknown': 0}\n"
        "print('READY', flush=True)\n"
        f"while not os.path.exists({str(stop)!r}):\n"
        "    try:\n"
        "        actor = ray.get_actor('racer')\n"
        "    except ValueError:\n"
        "        continue\n"
        "    try:\n"
        "        ray.get(actor.node.remote(), timeout=10)\n"
        "        found['ok'] += 1\n"
        "    except ActorDiedError as error:\n"
        "        found['unknown'] += 'unknown actor' in str(error)\n"
        "print(json.dumps(found))\n"
        "ray.shutdown()\n"
    )
    borrower = subprocess.Popen([sys.executable, "-c", code], env=cluster.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    spinning = threading.Event()

    def spin() -> None:  # holds the GIL in turns with the creating thread: widens any window
        while not spinning.is_set():
            pass

    def racer_name_free() -> bool:
        try:
            ray.get_actor("racer", namespace="race")
        except ValueError:
            return True
        return False

    spinner = threading.Thread(target=spin, daemon=True)
    try:
        assert borrower.stdout.readline().strip() == "READY", borrower.stderr.read()
        spinner.start()
        for _ in range(40):
            racer = Where.options(name="racer", namespace="race").remote()
            ray.get(racer.node.remote())
            ray.kill(racer)
            wait_until(racer_name_free, 30, "the name 'racer' to be freed after the kill", interval=0)
    finally:
        spinning.set()
        stop.touch()
        out, err = borrower.communicate(timeout=60)
    found = json.loads(out.strip().splitlines()[-1])
    assert found["unknown"] == 0 and found["ok"] > 0, (found, err)


def test_a_drivers_actors_die_with_it(cluster):
    code = (
        "import actorcore as ray\n"
        f"ray.init(address={cluster.address!r}, namespace='owners')\n"
        "@ray.remote(resources={'C': 0.1})\n"
        "class Mortal:\n"
        "    def pid(self):\n"
        "        import os; return os.getpid()\n"
        "a = Mortal.options(name='mortal').remote()\n"
        "b = Mortal.options(name='immortal', lifetime='detached').remote()\n"
        "print('PIDS', ray.get(a.pid.remote()), ray.get(b.pid.remote()))\n"
    )
    result = cluster.driver(code)
    assert result.returncode == 0, result.stderr
    mortal_pid, immortal_pid = map(int, result.stdout.split("PIDS", 1)[1].split())
    wait_until(lambda: not is_alive(mortal_pid), 30, "the non-detached actor to end with its driver")
    assert is_alive(immortal_pid)
    # The cluster's actor records say so too (`actorcore status` counts actors by state).
    wait_until(lambda: json.loads(cluster.cli("status", "--json").stdout)["actors"].get("DEAD", 0) >= 1, 30,
               "the dead actor's record to say DEAD", interval=0.2)
    immortal = ray.get_actor("immortal", namespace="owners")
    assert ray.get(immortal.pid.remote()) == immortal_pid
    ray.kill(immortal)


def test_status_shows_three_nodes_and_their_resources(cluster):
    result = cluster.cli("status", "--json")
    status = json.loads(result.stdout)
    alive = [n for n in status["nodes"] if n["state"] == "ALIVE"]
    assert len(alive) == 3
    assert {n["node_id"] for n in alive} == {r["node_id"] for r in cluster.nodes.values()}
    table = cluster.cli("status").stdout
    for record in cluster.nodes.values():
        assert record["node_id"][:8] in table


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_every_endpoint_rejects_a_client_without_the_token(cluster, token):
    from actorcore._proto import transfer_pb2, transfer_pb2_grpc

    endpoints = []
    records = _node_records(cluster)
    for record in records:
        endpoints.append(("kernel", record["kernel"]))
        endpoints.append(("transfer", record["transfer"]))
    # A worker's endpoint too: the actor's worker listens on TCP.
    actor = Where.options(resources={"B": 1}).remote()
    ray.get(actor.node.remote())
    from actorcore import api

    worker, _pid = api._runtime().actors.worker_hint(actor._actorcore_actor_id)
    assert worker.address.tcp
    endpoints.append(("kernel", worker.address.tcp))
    assert len(endpoints) == 7
    metadata = (("x-actorcore-token", token),) if token else None
    for kind, target in endpoints:
        if kind == "kernel":
            assert _kernel_handshake_refused(target, token), (kind, target)
            continue
        with grpc.insecure_channel(target) as channel:
            stub = transfer_pb2_grpc.ObjectTransferStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Pull(transfer_pb2.PullRequest(object_id="x"), metadata=metadata, timeout=10))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (kind, target, info.value)
    ray.kill(actor)


def _kernel_handshake_refused(target: str, token: str | None) -> bool:
    """Whether the kernel endpoint at `target` closes a connection whose proof is made with
    `token` (an empty one for None) instead of the cluster's, having answered only its own
    Hello and Proof."""
    import os
    import socket
    import struct

    from actorcore._proto import kernel_pb2 as pb
    from actorcore.kernel.address import HOST_ID
    from actorcore.kernel.remote.handshake import CONNECTING, make_proof
    from actorcore.kernel.secret import ClusterSecret

    def framed(*frames) -> bytes:
        return b"".join(struct.pack(">I", f.ByteSize()) + f.SerializeToString() for f in frames)

    ours = pb.Hello(system_id="4242-0123456789ab", host_id=HOST_ID, nonce=os.urandom(16))
    host, _, port = target.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(framed(pb.Frame(hello=ours)))
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return False  # closed before it proved itself: not the kernel's handshake
            received += chunk
            frames, rest = [], received
            while len(rest) >= 4 and len(rest) >= 4 + struct.unpack(">I", rest[:4])[0]:
                size = struct.unpack(">I", rest[:4])[0]
                frames.append(pb.Frame.FromString(rest[4:4 + size]))
                rest = rest[4 + size:]
            if len(frames) >= 2:
                break
        theirs = frames[0].hello
        proof = make_proof(ClusterSecret(token) if token else None, CONNECTING, ours, theirs)
        batch = pb.Frame(batch=pb.EnvelopeBatch(envelopes=[pb.Envelope(kind=pb.TELL, target="x", payload=b"x")]))
        try:
            sock.sendall(framed(proof, batch))
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True


def _node_records(cluster) -> list[dict]:
    import asyncio

    from actorcore.gcs import SealedEtcd
    from actorcore.gcs.schema import key

    async def read():
        auth = json.loads((cluster.home / "cluster.json").read_text()).get("etcd_auth")
        client = await SealedEtcd.connect(cluster.address, secret=(cluster.home / "token").read_text().strip(),
                                          auth=auth)
        try:
            return [json.loads(v) for _, v in await client.get_prefix(key("default", "nodes", ""))]
        finally:
            await client.close()

    return asyncio.run(read())


def test_the_objects_of_a_driver_that_exits_are_freed(cluster):
    code = (
        "import numpy as np, actorcore as ray\n"
        "from actorcore import api\n"
        "from actorcore.protocol import GetStoreUsage\n"
        f"ray.init(address={cluster.address!r})\n"
        "ref = ray.put(np.ones(1 << 20))\n"
        "core = api._runtime()\n"
        "print('OBJECTS', core.system.ask_sync(core.store, GetStoreUsage()).objects)\n"
        "os = __import__('os'); os._exit(0)\n"  # no shutdown: as if it crashed
    )
    result = cluster.driver(code)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split("OBJECTS", 1)[1].split()[0]) >= 1

    def head_objects() -> int:
        status = json.loads(cluster.cli("status", "--json").stdout)
        return next(n["objects"] for n in status["nodes"] if n["head"])

    wait_until(lambda: head_objects() == 0, 30, "the objects of an exited driver to leave the head's store",
               details=lambda: f"{head_objects()} object(s) still held")


def test_a_ref_whose_owner_died_raises_owner_died(cluster):
    code = (
        "import os, actorcore as ray\n"
        f"ray.init(address={cluster.address!r}, namespace='owner-died')\n"
        "@ray.remote\n"
        "class Holder:\n"
        "    def keep(self, refs):\n"
        "        self.ref = refs[0]\n"
        "    def read(self):\n"
        "        return ray.get(self.ref, timeout=30)\n"
        "holder = Holder.options(name='holder', lifetime='detached').remote()\n"
        "ray.get(holder.keep.remote([ray.put('precious')]))\n"
        "os._exit(0)\n"
    )
    result = cluster.driver(code)
    assert result.returncode == 0, result.stderr
    holder = ray.get_actor("holder", namespace="owner-died")
    with pytest.raises(ray.exceptions.OwnerDiedError):
        ray.get(holder.read.remote(), timeout=60)
    ray.kill(holder)


def test_a_driver_that_kills_detached_actors_and_exits_at_once_ends_them(cluster):
    creator = cluster.driver(
        "import actorcore as ray\n"
        f"ray.init(address={cluster.address!r}, namespace='killers')\n"
        "@ray.remote(resources={'C': 0.1})\n"
        "class Detached:\n"
        "    def pid(self):\n"
        "        import os; return os.getpid()\n"
        "actors = [Detached.options(name=f'detached-{i}', lifetime='detached').remote() for i in range(3)]\n"
        "print('PIDS', *ray.get([a.pid.remote() for a in actors]))\n")
    assert creator.returncode == 0, creator.stderr
    pids = [int(pid) for pid in creator.stdout.split("PIDS", 1)[1].split()]
    assert all(map(is_alive, pids))
    killer = cluster.driver(  # their owner is gone: this driver ends their processes itself
        "import actorcore as ray\n"
        f"ray.init(address={cluster.address!r}, namespace='killers')\n"
        "for i in range(3):\n"
        "    ray.kill(ray.get_actor(f'detached-{i}'))\n")
    assert killer.returncode == 0, killer.stderr
    wait_until(lambda: not any(map(is_alive, pids)), 30, "the killed actors' processes to end",
               details=lambda: [pid for pid in pids if is_alive(pid)])
