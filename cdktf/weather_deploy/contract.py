"""Names the cluster shares with the Istio policy (CONTRACT.md: "Kubernetes names").

Namespaces, ServiceAccounts, labels and release names are defined here once; ports are not:
they come from the services' settings classes and from the charts' values.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.reporting.migrations import RUNTIME_ROLE

APP_NAMESPACE = "weather"
DATA_NAMESPACE = "weather-data"
NATS_NAMESPACE = "nats"
OBSERVABILITY_NAMESPACE = "observability"
ISTIO_NAMESPACE = "istio-system"
INGRESS_NAMESPACE = "istio-ingress"
CNPG_NAMESPACE = "cnpg-system"
KEDA_NAMESPACE = "keda"

# Namespaces whose pods get an Istio sidecar: also the ones the app stack closes with a
# default-deny NetworkPolicy (their traffic is exactly the flow table's).
MESH_NAMESPACES = (APP_NAMESPACE, DATA_NAMESPACE, NATS_NAMESPACE, OBSERVABILITY_NAMESPACE)
PLATFORM_NAMESPACES = (
    ISTIO_NAMESPACE,
    INGRESS_NAMESPACE,
    NATS_NAMESPACE,
    CNPG_NAMESPACE,
    OBSERVABILITY_NAMESPACE,
    KEDA_NAMESPACE,
    DATA_NAMESPACE,
)

INGRESS_RELEASE = "istio-ingress"
NATS_RELEASE = "nats"
CNPG_RELEASE = "cnpg"
JAEGER_RELEASE = "jaeger"
KEDA_RELEASE = "keda"
DATABASE_CLUSTER = "weather-db"
DATABASE_NAME = "weather"
DATABASE_OWNER = "weather_mesh"
DATABASE_RUNTIME_ROLE = RUNTIME_ROLE  # reporting serves as it; the migrations grant its rights

STABLE = "stable"
CANARY = "canary"
CLASSIFIER_CANARY = "classifier-canary"
MIGRATIONS_JOB = "reporting-migrate"
UI = "ui"


def pod_labels(name: str, version: str = STABLE) -> dict[str, str]:
    """The labels of a pod of ours (Istio selects by `app`/`version`, policies by the name)."""
    return {"app.kubernetes.io/name": name, "app": name, "version": version}


@dataclass(frozen=True)
class ServiceHost:
    """A Service's cluster-local DNS name and port."""

    name: str
    namespace: str
    port: int

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
