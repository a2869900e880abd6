"""Calls through the gateway, native gRPC (h2c) or gRPC-Web (HTTP/1.1), with one outcome type.

Both transports take and return serialized messages, so the load and chaos harnesses can
send real requests while the DAST sends mutated bytes down the very same path. Whether a
method streams is read from the generated descriptors, never re-typed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

import grpc

from tools.proof import grpcweb, http1
from weather.v1 import dispatcher_pb2, reporting_pb2

Metadata = Sequence[tuple[str, str]]
STATUS_NAMES = {status.value[0]: status.name for status in grpc.StatusCode}
# Room for the DAST's over-the-limit uploads to reach the server and be refused there.
CLIENT_MESSAGE_LIMIT = 64 * 1024 * 1024
TRANSPORT_FAILURE = "TRANSPORT"
PUBLIC_SERVICES = (
    dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"],
    reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"],
)


def method_path(service: str, method: str) -> str:
    return f"/{service}/{method}"


SERVER_STREAMING = {
    method_path(service.full_name, method.name): method.server_streaming
    for service in PUBLIC_SERVICES
    for method in service.methods
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code, f"CODE_{code}")


@dataclass
class Outcome:
    """What one call came back with.

    `code` is a gRPC status name ("OK", "NOT_FOUND"...), "HTTP <n>" when the gateway
    answered plain HTTP without a gRPC status, or "TRANSPORT" when no answer was read.
    """

    code: str
    message: str = ""
    messages: list[bytes] = field(default_factory=list)
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == "OK"


class Transport(Protocol):
    name: str

    async def call(
        self, method: str, request: bytes, *, deadline: float, metadata: Metadata = ()
    ) -> Outcome: ...

    async def close(self) -> None: ...


class NativeTransport:
    """gRPC over h2c to the gateway; one channel (one HTTP/2 connection) per transport."""

    name = "grpc"

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", CLIENT_MESSAGE_LIMIT),
                ("grpc.max_receive_message_length", CLIENT_MESSAGE_LIMIT),
            ],
        )

    async def call(
        self, method: str, request: bytes, *, deadline: float, metadata: Metadata = ()
    ) -> Outcome:
        try:
            if SERVER_STREAMING.get(method, False):
                stream = self._channel.unary_stream(method, None, None)(
                    request, timeout=deadline, metadata=tuple(metadata)
                )
                messages = [bytes(message) async for message in stream]
            else:
                reply = await self._channel.unary_unary(method, None, None)(
                    request, timeout=deadline, metadata=tuple(metadata)
                )
                messages = [bytes(reply)]
        except grpc.aio.AioRpcError as error:
            return Outcome(error.code().name, error.details() or "")
        return Outcome("OK", messages=messages)

    async def close(self) -> None:
        await self._channel.close(None)


class WebTransport:
    """gRPC-Web over HTTP/1.1, binary frames or base64 text, as a browser sends it."""

    def __init__(self, host: str, port: int, *, text: bool = False, origin: str | None = None):
        self.host = host
        self.port = port
        self.text = text
        self.origin = origin
        self.name = "grpc-web-text" if text else "grpc-web"

    def headers(
        self, metadata: Metadata = (), timeout: float | None = None
    ) -> list[tuple[str, str]]:
        content_type = grpcweb.CONTENT_TYPE_TEXT if self.text else grpcweb.CONTENT_TYPE_BINARY
        headers = [("Content-Type", content_type), ("X-Grpc-Web", "1"), ("Accept", content_type)]
        if timeout is not None:
            headers.append(("grpc-timeout", f"{max(1, int(timeout * 1000))}m"))
        if self.origin:
            headers.append(("Origin", self.origin))
        return headers + list(metadata)

    async def call(
        self, method: str, request: bytes, *, deadline: float, metadata: Metadata = ()
    ) -> Outcome:
        body = grpcweb.frame(request)
        return await self.call_raw(
            method,
            grpcweb.to_text(body) if self.text else body,
            self.headers(metadata, deadline),
            deadline=deadline,
        )

    async def call_raw(
        self,
        method: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        *,
        deadline: float,
        http_method: str = "POST",
        raw: bytes | None = None,
    ) -> Outcome:
        """Send exactly `body` with exactly `headers` and decode whatever comes back."""
        try:
            async with asyncio.timeout(deadline):
                response = await http1.send(
                    self.host, self.port, http_method, method, headers, body, raw=raw
                )
                try:
                    payload = await response.body()
                finally:
                    await response.close()
        except TimeoutError:
            return Outcome("DEADLINE_EXCEEDED", "client deadline (harness side)")
        except (OSError, asyncio.IncompleteReadError, http1.HttpProtocolError) as error:
            return Outcome(TRANSPORT_FAILURE, f"{type(error).__name__}: {error}")
        return decode_reply(response.status, response.headers, payload, text=self.text)

    async def close(self) -> None:
        return None


def decode_reply(status: int, headers: dict[str, str], payload: bytes, *, text: bool) -> Outcome:
    """gRPC status from the trailers (or headers, for trailers-only replies), else HTTP's.

    Only a gRPC-Web reply's body is split into frames; any other body (an HTML or plain
    error page from the gateway) becomes the message as it is.
    """
    outcome = Outcome("", http_status=status, headers=headers)
    reply = grpcweb.GrpcWebReply()
    body_text = payload[:300].decode("utf-8", errors="replace")
    if headers.get("content-type", "").startswith("application/grpc-web"):
        try:
            reply = grpcweb.parse_frames(grpcweb.from_text(payload) if text else payload)
            body_text = ""
        except grpcweb.FramingError as error:
            body_text = f"unreadable gRPC-Web body: {error}"
    grpc_status = reply.trailers.get("grpc-status", headers.get("grpc-status"))
    message = reply.trailers.get("grpc-message", headers.get("grpc-message", ""))
    if grpc_status is not None and grpc_status.strip().isdigit():
        outcome.code = status_name(int(grpc_status))
    else:
        outcome.code = f"HTTP {status}"
    outcome.message = unquote(message) or body_text
    outcome.messages = reply.messages if outcome.code == "OK" else []
    return outcome
