"""A gRPC call's proof of the cluster secret: valid once, for one method, within its time
window; a captured one cannot be replayed (docs/architecture.md, "Security model")."""

from __future__ import annotations

import os
import time

import grpc
import pytest

from actorcore._proto import transfer_pb2 as pb
from actorcore.kernel.remote.grpc_auth import PROOF_METADATA, PROOF_WINDOW, ProofCheck, call_proof
from actorcore.kernel.secret import ClusterSecret
from actorcore.objects.transfer import TransferServer, close_channels

pytestmark = pytest.mark.timeout(60)

TOKEN = "proof-test-token"
PULL = "/actorcore.transfer.ObjectTransfer/Pull"


def _proof_value(metadata) -> str:
    ((key, value),) = metadata
    assert key == PROOF_METADATA
    return value


def test_a_proof_is_valid_once_for_its_method_within_its_window():
    secret = ClusterSecret(TOKEN)
    check = ProofCheck(secret)
    proof = _proof_value(call_proof(secret, PULL))
    assert check.check(PULL, proof)
    assert not check.check(PULL, proof), "a replayed proof is refused"
    assert not check.check("/actorcore.kernel.Transport/Stream", _proof_value(call_proof(secret, PULL)))
    assert not check.check(PULL, _proof_value(call_proof(ClusterSecret("another-token"), PULL)))
    stale = int((time.time() - PROOF_WINDOW - 5) * 1000)
    nonce = os.urandom(16).hex()
    mac = secret.mac("grpc-call", PULL.encode(), str(stale).encode(), nonce.encode()).hex()
    assert not check.check(PULL, f"{stale}.{nonce}.{mac}"), "an expired proof is refused"
    for garbage in ("", "1.2", "x.y.z", "1.2.zz", "9" * 500, "1.2.3.4"):
        assert not check.check(PULL, garbage)
    assert TOKEN not in proof


async def test_a_captured_pull_header_cannot_be_replayed():
    server = TransferServer("127.0.0.1:0", TOKEN, lambda object_id: None)
    await server.start()
    try:
        metadata = call_proof(ClusterSecret(TOKEN), PULL)
        codes = []
        async with grpc.aio.insecure_channel(server.address) as channel:
            method = channel.unary_stream(PULL, request_serializer=pb.PullRequest.SerializeToString)
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _chunk in method(pb.PullRequest(object_id="x"), metadata=metadata, timeout=10):
                        pass
                codes.append(info.value.code())
        # The first call got through to the servicer (no such object), the replay did not.
        assert codes == [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED]
    finally:
        await server.stop(0)
        await close_channels()
