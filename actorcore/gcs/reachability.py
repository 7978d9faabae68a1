"""Whether a TCP endpoint's process is gone, up, or out of reach: the evidence failure
detection confirms with (docs/architecture.md, "Failure semantics").

A connection attempt that is refused at once says that nothing listens on the port: on a
reachable host, the process that listened there is gone. An accepted connection says that a
process holds the port (it may still be frozen: the kernel accepts for it). A timeout or an
unreachable host says nothing: the host may be down, cut off, or slow.
"""

from __future__ import annotations

import asyncio
import enum

__all__ = ["Reachability", "reachability"]


class Reachability(enum.Enum):
    """What one connection attempt to a TCP endpoint showed."""

    REFUSED = "refused"  # the host answered: nothing listens there
    ACCEPTED = "accepted"  # something holds the port
    UNKNOWN = "unknown"  # no answer in time, or no route to the host


async def reachability(endpoint: str, timeout: float) -> Reachability:
    """Try one TCP connection to ``endpoint`` (``host:port``) for up to ``timeout`` seconds."""
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not a host:port endpoint: {endpoint!r}")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
    except ConnectionRefusedError:
        return Reachability.REFUSED
    except (OSError, asyncio.TimeoutError):
        return Reachability.UNKNOWN
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return Reachability.ACCEPTED
