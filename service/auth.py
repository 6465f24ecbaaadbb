"""Optional bearer-token authentication: every call must carry metadata
`authorization: Bearer <token>`, compared in constant time. Health checks
(load balancers probe without credentials) and reflection (it only describes
the public protos) are exempt."""
from __future__ import annotations

import hmac

import grpc

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _abort_handler(like: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as `like` that fails UNAUTHENTICATED."""

    def deny(request_or_iterator, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if like.request_streaming and like.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if like.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if like.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str):
        if not token:
            raise ValueError("the auth token is empty")
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(EXEMPT_PREFIXES):
            return handler
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        if sent is None:
            return _abort_handler(handler, "this server needs 'authorization: Bearer <token>' metadata")
        if not hmac.compare_digest(sent.encode() if isinstance(sent, str) else sent, self._expected):
            return _abort_handler(handler, "the bearer token is wrong")
        return handler
