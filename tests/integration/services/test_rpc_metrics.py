"""Every service times its RPCs by method and status code on /metrics."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


def rpc_count(metrics_text: str, method: str, code: str) -> float:
    pattern = (
        r"^weather_rpc_duration_seconds_count\{"
        rf'code="{code}",method="{re.escape(method)}"\}} (\S+)$'
    )
    found = re.search(pattern, metrics_text, flags=re.M)
    return float(found.group(1)) if found else 0.0


def test_rpc_latency_is_recorded_by_method_and_code(start_service: Any, nats_server: Any) -> None:
    service = start_service("dispatcher", nats_url=nats_server.url)
    service.wait_for_health(SERVING)
    with grpc.insecure_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    url = f"http://127.0.0.1:{service.metrics_port}/metrics"
    with urllib.request.urlopen(url) as response:
        text = response.read().decode()
    assert rpc_count(text, "/grpc.health.v1.Health/Check", "OK") >= 3
    assert rpc_count(text, "/grpc.health.v1.Health/Check", "NOT_FOUND") == 1
