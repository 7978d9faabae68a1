"""The web dashboard a head node serves (docs/architecture.md, "The web dashboard").

`app.make_app` builds the aiohttp application (pages and the read-only JSON API, behind the
cluster token: `auth`); `host.DashboardHost` is the node's actor that serves it;
`sources.StateSource` is where its task and object listings come from. This package's root
holds only the defaults, so that the CLI reads them without importing aiohttp.
"""

__all__ = ["DEFAULT_DASHBOARD_HOST", "DEFAULT_DASHBOARD_PORT"]

DEFAULT_DASHBOARD_HOST = "127.0.0.1"
DEFAULT_DASHBOARD_PORT = 8265  # Ray's
