"""The flow table becomes NetworkPolicies; istio/ becomes objects with the canary weights set."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from weather_deploy.config import ENVIRONMENTS
from weather_deploy.contract import MESH_NAMESPACES
from weather_deploy.flows import (
    KUBE_APISERVER,
    FlowTable,
    load_flow_table,
    network_policies,
)
from weather_deploy.istio_objects import (
    FLOW_TABLE,
    ISTIO_DIR,
    load_istio_objects,
    tls_credentials,
    with_canary_weight,
    with_domain,
    with_trace_sampling,
)
from weather_deploy.k8s_schemas import validate_all
from weather_deploy.stacks import external_cidrs
from weather_deploy.synthesis import Synthesized

FIXTURES = Path(__file__).parent / "fixtures" / "istio"
CIDRS = external_cidrs(ENVIRONMENTS["prod"])


def _policies_by_name(table: FlowTable) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in network_policies(table, external_cidrs=CIDRS)}


def _allows(policy: dict[str, Any], direction: str, peer: dict[str, Any], port: int) -> bool:
    key = "from" if direction == "ingress" else "to"
    return any(
        peer in rule[key] and port in {p["port"] for p in rule["ports"]}
        for rule in policy["spec"].get(direction, [])
    )


def _peer(table: FlowTable, name: str, cidrs: dict[str, str] = CIDRS) -> dict[str, Any]:
    """A NetworkPolicy peer as the table implies it: the workload's namespace and pods, or
    the external workload's CIDR."""
    workload = table.workloads[name]
    if workload.external:
        return {"ipBlock": {"cidr": cidrs[name]}}
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": workload.namespace}},
        "podSelector": {"matchLabels": workload.selector},
    }


def test_each_mesh_namespace_is_closed_by_default() -> None:
    policies = network_policies(load_flow_table(FIXTURES / "flows.yaml"))
    deny = [p for p in policies if p["metadata"]["name"] == "default-deny"]
    assert {p["metadata"]["namespace"] for p in deny} == set(MESH_NAMESPACES)
    assert all(p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]} for p in deny)


def test_fixture_flows_become_ingress_and_egress_rules() -> None:
    table = load_flow_table(FIXTURES / "flows.yaml")
    policies = _policies_by_name(table)
    assert set(policies) == {"default-deny", "api-flows", "queue-flows"}  # edge, dns: not ours
    api, queue = policies["api-flows"], policies["queue-flows"]
    assert _allows(api, "ingress", _peer(table, "edge"), 50051)
    assert len(api["spec"]["ingress"]) == 1  # two method flows on one port: one network rule
    assert _allows(api, "egress", _peer(table, "queue"), 4222)
    assert _allows(queue, "ingress", _peer(table, "api"), 4222)
    assert _allows(queue, "ingress", _peer(table, "monitor"), 8222)
    dns = [rule for rule in api["spec"]["egress"] if rule["to"] == [_peer(table, "dns")]]
    assert {p["protocol"] for p in dns[0]["ports"]} == {"UDP", "TCP"}
    assert not _allows(api, "egress", _peer(table, "db"), 5432)  # a denied flow


def test_no_denied_flow_of_the_real_table_is_open_at_the_network_layer() -> None:
    """A denied flow on a port that no allowed flow between the same pair uses must be shut
    by the NetworkPolicies too (method-level denials are Istio's job)."""
    table = load_flow_table(ISTIO_DIR / FLOW_TABLE)
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p
        for p in network_policies(table, external_cidrs=CIDRS)
    }
    allowed_ports = {(f.source, f.destination, f.port) for f in table.allowed}
    checked = 0
    for flow in table.denied:
        if (flow.source, flow.destination, flow.port) in allowed_ports:
            continue
        destination = table.workloads[flow.destination]
        policy = policies.get((str(destination.namespace), f"{flow.destination}-flows"))
        if destination.namespace in MESH_NAMESPACES:
            checked += 1
            assert policy is None or not _allows(
                policy, "ingress", _peer(table, flow.source), flow.port
            ), flow
    assert checked


def test_a_flow_naming_an_unknown_workload_is_refused() -> None:
    with pytest.raises(ValueError, match="no workload 'ghost'"):
        FlowTable.model_validate(
            {
                "workloads": {"a": {"external": True}},
                "allowed": [{"from": "a", "to": "ghost", "port": 1, "why": "x"}],
            }
        )


def test_loader_reads_every_document_but_the_flow_table_and_istiod_values() -> None:
    objects = load_istio_objects(FIXTURES)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Gateway", "edge"),
        ("VirtualService", "edge"),
        ("Telemetry", "mesh-default"),
        ("VirtualService", "classifier"),
        ("PeerAuthentication", "default"),
    ]
    assert validate_all(objects) == []


