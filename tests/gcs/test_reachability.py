"""`reachability`: what one connection attempt says about the process behind an endpoint."""

from __future__ import annotations

import socket

import pytest

from actorcore.gcs.reachability import Reachability, reachability

pytestmark = pytest.mark.timeout(30)


async def test_a_port_nobody_listens_on_is_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # (bound, not listening: connections to it are refused)
        assert await reachability(f"127.0.0.1:{port}", 1.0) is Reachability.REFUSED


async def test_a_listening_port_is_accepted_even_if_nobody_accepts():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # (the kernel accepts for a frozen process too)
        assert await reachability(f"127.0.0.1:{listener.getsockname()[1]}", 1.0) is Reachability.ACCEPTED


async def test_no_answer_in_time_is_unknown():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        endpoint = listener.getsockname()
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue: later SYNs are dropped, as by a cut link
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(endpoint)
                fillers.append(filler)
            assert await reachability(f"127.0.0.1:{endpoint[1]}", 0.5) is Reachability.UNKNOWN
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.parametrize("endpoint", ["127.0.0.1", "host:port", ":80"])
async def test_an_endpoint_that_is_not_host_port_is_refused_with_its_name(endpoint):
    with pytest.raises(ValueError, match=f"not a host:port endpoint: '{endpoint}'"):
        await reachability(endpoint, 1.0)
