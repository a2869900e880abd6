"""Names in the Istio objects point at things that exist: methods, identities, subsets, hosts.

Istio matches strings and never complains: a misspelled method, principal, subset or host is
accepted by the API server and then silently allows, routes or reaches nothing (or too much).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.istio.flow_table import FlowTable
from tests.unit.istio.grpc_paths import known_method_paths, matching_paths
from tests.unit.istio.manifests import Manifest, of_kind
from tests.unit.istio.mesh_eval import ROOT_NAMESPACE, TRUST_DOMAIN
from weather_deploy.istio_objects import ISTIO_DIR, load_istiod_values

PUBLIC_SERVICES = ("weather.v1.DispatcherService", "weather.v1.ReportingService")
# Hosts of the platform rather than of a flow-table workload, allowed in any Sidecar egress:
# istiod (certificates, config) and the Kubernetes API (the CloudNativePG instance manager).
PLATFORM_HOSTS = {f"{ROOT_NAMESPACE}/*", "default/kubernetes.default.svc.cluster.local"}


def _operations(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for policy in of_kind(manifests, "AuthorizationPolicy"):
        for rule in policy["spec"].get("rules", []):
            for entry in rule.get("to", []):
                yield policy["metadata"]["name"], entry["operation"]


def _sources(manifests: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for policy in of_kind(manifests, "AuthorizationPolicy"):
        for rule in policy["spec"].get("rules", []):
            for entry in rule.get("from", []):
                yield policy, entry["source"]


def _routes(manifests: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for service in of_kind(manifests, "VirtualService"):
        for route in service["spec"].get("http", []):
            yield service, route


def _edge_service(manifests: list[Manifest]) -> Manifest:
    return next(vs for vs in of_kind(manifests, "VirtualService") if vs["spec"].get("gateways"))


# --- gRPC method paths -------------------------------------------------------------------------
def test_every_authorization_path_names_a_real_method(manifests: list[Manifest]) -> None:
    unknown = [
        (name, pattern)
        for name, operation in _operations(manifests)
        for pattern in (*operation.get("paths", []), *operation.get("notPaths", []))
        if not matching_paths(pattern)
    ]
    assert unknown == []


def test_every_route_match_names_a_real_method(manifests: list[Manifest]) -> None:
    unknown = []
    for service, route in _routes(manifests):
        for match in route.get("match", []):
            uri = match["uri"]
            if "exact" in uri and uri["exact"] not in known_method_paths():
                unknown.append((service["metadata"]["name"], uri["exact"]))
            if "prefix" in uri and not matching_paths(uri["prefix"] + "*"):
                unknown.append((service["metadata"]["name"], uri["prefix"]))
    assert unknown == []


def test_the_edge_routes_exactly_the_public_rpcs(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    public = {p for p in known_method_paths() if p.split("/")[1] in PUBLIC_SERVICES}
    routed = {
        match["uri"]["exact"]
        for route in _edge_service(manifests)["spec"]["http"]
        for match in route.get("match", [])
        if "exact" in match["uri"]
    }
    from_internet = {
        method
        for flow in flow_table.allowed
        if flow_table.workloads[flow.source].external
        for method in flow.methods
    }
    assert routed == public
    assert from_internet == public


# --- identities ---------------------------------------------------------------------------------
def test_every_principal_is_a_service_account_of_the_flow_table(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    known = {w.principal for name, w in flow_table.workloads.items() if name != "unknown"}
    wrong = [
        (policy["metadata"]["name"], principal)
        for policy, source in _sources(manifests)
        for principal in (*source.get("principals", []), *source.get("notPrincipals", []))
        if principal != "*" and principal not in known
    ]
    assert wrong == []
    assert all(
        p is None or p.startswith(f"{TRUST_DOMAIN}/ns/")
        for p in (w.principal for w in flow_table.workloads.values())
    )


def test_every_policy_selector_selects_a_workload_of_the_flow_table(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    kinds = ("AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication")
    orphans = []
    for kind in kinds:
        for policy in of_kind(manifests, kind):
            labels = policy["spec"].get("selector", {}).get("matchLabels")
            namespace = policy["metadata"]["namespace"]
            if labels and not any(
                w.namespace == namespace and all(w.labels.get(k) == v for k, v in labels.items())
                for w in flow_table.workloads.values()
            ):
                orphans.append((kind, policy["metadata"]["name"]))
    assert orphans == []


# --- routes, subsets, weights --------------------------------------------------------------------
def test_every_subset_a_route_uses_exists_in_its_destination_rule(
    manifests: list[Manifest],
) -> None:
    subsets = {
        (rule["spec"]["host"], subset["name"])
        for rule in of_kind(manifests, "DestinationRule")
        for subset in rule["spec"].get("subsets", [])
    }
    missing = [
        (service["metadata"]["name"], destination["destination"])
        for service, route in _routes(manifests)
        for destination in route.get("route", [])
        if "subset" in destination["destination"]
        and (destination["destination"]["host"], destination["destination"]["subset"])
        not in subsets
    ]
    assert missing == []


def test_weighted_routes_sum_to_100(manifests: list[Manifest]) -> None:
    for service, route in _routes(manifests):
        weights = [d.get("weight") for d in route.get("route", [])]
        if len(weights) > 1 or any(w is not None for w in weights):
            assert sum(w or 0 for w in weights) == 100, service["metadata"]["name"]


def test_classifier_canary_is_one_route_split_between_stable_and_canary(
    manifests: list[Manifest],
) -> None:
    service = next(
        vs
        for vs in of_kind(manifests, "VirtualService")
        if (vs["metadata"]["name"], vs["metadata"]["namespace"]) == ("classifier", "weather")
    )
    (route,) = service["spec"]["http"]
    weights = {d["destination"]["subset"]: d["weight"] for d in route["route"]}
    assert weights == {"stable": 100, "canary": 0}
    rule = next(
        r for r in of_kind(manifests, "DestinationRule") if r["metadata"]["name"] == "classifier"
    )
    assert {s["name"]: s["labels"] for s in rule["spec"]["subsets"]} == {
        "stable": {"version": "stable"},
        "canary": {"version": "canary"},
    }


def test_every_destination_rule_uses_the_mesh_certificates(manifests: list[Manifest]) -> None:
    modes = {
        r["spec"]["host"]: r["spec"]["trafficPolicy"]["tls"]["mode"]
        for r in of_kind(manifests, "DestinationRule")
    }
    assert set(modes.values()) == {"ISTIO_MUTUAL"}


def test_every_routed_host_has_a_destination_rule_with_pool_and_outlier_detection(
    manifests: list[Manifest],
) -> None:
    rules = {
        r["spec"]["host"]: r["spec"]["trafficPolicy"] for r in of_kind(manifests, "DestinationRule")
    }
    for _, route in _routes(manifests):
        for destination in route.get("route", []):
            policy = rules[destination["destination"]["host"]]
            assert "http" in policy["connectionPool"]
            assert "outlierDetection" in policy


@pytest.mark.parametrize("code", ["resource-exhausted"])
def test_no_route_retries_on(manifests: list[Manifest], code: str) -> None:
    for _, route in _routes(manifests):
        assert code not in route.get("retries", {}).get("retryOn", ""), route.get("name")


def test_every_routed_rpc_states_its_retry_policy_instead_of_istios_default(
    manifests: list[Manifest],
) -> None:
    """Istio's default retries `unavailable` twice: silence would retry Submit."""
    for _, route in _routes(manifests):
        if "route" in route and route.get("match"):
            assert "retries" in route, route.get("name")


