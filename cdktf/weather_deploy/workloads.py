"""Our workloads as Kubernetes objects (plain dicts): one function per concern.

A service's ServiceAccount, ConfigMap, Deployment, Service and PodDisruptionBudget come from
one call fed by the settings class the service reads, so its ports, shutdown grace and
environment cannot drift from the code. Nothing here touches cdktf: the app stack hands these
objects to `builders.kubernetes_object`, and the tests validate them against the schemas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from weather_deploy.charts import JAEGER_OTLP, NATS_CLIENT, NATS_MONITOR
from weather_deploy.config import Environment, ServiceName, Workload
from weather_deploy.contract import APP_NAMESPACE, STABLE, pod_labels
from weather_deploy.istio_objects import ISTIO_DIR, edge_token_rule, load_istio_objects
from weather_deploy.service_config import ServiceEnvironment, settings_class

Manifest = dict[str, Any]

RUN_AS_USER = 10001  # the images' USER (CONTRACT.md)
# Beyond the service's own drain: the sidecar's drain and the kubelet's SIGKILL margin.
TERMINATION_MARGIN_SECONDS = 15
# The classifier loads TensorFlow and its model before it is SERVING: allow it 5 minutes.
STARTUP_BUDGET_SECONDS = 300
PROBE_PERIOD_SECONDS = 5
# A pod listens on its own network namespace; Istio and the NetworkPolicies guard it.
ALL_INTERFACES = "0.0.0.0"  # nosec B104 - inside the pod
# The only writable path: an emptyDir, as the images expect (no writes outside /tmp).
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # nosec B108 - a mount point, not a file
# A service's NATS password: its own Secret (`<service>-nats`), one key, mounted read-only.
NATS_PASSWORD_KEY = "password"
NATS_PASSWORD_VOLUME = "nats-password"
NATS_PASSWORD_DIR = "/var/run/secrets/weather-mesh/nats"
SECRET_FILE_MODE = 0o440  # owner and the pod's fsGroup (the service's user) read it


def nats_password_secret(user: str) -> str:
    """The app namespace's Secret holding `user`'s NATS password (the service's own)."""
    return f"{user}-nats"


def cluster_settings(env: Environment, service: ServiceName) -> dict[str, Any]:
    """The settings a service needs in the cluster, by field name (validated by its class)."""
    return {
        "grpc_host": ALL_INTERFACES,
        "metrics_host": ALL_INTERFACES,
        "nats_url": f"nats://{NATS_CLIENT.address}",
        # Its own NATS user (named after it, as the broker's permission table is).
        "nats_user": service,
        "nats_password_file": f"{NATS_PASSWORD_DIR}/{NATS_PASSWORD_KEY}",
        **token_settings(service),
        **env.service_overrides.get(service, {}),
    }


def token_settings(service: ServiceName) -> dict[str, Any]:
    """A service with public RPCs verifies tokens with the edge's issuer, audience and keys
    (`istio/request-authentication.yaml`); anonymous demo mode stays at its default, off."""
    if "auth_issuer" not in settings_class(service).model_fields:
        return {}
    rule = edge_token_rule(load_istio_objects(ISTIO_DIR))
    (audience,) = rule["audiences"]
    return {
        "auth_issuer": rule["issuer"],
        "auth_audience": audience,
        "auth_jwks_uri": rule["jwksUri"],
    }


# Parent-based: a span with a parent follows the parent's decision (the proxies', which start
# every trace that enters through the edge or a sidecar); a root the service starts itself is
# sampled at the environment's ratio, the edge's percentage. Why not always_on: README, deploy.
TRACES_SAMPLER = "parentbased_traceidratio"


def telemetry_env(service: str, env: Environment) -> list[Manifest]:
    """The OpenTelemetry SDK's own variables: export to Jaeger, sampled per environment."""
    return [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://{JAEGER_OTLP.address}"},
        {"name": "OTEL_SERVICE_NAME", "value": service},
        {"name": "OTEL_TRACES_SAMPLER", "value": TRACES_SAMPLER},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": str(env.trace_sampling_ratio)},
    ]


def metadata(name: str, labels: dict[str, str] | None = None, **extra: Any) -> Manifest:
    return {"name": name, "namespace": APP_NAMESPACE, "labels": labels or {}, **extra}


def namespace(name: str, *, mesh: bool) -> Manifest:
    labels = {"istio-injection": "enabled"} if mesh else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def named_object(api_version: str, kind: str, name: str, **body: Any) -> Manifest:
    """An object of ours in the app namespace, labelled with its name."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, {"app.kubernetes.io/name": name}),
        **body,
    }


def service_account(name: str) -> Manifest:
    return named_object("v1", "ServiceAccount", name, automountServiceAccountToken=False)


def config_map(name: str, data: dict[str, str]) -> Manifest:
    return named_object("v1", "ConfigMap", name, data=data)


def secret(name: str, string_data: dict[str, str]) -> Manifest:
    return named_object("v1", "Secret", name, type="Opaque", stringData=string_data)


def _resources(workload: Workload) -> Manifest:
    r = workload.resources
    return {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
    }


def _non_root() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> Manifest:
    return {
        **_non_root(),
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> Manifest:
    return {**_non_root(), "fsGroup": RUN_AS_USER}


def _spread(labels: dict[str, str]) -> list[Manifest]:
    """Replicas spread over zones and nodes (soft: a small dev cluster still schedules)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _pod_template(
    *,
    labels: dict[str, str],
    service_account_name: str,
    container: Manifest,
    grace_seconds: int,
    restart_policy: str = "Always",
    extra_volumes: tuple[Manifest, ...] = (),
) -> Manifest:
    return {
        "metadata": {
            "labels": labels,
            "annotations": {
                # The app must not dial NATS before its sidecar can carry the connection.
                "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}',
            },
        },
        "spec": {
            "serviceAccountName": service_account_name,
            "automountServiceAccountToken": False,
            "securityContext": _pod_security(),
            "terminationGracePeriodSeconds": grace_seconds,
            "restartPolicy": restart_policy,
            "topologySpreadConstraints": _spread(
                {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}
            ),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, *extra_volumes],
        },
    }


