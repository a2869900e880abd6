"""The flow-table check can fail: each broken copy of the policies below must be caught.

Every mutation is one a hurried edit could make; the evaluator must report at least one
mismatch, naming the flow that breaks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from tests.unit.istio.flow_table import FlowJudge, FlowTable, strict_violations
from tests.unit.istio.manifests import Manifest
from tests.unit.istio.mesh_eval import MeshPolicy, UnsupportedPolicyError

Mutation = Callable[[list[Manifest]], list[Manifest]]


def _named(manifests: list[Manifest], kind: str, namespace: str, name: str) -> Manifest:
    return next(
        m
        for m in manifests
        if (m["kind"], m["metadata"]["namespace"], m["metadata"]["name"]) == (kind, namespace, name)
    )


def drop_deny_all_in_weather(manifests: list[Manifest]) -> list[Manifest]:
    deny_all = _named(manifests, "AuthorizationPolicy", "weather", "deny-all")
    return [m for m in manifests if m is not deny_all]


def widen_nats_clients_to_any_principal(manifests: list[Manifest]) -> list[Manifest]:
    rule = _named(manifests, "AuthorizationPolicy", "nats", "nats")["spec"]["rules"][0]
    rule["from"][0]["source"]["principals"] = ["*"]
    return manifests


def let_the_dispatcher_use_postgres(manifests: list[Manifest]) -> list[Manifest]:
    rule = _named(manifests, "AuthorizationPolicy", "weather-data", "weather-db")["spec"]["rules"][
        0
    ]
    rule["from"][0]["source"]["principals"].append("cluster.local/ns/weather/sa/dispatcher")
    return manifests


def open_the_dispatcher_to_every_method(manifests: list[Manifest]) -> list[Manifest]:
    rule = _named(manifests, "AuthorizationPolicy", "weather", "dispatcher")["spec"]["rules"][0]
    del rule["to"][0]["operation"]["paths"]
    return manifests


def expose_classify_at_the_edge(manifests: list[Manifest]) -> list[Manifest]:
    viewer = _named(manifests, "AuthorizationPolicy", "istio-ingress", "edge-api-viewer")
    viewer["spec"]["rules"][0]["to"][0]["operation"]["paths"].append(
        "/weather.v1.ClassifierService/Classify"
    )
    deny = _named(manifests, "AuthorizationPolicy", "istio-ingress", "edge-deny-internal")
    return [m for m in manifests if m is not deny]


def allow_metrics_from_any_identity(manifests: list[Manifest]) -> list[Manifest]:
    rule = _named(manifests, "AuthorizationPolicy", "weather", "dispatcher")["spec"]["rules"][1]
    del rule["from"]
    return manifests


def make_nats_client_port_permissive(manifests: list[Manifest]) -> list[Manifest]:
    nats = _named(manifests, "PeerAuthentication", "nats", "nats-monitoring-for-keda")
    nats["spec"]["portLevelMtls"]["4222"] = {"mode": "PERMISSIVE"}
    nats_policy = _named(manifests, "AuthorizationPolicy", "nats", "nats")["spec"]["rules"][2]
    nats_policy["to"][0]["operation"]["ports"].append("4222")
    return manifests


def let_the_edge_reach_reflection(manifests: list[Manifest]) -> list[Manifest]:
    rule = _named(manifests, "AuthorizationPolicy", "weather", "dispatcher")["spec"]["rules"][0]
    rule["to"][0]["operation"]["paths"].append("/grpc.reflection.*")
    return manifests


MUTATIONS = [
    drop_deny_all_in_weather,
    widen_nats_clients_to_any_principal,
    let_the_dispatcher_use_postgres,
    open_the_dispatcher_to_every_method,
    expose_classify_at_the_edge,
    allow_metrics_from_any_identity,
    make_nats_client_port_permissive,
    let_the_edge_reach_reflection,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=[m.__name__ for m in MUTATIONS])
def test_a_broken_policy_is_reported(
    manifests: list[Manifest], flow_table: FlowTable, mutate: Mutation
) -> None:
    broken = mutate(copy.deepcopy(manifests))
    evaluation = FlowJudge(flow_table, broken).evaluate()
    assert evaluation.mismatches, f"{mutate.__name__} went unnoticed"


def test_removing_mesh_wide_strict_is_reported_by_the_peer_check(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    """Authorization alone still refuses plaintext (no principal), so STRICT has its own check."""
    broken = [
        m
        for m in copy.deepcopy(manifests)
        if not (m["kind"] == "PeerAuthentication" and m["metadata"]["name"] == "default")
    ]
    assert strict_violations(MeshPolicy(broken), flow_table)


def test_an_unmodelled_policy_field_is_an_error_not_a_pass(
    manifests: list[Manifest], flow_table: FlowTable
) -> None:
    broken = copy.deepcopy(manifests)
    rule = _named(broken, "AuthorizationPolicy", "nats", "nats")["spec"]["rules"][0]
    rule["from"][0]["source"]["ipBlocks"] = ["10.0.0.0/8"]
    with pytest.raises(UnsupportedPolicyError):
        FlowJudge(flow_table, broken).evaluate()
