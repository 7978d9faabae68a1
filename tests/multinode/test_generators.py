"""Generator tasks across nodes: items made on another node reach the driver as they come
(small ones inline, large ones pulled from that node's shared memory)."""

from __future__ import annotations

import numpy as np
import pytest

import actorcore as ray

pytestmark = pytest.mark.timeout(180)


@ray.remote
def blocks(n, size):
    for i in range(n):
        yield np.full(size, i, dtype=np.int64)


@ray.remote
class Producer:
    def items(self, n):
        for i in range(n):
            yield ray.get_runtime_context().get_node_id(), i


@pytest.mark.parametrize("size", [10, 100_000], ids=["inline", "shared-memory"])
def test_a_generator_on_another_node_streams_to_the_driver(cluster, size):
    gen = blocks.options(resources={"B": 1}).remote(4, size)
    values = [ray.get(ref) for ref in gen]
    assert [int(value[0]) for value in values] == [0, 1, 2, 3]
    assert all(value.shape == (size,) for value in values)


def test_a_generator_method_of_an_actor_on_another_node(cluster):
    producer = Producer.options(resources={"C": 1}).remote()
    items = [ray.get(ref) for ref in producer.items.remote(3)]
    assert items == [(cluster.nodes["C"]["node_id"], i) for i in range(3)]
    ray.kill(producer)
