from __future__ import annotations

from typing import Any

import pytest
import yaml

from devmesh.envoy import GatewayConfig, default_template_path, render_config, validate_origin
from weather.v1 import defaults_pb2

ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")


def _rendered(**overrides: Any) -> dict[str, Any]:
    config = GatewayConfig(
        listener_port=8080,
        admin_port=9901,
        dispatcher_port=50051,
        reporting_port=50053,
        allowed_origins=ORIGINS,
        **{"ui_port": 8070, **overrides},
    )
    document: dict[str, Any] = yaml.safe_load(
        render_config(config, default_template_path().read_text())
    )
    return document


def _connection_manager(document: dict[str, Any]) -> dict[str, Any]:
    listener = document["static_resources"]["listeners"][0]
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def test_http_filters_run_grpc_web_then_cors_and_end_with_the_router() -> None:
    names = [f["name"] for f in _connection_manager(_rendered())["http_filters"]]
    assert names.index("envoy.filters.http.grpc_web") < names.index("envoy.filters.http.cors")
    assert names[-1] == "envoy.filters.http.router"
    assert "envoy.filters.http.local_ratelimit" in names


def test_only_public_services_are_routed_and_streams_have_no_timeout() -> None:
    host = _connection_manager(_rendered())["route_config"]["virtual_hosts"][0]
    routed = {r["match"]["prefix"]: r["route"] for r in host["routes"] if "route" in r}
    assert {route["cluster"] for route in routed.values()} == {"dispatcher", "reporting", "ui"}
    routed = {prefix: route for prefix, route in routed.items() if route["cluster"] != "ui"}
    assert set(routed) == {"/weather.v1.DispatcherService/", "/weather.v1.ReportingService/"}
    for route in routed.values():
        assert route["timeout"] == "0s"
        assert route["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}


def test_cors_allows_exactly_the_configured_origins_and_exposes_grpc_status() -> None:
    host = _connection_manager(_rendered())["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [{"exact": origin} for origin in ORIGINS]
    assert policy["allow_headers"] == "content-type, x-grpc-web, x-user-agent, grpc-timeout"
    assert policy["expose_headers"] == "grpc-status, grpc-message, retry-after"
    assert policy["forward_not_matching_preflights"] is False


def test_grpc_upstreams_speak_http2_and_admin_binds_loopback() -> None:
    document = _rendered()
    clusters = {c["name"]: c for c in document["static_resources"]["clusters"]}
    for cluster in (clusters["dispatcher"], clusters["reporting"]):
        options = cluster["typed_extension_protocol_options"]
        http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in http["explicit_http_config"]
    assert document["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_body_limit_covers_the_contract_upload_cap_plus_framing() -> None:
    filters = _connection_manager(_rendered())["http_filters"]
    buffer = next(f for f in filters if f["name"] == "envoy.filters.http.buffer")
    limit = buffer["typed_config"]["max_request_bytes"]
    cap = defaults_pb2.LIMIT_MAX_UPLOAD_BYTES
    assert cap < limit <= cap + 1024 * 1024


@pytest.mark.parametrize(
    "origin", ["*", "http://*.example.com", "localhost:8080", "http://a/path", "file:///x"]
)
def test_wildcards_and_non_origins_are_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="not an allowed CORS origin"):
        validate_origin(origin)


def test_an_unfilled_placeholder_is_an_error_not_a_silent_gap() -> None:
    config = GatewayConfig(1, 2, 3, 4, ORIGINS, 5)
    with pytest.raises(KeyError, match="UNKNOWN"):
        render_config(config, "port: ${UNKNOWN}")


def test_no_origins_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_config(GatewayConfig(1, 2, 3, 4, (), 5), "")


def _routes() -> list[dict[str, Any]]:
    host = _connection_manager(_rendered())["route_config"]["virtual_hosts"][0]
    routes: list[dict[str, Any]] = host["routes"]
    return routes


def test_everything_that_is_not_grpc_is_served_by_the_ui_file_server_last() -> None:
    routes = _routes()
    last = routes[-1]
    assert last["match"] == {"prefix": "/"}
    assert last["route"]["cluster"] == "ui"
    grpc_catch_all = routes[-2]
    assert grpc_catch_all["direct_response"]["status"] == 404
    assert grpc_catch_all["match"]["headers"][0]["string_match"] == {"prefix": "application/grpc"}


def test_ui_cluster_points_at_the_configured_loopback_port() -> None:
    clusters = {c["name"]: c for c in _rendered(ui_port=18070)["static_resources"]["clusters"]}
    endpoint = clusters["ui"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18070}


def test_watch_streams_are_not_cut_by_the_idle_timeout_within_an_hour() -> None:
    dispatcher = next(r for r in _routes() if r.get("route", {}).get("cluster") == "dispatcher")
    assert dispatcher["route"]["idle_timeout"] == "3600s"
