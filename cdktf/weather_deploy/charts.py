"""The Helm charts of the platform: pinned versions and the values we install them with.

One source for two readers: the platform stack passes these dicts to `helm_release`, and the
tests render the same charts (upstream copies in ../shared/k8s/charts) with the same dicts.
Versions must equal ../shared/k8s/README.md's table; a test compares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshkit.broker_permissions import server_permissions, service_permissions, tool_permissions
from weather_deploy.builders import ChartPin
from weather_deploy.config import Environment
from weather_deploy.contract import (
    CNPG_NAMESPACE,
    CNPG_RELEASE,
    INGRESS_NAMESPACE,
    INGRESS_RELEASE,
    ISTIO_NAMESPACE,
    JAEGER_RELEASE,
    KEDA_NAMESPACE,
    KEDA_RELEASE,
    NATS_NAMESPACE,
    NATS_RELEASE,
    OBSERVABILITY_NAMESPACE,
    ServiceHost,
)
from weather_deploy.istio_objects import ISTIO_DIR, load_istiod_values, merged

ISTIO_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
ISTIO_VERSION = "1.30.3"
ISTIO_BASE = ChartPin(ISTIO_REPOSITORY, "base", ISTIO_VERSION)
ISTIOD = ChartPin(ISTIO_REPOSITORY, "istiod", ISTIO_VERSION)
ISTIO_GATEWAY = ChartPin(ISTIO_REPOSITORY, "gateway", ISTIO_VERSION)
NATS = ChartPin("https://nats-io.github.io/k8s/helm/charts/", "nats", "2.14.2")
CLOUDNATIVE_PG = ChartPin("https://cloudnative-pg.github.io/charts", "cloudnative-pg", "0.29.0")
JAEGER = ChartPin("https://jaegertracing.github.io/helm-charts", "jaeger", "4.11.1")
KEDA = ChartPin("https://kedacore.github.io/charts", "keda", "2.20.2")

NATS_CLIENT_PORT = 4222
NATS_ROUTES_PORT = 6222
NATS_MONITOR_PORT = 8222
NATS_REPLICAS = 3
JAEGER_OTLP_GRPC_PORT = 4317  # the jaeger chart's fixed `otlp-grpc` Service port
GATEWAY_PORTS = (80, 443)  # the gateway chart's default http2/https Service ports
TRACING_PROVIDER = "jaeger"  # meshConfig extension provider name (Istio Telemetry uses it)

# In the NATS namespace: one key per service user (its name), holding its password; the
# server container reads each into an environment variable its configuration names.
NATS_USERS_SECRET = f"{NATS_RELEASE}-users"

NATS_CLIENT = ServiceHost(NATS_RELEASE, NATS_NAMESPACE, NATS_CLIENT_PORT)
# KEDA asks every node of a clustered NATS for /jsz: it must reach the pods, not the VIP.
NATS_MONITOR = ServiceHost(f"{NATS_RELEASE}-headless", NATS_NAMESPACE, NATS_MONITOR_PORT)
JAEGER_OTLP = ServiceHost(JAEGER_RELEASE, OBSERVABILITY_NAMESPACE, JAEGER_OTLP_GRPC_PORT)


@dataclass(frozen=True)
class Release:
    """One Helm release of the platform stack."""

    name: str
    namespace: str
    chart: ChartPin
    values: dict[str, Any]


def istiod_values(env: Environment, istio_dir: Path = ISTIO_DIR) -> dict[str, Any]:
    """Ours (replicas, sampling, the Jaeger provider), then what istio/istiod-values.yaml asks
    for on top (the mesh settings the Istio policies rely on)."""
    ours = {
        "pilot": {
            "replicaCount": 2 if env.name == "prod" else 1,
            "traceSampling": round(env.trace_sampling_ratio * 100, 2),
        },
        "meshConfig": {
            "accessLogFile": "/dev/stdout",
            "accessLogEncoding": "JSON",
            "enableTracing": True,
            "extensionProviders": [
                {
                    "name": TRACING_PROVIDER,
                    "opentelemetry": {"service": JAEGER_OTLP.host, "port": JAEGER_OTLP.port},
                }
            ],
            "defaultProviders": {"tracing": [TRACING_PROVIDER]},
        },
    }
    return merged(ours, load_istiod_values(istio_dir))


def gateway_values(env: Environment) -> dict[str, Any]:
    return {
        "labels": {"app": INGRESS_RELEASE, "istio": "ingress"},
        "service": {"type": "LoadBalancer"},
        "autoscaling": {"minReplicas": 2 if env.name == "prod" else 1, "maxReplicas": 5},
    }


def nats_permissions() -> dict[str, Any]:
    """The NATS users of the cluster and their rights, as `meshkit.broker_permissions` lists
    them: one per service and one per operator tool; no admin (nothing needs every right)."""
    return {**service_permissions(), **tool_permissions()}


def nats_users() -> tuple[str, ...]:
    return tuple(nats_permissions())


def nats_password_variable(user: str) -> str:
    """The NATS container's environment variable holding `user`'s password."""
    return f"NATS_PASSWORD_{user.upper()}"


def nats_authorization() -> dict[str, Any]:
    """The `authorization` block: each service's user with the rights of the kit's table.

    Passwords are `$VARIABLE` references (the chart unquotes `<< ... >>`), resolved by
    nats-server from its environment, which the chart fills from the users' Secret: the
    values and the rendered ConfigMap hold no password."""
    return {
        "users": [
            {
                "user": user,
                "password": f"<< ${nats_password_variable(user)} >>",
                "permissions": server_permissions(permissions),
            }
            for user, permissions in nats_permissions().items()
        ]
    }


def nats_password_environment() -> dict[str, Any]:
    return {
        nats_password_variable(user): {
            "valueFrom": {"secretKeyRef": {"name": NATS_USERS_SECRET, "key": user}}
        }
        for user in nats_users()
    }


def nats_values(env: Environment) -> dict[str, Any]:
    return {
        "config": {
            "cluster": {"enabled": True, "replicas": NATS_REPLICAS, "port": NATS_ROUTES_PORT},
            "nats": {"port": NATS_CLIENT_PORT},
            "monitor": {"enabled": True, "port": NATS_MONITOR_PORT},
            "jetstream": {
                "enabled": True,
                "fileStore": {"enabled": True, "pvc": {"enabled": True, "size": env.nats_storage}},
                "memoryStore": {"enabled": False},
                # As the local mesh runs it: fsync every write (Jepsen, NATS 2.12.1).
                "merge": {"sync_interval": "always"},
            },
            # No anonymous client: each service connects as its own user (README, "Limits
            # and credentials"). Health probes and KEDA read the monitor port, which takes
            # no credentials, so no system user is needed.
            "merge": {"authorization": nats_authorization()},
        },
        "container": {"env": nats_password_environment()},
        "natsBox": {"enabled": False},
        # The chart runs NATS as the namespace's `default` account unless told otherwise; the
        # mesh identity the Istio policies admit (routes nats -> nats) is ns/nats/sa/nats.
        "serviceAccount": {"enabled": True, "name": NATS_RELEASE},
    }


def cnpg_values(env: Environment) -> dict[str, Any]:
    return {"replicaCount": 2 if env.name == "prod" else 1, "crds": {"create": True}}


def jaeger_values(env: Environment) -> dict[str, Any]:
    return {"jaeger": {"extraEnv": [], "args": []}}


def keda_values(env: Environment) -> dict[str, Any]:
    return {"operator": {"replicaCount": 2 if env.name == "prod" else 1}}


def releases(env: Environment) -> tuple[Release, ...]:
    """Every release of the platform stack, in install order."""
    return (
        Release("istio-base", ISTIO_NAMESPACE, ISTIO_BASE, {"defaultRevision": "default"}),
        Release("istiod", ISTIO_NAMESPACE, ISTIOD, istiod_values(env)),
        Release(INGRESS_RELEASE, INGRESS_NAMESPACE, ISTIO_GATEWAY, gateway_values(env)),
        Release(NATS_RELEASE, NATS_NAMESPACE, NATS, nats_values(env)),
        Release(CNPG_RELEASE, CNPG_NAMESPACE, CLOUDNATIVE_PG, cnpg_values(env)),
        Release(JAEGER_RELEASE, OBSERVABILITY_NAMESPACE, JAEGER, jaeger_values(env)),
        Release(KEDA_RELEASE, KEDA_NAMESPACE, KEDA, keda_values(env)),
    )
