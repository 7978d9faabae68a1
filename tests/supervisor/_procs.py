"""Tiny OS-process children for the tests: each writes 'name pid' to a pipe once it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

from supervisor import ChildSpec, process_spec

PY = [sys.executable, "-I", "-S", "-c"]
REPORT = "import os, sys\nos.write(int(sys.argv[1]), ('%s %d\\n' % (sys.argv[2], os.getpid())).encode())\n"
SLEEP = "import time\ntime.sleep(60)\n"
IGNORE_TERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"


class Reports:
    """Collects the 'name pid' lines children write to ``self.w`` when they are up."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.lines: asyncio.Queue[tuple[str, int, float]] = asyncio.Queue()
        self.pids: list[int] = []
        self._buf = b""
        self.loop.add_reader(self.r, self._readable)
        self._closed = False

    def _readable(self) -> None:
        now = time.perf_counter()
        try:
            data = os.read(self.r, 65536)
        except BlockingIOError:
            return
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            name, pid = line.decode().split()
            self.pids.append(int(pid))
            self.lines.put_nowait((name, int(pid), now))

    async def next(self, timeout: float = 5.0) -> tuple[str, int, float]:
        """The next child that came up: (name, pid, perf_counter time the line was read)."""
        return await asyncio.wait_for(self.lines.get(), timeout)

    async def take(self, n: int, timeout: float = 5.0) -> list[tuple[str, int, float]]:
        return [await self.next(timeout) for _ in range(n)]

    def argv(self, name: str, body: str = SLEEP, *, before: str = "") -> list[str]:
        """A python child that runs ``before``, reports itself, then runs ``body``."""
        return [*PY, before + REPORT + body, str(self.w), name]

    def spec(self, name: str, body: str = SLEEP, *, before: str = "", **kwargs: Any) -> ChildSpec:
        return process_spec(name, self.argv(name, body, before=before), pass_fds=(self.w,), **kwargs)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.loop.remove_reader(self.r)
            os.close(self.r)
            os.close(self.w)

    def assert_all_dead(self) -> None:
        alive = []
        for pid in self.pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(pid)
            os.kill(pid, signal.SIGKILL)
        assert not alive, f"child processes left behind: {alive}"