@pytest.mark.parametrize("weight", [0, 10, 100])
def test_canary_weight_sets_the_stable_and_canary_shares(weight: int) -> None:
    objects = with_canary_weight(load_istio_objects(FIXTURES), weight)
    (route,) = [o for o in objects if o["metadata"]["name"] == "classifier"]
    classify = route["spec"]["http"][0]["route"]
    assert [d["weight"] for d in classify] == [100 - weight, weight]
    assert "weight" not in route["spec"]["http"][1]["route"][0]  # other routes untouched


def test_canary_weight_needs_a_classifier_route_with_both_subsets() -> None:
    objects = load_istio_objects(FIXTURES)
    without = [copy.deepcopy(o) for o in objects if o["metadata"]["name"] != "classifier"]
    with pytest.raises(ValueError, match="no VirtualService 'classifier'"):
        with_canary_weight(without, 10)
    with pytest.raises(ValueError, match="percentage"):
        with_canary_weight(objects, 101)


def test_a_document_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a Kubernetes object"):
        load_istio_objects(tmp_path)


def test_the_app_stack_applies_istio_with_the_environments_weight(synthesized: Synthesized) -> None:
    from weather_deploy.config import ENVIRONMENTS

    weight = ENVIRONMENTS[synthesized.env].canary_weight
    route = synthesized.find("app", "VirtualService", "classifier")
    weights = {
        d["destination"]["subset"]: d["weight"]
        for http in route["spec"]["http"]
        for d in http.get("route", [])
        if d["destination"].get("subset")
    }
    assert weights == {"stable": 100 - weight, "canary": weight}
    istio_in_stack = [m for m in synthesized.manifests("app") if "istio.io" in m["apiVersion"]]
    assert len(istio_in_stack) == len(load_istio_objects(ISTIO_DIR))


def test_istiod_values_of_the_policy_folder_are_merged_over_ours() -> None:
    from weather_deploy.charts import istiod_values
    from weather_deploy.config import ENVIRONMENTS

    values = istiod_values(ENVIRONMENTS["dev"], FIXTURES)
    mesh = values["meshConfig"]
    assert mesh["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}  # added by the folder
    assert mesh["accessLogEncoding"] == "TEXT"  # the folder's word wins
    assert mesh["extensionProviders"][0]["name"] == "jaeger"  # ours kept
    assert values["pilot"]["traceSampling"] == 100.0


def test_the_environments_domain_replaces_the_placeholder_host() -> None:
    objects = {
        o["metadata"]["name"] + o["kind"]: o
        for o in with_domain(load_istio_objects(FIXTURES), "weather.example.org")
    }
    assert objects["edgeGateway"]["spec"]["servers"][0]["hosts"] == ["./weather.example.org"]
    route = objects["edgeVirtualService"]["spec"]
    assert route["hosts"] == ["weather.example.org", "other.example.com"]
    assert route["http"][0]["corsPolicy"]["allowOrigins"] == [
        {"exact": "https://weather.example.org"},
        {"exact": "https://other.example.com"},
    ]
    internal = objects["classifierVirtualService"]["spec"]["hosts"]
    assert internal == ["classifier.weather.svc.cluster.local"]


def test_sampling_and_tls_secret_names_come_from_the_policy_files() -> None:
    objects = with_trace_sampling(load_istio_objects(FIXTURES), 5.0)
    (telemetry,) = [o for o in objects if o["kind"] == "Telemetry"]
    assert telemetry["spec"]["tracing"][0]["randomSamplingPercentage"] == 5.0
    assert tls_credentials(objects) == {"edge-tls"}


# --- the NetworkPolicies the app stack ships, against the table ----------------------------------
NetworkRule = tuple[str, str, str, str, str, int]  # ns, pods, direction, peer, proto, port


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _expected_network_rules(table: FlowTable, cidrs: dict[str, str]) -> set[NetworkRule]:
    """Each allowed flow opens egress at its source and ingress at its destination, wherever
    that end is a pod of a closed namespace; the peer is the other end's namespace and pods
    (so a plaintext exception admits its source namespace's pods only), or the external
    workload's CIDR. DNS is UDP and TCP, everything else TCP."""
    expected: set[NetworkRule] = set()
    for flow in table.allowed:
        protocols = ("UDP", "TCP") if flow.destination == "kube-dns" else ("TCP",)
        for end, direction, other in (
            (flow.source, "egress", flow.destination),
            (flow.destination, "ingress", flow.source),
        ):
            workload = table.workloads[end]
            if workload.external or workload.namespace not in MESH_NAMESPACES:
                continue
            peer = _peer(table, other, cidrs)
            for protocol in protocols:
                expected.add(
                    (
                        str(workload.namespace),
                        _key(workload.selector),
                        direction,
                        _key(peer),
                        protocol,
                        flow.port,
                    )
                )
    return expected


def _shipped_network_rules(policies: list[dict[str, Any]]) -> set[NetworkRule]:
    shipped: set[NetworkRule] = set()
    for policy in policies:
        spec = policy["spec"]
        pods = _key(spec["podSelector"].get("matchLabels", {}))
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction, []):
                for peer in rule[peer_key]:
                    for port in rule["ports"]:
                        shipped.add(
                            (
                                policy["metadata"]["namespace"],
                                pods,
                                direction,
                                _key(peer),
                                port["protocol"],
                                port["port"],
                            )
                        )
    return shipped


