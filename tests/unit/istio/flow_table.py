"""The flow table (istio/flows.yaml) as data, and its verdict on a set of Istio objects.

Three kinds of expectation come out of the table:
- every `allowed` flow must be allowed (each listed method, or the bare connection);
- every `denied` flow must be refused;
- the default-deny proof: every source workload, to every destination port the table knows,
  with every known gRPC method path there (and the bare connection), must be refused unless
  an `allowed` flow grants exactly that. Destinations without a proxy cannot be guarded by
  Istio and are left to NetworkPolicy (counted, not judged); what the internet may reach at
  the edge, anyone may (a token, not a source identity, is the credential there).

Requests at the edge carry a valid token with every role the edge policies mention, so a
refusal there means "even an operator cannot"; the role split itself is tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshkit.identity import ROLES_CLAIM
from tests.unit.istio.grpc_paths import known_method_paths
from tests.unit.istio.manifests import FLOW_TABLE, Manifest
from tests.unit.istio.mesh_eval import MeshPolicy, Request, Workload
from weather_deploy.flows import Flow
from weather_deploy.flows import FlowTable as FlowSpec
from weather_deploy.flows import load_flow_table as load_flow_spec

GRPC_HTTP_METHOD = "POST"
EDGE_BARE_REQUEST = ("GET", "/")  # what a browser asks the edge for with no gRPC method: the UI
PLAINTEXT_PARTY = "<plaintext>"
ANYONE = "<anyone>"
# Where the flow-table test leaves its summary for the end-of-run report (conftest.py).
FLOW_SUMMARY = pytest.StashKey[str]()


@dataclass(frozen=True)
class FlowTable:
    """The table as the evaluator sees it: the flows as loaded, each workload as a party."""

    workloads: Mapping[str, Workload]
    hosts: Mapping[str, tuple[str, ...]]
    allowed: tuple[Flow, ...]
    denied: tuple[Flow, ...]

    def plaintext_sources(self) -> set[str]:
        """Sources outside the mesh: external, or flagged `mtls: false` on their flows."""
        external = {name for name, workload in self.workloads.items() if workload.external}
        return external | {flow.source for flow in self.allowed if flow.mtls is False}


def as_evaluated(spec: FlowSpec) -> FlowTable:
    """The table the app stack loads, with its workloads as the evaluator's parties."""
    workloads = {
        name: Workload(
            name=name,
            namespace=workload.namespace,
            service_account=workload.service_account,
            labels=dict(workload.selector),
            external=workload.external,
        )
        for name, workload in spec.workloads.items()
    }
    hosts = {name: workload.hosts for name, workload in spec.workloads.items()}
    return FlowTable(workloads, hosts, spec.allowed, spec.denied)


def load_flow_table(path: Path = FLOW_TABLE) -> FlowTable:
    """Through the one strict loader (weather_deploy.flows): a table the app stack refuses
    is refused here too."""
    return as_evaluated(load_flow_spec(path))


def edge_roles(manifests: Sequence[Manifest]) -> list[str]:
    """Every role an AuthorizationPolicy condition on the roles claim names."""
    roles: set[str] = set()
    for policy in manifests:
        if policy["kind"] != "AuthorizationPolicy":
            continue
        for rule in policy["spec"].get("rules", []):
            for condition in rule.get("when", []):
                if condition["key"] == f"request.auth.claims[{ROLES_CLAIM}]":
                    roles.update(condition.get("values", []))
    return sorted(roles)


def token_for(manifests: Sequence[Manifest], roles: Sequence[str]) -> dict[str, Any]:
    """Claims of a well-formed token from the edge's own issuer and audience."""
    rule = next(
        ra["spec"]["jwtRules"][0] for ra in manifests if ra["kind"] == "RequestAuthentication"
    )
    return {
        "iss": rule["issuer"],
        "aud": list(rule.get("audiences", [])),
        "sub": "test-user",
        ROLES_CLAIM: list(roles),
    }


@dataclass(frozen=True)
class Verdict:
    expected_allowed: bool
    request: Request
    reason: str
    why: str

    def describe(self) -> str:
        request = self.request
        what = request.path or ("plaintext" if not request.mtls else "connection")
        expected = "allowed" if self.expected_allowed else "refused"
        return (
            f"{request.source.name} -> {request.destination.name}:{request.port} {what}: "
            f"expected {expected}, Istio says {self.reason} ({self.why})"
        )


@dataclass
class Evaluation:
    """The outcome of judging a mesh against the table."""

    allowed_ok: int = 0
    refused_ok: int = 0
    left_to_network_policy: int = 0
    mismatches: list[Verdict] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"flows: {self.allowed_ok} allowed ok, {self.refused_ok} refused ok, "
            f"{len(self.mismatches)} mismatches, "
            f"{self.left_to_network_policy} left to NetworkPolicy (no proxy at the destination, "
            "or a plaintext source Istio cannot tell apart)"
        )


