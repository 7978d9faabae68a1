"""TLS on gRPC with the cluster's credentials: between hosts only; both ends show a certificate
of the cluster's CA, and a client without one, or with another cluster's, is refused."""

from __future__ import annotations

import grpc
import pytest

from actorcore.credentials import make_credentials
from actorcore.kernel.remote.grpc_tls import wants_tls

pytestmark = pytest.mark.timeout(30)

CREDENTIALS = make_credentials("default", "10.0.0.1:6380", "secret").tls
OTHER = make_credentials("default", "10.0.0.1:6380", "other").tls


@pytest.mark.parametrize(("address", "tls"), [
    ("10.0.0.2:5000", True), ("0.0.0.0:0", True), ("[fd00::1]:5000", True), ("node-7:5000", True),
    ("127.0.0.1:5000", False), ("127.3.4.5:5000", False), ("[::1]:5000", False), ("localhost:5000", False),
])
def test_tls_between_hosts_never_on_loopback(address, tls):
    assert wants_tls(address, CREDENTIALS) is tls
    assert wants_tls(address, None) is False


async def _echo(request: bytes, context) -> bytes:
    return request


@pytest.fixture
async def tls_server():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})])
    port = server.add_secure_port("127.0.0.1:0", CREDENTIALS.grpc_server_credentials())
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def _call(target: str, credentials, options=()) -> bytes:
    async with grpc.aio.secure_channel(target, credentials, options=list(options)) as channel:
        return await channel.unary_unary("/test.Echo/Echo")(b"hi", timeout=5)


async def test_a_member_calls_with_the_cluster_name_checked(tls_server):
    assert await _call(tls_server, CREDENTIALS.grpc_channel_credentials(), CREDENTIALS.grpc_channel_options()) == b"hi"


async def test_a_client_without_a_certificate_is_refused(tls_server):
    anonymous = grpc.ssl_channel_credentials(root_certificates=CREDENTIALS.ca.encode())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(tls_server, anonymous, CREDENTIALS.grpc_channel_options())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_another_clusters_member_is_refused_both_ways(tls_server):
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # it does not trust our server either
        await _call(tls_server, OTHER.grpc_channel_credentials(), OTHER.grpc_channel_options())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    foreign_cert = grpc.ssl_channel_credentials(root_certificates=CREDENTIALS.ca.encode(),
                                                private_key=OTHER.key.encode(), certificate_chain=OTHER.cert.encode())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(tls_server, foreign_cert, CREDENTIALS.grpc_channel_options())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
