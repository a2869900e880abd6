"""The flow table (`istio/flows.yaml`, schema in CONTRACT.md) and the NetworkPolicies it implies.

The same table is the spec of the Istio AuthorizationPolicies, so the network layer and the
mesh layer allow the same flows by construction. Every namespace of the mesh is closed by a
default-deny policy; each workload of those namespaces then gets exactly the ingress and
egress of its `allowed` flows. Workloads outside the mesh namespaces (kube-dns, istiod, KEDA…)
appear only as peers: selecting their pods would isolate them. An external workload (no pods:
the internet, the Kubernetes API server) is a peer by address, an `ipBlock` whose CIDR the
caller gives per workload (the API server's is an environment setting).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from weather_deploy.contract import MESH_NAMESPACES

Manifest = dict[str, Any]
DNS_PORT = 53  # DNS is UDP first, TCP on truncation: both are allowed to kube-dns
# External workloads of the table (keys of `workloads`) whose address the app stack supplies.
INTERNET = "internet"
KUBE_APISERVER = "kube-apiserver"
ANYWHERE = "0.0.0.0/0"


class FlowWorkload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    external: bool = False
    namespace: str | None = None
    service_account: str | None = Field(default=None, alias="serviceAccount")
    selector: dict[str, str] = Field(default_factory=dict)
    hosts: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _in_cluster_needs_identity(self) -> FlowWorkload:
        if not self.external and not (self.namespace and self.selector):
            raise ValueError("an in-cluster workload needs a namespace and a selector")
        return self


class Flow(BaseModel):
    """One row of `allowed`/`denied`; `mtls` None = as the source speaks (mTLS from a sidecar,
    plaintext from outside the mesh), False = plaintext must be accepted on the port."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    destination: str = Field(alias="to")
    port: int = Field(ge=1, le=65535)
    methods: tuple[str, ...] = ()
    mtls: bool | None = None
    why: str = Field(min_length=1)


class FlowTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    workloads: dict[str, FlowWorkload]
    allowed: tuple[Flow, ...]
    denied: tuple[Flow, ...] = ()

    @model_validator(mode="after")
    def _flows_name_workloads(self) -> FlowTable:
        for flow in (*self.allowed, *self.denied):
            for end in (flow.source, flow.destination):
                if end not in self.workloads:
                    raise ValueError(
                        f"flow {flow.source} -> {flow.destination}: no workload {end!r}"
                    )
        return self


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key_node, deep=deep) for key_node, _ in node.value]
        repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"key(s) {repeated} given twice", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def load_flow_table(path: Path) -> FlowTable:
    """THE loader of the flow table, for the app stack and the Istio tests alike.

    Strict on purpose: an unknown key (say, the stray key an unquoted comma in a flow-style
    `why:` creates) or a key given twice is an error, never a silently different table.
    """
    loader = _UniqueKeyLoader(path.read_text(encoding="utf-8"))
    try:
        return FlowTable.model_validate(loader.get_single_data())
    finally:
        loader.dispose()


def _peer(name: str, workload: FlowWorkload, external_cidrs: Mapping[str, str]) -> Manifest:
    if workload.external:
        if name not in external_cidrs:
            raise ValueError(f"external workload {name!r} is a peer, but no CIDR was given for it")
        return {"ipBlock": {"cidr": external_cidrs[name]}}
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": workload.namespace}},
        "podSelector": {"matchLabels": dict(workload.selector)},
    }


def _ports(port: int) -> list[Manifest]:
    protocols = ("UDP", "TCP") if port == DNS_PORT else ("TCP",)
    return [{"protocol": protocol, "port": port} for protocol in protocols]


def _rules(
    flows: Iterable[Flow],
    table: FlowTable,
    peer_of: str,
    peer_key: str,
    external_cidrs: Mapping[str, str],
) -> list[Manifest]:
    """One rule per (peer, port), in the table's order, duplicates merged (methods differ only
    at the mesh layer; the network layer sees a port)."""
    rules: list[Manifest] = []
    seen: set[tuple[str, int]] = set()
    for flow in flows:
        peer_name = flow.source if peer_of == "source" else flow.destination
        if (peer_name, flow.port) in seen:
            continue
        seen.add((peer_name, flow.port))
        peer = _peer(peer_name, table.workloads[peer_name], external_cidrs)
        rules.append({peer_key: [peer], "ports": _ports(flow.port)})
    return rules


def default_deny(namespace: str) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def network_policies(
    table: FlowTable,
    namespaces: Iterable[str] = MESH_NAMESPACES,
    external_cidrs: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """Default deny in each mesh namespace, then one policy per workload that has flows.

    `external_cidrs`: the address block of each external workload a closed namespace talks
    to; one without a CIDR is an error (never a silent 0.0.0.0/0)."""
    cidrs = external_cidrs or {}
    closed = tuple(namespaces)
    policies = [default_deny(namespace) for namespace in closed]
    for name, workload in table.workloads.items():
        if workload.external or workload.namespace not in closed:
            continue
        ingress = _rules(
            (f for f in table.allowed if f.destination == name), table, "source", "from", cidrs
        )
        egress = _rules(
            (f for f in table.allowed if f.source == name), table, "destination", "to", cidrs
        )
        if not ingress and not egress:
            continue
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"{name}-flows", "namespace": workload.namespace},
                "spec": {
                    "podSelector": {"matchLabels": dict(workload.selector)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": ingress,
                    "egress": egress,
                },
            }
        )
    return policies
