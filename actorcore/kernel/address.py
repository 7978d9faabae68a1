"""Where an actor system can be reached (location transparency).

An `Address` names one actor system incarnation and the endpoints it listens on: a Unix
socket path (reachable from the same host only) and/or a TCP "host:port" endpoint.

The host identity decides between the two: peers with the same one talk over Unix sockets,
others over TCP (`remote/tcp_stream.py`). It is the machine's, unless `ACTORCORE_HOST_ID` (or `set_host_id`) names
another: a cluster node gives its processes one of their own, so that several nodes on one
machine talk to each other over TCP exactly as nodes on separate machines do.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import NamedTuple

from ..env import HOST_ID_ENV


def _read_host_id() -> str:
    for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value:
            return f"{socket.gethostname()}-{value}"
    return socket.gethostname()


MACHINE_ID = _read_host_id()
HOST_ID = os.environ.get(HOST_ID_ENV) or MACHINE_ID


def set_host_id(value: str | None) -> None:
    """Set this process's host identity (before its actor system starts); None: the machine's."""
    global HOST_ID
    HOST_ID = value or MACHINE_ID


def listening_here(uds: str) -> bool:
    """Whether the Unix socket `uds` is open on this host: the proof that an actor system runs
    here, which a cloned machine-id or hostname cannot fake. On Linux an abstract socket is
    looked up in this network namespace's socket table (``/proc/net/unix``), without connecting."""
    if not uds:
        return False
    if uds.startswith("\0"):
        suffix = " @" + uds[1:]
        try:
            with open("/proc/net/unix") as table:
                return any(line.rstrip("\n").endswith(suffix) for line in table)
        except OSError:
            return False
    return os.path.exists(uds)


def new_system_id() -> str:
    """A fresh id for an actor system: this process's pid and a random suffix."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class Address(NamedTuple):
    """Where an actor system can be reached: its id, its host identity and its endpoints."""

    system_id: str
    host_id: str
    tcp: str = ""  # "host:port" of the TCP endpoint
    uds: str = ""  # path of the Unix-socket endpoint

    @property
    def same_host(self) -> bool:
        """True if the system runs on this process's host (its Unix socket is reachable from here)."""
        return self.host_id == HOST_ID

    def __str__(self) -> str:
        where = self.uds if self.uds and self.same_host else self.tcp or self.uds
        return f"{self.system_id}@{where}"
