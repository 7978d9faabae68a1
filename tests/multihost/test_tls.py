"""Between hosts, gRPC is TLS with the cluster's certificate: a plain-text client, or one with
another cluster's certificate, does not get through the handshake; one with the cluster's
certificate gets through TLS and is then refused for want of a proof of the token."""

from __future__ import annotations

import pytest

from .conftest import drive

pytestmark = pytest.mark.timeout(300)

PROBE = """
import asyncio, grpc
from actorcore import runtime
from actorcore.credentials import Credentials, make_credentials

ours = Credentials.load(ADDRESS_CREDENTIALS).tls
theirs = make_credentials("default", ADDRESS, "another-secret").tls
view = runtime.require().cluster.view
node = next(r for r in view.values() if r.get("address") == TARGET_IP)
targets = {"kernel": (node["kernel"], "/actorcore.kernel.Transport/Stream"),
           "transfer": (node["transfer"], "/actorcore.transfer.ObjectTransfer/Pull")}

async def call(target, method, credentials):
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials.grpc_channel_credentials(),
                                          options=list(credentials.grpc_channel_options()))
    async with channel:
        try:
            await channel.unary_unary(method)(b"", timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"

async def main():
    out = {}
    for name, (target, method) in targets.items():
        out[name] = {who: await call(target, method, c) for who, c in
                     (("plain", None), ("ours", ours), ("theirs", theirs))}
    return out

result(asyncio.run(main()))
"""


def test_grpc_between_hosts_is_tls_with_the_clusters_certificate(cluster):
    b = cluster.hosts["b"]
    code = (f"ADDRESS_CREDENTIALS = '/tmp/home/.actorcore/credentials.json'\nTARGET_IP = {b.address!r}\n"
            + PROBE)
    outcome = drive(cluster, "a", code)
    for endpoint in ("kernel", "transfer"):
        assert outcome[endpoint]["plain"] == "UNAVAILABLE", (endpoint, outcome)
        assert outcome[endpoint]["theirs"] == "UNAVAILABLE", (endpoint, outcome)
        assert outcome[endpoint]["ours"] == "UNAUTHENTICATED", (endpoint, outcome)  # TLS passed; no proof
