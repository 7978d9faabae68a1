"""The cluster token on gRPC: every gRPC service of a cluster requires it, and a request
without it is rejected before anything in it is decoded (docs/architecture.md, "Security model").

Clients send the token in metadata key ``x-actorcore-token`` (`token_metadata`); servers
install `TokenCheck`, which answers a call without it, or with a wrong one, with
UNAUTHENTICATED before the servicer runs. The deny handler has the RPC kind of the method
called (unary or streaming requests and responses) so that gRPC drives it like the real one,
and it has no deserializer: a rejected request's bytes are never decoded.
"""

from __future__ import annotations

import hmac

import grpc

__all__ = ["TOKEN_METADATA", "TokenCheck", "token_metadata"]

TOKEN_METADATA = "x-actorcore-token"
DENIED_MESSAGE = "missing or wrong actorcore cluster token"


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """The call metadata that presents ``token`` (None when there is no token)."""
    return ((TOKEN_METADATA, token),) if token else None


async def _deny(request_or_iterator, context) -> None:
    # A plain coroutine serves every kind: grpc.aio awaits it when a response-streaming
    # handler is not an async generator.
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED_MESSAGE)


# Indexed by (request_streaming, response_streaming) of the method called.
_DENY_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler(_deny),
    (False, True): grpc.unary_stream_rpc_method_handler(_deny),
    (True, False): grpc.stream_unary_rpc_method_handler(_deny),
    (True, True): grpc.stream_stream_rpc_method_handler(_deny),
}


class TokenCheck(grpc.aio.ServerInterceptor):
    """Rejects a call without the cluster's token with UNAUTHENTICATED before any message is read."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("TokenCheck needs a non-empty token; install no interceptor when there is none")
        self._token = token.encode()

    async def intercept_service(self, continuation, handler_call_details):
        """The servicer's handler if the call carries the token, else a handler that denies it."""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_METADATA:
                presented = value if isinstance(value, bytes) else value.encode()
                if hmac.compare_digest(self._token, presented):
                    return await continuation(handler_call_details)
        # Looking the handler up runs nothing of the servicer; it tells the RPC kind. An
        # unknown method is denied too (not UNIMPLEMENTED: no probing without the token).
        handler = await continuation(handler_call_details)
        if handler is None:
            return _DENY_HANDLERS[True, True]
        return _DENY_HANDLERS[bool(handler.request_streaming), bool(handler.response_streaming)]
