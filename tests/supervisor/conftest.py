"""Fixtures for the supervisor tests: every async test must leave no asyncio task and no process behind."""

from __future__ import annotations

import asyncio

import pytest

from ._procs import Reports


@pytest.fixture(autouse=True)
async def no_dangling_tasks():
    yield
    current = asyncio.current_task()
    for _ in range(5):  # let tasks that are finishing finish
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in left:
        task.cancel()
    assert not left, f"tasks left behind: {left}"


@pytest.fixture
async def reports():
    """A pipe OS-process children report 'name pid' on when they are up (see _procs.Reports)."""
    r = Reports()
    try:
        yield r
    finally:
        r.close()
        r.assert_all_dead()
