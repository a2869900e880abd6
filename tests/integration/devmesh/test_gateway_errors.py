"""Malformed input at the gateway gets a documented status, and never hurts other clients.

The real Envoy (rendered from the shipped template) in front of the real dispatcher on a
real nats-server. A GetJob for an id nobody submitted is NOT_FOUND: that is what "served"
looks like here.

Why the grpc-timeout case matters: Envoy used to forward a malformed `grpc-timeout` to the
dispatcher over the one HTTP/2 connection all clients share. gRPC's HPACK decoder keeps its
failure to parse the value in the header table entry, and every later request on that
connection that names `grpc-timeout` (every client with a deadline) then failed with
INTERNAL "Error parsing 'grpc-timeout' metadata" until the connection was replaced.
"""

from __future__ import annotations

import base64
import http.client
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from devmesh.envoy import EnvoyProxy, GatewayConfig
from devmesh.ports import free_port
from devmesh.tokens import LocalIssuer
from weather.v1 import dispatcher_pb2, dispatcher_pb2_grpc

UI_ORIGIN = "http://localhost:8080"
GET_JOB = "/weather.v1.DispatcherService/GetJob"
UNSUBMITTED = dispatcher_pb2.GetJobRequest(job_id="0" * 32).SerializeToString()
BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text"
StartService = Any  # tests/integration/conftest.py


@pytest.fixture
def gateway(
    nats_server: Any, start_service: StartService, tmp_path: Path, local_issuer: LocalIssuer
) -> Iterator[EnvoyProxy]:
    dispatcher = start_service("dispatcher", nats_url=nats_server.url)
    dispatcher.wait_serving()
    proxy = EnvoyProxy(
        GatewayConfig(
            listener_port=free_port(),
            admin_port=free_port(),
            dispatcher_port=dispatcher.grpc_port,
            reporting_port=free_port(),
            allowed_origins=[UI_ORIGIN],
            ui_port=free_port(),
            jwks_file=local_issuer.jwks_path,
            anonymous_demo=True,
        ),
        config_path=tmp_path / "envoy.yaml",
        log_path=tmp_path / "envoy.log",
    )
    proxy.start()
    yield proxy
    proxy.stop()


def _frame(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def grpc_web_status(
    proxy: EnvoyProxy, body: bytes, headers: Sequence[tuple[str, str]]
) -> tuple[int, str | None, str]:
    """(HTTP status, grpc-status from headers or trailer frame, grpc-message)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.config.listener_port, timeout=10)
    try:
        connection.putrequest("POST", GET_JOB)
        for name, value in [("Content-Length", str(len(body))), *headers]:
            connection.putheader(name, value)
        connection.endheaders(body)
        reply = connection.getresponse()
        payload = reply.read()
    finally:
        connection.close()
    status, message = reply.getheader("grpc-status"), reply.getheader("grpc-message") or ""
    if status is None:
        if reply.getheader("content-type", "").startswith(TEXT):
            payload = base64.b64decode(payload)
        trailers = payload.split(b"\x80", 1)[-1][4:].decode(errors="replace")
        fields = dict(line.split(":", 1) for line in trailers.split("\r\n") if ":" in line)
        status = fields.get("grpc-status", "").strip() or None
        message = fields.get("grpc-message", "").strip()
    return reply.status, status, message


def native_get_job(proxy: EnvoyProxy) -> grpc.StatusCode:
    """A valid GetJob over h2c with a deadline (so it carries a well-formed grpc-timeout)."""
    with grpc.insecure_channel(f"127.0.0.1:{proxy.config.listener_port}") as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        try:
            stub.GetJob(dispatcher_pb2.GetJobRequest(job_id="0" * 32), timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


WEB = [("Content-Type", BINARY), ("X-Grpc-Web", "1")]
NOT_FOUND, INVALID_ARGUMENT, UNIMPLEMENTED = "5", "3", "12"


@pytest.mark.parametrize("timeout", ["soon", "1", "123456789S", "10x", "-5m", "1.5S"])
def test_a_malformed_grpc_timeout_is_refused_and_other_clients_stay_served(
    gateway: EnvoyProxy, timeout: str
) -> None:
    assert grpc_web_status(gateway, _frame(UNSUBMITTED), [*WEB, ("grpc-timeout", "5S")])[1] == (
        NOT_FOUND
    )
    _, status, message = grpc_web_status(
        gateway, _frame(UNSUBMITTED), [*WEB, ("grpc-timeout", timeout)]
    )
    assert status == INVALID_ARGUMENT, message
    assert message.startswith("the grpc-timeout header is malformed")
    if len(timeout) > 2:  # the value is never echoed back
        assert timeout not in message
    for _ in range(3):  # other clients, with and without deadlines, both protocols
        assert (
            grpc_web_status(gateway, _frame(UNSUBMITTED), [*WEB, ("grpc-timeout", "9S")])[1]
            == NOT_FOUND
        )
        assert grpc_web_status(gateway, _frame(UNSUBMITTED), WEB)[1] == NOT_FOUND
        assert native_get_job(gateway) == grpc.StatusCode.NOT_FOUND


def test_malformed_grpc_web_bodies_are_invalid_argument(gateway: EnvoyProxy) -> None:
    text = [("Content-Type", TEXT), ("X-Grpc-Web", "1")]
    for body, headers in (
        (b"!!!not*base64!!!", text),
        (_frame(UNSUBMITTED), text),  # binary body labelled text
    ):
        assert grpc_web_status(gateway, body, headers)[:2] == (200, INVALID_ARGUMENT)
    assert native_get_job(gateway) == grpc.StatusCode.NOT_FOUND


def test_a_message_flagged_compressed_without_an_encoding_is_invalid_argument(
    gateway: EnvoyProxy,
) -> None:
    """Upstream, gRPC answers this INTERNAL; the gateway refuses it first."""
    for body in (_frame(UNSUBMITTED, flag=1), _frame(UNSUBMITTED) + _frame(b"x", flag=1)):
        assert grpc_web_status(gateway, body, WEB)[1] == INVALID_ARGUMENT
    assert grpc_web_status(gateway, _frame(UNSUBMITTED), WEB)[1] == NOT_FOUND


def test_compressed_requests_are_unimplemented_at_the_gateway(gateway: EnvoyProxy) -> None:
    """Upstream, a body that is not what grpc-encoding claims fails INTERNAL."""
    status = grpc_web_status(
        gateway, _frame(b"not gzip", flag=1), [*WEB, ("grpc-encoding", "gzip")]
    )
    assert status[1] == UNIMPLEMENTED
    identity = grpc_web_status(gateway, _frame(UNSUBMITTED), [*WEB, ("grpc-encoding", "identity")])
    assert identity[1] == NOT_FOUND


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "application/grpc-web+json", None]
)
def test_non_grpc_content_types_on_api_paths_are_415(
    gateway: EnvoyProxy, content_type: str | None
) -> None:
    headers = [("X-Grpc-Web", "1")] + ([("Content-Type", content_type)] if content_type else [])
    http_status, _, _ = grpc_web_status(gateway, _frame(UNSUBMITTED), headers)
    assert http_status == 415
    assert native_get_job(gateway) == grpc.StatusCode.NOT_FOUND
