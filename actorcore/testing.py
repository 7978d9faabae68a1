"""Helpers for testing code built on actorcore: bounded waits for a condition, the processes of
a cluster, captured logs.

Wait for a condition with `wait_until` (or `async_wait_until` in a coroutine) rather than a
sleep or a hand-written deadline loop: it returns as soon as the condition holds and, when it
does not hold in time, fails with a message that names what was awaited.

The process helpers read /proc, so they work on Linux only.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._logging import capture_logs
from .cluster_files import HOME_ENV

__all__ = [
    "WaitTimeout", "async_wait_until", "capture_logs", "children_of", "is_alive", "processes_of",
    "processes_with_env", "wait_until",
]

T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """A condition awaited with `wait_until` did not hold in time. An AssertionError, so that a
    test reports it as a failed check; a TimeoutError, so that other code can catch it as one."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05,
               details: Callable[[], object] | None = None,
               retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``predicate()`` until it returns a truthy value, and return that value.

    It is called at once, then every ``interval`` seconds, and once more when ``timeout``
    seconds have passed (so a slow machine gets its last chance). An exception of a type in
    ``retry_on`` counts as a false value; any other propagates.

    Raises `WaitTimeout` if no call returned a truthy value: its message names ``what`` (write
    it as what was awaited: "the actor to restart"), the last value or exception, and
    ``details()`` if given (say, a log worth reading when the wait failed).
    """
    deadline = time.monotonic() + timeout
    while True:
        last_error = None
        try:
            value = predicate()
        except retry_on as error:
            value, last_error = None, error
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, value, last_error, details) from last_error
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], T | Awaitable[T]], timeout: float, what: str, *,
                           interval: float = 0.05, details: Callable[[], object] | None = None,
                           retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """`wait_until` for a coroutine: ``predicate`` may be a coroutine function, and the waits
    between calls let the event loop run."""
    deadline = time.monotonic() + timeout
    while True:
        last_error = None
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
        except retry_on as error:
            value, last_error = None, error
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, value, last_error, details) from last_error
        await asyncio.sleep(interval)


def _timed_out(timeout: float, what: str, value: object, error: BaseException | None,
               details: Callable[[], object] | None) -> WaitTimeout:
    last = f"last error: {error!r}" if error is not None else f"last value: {value!r}"
    message = f"timed out after {timeout:g} s waiting for {what} ({last})"
    if details is not None:
        message += f"\n{details()}"
    return WaitTimeout(message)


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes (not zombies, not this one) whose environment has ``name=value``."""
    marker = f"\0{name}={value}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = b"\0" + f.read() + b"\0"
        except OSError:
            continue
        if marker in environ and (stat := _stat(entry)) is not None and stat[0] != "Z":
            found.append(int(entry))
    return found


def processes_of(home: str | os.PathLike) -> list[int]:
    """Every live process of a cluster started with ``ACTORCORE_HOME=home`` (its nodes, their
    workers, the head's etcd): how a test finds what is left of it."""
    return processes_with_env(HOME_ENV, os.fspath(home))


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and (stat := _stat(entry)) is not None and int(stat[1]) == pid]


def is_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a zombie has exited: it counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but is not ours
        pass
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"
