"""`DashboardHost`: the actor of a head node that serves the web dashboard (docs/architecture.md,
"The web dashboard").

It runs the aiohttp application (`make_app`) on the node process's loop: `pre_start` binds the
site (etcd is connected on the first API call), `post_stop` closes both. Asked `GetDashboardUrl` it
answers the URL it serves (with the port the system chose for port 0). `start_dashboard` adds
it to the node's root supervisor and returns that URL, or raises `DashboardStartError` naming
the address and the option to change when it cannot bind. Once it has served, a later
incarnation (a restart by the root supervisor) that cannot bind its port at once (another
process took it meanwhile) does not fail, which would count against the node's restart
intensity and could stop the head: it logs the error and tries again in the background until
it can (Ray's head also stays up without its dashboard).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .._logging import get_logger
from ..gcs.lazy_etcd import LazyEtcd
from ..kernel import Actor
from ..kernel.supervision import actor_spec
from .app import make_app
from .sources import StateSource

__all__ = ["DashboardHost", "DashboardStartError", "GetDashboardUrl", "start_dashboard"]

log = get_logger(__name__)

#: seconds between two attempts to bind the port again (doubling from the first to the last)
REBIND_DELAYS = (0.5, 30.0)


class DashboardStartError(RuntimeError):
    """The dashboard could not be served (its message names the address and the option)."""


@dataclass(frozen=True, slots=True)
class GetDashboardUrl:
    """Ask a `DashboardHost` for the URL it serves."""


@dataclass
class _Incarnations:
    """Shared by a dashboard's incarnations: whether one has served yet."""

    served: bool = False
    failure: str | None = None  # why the last one could not start


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DashboardHost(Actor):
    """Serves the dashboard of `cluster` on `host`:`port` while it lives."""

    def __init__(self, host: str, port: int, etcd: str, token: str, *, cluster: str,
                 etcd_auth: dict | None = None, source: StateSource | None = None, jobs: Any = None,
                 incarnations: _Incarnations | None = None) -> None:
        self.host, self.port = host, port
        self.incarnations = incarnations or _Incarnations()
        self.rebind: asyncio.Task | None = None
        self.jobs = jobs
        self.etcd_endpoints, self.etcd_auth = etcd, etcd_auth
        self.token, self.cluster, self.source = token, cluster, source
        self.etcd: LazyEtcd | None = None
        self.runner: web.AppRunner | None = None
        self.url: str | None = None

    async def pre_start(self) -> None:
        # etcd is reached on the first API call: a dashboard that cannot reach it answers 503
        # and never fails (a failing child would count against the node's restart intensity).
        self.etcd = LazyEtcd(self.etcd_endpoints, self.token, self.etcd_auth)
        self.runner = web.AppRunner(make_app(self.etcd, self.token, cluster=self.cluster, source=self.source,
                                             url=lambda: self.url, system=self.context.system, jobs=self.jobs),
                                    access_log=None)
        await self.runner.setup()
        try:
            await self._bind()
        except OSError as error:
            why = (f"cannot serve the dashboard on {self.host}:{self.port}: {error.strerror or error}; "
                   "pass another --dashboard-port (init(dashboard_port=...)), or --no-include-dashboard")
            if not self.incarnations.served or self.port == 0:
                await self.post_stop()
                self.incarnations.failure = why
                raise DashboardStartError(why) from None
            log.error("the dashboard restarted but cannot bind its port; trying again in the background", error=why)
            self.url = _url(self.host, self.port)
            self.rebind = asyncio.get_running_loop().create_task(self._bind_again())

    async def _bind(self) -> None:
        site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await site.start()
        port = site._server.sockets[0].getsockname()[1] if self.port == 0 else self.port
        self.url = _url(self.host, port)
        self.incarnations.served = True
        log.debug("dashboard serving", url=self.url)

    async def _bind_again(self) -> None:
        delay, longest = REBIND_DELAYS
        while True:
            await asyncio.sleep(delay)
            try:
                await self._bind()
            except OSError:
                delay = min(delay * 2, longest)
                continue
            log.warning("the dashboard serves again", url=self.url)
            return

    async def post_stop(self) -> None:
        if self.rebind is not None:
            self.rebind.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.etcd is not None:
            await self.etcd.close()
            self.etcd = None

    async def receive(self, message: Any) -> Any:
        if isinstance(message, GetDashboardUrl):
            return self.url
        return None


async def start_dashboard(root: Any, system: Any, host: str, port: int, etcd: str, token: str, *,
                          cluster: str, etcd_auth: dict | None = None, source: StateSource | None = None,
                          jobs: Any = None) -> str:
    """Start a `DashboardHost` under the node's `root` supervisor (tasks and objects from
    `source`, job submissions to the JobManager `jobs`); return its URL."""
    from supervisor import ChildStartError

    incarnations = _Incarnations()
    try:
        await root.start_child(actor_spec(system, "dashboard", DashboardHost, host, port, etcd, token,
                                          cluster=cluster, etcd_auth=etcd_auth, source=source, jobs=jobs,
                                          incarnations=incarnations))
    except ChildStartError as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, DashboardStartError):
            cause = cause.__cause__ or cause.__context__
        raise DashboardStartError(str(cause or error)) from None
    try:
        return await system.lookup("dashboard").ask(GetDashboardUrl(), timeout=10)
    except Exception as error:  # noqa: BLE001 - stopped meanwhile (the node is giving up) or did not answer
        raise DashboardStartError(incarnations.failure or f"the dashboard did not start: {error}") from None
