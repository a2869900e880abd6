from __future__ import annotations

import http.client
import json
import struct
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from devmesh.envoy import EnvoyProxy, GatewayConfig
from devmesh.ports import free_port
from devmesh.static import StaticSite
from devmesh.tokens import LocalIssuer

UI_ORIGIN = "http://localhost:8080"
ECHO = "/weather.v1.DispatcherService/Echo"
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


@pytest.fixture
def upstream() -> Iterator[int]:
    """A real gRPC server standing in for the dispatcher: echoes any unary request."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "weather.v1.DispatcherService", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


def _gateway(tmp_path: Path, dispatcher_port: int, ui_port: int | None = None) -> EnvoyProxy:
    """Anonymous demo mode (these tests are about routing, not tokens): keys of a throwaway
    issuer, since none is ever presented."""
    issuer = LocalIssuer(tmp_path / "identity")
    return EnvoyProxy(
        GatewayConfig(
            listener_port=free_port(),
            admin_port=free_port(),
            dispatcher_port=dispatcher_port,
            reporting_port=free_port(),
            allowed_origins=[UI_ORIGIN, "http://127.0.0.1:8080"],
            ui_port=ui_port or free_port(),
            jwks_file=issuer.ensure_key(),
            anonymous_demo=True,
        ),
        config_path=tmp_path / "envoy.yaml",
        log_path=tmp_path / "envoy.log",
    )


@pytest.fixture
def ui_site(tmp_path: Path) -> Iterator[StaticSite]:
    """devmesh's UI file server over a tiny stand-in bundle."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>weather-mesh</title>")
    (root / "assets" / "index-abc123.js").write_text("console.log('weather');")
    site = StaticSite(port=free_port(), root=root, log_path=tmp_path / "ui.log")
    site.start()
    yield site
    site.stop()


@pytest.fixture
def gateway(tmp_path: Path, upstream: int, ui_site: StaticSite) -> Iterator[EnvoyProxy]:
    proxy = _gateway(tmp_path, upstream, ui_site.port)
    proxy.start()
    yield proxy
    proxy.stop()


def _upstream_requests(proxy: EnvoyProxy, cluster: str) -> int:
    """Requests Envoy sent to `cluster`, from its admin stats."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.config.admin_port, timeout=5)
    connection.request(
        "GET", f"/stats?format=json&filter=^cluster\\.{cluster}\\.upstream_rq_total$"
    )
    stats = json.loads(connection.getresponse().read())["stats"]
    connection.close()
    return sum(int(stat["value"]) for stat in stats)


def _raw_call(channel: grpc.Channel, method: str, request: bytes) -> bytes:
    """Call `method` with raw bytes: the gateway cares about paths, not message types."""
    reply: bytes = channel.unary_unary(method, None, None)(request, timeout=20)
    return reply


def _request(
    proxy: EnvoyProxy, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.config.listener_port, timeout=10)
    connection.request(method, path, body=body, headers=headers)
    return connection.getresponse()


def test_rendered_template_passes_envoy_validate(tmp_path: Path) -> None:
    proxy = _gateway(tmp_path, free_port())
    proxy.prepare()
    proxy.validate()


def test_grpc_over_h2c_reaches_the_http2_upstream(gateway: EnvoyProxy) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.config.listener_port}") as channel:
        assert _raw_call(channel, ECHO, b"sunny") == b"sunny"


def test_grpc_web_over_http1_reaches_the_upstream_with_cors(gateway: EnvoyProxy) -> None:
    frame = b"\x00" + struct.pack(">I", 5) + b"rainy"
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "origin": UI_ORIGIN}
    reply = _request(gateway, "POST", ECHO, headers, frame)
    body = reply.read()
    assert reply.status == 200
    assert body.startswith(frame)
    assert b"grpc-status:0" in body
    assert reply.getheader("access-control-allow-origin") == UI_ORIGIN
    assert "grpc-status" in (reply.getheader("access-control-expose-headers") or "")


def test_cors_preflight_allows_the_ui_origin_only(gateway: EnvoyProxy) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,x-user-agent,grpc-timeout",
    }
    allowed = _request(gateway, "OPTIONS", ECHO, {"origin": UI_ORIGIN, **preflight})
    allowed.read()
    foreign = _request(gateway, "OPTIONS", ECHO, {"origin": "https://evil.example", **preflight})
    foreign.read()

    assert allowed.getheader("access-control-allow-origin") == UI_ORIGIN
    assert "x-grpc-web" in (allowed.getheader("access-control-allow-headers") or "")
    assert foreign.getheader("access-control-allow-origin") is None


def test_preflight_from_a_foreign_origin_is_answered_by_envoy_not_forwarded(
    gateway: EnvoyProxy,
) -> None:
    preflight = {
        "origin": "https://evil.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web",
    }
    for path in (ECHO, "/"):
        reply = _request(gateway, "OPTIONS", path, preflight)
        reply.read()
        assert reply.getheader("access-control-allow-origin") is None
    assert _upstream_requests(gateway, "dispatcher") == 0
    assert _upstream_requests(gateway, "ui") == 0


def test_the_ui_is_served_at_the_root_with_cache_and_security_headers(
    gateway: EnvoyProxy,
) -> None:
    page = _request(gateway, "GET", "/", {})
    body = page.read()
    asset = _request(gateway, "GET", "/assets/index-abc123.js", {})
    asset.read()
    missing = _request(gateway, "GET", "/../../etc/passwd", {})
    missing.read()

    assert page.status == 200
    assert b"<title>weather-mesh</title>" in body
    assert page.getheader("cache-control") == "no-cache"
    assert "connect-src 'self'" in (page.getheader("content-security-policy") or "")
    assert asset.status == 200
    assert "immutable" in (asset.getheader("cache-control") or "")
    assert missing.status == 404


def test_internal_classifier_is_not_routed(gateway: EnvoyProxy) -> None:
    address = f"127.0.0.1:{gateway.config.listener_port}"
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        _raw_call(channel, "/weather.v1.ClassifierService/Classify", b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_unrouted_streaming_call_is_refused_at_once(gateway: EnvoyProxy) -> None:
    """Reflection is bidi-streaming: its refusal must not wait for a request end."""
    release = threading.Event()

    def open_request_stream() -> Iterator[bytes]:
        release.wait(60)
        yield b""

    address = f"127.0.0.1:{gateway.config.listener_port}"
    started = time.monotonic()
    try:
        with grpc.insecure_channel(address) as channel:
            call = channel.stream_stream(REFLECTION, None, None)
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(call(open_request_stream(), timeout=30)))
    finally:
        release.set()
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert time.monotonic() - started < 10


def test_upload_over_the_body_limit_is_refused_as_resource_exhausted(
    gateway: EnvoyProxy,
) -> None:
    oversized = b"x" * (gateway.config.max_request_bytes + 1)
    with (
        grpc.insecure_channel(
            f"127.0.0.1:{gateway.config.listener_port}",
            options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
        ) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        _raw_call(channel, ECHO, oversized)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
