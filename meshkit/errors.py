"""Mapping to gRPC status codes happens here, once, at the edge of every service."""

from __future__ import annotations

from typing import NoReturn

import grpc


async def not_built_yet(context: grpc.aio.ServicerContext[object, object], rpc: str) -> NoReturn:
    """An RPC in the contract whose implementation has not landed: UNIMPLEMENTED, never a
    fake answer a client could mistake for a real one."""
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{rpc} is part of the weather.v1 contract but is not implemented by this server yet",
    )
