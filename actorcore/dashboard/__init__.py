"""The web dashboard a head node serves (docs/architecture.md, "The web dashboard").

`app.make_app` builds the aiohttp application (pages, the read-only JSON API and the Jobs API,
`jobs`, behind the cluster token: `auth`); `host.DashboardHost` is the node's actor that serves it;
`sources.StateSource` is where its task and object listings come from. Its defaults and
port choice are in `actorcore.dashboard_address`, which the CLI and `init()` read without
importing aiohttp.
"""

from ..dashboard_address import (
    DASHBOARD_PORT_RETRIES,
    DEFAULT_DASHBOARD_HOST,
    DEFAULT_DASHBOARD_PORT,
    dashboard_address,
)

__all__ = ["DASHBOARD_PORT_RETRIES", "DEFAULT_DASHBOARD_HOST", "DEFAULT_DASHBOARD_PORT", "dashboard_address"]
