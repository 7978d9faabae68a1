"""A dashboard incarnation that cannot bind its port: the first one fails with the address and
the option to change (the node stops, as `actorcore start` reports); a later one (a restart by
the node's root supervisor, after the port was taken meanwhile) starts all the same, keeps
trying in the background, and serves as soon as the port is free, so the head stays up."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

import pytest

from actorcore.dashboard.host import DashboardHost, DashboardStartError, GetDashboardUrl, _Incarnations, start_dashboard
from actorcore.kernel import ActorSystem
from actorcore.kernel.supervision import actor_spec
from supervisor import Supervisor

pytestmark = pytest.mark.timeout(60)


def _taken_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/api/cluster", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


async def _root_with_dashboard(port: int, incarnations: _Incarnations):
    system = await ActorSystem.start(name="dashboard-test", uds=False, tcp=None)
    root = await Supervisor([], strategy="one_for_one", max_restarts=0, period=5, name="root").start()
    spec = actor_spec(system, "dashboard", DashboardHost, "127.0.0.1", port, "127.0.0.1:1", "token",
                      cluster="c", incarnations=incarnations)
    return system, root, spec


async def _stop(system, root) -> None:
    await root.shutdown()
    await system.shutdown(timeout=5)


def test_the_first_incarnation_fails_with_the_address_and_the_option():
    async def scenario():
        holder = _taken_port()
        port = holder.getsockname()[1]
        system, root, _ = await _root_with_dashboard(port, _Incarnations())
        try:
            with pytest.raises(DashboardStartError, match=f"127.0.0.1:{port}.*--dashboard-port"):
                await start_dashboard(root, system, "127.0.0.1", port, "127.0.0.1:1", "token", cluster="c")
        finally:
            holder.close()
            await _stop(system, root)

    asyncio.run(scenario())


def test_a_restarted_dashboard_whose_port_was_taken_serves_once_it_is_free():
    async def scenario():
        holder = _taken_port()
        port = holder.getsockname()[1]
        system, root, spec = await _root_with_dashboard(port, _Incarnations(served=True))
        try:
            await root.start_child(spec)  # no failure: the root (max_restarts=0) would give up on one
            url = await system.lookup("dashboard").ask(GetDashboardUrl(), timeout=10)
            assert url == f"http://127.0.0.1:{port}"
            assert await asyncio.to_thread(_status, url) is None  # the other process has the port
            holder.close()
            deadline = asyncio.get_running_loop().time() + 30
            while (status := await asyncio.to_thread(_status, url)) is None:
                assert asyncio.get_running_loop().time() < deadline, "the dashboard never bound its freed port"
                await asyncio.sleep(0.2)
            assert status == 401  # it serves, behind its login
            assert [child.id for child in root.which_children()] == ["dashboard"]
        finally:
            holder.close()
            await _stop(system, root)

    asyncio.run(scenario())
