"""Helpers for testing code built on actorcore (STYLE.md: a testing module ships with the library).

The process helpers read /proc, so they work on Linux only.
"""

from __future__ import annotations

import os

from ._logging import capture_logs
from .cluster_files import HOME_ENV

__all__ = ["capture_logs", "children_of", "is_alive", "processes_of", "processes_with_env"]


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
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None and int(stat[1]) == pid:
            found.append(int(entry))
    return found


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