def _grpc_probes(port: int) -> Manifest:
    """gRPC health probes (Istio rewrites them to its agent under STRICT mTLS)."""
    grpc = {"port": port}
    return {
        "startupProbe": {
            "grpc": grpc,
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": STARTUP_BUDGET_SECONDS // PROBE_PERIOD_SECONDS,
        },
        "readinessProbe": {"grpc": grpc, "periodSeconds": PROBE_PERIOD_SECONDS},
        "livenessProbe": {"grpc": grpc, "periodSeconds": 10, "failureThreshold": 3},
    }


@dataclass(frozen=True)
class ServiceImage:
    """Where a workload's image comes from (registry/weather-mesh/<name>:<tag>)."""

    registry: str
    tag: str

    def of(self, name: str) -> str:
        return f"{self.registry}/weather-mesh/{name}:{self.tag}"


def termination_grace(service_env: ServiceEnvironment) -> int:
    grace: float = service_env.settings.shutdown_grace_seconds  # type: ignore[attr-defined]
    return math.ceil(grace) + TERMINATION_MARGIN_SECONDS


def grpc_port(service_env: ServiceEnvironment) -> int:
    port: int = service_env.settings.grpc_port  # type: ignore[attr-defined]
    return port


def metrics_port(service_env: ServiceEnvironment) -> int:
    port: int = service_env.settings.metrics_port  # type: ignore[attr-defined]
    return port


def nats_password_volume(service_env: ServiceEnvironment) -> Manifest | None:
    """The volume of the service's NATS password, if its settings name a password file."""
    user = getattr(service_env.settings, "nats_user", None)
    if user is None or getattr(service_env.settings, "nats_password_file", None) is None:
        return None
    return {
        "name": NATS_PASSWORD_VOLUME,
        "secret": {
            "secretName": nats_password_secret(user),
            "defaultMode": SECRET_FILE_MODE,
            "items": [{"key": NATS_PASSWORD_KEY, "path": NATS_PASSWORD_KEY}],
            # Kubernetes' default, spelt out: podman 4.3's kube play (make test-images)
            # dereferences an unset `optional` and crashes.
            "optional": False,
        },
    }


def _volume_mounts(service_env: ServiceEnvironment) -> list[Manifest]:
    mounts: list[Manifest] = [TMP_MOUNT]
    password_file = getattr(service_env.settings, "nats_password_file", None)
    if nats_password_volume(service_env) is not None:
        if not str(password_file).startswith(NATS_PASSWORD_DIR + "/"):
            raise ValueError(f"nats_password_file {password_file} is outside {NATS_PASSWORD_DIR}")
        mounts.append(
            {"name": NATS_PASSWORD_VOLUME, "mountPath": NATS_PASSWORD_DIR, "readOnly": True}
        )
    return mounts


def service_container(
    service: ServiceName,
    service_env: ServiceEnvironment,
    *,
    env: Environment,
    image: str,
    config_map_name: str,
    secret_name: str | None,
) -> Manifest:
    env_from: list[Manifest] = [{"configMapRef": {"name": config_map_name}}]
    if secret_name:
        env_from.append({"secretRef": {"name": secret_name}})
    return {
        "name": service,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "grpc", "containerPort": grpc_port(service_env), "protocol": "TCP"},
            {"name": "http-metrics", "containerPort": metrics_port(service_env), "protocol": "TCP"},
        ],
        "envFrom": env_from,
        "env": telemetry_env(service, env),
        "resources": _resources(env.workload(service)),
        "securityContext": _container_security(),
        "volumeMounts": _volume_mounts(service_env),
        **_grpc_probes(grpc_port(service_env)),
    }


