from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devmesh.envoy import (
    SUBJECT_HEADER,
    GatewayConfig,
    default_template_path,
    render_config,
    validate_origin,
)
from meshkit.identity import DEFAULT_AUDIENCE, LOCAL_ISSUER
from weather.v1 import defaults_pb2

ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")
JWKS = Path("/keys/jwks.json")


def _rendered(**overrides: Any) -> dict[str, Any]:
    config = GatewayConfig(
        listener_port=8080,
        admin_port=9901,
        dispatcher_port=50051,
        reporting_port=50053,
        allowed_origins=ORIGINS,
        **{"ui_port": 8070, "jwks_file": JWKS, **overrides},
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


def _filter(name: str, **overrides: Any) -> dict[str, Any]:
    filters = _connection_manager(_rendered(**overrides))["http_filters"]
    config: dict[str, Any] = next(f for f in filters if f["name"] == name)["typed_config"]
    return config


def test_tokens_are_verified_after_cors_and_before_the_rate_limit() -> None:
    names = [f["name"] for f in _connection_manager(_rendered())["http_filters"]]
    jwt = names.index("envoy.filters.http.jwt_authn")
    assert names.index("envoy.filters.http.cors") < jwt
    assert jwt < names.index("envoy.filters.http.local_ratelimit")


def test_a_client_sent_subject_header_is_removed_before_any_filter_reads_it() -> None:
    first = _connection_manager(_rendered())["http_filters"][0]
    assert first["name"] == "envoy.filters.http.lua"
    source = first["typed_config"]["default_source_code"]["inline_string"]
    assert f'"{SUBJECT_HEADER}"' in source.split("headers:remove")[0]


def test_the_gateway_checks_the_services_issuer_and_audience_and_forwards_the_token() -> None:
    provider = _filter("envoy.filters.http.jwt_authn")["providers"]["weather"]
    assert provider["issuer"] == LOCAL_ISSUER
    assert provider["audiences"] == [DEFAULT_AUDIENCE]
    assert provider["local_jwks"] == {"filename": str(JWKS)}
    assert provider["forward"] is True
    assert provider["claim_to_headers"] == [{"header_name": SUBJECT_HEADER, "claim_name": "sub"}]
    assert provider["from_headers"] == [{"name": "authorization", "value_prefix": "Bearer "}]


def test_a_token_is_required_for_the_api_unless_the_demo_mode_is_on() -> None:
    (strict,) = _filter("envoy.filters.http.jwt_authn")["rules"]
    assert strict == {"match": {"prefix": "/weather.v1."}, "requires": {"provider_name": "weather"}}
    (demo,) = _filter("envoy.filters.http.jwt_authn", anonymous_demo=True)["rules"]
    assert demo["requires"]["requires_any"]["requirements"] == [
        {"provider_name": "weather"},
        {"allow_missing": {}},
    ]


def test_the_gateway_cannot_render_without_keys() -> None:
    with pytest.raises(ValueError, match="JWKS"):
        _rendered(jwks_file=None)


def _routed() -> dict[str, dict[str, Any]]:
    host = _connection_manager(_rendered())["route_config"]["virtual_hosts"][0]
    return {
        r["match"].get("prefix") or r["match"]["path"]: r for r in host["routes"] if "route" in r
    }


def test_only_public_services_are_routed_and_streams_have_no_timeout() -> None:
    routed = {match: r["route"] for match, r in _routed().items()}
    assert {route["cluster"] for route in routed.values()} == {"dispatcher", "reporting", "ui"}
    routed = {match: route for match, route in routed.items() if route["cluster"] != "ui"}
    assert set(routed) == {
        "/weather.v1.DispatcherService/Submit",
        "/weather.v1.DispatcherService/WatchJob",
        "/weather.v1.DispatcherService/",
        "/weather.v1.ReportingService/",
    }
    for match, route in routed.items():
        if match.endswith("/Submit"):
            assert route["timeout"] == "30s"  # a Submit answers, or is cut
            continue
        assert route["timeout"] == "0s"
        assert route["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}


def test_every_api_route_is_limited_per_client_and_in_total_and_the_ui_by_neither() -> None:
    connection_manager = _connection_manager(_rendered())
    assert connection_manager["use_remote_address"] is True
    assert connection_manager["xff_num_trusted_hops"] == 0
    filters = {f["name"]: f for f in connection_manager["http_filters"]}
    default = filters["envoy.filters.http.local_ratelimit"]["typed_config"]
    assert default["filter_enabled"]["default_value"]["numerator"] == 0
    stat_prefixes = set()
    for match, route in _routed().items():
        per_route = route.get("typed_per_filter_config", {})
        if route["route"]["cluster"] == "ui":
            assert "envoy.filters.http.local_ratelimit" not in per_route
            continue
        limit = per_route["envoy.filters.http.local_ratelimit"]
        stat_prefixes.add(limit["stat_prefix"])
        assert limit["filter_enforced"]["default_value"]["numerator"] == 100
        assert (
            limit["token_bucket"]["max_tokens"]
            > limit["descriptors"][0]["token_bucket"]["max_tokens"]
        ), match
        assert limit["descriptors"][0]["entries"] == [{"key": "client"}]  # one per client
        action = route["route"]["rate_limits"][0]["actions"][0]["request_headers"]
        assert action["header_name"] == "x-weather-client"
    assert stat_prefixes == {"submit_rate_limit", "watch_rate_limit", "api_rate_limit"}


def test_trusted_clients_must_be_ip_addresses() -> None:
    config = GatewayConfig(
        1, 2, 3, 4, ORIGINS, 5, trusted_clients=('"] = true } os.exit() --',), jwks_file=JWKS
    )
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        render_config(config, default_template_path().read_text())


def test_cors_allows_exactly_the_configured_origins_and_exposes_grpc_status() -> None:
    host = _connection_manager(_rendered())["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [{"exact": origin} for origin in ORIGINS]
    assert policy["allow_headers"] == (
        "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout"
    )
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
    config = GatewayConfig(1, 2, 3, 4, ORIGINS, 5, jwks_file=JWKS)
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
    watch = _routed()["/weather.v1.DispatcherService/WatchJob"]
    assert watch["route"]["idle_timeout"] == "3600s"
