"""OS-process children: the :class:`~supervisor.child.Child` protocol for a subprocess
(docs/supervision.md, "OS processes").

A :class:`ProcessChild` wraps an ``asyncio.create_subprocess_exec`` process. Exit detection
is asyncio's own: the event loop's child watcher (a blocking ``waitpid`` thread or a pidfd,
depending on the Python version) wakes ``process.wait()`` as soon as the process ends, so
there is no polling loop and a supervisor sees a ``kill -9`` within a loop iteration.

Exit mapping: code 0 → ``normal``; code > 0 → ``crashed(code)``; killed by a signal →
``killed(signal)``. Once :meth:`ProcessChild.shutdown` has been called, whatever ends the
process is reported as ``shutdown`` (with the real code or signal kept in the Exit).

Shutdown sends SIGTERM, waits the timeout, then SIGKILL. Only the process itself is
signalled, not its own children; start it with ``start_new_session=True`` and manage the
group yourself if it forks.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .backoff import Backoff
from .child import ChildSpec, Exit, RestartType, ShutdownPolicy, StartInfo

__all__ = ["ProcessChild", "process_spec"]

Argv = Sequence[str] | Callable[[StartInfo], Sequence[str]]


class ProcessChild:
    """One running OS process, supervised. Create it with :meth:`ProcessChild.start`."""

    __slots__ = ("_process", "argv", "_stop_requested", "_stop_detail", "_exit")

    def __init__(self, process: asyncio.subprocess.Process, argv: Sequence[str]) -> None:
        self._process = process
        self.argv = tuple(argv)
        self._stop_requested = False
        self._stop_detail = ""
        self._exit: Exit | None = None

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        **popen_kwargs: Any,
    ) -> ProcessChild:
        """Start ``argv`` (stdin/stdout/stderr inherited unless given; ``env`` replaces the environment).

        Extra keyword arguments go to ``asyncio.create_subprocess_exec`` (``pass_fds``,
        ``start_new_session``, ...).
        """
        argv = [str(a) for a in argv]
        if not argv:
            raise ValueError("ProcessChild.start: argv is empty; give the program and its arguments")
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            **popen_kwargs,
        )
        return cls(process, argv)

    @property
    def pid(self) -> int:
        """The OS process id."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """asyncio's return code once the process has ended (negative: killed by that signal)."""
        return self._process.returncode

    @property
    def process(self) -> asyncio.subprocess.Process:
        """The underlying asyncio process (for its pipes, when some were requested)."""
        return self._process

    def _exit_for(self, returncode: int) -> Exit:
        if not self._stop_requested:
            return Exit.from_returncode(returncode)
        if returncode < 0:
            return Exit("shutdown", signal=-returncode, detail=self._stop_detail)
        return Exit("shutdown", code=returncode, detail=self._stop_detail)

    async def wait(self) -> Exit:
        """The :class:`Exit` of the process once it has ended: ``shutdown`` if we asked it to stop."""
        returncode = await self._process.wait()
        if self._exit is None:
            self._exit = self._exit_for(returncode)
        return self._exit

    def send_signal(self, signum: int) -> bool:
        """Send ``signum`` unless the process has already ended; True if it was sent."""
        if self._process.returncode is not None:
            return False
        try:
            self._process.send_signal(signum)
        except ProcessLookupError:
            return False
        return True

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        """SIGTERM, wait up to ``timeout`` (None: forever, 0: no wait), then SIGKILL."""
        del restarting  # a process keeps nothing across incarnations
        if self._process.returncode is not None:
            return await self.wait()
        self._stop_requested = True
        if timeout is not None and timeout <= 0:
            self._stop_detail = "killed with SIGKILL (brutal_kill)"
            self.send_signal(signal.SIGKILL)
            return await self.wait()
        if not self._stop_detail:
            self._stop_detail = "stopped with SIGTERM"
            self.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), timeout)
        except asyncio.TimeoutError:
            self._stop_detail = f"killed with SIGKILL after ignoring SIGTERM for {timeout:g} s"
            self.send_signal(signal.SIGKILL)
        return await self.wait()

    def __repr__(self) -> str:
        state = "running" if self._process.returncode is None else f"exited {self._process.returncode}"
        return f"<ProcessChild pid={self.pid} {state} argv={list(self.argv)!r}>"


def process_spec(
    id: str,
    argv: Argv,
    *,
    restart: RestartType = "permanent",
    shutdown: ShutdownPolicy | None = None,
    backoff: Backoff | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    **popen_kwargs: Any,
) -> ChildSpec:
    """A worker :class:`ChildSpec` that runs ``argv`` as an OS process.

    ``argv`` is a list of strings, or a function ``argv(StartInfo) -> list`` for arguments that
    depend on the incarnation. The ``args`` of a ``simple_one_for_one`` child are appended to
    it. Other keyword arguments go to :meth:`ProcessChild.start`.
    """
    if not callable(argv):
        argv = [str(a) for a in argv]
        if not argv:
            raise ValueError(f"process_spec {id!r}: argv is empty; give the program and its arguments")

    async def start(info: StartInfo) -> ProcessChild:
        base = argv(info) if callable(argv) else argv
        return await ProcessChild.start(
            [*base, *info.args], env=env, cwd=cwd, **popen_kwargs
        )

    start.__qualname__ = f"process_spec({id!r}).start"
    return ChildSpec(id=id, start=start, restart=restart, shutdown=shutdown, type="worker", backoff=backoff)