def test_shipped_network_policies_open_exactly_what_the_table_needs(
    synthesized: Synthesized,
) -> None:
    table = load_flow_table(ISTIO_DIR / FLOW_TABLE)
    env = ENVIRONMENTS[synthesized.env]
    policies = [m for m in synthesized.manifests("app") if m["kind"] == "NetworkPolicy"]
    deny = {p["metadata"]["namespace"] for p in policies if p["spec"]["podSelector"] == {}}
    assert deny == set(MESH_NAMESPACES)
    assert all(
        not p["spec"].get("ingress") and not p["spec"].get("egress")
        for p in policies
        if p["spec"]["podSelector"] == {}
    )
    expected = _expected_network_rules(table, external_cidrs(env))
    shipped = _shipped_network_rules(policies)
    assert sorted(shipped - expected) == [], "opened but not in the table"
    assert sorted(expected - shipped) == [], "needed by the table but not opened"
    api_server = {"ipBlock": {"cidr": env.api_server_cidr}}
    assert {(r[2], r[5]) for r in shipped if r[3] == _key(api_server)} == {
        ("egress", 443),
        ("egress", 6443),
    }


def test_every_proxied_pod_of_ours_may_resolve_names_and_reach_istiod() -> None:
    """A sidecar without DNS or istiod never becomes ready: the table must list both."""
    table = load_flow_table(ISTIO_DIR / FLOW_TABLE)
    allowed = {(f.source, f.destination, f.port) for f in table.allowed}
    ours = [
        name
        for name, workload in table.workloads.items()
        if workload.namespace in MESH_NAMESPACES and name != "unknown"
    ]
    assert ours
    for name in ours:
        assert (name, "kube-dns", 53) in allowed, name
        assert (name, "istiod", 15012) in allowed, name


def test_the_api_server_cidr_is_the_environments_or_its_vpc() -> None:
    env = ENVIRONMENTS["dev"]
    assert external_cidrs(env)[KUBE_APISERVER] == env.cluster.vpc_cidr
    kind = env.model_copy(update={"kube_api_cidr": "172.18.0.0/16"})
    assert external_cidrs(kind)[KUBE_APISERVER] == "172.18.0.0/16"


def test_an_external_peer_without_an_address_is_refused() -> None:
    table = load_flow_table(ISTIO_DIR / FLOW_TABLE)
    with pytest.raises(ValueError, match="no CIDR was given for it"):
        network_policies(table)


def test_services_and_proxies_sample_traces_alike(synthesized: Synthesized) -> None:
    """The SDKs follow the proxies' decision (parent-based) and start their own roots at the
    environment's ratio, the percentage the proxies' Telemetry uses; istio/ says the same."""
    from weather_deploy.workloads import TRACES_SAMPLER

    ratio = ENVIRONMENTS[synthesized.env].trace_sampling_ratio
    assert TRACES_SAMPLER.startswith("parentbased_")
    samplers = {
        (variables.get("OTEL_TRACES_SAMPLER"), variables.get("OTEL_TRACES_SAMPLER_ARG"))
        for deployment in synthesized.manifests("app")
        if deployment["kind"] == "Deployment"
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for variables in [{v["name"]: v.get("value") for v in container.get("env", [])}]
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in variables
    }
    assert samplers == {(TRACES_SAMPLER, str(ratio))}
    percentages = [
        tracing["randomSamplingPercentage"]
        for telemetry in synthesized.manifests("app")
        if telemetry["kind"] == "Telemetry"
        for tracing in telemetry["spec"].get("tracing", [])
    ]
    assert percentages
    assert percentages == pytest.approx([ratio * 100] * len(percentages))
    for path in (ISTIO_DIR / "telemetry.yaml", ISTIO_DIR / "README.md"):
        named = set(re.findall(r"parentbased_\w+", path.read_text(encoding="utf-8")))
        assert named <= {TRACES_SAMPLER}, path
    telemetry_comment = (ISTIO_DIR / "telemetry.yaml").read_text(encoding="utf-8")
    assert TRACES_SAMPLER in telemetry_comment


def test_on_an_existing_cluster_the_api_server_block_is_the_targets(
    on_kube_context: Synthesized,
) -> None:
    from tests.unit.cdktf.conftest import KIND_API_CIDR

    policy = on_kube_context.find("app", "NetworkPolicy", "weather-db-flows")
    blocks = {
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    }
    assert blocks == {KIND_API_CIDR}


def test_an_existing_cluster_without_its_api_server_block_is_refused() -> None:
    from cdktf import Testing

    from weather_deploy.stacks import Target, build

    with pytest.raises(ValueError, match="KUBE_API_CIDR"):
        build(Testing.app(), ENVIRONMENTS["dev"], Target(kube_context="kind-weather"), "tag")