class FlowJudge:
    """Builds the table's requests and asks a MeshPolicy about each."""

    def __init__(self, table: FlowTable, manifests: Sequence[Manifest]):
        self.table = table
        self.mesh = MeshPolicy(manifests)
        self.edge_token = token_for(manifests, edge_roles(manifests))
        self._plaintext = table.plaintext_sources()

    def request(self, flow: Flow, method: str | None) -> Request:
        source = self.table.workloads[flow.source]
        destination = self.table.workloads[flow.destination]
        mtls = flow.mtls if flow.mtls is not None else flow.source not in self._plaintext
        if method is not None:
            return Request(
                source, destination, flow.port, mtls, method, GRPC_HTTP_METHOD, self.edge_token
            )
        if self.mesh.is_gateway(destination):
            http_method, path = EDGE_BARE_REQUEST
            return Request(source, destination, flow.port, mtls, path, http_method)
        return Request(source, destination, flow.port, mtls)

    def _requests(self, flow: Flow) -> list[Request]:
        return [self.request(flow, method) for method in flow.methods or (None,)]

    def evaluate(self) -> Evaluation:
        evaluation = Evaluation()
        for expected_allowed, flows in ((True, self.table.allowed), (False, self.table.denied)):
            for flow in flows:
                for request in self._requests(flow):
                    self._judge(evaluation, request, expected_allowed, flow.why)
        for request in self._generated_negatives(evaluation):
            self._judge(evaluation, request, False, "not in `allowed`: default deny")
        return evaluation

    def _judge(
        self, evaluation: Evaluation, request: Request, expected_allowed: bool, why: str
    ) -> None:
        if not self.mesh.is_proxied(request.destination):
            evaluation.left_to_network_policy += 1
            if not expected_allowed:  # a `denied` flow Istio cannot see is a table mistake
                evaluation.mismatches.append(
                    Verdict(expected_allowed, request, "no proxy at the destination", why)
                )
            return
        decision = self.mesh.decide(request)
        if decision.allowed == expected_allowed:
            if expected_allowed:
                evaluation.allowed_ok += 1
            else:
                evaluation.refused_ok += 1
        else:
            evaluation.mismatches.append(Verdict(expected_allowed, request, decision.reason, why))

    def _party(self, source: str, mtls: bool) -> str:
        """Who the destination can tell the source apart as: plaintext has no identity."""
        return source if mtls else PLAINTEXT_PARTY

    def _generated_negatives(self, evaluation: Evaluation) -> list[Request]:
        """Every (source, port, method) not granted, minus what Istio cannot tell apart.

        Skipped and counted as NetworkPolicy's job: destinations without a proxy; and requests
        whose granted twin comes from the same identity-less party, i.e. one plaintext source
        where another plaintext source is allowed (KEDA and Prometheus look alike to Istio),
        or anyone where the internet is allowed (the edge).
        """
        granted: set[tuple[str, str, int, str | None]] = set()
        for flow in self.table.allowed:
            mtls = flow.mtls if flow.mtls is not None else flow.source not in self._plaintext
            party = self._party(flow.source, mtls)
            if self.table.workloads[flow.source].external:
                party = ANYONE
            for method in flow.methods or (None,):
                granted.add((party, flow.destination, flow.port, method))
        ports: dict[tuple[str, int], set[str | None]] = {}
        for flow in (*self.table.allowed, *self.table.denied):
            methods = ports.setdefault((flow.destination, flow.port), {None})
            if flow.methods:
                methods.update(known_method_paths())
        negatives: list[Request] = []
        for source in self.table.workloads:
            mtls = source not in self._plaintext
            for (destination, port), methods in sorted(ports.items(), key=str):
                for method in sorted(methods, key=str):
                    if (source, destination, port, method) in granted:
                        continue
                    if (
                        not self.mesh.is_proxied(self.table.workloads[destination])
                        or {
                            (self._party(source, mtls), destination, port, method),
                            (ANYONE, destination, port, method),
                        }
                        & granted
                    ):
                        evaluation.left_to_network_policy += 1
                        continue
                    flow = Flow(source=source, destination=destination, port=port, why="generated")
                    negatives.append(self.request(flow, method))
        return negatives


def strict_violations(mesh: MeshPolicy, table: FlowTable) -> list[str]:
    """Ports of proxied workloads whose mTLS mode is not what the table implies.

    STRICT everywhere, except PERMISSIVE exactly where an `mtls: false` flow arrives. The
    authorization check alone cannot see a lost STRICT (plaintext has no principal, so the
    ALLOW rules still refuse it), hence this check of its own.
    """
    plaintext_ports = {(f.destination, f.port) for f in table.allowed if f.mtls is False}
    ports = {(f.destination, f.port) for f in (*table.allowed, *table.denied)}
    wrong = []
    for destination, port in sorted(ports):
        workload = table.workloads[destination]
        if not mesh.is_proxied(workload) or mesh.is_gateway(workload):
            continue
        expected = "PERMISSIVE" if (destination, port) in plaintext_ports else "STRICT"
        actual = mesh.peer_mode(workload, port)
        if actual != expected:
            wrong.append(f"{destination}:{port} is {actual}, expected {expected}")
    return wrong
