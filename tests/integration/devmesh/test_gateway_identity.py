"""What the real Envoy tells the services about the caller: the verified subject, and only it.

An upstream stand-in answers every call with the `x-weather-subject` and `authorization`
values it received, so the test sees exactly what a service (and the per-client rate limits
keyed on the subject) would see.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from devmesh.envoy import SUBJECT_HEADER, EnvoyProxy, GatewayConfig
from devmesh.ports import free_port
from devmesh.tokens import LocalIssuer

WHO = "/weather.v1.DispatcherService/Who"


def _who(request: bytes, context: grpc.ServicerContext) -> bytes:
    received: dict[str, list[str]] = {}
    for key, value in context.invocation_metadata():
        if key in (SUBJECT_HEADER, "authorization"):
            received.setdefault(key, []).append(str(value))
    return json.dumps(received).encode()


@pytest.fixture
def upstream() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "weather.v1.DispatcherService", {"Who": grpc.unary_unary_rpc_method_handler(_who)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


def _start(tmp_path: Path, issuer: LocalIssuer, upstream: int, demo: bool) -> EnvoyProxy:
    proxy = EnvoyProxy(
        GatewayConfig(
            listener_port=free_port(),
            admin_port=free_port(),
            dispatcher_port=upstream,
            reporting_port=free_port(),
            allowed_origins=["http://localhost:8080"],
            ui_port=free_port(),
            jwks_file=issuer.jwks_path,
            anonymous_demo=demo,
        ),
        config_path=tmp_path / f"envoy-{demo}.yaml",
        log_path=tmp_path / f"envoy-{demo}.log",
    )
    proxy.start()
    return proxy


def _received(proxy: EnvoyProxy, metadata: list[tuple[str, str]]) -> dict[str, list[str]]:
    with grpc.insecure_channel(f"127.0.0.1:{proxy.config.listener_port}") as channel:
        reply: bytes = channel.unary_unary(WHO, None, None)(
            b"", metadata=tuple(metadata), timeout=20
        )
    answer: dict[str, list[str]] = json.loads(reply)
    return answer


def test_the_services_get_the_verified_subject_never_the_one_a_client_sent(
    tmp_path: Path, local_issuer: LocalIssuer, upstream: int
) -> None:
    token = local_issuer.mint("alice")
    spoofed = (SUBJECT_HEADER, "mallory")
    proxy = _start(tmp_path, local_issuer, upstream, demo=True)
    try:
        signed_in = _received(proxy, [("authorization", f"Bearer {token}"), spoofed])
        assert signed_in[SUBJECT_HEADER] == ["alice"]
        # The token goes on: the services verify it again.
        assert signed_in["authorization"] == [f"Bearer {token}"]
        anonymous = _received(proxy, [spoofed])
        assert SUBJECT_HEADER not in anonymous
    finally:
        proxy.stop()


def test_without_demo_mode_a_call_without_a_token_never_reaches_a_service(
    tmp_path: Path, local_issuer: LocalIssuer, upstream: int
) -> None:
    proxy = _start(tmp_path, local_issuer, upstream, demo=False)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            _received(proxy, [(SUBJECT_HEADER, "alice")])
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = local_issuer.mint("alice")
        assert _received(proxy, [("authorization", f"Bearer {token}")])[SUBJECT_HEADER] == ["alice"]
    finally:
        proxy.stop()
