"""Per-client limits at the real Envoy: one client's flood leaves others served, a forged
X-Forwarded-For does not buy a fresh allowance, a trusted client meets only the totals.

Clients are told apart by source address (127.0.0.2, .3, … are all loopback on Linux).
A limit of 3 at once and 1 per second: a burst of requests far faster than one a second
must meet it, whatever the machine's speed, unless each request took over a second.
"""

from __future__ import annotations

import http.client
import http.server
import ssl
import struct
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from devmesh.envoy import EnvoyProxy, GatewayConfig, RouteLimit, TokenBucket
from devmesh.ports import free_port

ECHO = "/weather.v1.DispatcherService/Echo"
CLIENT_A, CLIENT_B, TRUSTED = "127.0.0.2", "127.0.0.3", "127.0.0.4"
TIGHT = RouteLimit(per_client=TokenBucket(3, 1), total=TokenBucket(10_000, 10_000))
ATTEMPTS = 30
RESOURCE_EXHAUSTED = "8"


_upstream_headers: dict[str, str] = {}


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    """Echo, noting the headers of the last call (what the gateway passed on)."""
    _upstream_headers.clear()
    _upstream_headers.update((key, str(value)) for key, value in context.invocation_metadata())
    return request


class _BareFiles(http.server.BaseHTTPRequestHandler):
    """A file server that sets no security header of its own."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>weather-mesh</title>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[EnvoyProxy]:
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BareFiles)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    upstream = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "weather.v1.DispatcherService", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    upstream.add_generic_rpc_handlers((handler,))
    port = upstream.add_insecure_port("127.0.0.1:0")
    upstream.start()
    proxy = EnvoyProxy(
        GatewayConfig(
            listener_port=free_port(),
            admin_port=free_port(),
            dispatcher_port=port,
            reporting_port=free_port(),
            allowed_origins=["http://127.0.0.1:8080"],
            ui_port=files.server_address[1],
            trusted_clients=(TRUSTED,),
            api_limit=TIGHT,
        ),
        config_path=tmp_path / "envoy.yaml",
        log_path=tmp_path / "envoy.log",
    )
    proxy.start()
    yield proxy
    proxy.stop()
    upstream.stop(grace=None)
    files.shutdown()


def _echo_call(proxy: EnvoyProxy, source: str, headers: dict[str, str] | None = None) -> str:
    """One gRPC-Web Echo from `source`: "served", or "limited" (RESOURCE_EXHAUSTED)."""
    frame = b"\x00" + struct.pack(">I", 5) + b"sunny"
    connection = http.client.HTTPConnection(
        "127.0.0.1", proxy.config.listener_port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            ECHO,
            body=frame,
            headers={
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                **(headers or {}),
            },
        )
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    if reply.getheader("grpc-status") == RESOURCE_EXHAUSTED or reply.status == 429:
        return "limited"
    assert body.startswith(frame), (reply.status, reply.getheaders(), body[:200])
    return "served"


def _until_limited(proxy: EnvoyProxy, source: str, **headers: str) -> list[str]:
    outcomes = []
    for _ in range(ATTEMPTS):
        outcomes.append(_echo_call(proxy, source, headers))
        if outcomes[-1] == "limited":
            break
    return outcomes


def test_a_second_client_is_served_while_the_first_is_rate_limited(gateway: EnvoyProxy) -> None:
    first = _until_limited(gateway, CLIENT_A)
    assert first[-1] == "limited", first
    assert first[:3] == ["served"] * 3  # the burst first
    assert _echo_call(gateway, CLIENT_B) == "served"


def test_a_forged_forwarded_for_does_not_escape_the_limit(gateway: EnvoyProxy) -> None:
    outcomes = [
        _echo_call(gateway, CLIENT_A, {"x-forwarded-for": f"203.0.113.{n}"})
        for n in range(ATTEMPTS)
    ]
    assert "limited" in outcomes  # each forged address would have had a burst of its own


def test_a_client_header_sent_by_the_client_is_replaced(gateway: EnvoyProxy) -> None:
    outcomes = [
        _echo_call(gateway, CLIENT_A, {"x-weather-client": f"address:198.51.100.{n}"})
        for n in range(ATTEMPTS)
    ]
    assert "limited" in outcomes


def test_a_forged_subject_header_does_not_escape_the_limit(gateway: EnvoyProxy) -> None:
    outcomes = [
        _echo_call(gateway, CLIENT_A, {"x-weather-subject": f"forged-{n}"}) for n in range(ATTEMPTS)
    ]
    assert "limited" in outcomes  # only jwt_authn may name a subject


def test_a_trusted_client_meets_only_the_total_limit(gateway: EnvoyProxy) -> None:
    assert [_echo_call(gateway, TRUSTED) for _ in range(ATTEMPTS)] == ["served"] * ATTEMPTS


def test_https_on_the_same_port_with_modern_tls_only(gateway: EnvoyProxy) -> None:
    certificate = gateway.config_path.parent / "tls" / "cert.pem"
    context = ssl.create_default_context(cafile=str(certificate))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", gateway.config.listener_port, timeout=10, context=context
    )
    connection.request("GET", "/")
    reply = connection.getresponse()
    reply.read()
    assert connection.sock is not None
    assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
    connection.close()
    # A client offering only a suite without forward secrecy (RSA key exchange, CBC).
    weak = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    weak.load_verify_locations(str(certificate))
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:AES256-SHA:@SECLEVEL=0")
    legacy = http.client.HTTPSConnection(
        "127.0.0.1", gateway.config.listener_port, timeout=10, context=weak
    )
    with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
        legacy.connect()


def test_a_trace_context_from_the_internet_is_not_passed_on(gateway: EnvoyProxy) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    _echo_call(gateway, TRUSTED, {"traceparent": traceparent, "tracestate": "x=1"})
    assert _upstream_headers.get("traceparent") is None
    assert _upstream_headers.get("tracestate") is None
    assert _upstream_headers.get("x-client-traceparent") == traceparent


def test_the_gateway_sets_the_ui_security_headers_itself(gateway: EnvoyProxy) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.config.listener_port, timeout=10)
    connection.request("GET", "/")
    reply = connection.getresponse()
    reply.read()
    connection.close()
    assert reply.status == 200
    policy = reply.getheader("content-security-policy") or ""
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert reply.getheader("x-content-type-options") == "nosniff"
