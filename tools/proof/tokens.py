"""Signed-in callers for the tests and the proof harnesses: one helper for all of them.

With the anonymous demo mode on (as `make up` and the test meshes run), Submit, GetJob and
WatchJob need no token; ListJobs and GetStats do. Whoever calls those (the chaos accounting,
the DAST, the integration tests) takes its token from here, minted by the local identity
provider (`devmesh.tokens`) whose keys the mesh under test trusts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from devmesh.tokens import LocalIssuer
from meshkit.identity import Role
from tools.proof.gateway import Metadata

OPERATOR_SUBJECT = "proof-operator"


def bearer(token: str) -> Metadata:
    """The gRPC metadata that carries `token`."""
    return (("authorization", f"Bearer {token}"),)


def operator_metadata(issuer: LocalIssuer, subject: str = OPERATOR_SUBJECT) -> Metadata:
    """Metadata of an operator (may list every job and read the stats), valid for an hour."""
    return bearer(issuer.mint(subject, Role.OPERATOR.label))


class BearerInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds one caller's token to every call of a channel (for tests written with stubs)."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = tuple(metadata)

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*(details.metadata or ()), *self._metadata),
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._with_token(details), request)


def signed_in_channel(address: str, metadata: Metadata) -> grpc.aio.Channel:
    """A plaintext channel whose every call carries `metadata`'s token."""
    interceptors: Any = [BearerInterceptor(metadata)]
    return grpc.aio.insecure_channel(address, interceptors=interceptors)
