"""A real local cluster (etcd, node process, worker processes) shared by a test module."""

from __future__ import annotations

import pytest

import actorcore as ray


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=4, resources={"custom": 2})
    yield ray
    ray.shutdown()
