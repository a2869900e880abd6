"""Per-client limits at the real Envoy: one client's flood leaves others served, a forged
X-Forwarded-For does not buy a fresh allowance, a trusted client meets only the totals.

Clients are told apart by source address (127.0.0.2, .3, … are all loopback on Linux).
A limit of 3 at once and 1 per second: a burst of requests far faster than one a second
must meet it, whatever the machine's speed, unless each request took over a second.
"""

from __future__ import annotations

import http.client
import struct
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


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[EnvoyProxy]:
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
            ui_port=free_port(),
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


def test_a_trusted_client_meets_only_the_total_limit(gateway: EnvoyProxy) -> None:
    assert [_echo_call(gateway, TRUSTED) for _ in range(ATTEMPTS)] == ["served"] * ATTEMPTS
