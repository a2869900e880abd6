"""The flow table and the Istio policies name what the stacks really create.

The table (istio/flows.yaml) and the policies were written beside the stacks, not from them:
here every in-cluster workload of the table is looked up among the pods the synthesized stacks
would run (our Deployments and Job, the charts as `helm template` renders them with the
platform stack's values, and the CloudNativePG instances of the `Cluster`), and must have the
table's namespace, selector labels and ServiceAccount; every principal an AuthorizationPolicy
admits must be a ServiceAccount some stack creates; every port the table names must be served.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.unit.cdktf.chart_rendering import RenderCharts
from weather_deploy.config import ENVIRONMENTS
from weather_deploy.flows import FlowTable, load_flow_table
from weather_deploy.istio_objects import FLOW_TABLE, ISTIO_DIR
from weather_deploy.stacks import POSTGRES_PORT
from weather_deploy.synthesis import Synthesized

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# Parties of the table that no stack of ours creates: the cluster's DNS, the operators'
# Prometheus, and the intruder the denial tests invent.
NOT_CREATED_BY_US = {"kube-dns", "prometheus", "unknown"}
# What the CloudNativePG operator makes of a `Cluster` (cloudnative-pg.io docs, "Architecture"
# and "Instance manager"): pods labelled cnpg.io/cluster=<name> running as the ServiceAccount
# spec.serviceAccountName (default: the cluster's name), serving PostgreSQL, the instance
# manager's status API and metrics; and the Service <name>-rw to the primary.
CNPG_CLUSTER_LABEL = "cnpg.io/cluster"
CNPG_STATUS_PORT = 8000
CNPG_METRICS_PORT = 9187
PRINCIPAL_PREFIX = "cluster.local/ns/"


@dataclass(frozen=True)
class Pods:
    """A pod template the cluster would run (or, for CloudNativePG, the operator's pods)."""

    origin: str
    namespace: str
    labels: dict[str, str]
    service_account: str | None
    ports: dict[str, int] = field(default_factory=dict)  # port name (or str(number)) -> number


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    selector: dict[str, str]
    ports: tuple[tuple[int, int | str], ...]  # (port, targetPort)


@dataclass
class Inventory:
    """Everything of one environment that has a namespace, an identity or a port."""

    namespaces: set[str] = field(default_factory=set)
    service_accounts: set[tuple[str, str]] = field(default_factory=set)
    pods: list[Pods] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    authorization_policies: list[dict[str, Any]] = field(default_factory=list)

    def add(self, objects: Iterable[dict[str, Any]], origin: str, namespace: str = "") -> None:
        for obj in objects:
            kind, meta = obj["kind"], obj["metadata"]
            where = meta.get("namespace") or namespace
            if kind == "Namespace":
                self.namespaces.add(meta["name"])
            elif kind == "AuthorizationPolicy":
                self.authorization_policies.append(obj)
            elif kind == "ServiceAccount":
                self.service_accounts.add((where, meta["name"]))
            elif kind in POD_KINDS:
                template = obj["spec"]["template"]
                ports = {
                    str(p.get("name") or p["containerPort"]): p["containerPort"]
                    for container in template["spec"]["containers"]
                    for p in container.get("ports", [])
                }
                ports |= {str(number): number for number in ports.values()}
                self.pods.append(
                    Pods(
                        f"{origin} {kind} {meta['name']}",
                        where,
                        template["metadata"].get("labels", {}),
                        template["spec"].get("serviceAccountName"),
                        ports,
                    )
                )
            elif kind == "Service":
                self.services.append(
                    Service(
                        meta["name"],
                        where,
                        obj["spec"].get("selector", {}),
                        tuple(
                            (p["port"], p.get("targetPort", p["port"]))
                            for p in obj["spec"]["ports"]
                        ),
                    )
                )
            elif kind == "Cluster" and obj["apiVersion"].startswith("postgresql.cnpg.io/"):
                self._add_database(obj, origin)

    def _add_database(self, cluster: dict[str, Any], origin: str) -> None:
        name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
        account = cluster["spec"].get("serviceAccountName", name)
        inherited = cluster["spec"].get("inheritedMetadata", {}).get("labels", {})
        ports = {"postgresql": POSTGRES_PORT, "status": CNPG_STATUS_PORT}
        ports["metrics"] = CNPG_METRICS_PORT
        ports |= {str(number): number for number in ports.values()}
        labels = {**inherited, CNPG_CLUSTER_LABEL: name}
        self.pods.append(Pods(f"{origin} Cluster {name}", namespace, labels, account, ports))
        self.service_accounts.add((namespace, account))
        selector = {CNPG_CLUSTER_LABEL: name}
        self.services.append(
            Service(f"{name}-rw", namespace, selector, ((POSTGRES_PORT, "postgresql"),))
        )


def inventory(synthesized: Synthesized, rendered: dict[str, list[dict[str, Any]]]) -> Inventory:
    found = Inventory()
    for stack in synthesized.stacks:
        found.add(synthesized.manifests(stack), stack)
    releases = synthesized.stacks["platform"]["resource"]["helm_release"]
    for release, objects in rendered.items():
        found.add(objects, f"chart {release}", releases[release]["namespace"])
        if releases[release].get("create_namespace"):
            found.namespaces.add(releases[release]["namespace"])
    return found


def pods_of(found: Inventory, table: FlowTable, name: str) -> list[Pods]:
    workload = table.workloads[name]
    return [
        pods
        for pods in found.pods
        if pods.namespace == workload.namespace and workload.selector.items() <= pods.labels.items()
    ]


def services_of(found: Inventory, table: FlowTable, name: str) -> list[Service]:
    """The Services of the workload's `hosts` (name.namespace.svc…)."""
    workload = table.workloads[name]
    wanted = {tuple(host.split(".")[:2]) for host in workload.hosts}
    return [s for s in found.services if (s.name, s.namespace) in wanted]


TABLE = load_flow_table(ISTIO_DIR / FLOW_TABLE)
OURS = sorted(
    name
    for name, workload in TABLE.workloads.items()
    if not workload.external and name not in NOT_CREATED_BY_US
)


@pytest.fixture(scope="module", params=sorted(ENVIRONMENTS))
def found(request: pytest.FixtureRequest, synth: Any, rendered_charts: RenderCharts) -> Inventory:
    return inventory(synth(request.param), rendered_charts(request.param))


@pytest.mark.parametrize("name", OURS)
def test_each_workload_of_the_table_runs_with_its_namespace_labels_and_account(
    found: Inventory, name: str
) -> None:
    workload = TABLE.workloads[name]
    pods = pods_of(found, TABLE, name)
    assert pods, f"{name}: no pod in {workload.namespace} has labels {workload.selector}"
    for pod in pods:
        assert pod.service_account == workload.service_account, pod.origin
    assert (workload.namespace, workload.service_account) in found.service_accounts, name
    assert workload.namespace in found.namespaces, name


def test_the_intruder_of_the_denial_tests_is_nothing_we_create(found: Inventory) -> None:
    assert not pods_of(found, TABLE, "unknown")
    intruder = TABLE.workloads["unknown"]
    assert (intruder.namespace, intruder.service_account) not in found.service_accounts


def _principals(policy: dict[str, Any]) -> Iterator[str]:
    for rule in policy["spec"].get("rules", []):
        for source in rule.get("from", []):
            spec = source.get("source", {})
            yield from spec.get("principals", [])
            yield from spec.get("notPrincipals", [])


def test_every_principal_a_policy_admits_is_an_account_we_create(found: Inventory) -> None:
    policies = found.authorization_policies
    named = {p for policy in policies for p in _principals(policy) if "*" not in p}
    assert named
    for principal in named:
        assert principal.startswith(PRINCIPAL_PREFIX), principal
        namespace, _, account = principal.removeprefix(PRINCIPAL_PREFIX).partition("/sa/")
        assert (namespace, account) in found.service_accounts, principal


def _target(pods: Pods, target: int | str) -> int | None:
    return target if isinstance(target, int) else pods.ports.get(target)


def _serves(pods: list[Pods], services: list[Service], port: int) -> bool:
    """A container port of the pods, or where a Service of the pods forwards to (the ingress
    gateway's listeners are Envoy's, declared by its Service, not by container ports)."""
    if all(port in pod.ports.values() for pod in pods):
        return True
    return any(
        all(_target(pod, target) == port for pod in pods)
        for service in services
        for _, target in service.ports
    )


def test_every_port_the_table_names_is_served_by_its_destination(found: Inventory) -> None:
    for flow in (*TABLE.allowed, *TABLE.denied):
        if flow.destination not in OURS:
            continue
        pods = pods_of(found, TABLE, flow.destination)
        services = [
            s
            for s in found.services
            if s.namespace == TABLE.workloads[flow.destination].namespace
            and s.selector
            and all(s.selector.items() <= pod.labels.items() for pod in pods)
        ]
        assert _serves(pods, services, flow.port), (flow.destination, flow.port)


def test_each_host_of_the_table_is_a_service_of_its_workload_on_its_ports(
    found: Inventory,
) -> None:
    for name in OURS:
        hosts = TABLE.workloads[name].hosts
        if not hosts:  # reached by no name (the gateway: by its load balancer)
            continue
        services = services_of(found, TABLE, name)
        assert len(services) == len(hosts), (name, hosts)
        pods = pods_of(found, TABLE, name)
        for service in services:
            assert all(service.selector.items() <= pod.labels.items() for pod in pods), service
        # What callers inside the mesh reach by name: every mTLS port of the workload's flows.
        reached = {f.port for f in TABLE.allowed if f.destination == name and f.mtls is not False}
        exposed = {port for service in services for port, _ in service.ports}
        assert reached <= exposed, (name, reached - exposed)
