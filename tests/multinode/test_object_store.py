"""Node object stores in a cluster: objects spilled on one node are pulled by others from their
files and made again by their tasks (lineage) when that node is killed, its spill folder going
with it; an object freed while another node pulls it leaves nothing there."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

import actorcore as ray
from actorcore import api
from actorcore.objects.spill import spill_directory
from actorcore.protocol import FetchObject, FreeObjects, GetStoreUsage
from actorcore.testing import wait_until
from actorcore.util.scheduling_strategies import NodeAffinitySchedulingStrategy

pytestmark = pytest.mark.timeout(240)

MIB = 1 << 20
OBJECT = 4 * MIB


def test_spilled_objects_are_pulled_by_other_nodes_and_made_again_when_their_node_dies(fresh_cluster, tmp_path):
    cluster = fresh_cluster
    spill_base = tmp_path / "spill"
    cluster.cli("start", "--address", cluster.address, "--num-cpus", "2", "--resources", json.dumps({"D": 1}),
                "--object-store-memory", str(32 * MIB), "--object-spilling-directory", str(spill_base))
    (small,) = [r for r in cluster.node_records() if r["node_id"] not in {n["node_id"] for n in cluster.nodes.values()}]
    ray.init(address=cluster.address)

    @ray.remote(max_retries=3)
    def make(i):
        return np.full(OBJECT, i, dtype=np.uint8)

    on_small = NodeAffinitySchedulingStrategy(small["node_id"], soft=True)
    refs = [make.options(scheduling_strategy=on_small).remote(i) for i in range(24)]  # 3x its store
    ray.wait(refs, num_returns=len(refs), fetch_local=False, timeout=120)

    def small_node() -> dict:
        status = json.loads(cluster.cli("status", "--json").stdout)
        return next(n for n in status["nodes"] if n["node_id"] == small["node_id"])

    spilled = wait_until(lambda: small_node()["spilled_objects"] >= 16 and small_node(), 30,
                         "the small node to report its spilled objects", details=small_node)
    assert spilled["object_bytes"] <= 32 * MIB
    folder = spill_directory(small["node_id"], spill_base)
    assert len(os.listdir(folder)) >= 16
    assert [int(ray.get(ref, timeout=60)[OBJECT // 2]) for ref in refs[:4]] == [0, 1, 2, 3]  # pulled from files

    os.kill(small["pid"], signal.SIGKILL)
    values = ray.get(refs, timeout=180)  # made again elsewhere by their tasks
    assert [(int(v[0]), int(v[-1]), len(v)) for v in values] == [(i, i, OBJECT) for i in range(24)]
    del values
    ray.shutdown()
    cluster.cli("stop")
    assert not folder.exists()


def test_an_object_freed_while_another_node_pulls_it_leaves_nothing_there(fresh_cluster):
    cluster = fresh_cluster
    ray.init(address=cluster.address)
    core = api._runtime()
    ref = ray.put(np.ones(256 * MIB, dtype=np.uint8))  # on this driver's node, A
    payload = core.objects[ref.id].payload
    other = core.cluster.store_of(cluster.nodes["B"]["node_id"])
    pulled = core.system.run(_fetch_then_free(other, payload))
    assert isinstance(pulled, LookupError) and "freed while it was pulled" in str(pulled), pulled
    usage = core.system.ask_sync(other, GetStoreUsage())
    assert (usage.objects, usage.bytes) == (0, 0)
    assert int(ray.get(ref)[-1]) == 1  # the owner's copy is untouched


async def _fetch_then_free(store, payload):
    fetch = store.ask(FetchObject(payload.object_id, payload.size, (payload.node,)), timeout=120)
    store.tell(FreeObjects([payload.object_id]))  # (after the fetch: one sender, one order)
    try:
        return await fetch
    except LookupError as error:
        return error