def test_submit_retries_only_failures_that_never_reached_the_dispatcher(
    manifests: list[Manifest],
) -> None:
    (submit,) = [
        r
        for _, r in _routes(manifests)
        if any(m["uri"].get("exact", "").endswith("/Submit") for m in r.get("match", []))
    ]
    assert set(submit["retries"]["retryOn"].split(",")) <= {"connect-failure", "refused-stream"}


def test_watch_job_stream_has_no_timeout(manifests: list[Manifest]) -> None:
    (watch,) = [
        r
        for _, r in _routes(manifests)
        if any(m["uri"].get("exact", "").endswith("/WatchJob") for m in r.get("match", []))
    ]
    assert watch["timeout"] == "0s"
    assert "perTryTimeout" not in watch["retries"]


# --- mTLS exceptions ----------------------------------------------------------------------------
def test_mesh_wide_mtls_is_strict(manifests: list[Manifest]) -> None:
    mesh_wide = [
        pa["spec"]["mtls"]["mode"]
        for pa in of_kind(manifests, "PeerAuthentication")
        if pa["metadata"]["namespace"] == ROOT_NAMESPACE and "selector" not in pa["spec"]
    ]
    assert mesh_wide == ["STRICT"]


def test_plaintext_exceptions_are_exactly_the_ports_outside_callers_need(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    exceptions = set()
    for pa in of_kind(manifests, "PeerAuthentication"):
        assert pa["spec"].get("mtls", {}).get("mode", "UNSET") in ("STRICT", "UNSET")
        for port, level in pa["spec"].get("portLevelMtls", {}).items():
            assert level["mode"] == "PERMISSIVE"
            (workload,) = [
                name
                for name, w in flow_table.workloads.items()
                if w.namespace == pa["metadata"]["namespace"]
                and w.labels == pa["spec"]["selector"]["matchLabels"]
            ]
            exceptions.add((workload, int(port)))
    needed = {(f.destination, f.port) for f in flow_table.allowed if f.mtls is False}
    assert exceptions == needed


# --- egress, telemetry ---------------------------------------------------------------------------
def test_each_sidecar_reaches_exactly_the_hosts_of_its_flows(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    for sidecar in of_kind(manifests, "Sidecar"):
        selector = sidecar["spec"].get("workloadSelector", {}).get("labels")
        namespace = sidecar["metadata"]["namespace"]
        hosts = {h for e in sidecar["spec"]["egress"] for h in e["hosts"]}
        if selector is None:
            assert hosts == {f"{ROOT_NAMESPACE}/*"}, f"{namespace}'s default must reach only istiod"
            continue
        egress = hosts - PLATFORM_HOSTS
        (name,) = [
            n
            for n, w in flow_table.workloads.items()
            if w.namespace == namespace and w.labels == selector
        ]
        reached = {
            f.destination
            for f in flow_table.allowed
            if f.source == name
            and flow_table.hosts[f.destination]
            and flow_table.workloads[f.destination].namespace != ROOT_NAMESPACE
        }
        allowed_hosts = {
            f"{flow_table.workloads[d].namespace}/{h}" for d in reached for h in flow_table.hosts[d]
        }
        assert egress <= allowed_hosts, name
        for destination in reached:
            assert {
                f"{flow_table.workloads[destination].namespace}/{h}"
                for h in flow_table.hosts[destination]
            } & egress, (name, destination)


def test_tracing_provider_is_declared_and_points_at_jaeger(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    mesh_config = load_istiod_values(ISTIO_DIR)["meshConfig"]
    providers = {p["name"]: p for p in mesh_config["extensionProviders"]}
    used = {
        provider["name"]
        for telemetry in of_kind(manifests, "Telemetry")
        for tracing in telemetry["spec"].get("tracing", [])
        for provider in tracing["providers"]
    }
    assert used
    assert used <= set(providers)
    jaeger_ports = {f.port for f in flow_table.allowed if f.destination == "jaeger"}
    for name in used:
        otlp = providers[name]["opentelemetry"]
        assert otlp["service"] in flow_table.hosts["jaeger"]
        assert {otlp["port"]} == jaeger_ports
    assert mesh_config["accessLogEncoding"] == "JSON"
