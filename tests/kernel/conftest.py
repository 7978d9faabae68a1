"""Fixtures for the kernel tests: this process's actor system and real peer processes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from actorcore.kernel import ActorSystem
from tests.kernel.peer import TEST_TOKEN

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def system():
    system = await ActorSystem.start(name="test", token=TEST_TOKEN)
    yield system
    await system.shutdown(timeout=1.0)


class PeerProcess:
    """A `python -m tests.kernel.peer ROLE` process; `uris` are its actors' refs."""

    def __init__(self, role: str, env: dict | None = None) -> None:
        self.role = role
        self.env = env or {}
        self.process: asyncio.subprocess.Process | None = None
        self.uris: list[str] = []

    async def start(self) -> PeerProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.kernel.peer", self.role,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
        )
        count = 2 if self.role.startswith("two") else 1
        while len(self.uris) < count:
            line = await asyncio.wait_for(self.process.stdout.readline(), 20)
            if not line:
                raise RuntimeError(f"peer process {self.role} exited before it was ready")
            if line.startswith(b"READY "):
                self.uris.append(line.split()[1].decode())
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
async def peers():
    started: list[PeerProcess] = []

    async def start(role: str = "uds", env: dict | None = None) -> PeerProcess:
        peer = await PeerProcess(role, env).start()
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop()