def deployment(
    name: str,
    *,
    labels: dict[str, str],
    replicas: int,
    service_account_name: str,
    container: Manifest,
    grace_seconds: int,
    volumes: tuple[Manifest, ...] = (),
) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, labels),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": _pod_template(
                labels=labels,
                service_account_name=service_account_name,
                container=container,
                grace_seconds=grace_seconds,
                extra_volumes=volumes,
            ),
        },
    }


def grpc_service(name: str, service_env: ServiceEnvironment) -> Manifest:
    return named_object(
        "v1",
        "Service",
        name,
        spec={
            # Stable and canary pods alike: Istio's DestinationRule subsets split them.
            "selector": {"app.kubernetes.io/name": name},
            "ports": [
                {
                    "name": "grpc",
                    "port": grpc_port(service_env),
                    "targetPort": "grpc",
                    "appProtocol": "grpc",
                },
                {
                    "name": "http-metrics",
                    "port": metrics_port(service_env),
                    "targetPort": "http-metrics",
                    "appProtocol": "http",
                },
            ],
        },
    )


def disruption_budget(name: str) -> Manifest:
    return named_object(
        "policy/v1",
        "PodDisruptionBudget",
        name,
        spec={
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name, "version": STABLE}},
        },
    )


def cpu_autoscaler(name: str, workload: Workload) -> Manifest:
    return named_object(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        name,
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": workload.replicas,
            "maxReplicas": workload.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    )


def queue_lag_scaler(
    name: str, workload: Workload, *, stream: str, consumer: str, lag_per_replica: int
) -> Manifest:
    """KEDA ScaledObject on the JetStream consumer's lag (every metadata value a string)."""
    return named_object(
        "keda.sh/v1alpha1",
        "ScaledObject",
        name,
        spec={
            "scaleTargetRef": {"name": name},
            "minReplicaCount": workload.replicas,
            "maxReplicaCount": workload.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "nats-jetstream",
                    "metadata": {
                        "natsServerMonitoringEndpoint": NATS_MONITOR.address,
                        "account": "$G",
                        "stream": stream,
                        "consumer": consumer,
                        "lagThreshold": str(lag_per_replica),
                        "useHttps": "false",
                    },
                }
            ],
        },
    )


def migrations_job(
    name: str, *, version: str, image: str, command: list[str], secret_name: str, env: Environment
) -> Manifest:
    """Applies reporting's migrations and exits; the reporting Deployment waits for it.

    Named `<name>-<version>`: a Job's pod template is immutable, so each image version gets
    its own Job (Terraform replaces it) instead of an update the API server refuses. Kept after
    it finishes (no TTL), or Terraform would see it gone and run it again."""
    labels = {"app.kubernetes.io/name": name}
    container = {
        "name": "migrate",
        "image": image,
        "command": command,
        "envFrom": [{"secretRef": {"name": secret_name}}],
        "resources": _resources(env.reporting),
        "securityContext": _container_security(),
        "volumeMounts": [TMP_MOUNT],
    }
    template = _pod_template(
        labels=labels,
        service_account_name=name,
        container=container,
        grace_seconds=TERMINATION_MARGIN_SECONDS,
        restart_policy="Never",
    )
    # A Job's pod must end: Istio's sidecar quits when the app does (native sidecar mode).
    template["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] = "true"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(f"{name}-{version}", labels),
        "spec": {"backoffLimit": 4, "template": template},
    }


def static_site(name: str, *, image: str, port: int, env: Environment) -> list[Manifest]:
    """The UI: static files over HTTP, reached only through the edge."""
    labels = pod_labels(name)
    http_get = {"path": "/", "port": "http"}
    container = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": _resources(env.ui),
        "securityContext": _container_security(),
        "volumeMounts": [TMP_MOUNT],
        "readinessProbe": {"httpGet": http_get, "periodSeconds": PROBE_PERIOD_SECONDS},
        "livenessProbe": {"httpGet": http_get, "periodSeconds": 10},
        "env": telemetry_env(name, env),
    }
    service = named_object(
        "v1",
        "Service",
        name,
        spec={
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "appProtocol": "http"}],
        },
    )
    return [
        service_account(name),
        deployment(
            name,
            labels=labels,
            replicas=env.ui.replicas,
            service_account_name=name,
            container=container,
            grace_seconds=TERMINATION_MARGIN_SECONDS,
        ),
        service,
        disruption_budget(name),
    ]
