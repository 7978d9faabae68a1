"""The supervise tests' cluster: a single-node CLI cluster per test module that asks for it."""

from __future__ import annotations

import pytest

from tests.multinode.conftest import _start_cluster, _stop_cluster


@pytest.fixture(scope="module")
def cluster():
    cluster = _start_cluster(resources=("A",))
    try:
        yield cluster
    finally:
        _stop_cluster(cluster)
