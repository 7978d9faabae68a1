"""Between hosts, the kernel's TCP streams and the object transfers' gRPC are TLS with the
cluster's certificate: a plain-text client, or one with another cluster's certificate, does not
get through TLS; one with the cluster's certificate gets through TLS and is then refused for
want of a proof of the token (the kernel's handshake, the transfer's call proof)."""

from __future__ import annotations

import pytest

from .conftest import drive

pytestmark = pytest.mark.timeout(300)

PROBE = """
import asyncio, os, ssl, struct, grpc
from google.protobuf.message import DecodeError
from actorcore import runtime
from actorcore._proto import kernel_pb2 as pb
from actorcore.credentials import Credentials, make_credentials
from actorcore.kernel.address import HOST_ID

ours = Credentials.load(ADDRESS_CREDENTIALS).tls
theirs = make_credentials("another", ADDRESS, "another-secret").tls
view = runtime.require().cluster.view
node = next(r for r in view.values() if r.get("address") == TARGET_IP)

async def transfer(target, credentials):
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials.grpc_channel_credentials(),
                                          options=list(credentials.grpc_channel_options()))
    async with channel:
        try:
            await channel.unary_unary("/actorcore.transfer.ObjectTransfer/Pull")(b"", timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"

def framed(*frames):
    return b"".join(struct.pack(">I", f.ByteSize()) + f.SerializeToString() for f in frames)

async def kernel(target, credentials):
    # A Hello, then an empty proof and a batch: "HELLO" if the listener answered with its
    # Hello (TLS passed) and then closed, "TLS" if TLS failed, "OPEN" if it kept reading.
    host, _, port = target.rpartition(":")
    context = None
    if credentials is not None:
        context = credentials.ssl_client_context()
        context.load_verify_locations(cadata=ours.ca)  # trust our server: only our side may refuse
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, int(port), ssl=context, server_hostname=ours.server_name if context else None), 10)
        hello = pb.Hello(system_id="4242-0123456789ab", host_id=HOST_ID, nonce=os.urandom(16))
        writer.write(framed(pb.Frame(hello=hello)))
        size = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 10))[0]
        answer = pb.Frame.FromString(await asyncio.wait_for(reader.readexactly(size), 10))
        assert answer.WhichOneof("body") == "hello"
        batch = pb.Frame(batch=pb.EnvelopeBatch(envelopes=[pb.Envelope(kind=pb.TELL, target="x", payload=b"x")]))
        writer.write(framed(pb.Frame(proof=pb.Proof()), batch))
        while await asyncio.wait_for(reader.read(65536), 10):
            pass
        return "HELLO"
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, DecodeError, AssertionError):
        return "TLS"
    except asyncio.TimeoutError:
        return "OPEN"

async def main():
    out = {}
    for name, probe in (("kernel", kernel), ("transfer", transfer)):
        out[name] = {who: await probe(node[name], c) for who, c in
                     (("plain", None), ("ours", ours), ("theirs", theirs))}
    return out

result(asyncio.run(main()))
"""


def test_between_hosts_kernel_and_transfer_are_tls_with_the_clusters_certificate(cluster):
    b = cluster.hosts["b"]
    code = (f"ADDRESS_CREDENTIALS = '/tmp/home/.actorcore/credentials.json'\nTARGET_IP = {b.address!r}\n"
            + PROBE)
    outcome = drive(cluster, "a", code)
    assert outcome["transfer"] == {"plain": "UNAVAILABLE", "theirs": "UNAVAILABLE",
                                   "ours": "UNAUTHENTICATED"}, outcome  # TLS passed; no proof
    assert outcome["kernel"] == {"plain": "TLS", "theirs": "TLS", "ours": "HELLO"}, outcome
