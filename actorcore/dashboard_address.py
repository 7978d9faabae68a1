"""Where the web dashboard is served: its default host and port, and the free port a head or a
local session takes (docs/architecture.md, "The web dashboard"). A leaf module, read by the
CLI and `init()` without importing the dashboard (aiohttp).
"""

import socket

__all__ = ["DASHBOARD_PORT_RETRIES", "DEFAULT_DASHBOARD_HOST", "DEFAULT_DASHBOARD_PORT", "dashboard_address"]

DEFAULT_DASHBOARD_HOST = "127.0.0.1"
DEFAULT_DASHBOARD_PORT = 8265  # Ray's
DASHBOARD_PORT_RETRIES = 50  # ports after the default one tried when no port is given


def dashboard_address(host: str | None, port: int | None) -> tuple[str, str | None]:
    """Where to serve the dashboard, as "HOST:PORT", and why that port is taken (None if it is
    free). Without `port`, the first free port of the `DASHBOARD_PORT_RETRIES` after the
    default, as Ray does; a given port must be free."""
    host = host or DEFAULT_DASHBOARD_HOST
    if port is not None:
        return _hostport(host, port), _port_taken(host, port)
    taken = None
    for candidate in range(DEFAULT_DASHBOARD_PORT, DEFAULT_DASHBOARD_PORT + DASHBOARD_PORT_RETRIES + 1):
        taken = _port_taken(host, candidate)
        if not taken:
            return _hostport(host, candidate), None
    return _hostport(host, DEFAULT_DASHBOARD_PORT), f"{taken}, as are the {DASHBOARD_PORT_RETRIES} ports after it"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_taken(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the dashboard's server does
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None
