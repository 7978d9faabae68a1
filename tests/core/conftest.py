"""Fixtures of the core's tests: a real local cluster for those that need processes; a check that
in-process tests leave no asyncio task behind."""

from __future__ import annotations

import asyncio

import pytest

import actorcore as ray


@pytest.fixture(scope="module")
def cluster():
    """A local cluster (etcd, a node, its workers) shared by a test module."""
    ray.init(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
async def no_dangling_tasks():
    """Fail an in-process test that leaves asyncio tasks running (a part forgot one)."""
    yield
    current = asyncio.current_task()
    for _ in range(5):  # let tasks that are finishing finish
        await asyncio.sleep(0)
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    assert not left, f"tasks left behind: {left}"
