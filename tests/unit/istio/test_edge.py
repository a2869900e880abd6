"""The edge means the same in the cluster as on a laptop: CORS, JWT roles, anonymous access."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devmesh.envoy import default_template_path, render_config, validate_origin
from devmesh.settings import MeshSettings
from meshkit.access import GET_JOB, GET_STATS, LEAST_ROLE, LIST_JOBS, SUBMIT, WATCH_JOB
from meshkit.identity import DEFAULT_AUDIENCE, ROLES_CLAIM, Role
from tests.unit.istio.flow_table import FlowTable, token_for
from tests.unit.istio.manifests import Manifest, of_kind
from tests.unit.istio.mesh_eval import MeshPolicy, Request

EDGE_PORT = 443


def _local_cors() -> dict[str, Any]:
    """The CORS policy the local Envoy gateway is rendered with (devmesh's one template)."""
    rendered = yaml.safe_load(
        render_config(MeshSettings().gateway(), default_template_path().read_text())
    )
    manager = rendered["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    virtual_host = manager["typed_config"]["route_config"]["virtual_hosts"][0]
    cors: dict[str, Any] = virtual_host["typed_per_filter_config"]["envoy.filters.http.cors"]
    return cors


def _split(header_list: str) -> list[str]:
    return [item.strip() for item in header_list.split(",")]


def _edge_routes(manifests: list[Manifest]) -> tuple[Manifest, list[dict[str, Any]]]:
    service = next(vs for vs in of_kind(manifests, "VirtualService") if vs["spec"].get("gateways"))
    return service, [r for r in service["spec"]["http"] if "corsPolicy" in r]


def test_cluster_cors_policy_is_the_local_gateways(manifests: list[Manifest]) -> None:
    local = _local_cors()
    _, routes = _edge_routes(manifests)
    assert routes
    for route in routes:
        cors = route["corsPolicy"]
        assert cors["allowMethods"] == _split(local["allow_methods"])
        assert cors["allowHeaders"] == _split(local["allow_headers"])
        assert cors["exposeHeaders"] == _split(local["expose_headers"])
        assert cors["maxAge"] == f"{local['max_age']}s"
        # Envoy: forward_not_matching_preflights false == Istio: unmatchedPreflights IGNORE
        assert local["forward_not_matching_preflights"] is False
        assert cors["unmatchedPreflights"] == "IGNORE"


def test_cluster_cors_allows_exactly_the_public_hosts_own_origin(manifests: list[Manifest]) -> None:
    service, routes = _edge_routes(manifests)
    own_origins = {f"https://{host}" for host in service["spec"]["hosts"]}
    for route in routes:
        origins = route["corsPolicy"]["allowOrigins"]
        assert all(set(matcher) == {"exact"} for matcher in origins), "exact origins only"
        assert {validate_origin(m["exact"]) for m in origins} == own_origins


def test_every_api_route_carries_cors(manifests: list[Manifest]) -> None:
    service, routes = _edge_routes(manifests)
    api_routes = [r for r in service["spec"]["http"] if "route" in r and r.get("match")]
    assert api_routes == routes


# --- JWT roles at the edge ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def edge(manifests: list[Manifest], flow_table: FlowTable) -> tuple[MeshPolicy, FlowTable]:
    return MeshPolicy(manifests), flow_table


def _call(
    edge: tuple[MeshPolicy, FlowTable],
    path: str,
    claims: dict[str, Any] | None,
    http_method: str = "POST",
) -> bool:
    mesh, table = edge
    request = Request(
        table.workloads["internet"],
        table.workloads["istio-ingress"],
        EDGE_PORT,
        False,
        path,
        http_method,
        claims,
    )
    return mesh.decide(request).allowed


@pytest.mark.parametrize("path", [SUBMIT, GET_JOB, WATCH_JOB, LIST_JOBS])
def test_viewer_calls_the_public_rpcs_except_stats(
    edge: tuple[MeshPolicy, FlowTable], manifests: list[Manifest], path: str
) -> None:
    assert _call(edge, path, token_for(manifests, ["viewer"]))


def test_stats_are_for_operators_only(
    edge: tuple[MeshPolicy, FlowTable], manifests: list[Manifest]
) -> None:
    assert not _call(edge, GET_STATS, token_for(manifests, ["viewer"]))
    assert _call(edge, GET_STATS, token_for(manifests, ["operator"]))


@pytest.mark.parametrize("path", [SUBMIT, GET_JOB, WATCH_JOB, LIST_JOBS, GET_STATS])
def test_no_anonymous_api_calls_in_the_cluster(
    edge: tuple[MeshPolicy, FlowTable], manifests: list[Manifest], path: str
) -> None:
    assert not _call(edge, path, None)
    assert not _call(edge, path, token_for(manifests, []))
    assert not _call(edge, path, token_for(manifests, ["admin"]))


def test_tokens_of_another_issuer_or_audience_are_refused(
    edge: tuple[MeshPolicy, FlowTable], manifests: list[Manifest]
) -> None:
    foreign_issuer = {**token_for(manifests, ["operator"]), "iss": "https://evil.example"}
    foreign_audience = {**token_for(manifests, ["operator"]), "aud": ["another-app"]}
    assert not _call(edge, LIST_JOBS, foreign_issuer)
    assert not _call(edge, LIST_JOBS, foreign_audience)


def test_the_ui_and_preflights_need_no_token_but_only_with_their_methods(
    edge: tuple[MeshPolicy, FlowTable],
) -> None:
    assert _call(edge, "/", None, "GET")
    assert _call(edge, "/assets/app.js", None, "HEAD")
    assert _call(edge, SUBMIT, None, "OPTIONS")
    assert not _call(edge, SUBMIT, None, "GET")  # a GET on an API path is not the UI
    assert not _call(edge, "/", None, "POST")


def test_gateway_and_edge_routes_serve_the_same_public_host(manifests: list[Manifest]) -> None:
    service, _ = _edge_routes(manifests)
    gateway = next(g for g in of_kind(manifests, "Gateway") if g["metadata"]["name"] == "edge")
    served = {host.split("/", 1)[1] for s in gateway["spec"]["servers"] for host in s["hosts"]}
    assert served == set(service["spec"]["hosts"])
    assert all(
        s["tls"].get("httpsRedirect") or s["tls"].get("credentialName")
        for s in gateway["spec"]["servers"]
    ), "every server either redirects to HTTPS or terminates TLS"


# --- the edge and the services verify the same tokens the same way -----------------------------
def _edge_api_rules(manifests: list[Manifest]) -> dict[str, tuple[set[str], set[str]]]:
    """Policy name -> (paths it allows, roles it accepts) for the edge's token policies."""
    rules = {}
    for policy in of_kind(manifests, "AuthorizationPolicy"):
        name = policy["metadata"]["name"]
        if not name.startswith("edge-api-"):
            continue
        (rule,) = policy["spec"]["rules"]
        (operation,) = rule["to"]
        (condition,) = rule["when"]
        assert condition["key"] == f"request.auth.claims[{ROLES_CLAIM}]"
        rules[name] = (set(operation["operation"]["paths"]), set(condition["values"]))
    return rules


def test_each_edge_role_policy_allows_exactly_what_the_services_allow_that_role(
    manifests: list[Manifest],
) -> None:
    rules = _edge_api_rules(manifests)
    for role in (Role.VIEWER, Role.OPERATOR):
        paths, roles = rules[f"edge-api-{role.label}"]
        assert paths == {path for path, least in LEAST_ROLE.items() if least is role}
        assert roles == {r.label for r in Role if r >= role}


def test_the_edge_audience_is_the_services_and_the_token_is_passed_on(
    manifests: list[Manifest],
) -> None:
    (authentication,) = of_kind(manifests, "RequestAuthentication")
    (rule,) = authentication["spec"]["jwtRules"]
    assert rule["audiences"] == [DEFAULT_AUDIENCE]
    assert rule["forwardOriginalToken"] is True
