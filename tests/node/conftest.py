"""Fixtures for the node's in-process tests: one actor system, no task left behind."""

from __future__ import annotations

import asyncio

import pytest

from actorcore.kernel import ActorSystem


@pytest.fixture(autouse=True)
async def no_dangling_tasks():
    """Fail a test that leaves an asyncio task running (its actors' included)."""
    yield
    current = asyncio.current_task()
    for _ in range(5):  # let tasks that are finishing finish
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in left:
        task.cancel()
    assert not left, f"tasks left behind: {left}"


@pytest.fixture
async def system():
    """This process's actor system, without sockets: every actor of the test lives in it."""
    system = await ActorSystem.start(name="node-test", uds=False)
    yield system
    await system.shutdown(timeout=1.0)
