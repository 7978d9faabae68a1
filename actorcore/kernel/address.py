"""Where an actor system can be reached (DESIGN.md §3 location transparency).

An `Address` names one actor system incarnation and the endpoints it listens on: a Unix
socket path (reachable from the same host only) and/or a gRPC "host:port" endpoint.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import NamedTuple


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


HOST_ID = _read_host_id()


def new_system_id() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class Address(NamedTuple):
    system_id: str
    host_id: str
    tcp: str = ""  # "host:port" of the gRPC endpoint
    uds: str = ""  # path of the Unix-socket endpoint

    @property
    def same_host(self) -> bool:
        return self.host_id == HOST_ID

    def __str__(self) -> str:
        where = self.uds if self.uds and self.same_host else self.tcp or self.uds
        return f"{self.system_id}@{where}"
