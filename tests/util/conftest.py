"""A real local cluster (etcd, node process, worker processes) shared by a test module."""

from __future__ import annotations

import pytest

import actorcore as ray

NAMESPACE = "util-tests"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, namespace=NAMESPACE)
    yield ray
    ray.shutdown()
