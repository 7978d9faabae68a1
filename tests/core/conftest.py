"""Fixtures of the core's tests: a real local cluster for the tests that need processes."""

from __future__ import annotations

import pytest

import actorcore as ray


@pytest.fixture(scope="module")
def cluster():
    """A local cluster (etcd, a node, its workers) shared by a test module."""
    ray.init(num_cpus=2)
    yield ray
    ray.shutdown()
