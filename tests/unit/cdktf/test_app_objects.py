"""What the app stack deploys, checked against the services' own settings and the contract."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from weather_deploy.charts import JAEGER_OTLP, NATS_CLIENT, NATS_MONITOR
from weather_deploy.config import ENVIRONMENTS, ServiceName
from weather_deploy.contract import CLASSIFIER_CANARY, MIGRATIONS_JOB
from weather_deploy.istio_objects import ISTIO_DIR, edge_token_rule, load_istio_objects
from weather_deploy.service_config import env_name, service_environment, settings_class
from weather_deploy.stacks import (
    PAGE_TOKEN_SECRET_VARIABLE,
    SERVICES,
    _canary_objects,
    canary_replicas,
    classifier_queue,
)
from weather_deploy.synthesis import Synthesized
from weather_deploy.workloads import ServiceImage, cluster_settings

SCALED_ON_CPU: tuple[ServiceName, ...] = ("dispatcher", "reporting")


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers


@pytest.mark.parametrize("service", SERVICES)
def test_config_map_holds_every_setting_of_the_service_class_by_its_variable(
    prod: Synthesized, service: ServiceName
) -> None:
    cls = settings_class(service)
    data = prod.find("app", "ConfigMap", service)["data"]
    secret_fields = {f for f, info in cls.model_fields.items() if "Secret" in str(info.annotation)}
    for field in cls.model_fields:
        if field in secret_fields:
            assert env_name(cls, field) not in data
    assert data[env_name(cls, "grpc_host")] == "0.0.0.0"
    assert data[env_name(cls, "nats_url")] == f"nats://{NATS_CLIENT.address}"
    # read back as the service reads it, the ConfigMap gives the settings the stack validated
    prefix = cls.model_config["env_prefix"]
    rebuilt = cls(**{key.removeprefix(prefix).lower(): value for key, value in data.items()})
    expected = service_environment(service, cluster_settings(ENVIRONMENTS["prod"], service))
    assert rebuilt.model_dump(exclude=secret_fields) == expected.settings.model_dump(
        exclude=secret_fields
    )


@pytest.mark.parametrize("service", ["dispatcher", "reporting"])
def test_services_verify_tokens_as_the_edge_does_and_never_in_demo_mode(
    prod: Synthesized, service: ServiceName
) -> None:
    cls = settings_class(service)
    data = prod.find("app", "ConfigMap", service)["data"]
    rule = edge_token_rule(load_istio_objects(ISTIO_DIR))
    assert data[env_name(cls, "auth_issuer")] == rule["issuer"]
    assert [data[env_name(cls, "auth_audience")]] == rule["audiences"]
    assert data[env_name(cls, "auth_jwks_uri")] == rule["jwksUri"]
    assert data[env_name(cls, "auth_anonymous_demo")] == "false"


def test_every_secret_setting_comes_from_a_sensitive_variable_never_the_config_map(
    prod: Synthesized,
) -> None:
    # an optional secret (unset for `make up`) is still a secret in the cluster: without it
    # reporting replicas would sign page tokens with the public development key
    cls = settings_class("reporting")
    page_token = env_name(cls, "page_token_secret")
    assert page_token not in prod.find("app", "ConfigMap", "reporting")["data"]
    secret = prod.find("app", "Secret", "reporting")["stringData"]
    assert secret[page_token] == f"${{var.{PAGE_TOKEN_SECRET_VARIABLE}}}"
    assert prod.stacks["app"]["variable"][PAGE_TOKEN_SECRET_VARIABLE]["sensitive"] is True


def test_environment_overrides_reach_the_config_map(prod: Synthesized) -> None:
    cls = settings_class("classifier")
    overrides = ENVIRONMENTS["prod"].service_overrides["classifier"]
    data = prod.find("app", "ConfigMap", "classifier")["data"]
    for field, value in overrides.items():
        assert data[env_name(cls, field)] == str(value)


def test_a_misspelt_or_invalid_override_fails_at_synth_time() -> None:
    with pytest.raises(ValueError, match="no setting"):
        service_environment("dispatcher", {"grpc_prot": 1})
    with pytest.raises(ValidationError):
        service_environment("classifier", {"max_batch": 0})


def test_settings_from_the_synth_machines_environment_do_not_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cls = settings_class("dispatcher")
    monkeypatch.setenv(env_name(cls, "log_level"), "ERROR")
    assert service_environment("dispatcher", {}).config[env_name(cls, "log_level")] == "INFO"


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_runs_hardened_probed_and_spread(prod: Synthesized, service: str) -> None:
    settings = service_environment(service, {}).settings
    deployment = prod.find("app", "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = _containers(deployment)
    assert pod["serviceAccountName"] == service
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_seconds  # type: ignore[attr-defined]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(container["resources"]) == {"requests", "limits"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == settings.grpc_port  # type: ignore[attr-defined]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == settings.grpc_port  # type: ignore[attr-defined]
    assert deployment["spec"]["template"]["metadata"]["labels"] == {
        "app.kubernetes.io/name": service,
        "app": service,
        "version": "stable",
    }


@pytest.mark.parametrize("service", SERVICES)
def test_service_speaks_grpc_on_the_settings_port(prod: Synthesized, service: str) -> None:
    settings = service_environment(service, {}).settings
    ports = {p["name"]: p for p in prod.find("app", "Service", service)["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["grpc"]["port"] == settings.grpc_port  # type: ignore[attr-defined]


def test_every_container_exports_traces_to_jaeger(synthesized: Synthesized) -> None:
    deployments = [m for m in synthesized.manifests("app") if m["kind"] == "Deployment"]
    assert len(deployments) == 5  # three services, the canary, the UI
    for deployment in deployments:
        for container in _containers(deployment):
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{JAEGER_OTLP.address}"
            ratio = ENVIRONMENTS[synthesized.env].trace_sampling_ratio
            assert float(env["OTEL_TRACES_SAMPLER_ARG"]) == ratio


def test_classifier_scales_on_jetstream_lag_read_from_the_headless_monitor(
    synthesized: Synthesized,
) -> None:
    scaler = synthesized.find("app", "ScaledObject", "classifier")
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values())
    assert metadata["natsServerMonitoringEndpoint"] == NATS_MONITOR.address
    assert NATS_MONITOR.address.startswith("nats-headless.")
    assert NATS_MONITOR.port == 8222
    assert (metadata["stream"], metadata["consumer"]) == classifier_queue()
    assert scaler["spec"]["scaleTargetRef"]["name"] == "classifier"


def test_dispatcher_and_reporting_autoscale_and_every_workload_has_a_budget(
    synthesized: Synthesized,
) -> None:
    env = ENVIRONMENTS[synthesized.env]
    for service in SCALED_ON_CPU:
        hpa = synthesized.find("app", "HorizontalPodAutoscaler", service)
        assert hpa["spec"]["maxReplicas"] == env.workload(service).max_replicas
    for name in (*SERVICES, "ui"):
        assert synthesized.find("app", "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1


def test_reporting_rolls_out_only_after_its_migrations_job_completes(prod: Synthesized) -> None:
    resources = prod.stacks["app"]["resource"]["kubernetes_manifest"]
    job_id = f"job-weather-{MIGRATIONS_JOB}"
    assert resources[job_id]["wait"] == {"condition": [{"type": "Complete", "status": "True"}]}
    assert (
        f"kubernetes_manifest.{job_id}" in resources["deployment-weather-reporting"]["depends_on"]
    )
    job = resources[job_id]["manifest"]
    # a new image version is a new Job (a Job's template cannot be updated in place)
    assert job["metadata"]["name"] == f"{MIGRATIONS_JOB}-${{var.image_tag}}"
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == MIGRATIONS_JOB
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == MIGRATIONS_JOB
    assert job["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "reporting"}}
    ]


def test_migrations_job_runs_a_module_the_reporting_image_carries(prod: Synthesized) -> None:
    job = prod.stacks["app"]["resource"]["kubernetes_manifest"][f"job-weather-{MIGRATIONS_JOB}"]
    (container,) = job["manifest"]["spec"]["template"]["spec"]["containers"]
    interpreter, flag, module = container["command"]
    assert (interpreter, flag) == ("python3", "-m")
    # the reporting image holds only services.reporting: the Job's module must live there and
    # be runnable (a package without __main__ or a module of another service would crash-loop)
    assert module.startswith("services.reporting.")
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    assert 'if __name__ == "__main__"' in Path(spec.origin).read_text(encoding="utf-8")


def test_images_follow_the_tag_variable(prod: Synthesized) -> None:
    (container,) = _containers(prod.find("app", "Deployment", "dispatcher"))
    assert container["image"] == "registry.example.com/weather-mesh/dispatcher:${var.image_tag}"
    assert prod.stacks["app"]["variable"]["image_tag"]["default"] == "test-tag"


def test_canary_is_a_second_classifier_deployment_sized_by_the_weight(
    synthesized: Synthesized,
) -> None:
    env = ENVIRONMENTS[synthesized.env]
    canary = synthesized.find("app", "Deployment", CLASSIFIER_CANARY)
    labels = canary["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "classifier",
        "app": "classifier",
        "version": "canary",
    }
    assert canary["spec"]["replicas"] == canary_replicas(env)
    assert (canary["spec"]["replicas"] == 0) == (env.canary_weight == 0)
    (container,) = _containers(canary)
    assert container["image"].endswith(":${var.canary_image_tag}")
    config = synthesized.find("app", "ConfigMap", CLASSIFIER_CANARY)["data"]
    model_variable = env_name(settings_class("classifier"), "model_path")
    assert config.get(model_variable) == env.canary_model_path


def test_a_canary_pinned_to_a_model_version_carries_the_pin_and_stable_does_not(
    prod: Synthesized,
) -> None:
    pinned = ENVIRONMENTS["staging"].model_copy(
        update={"canary_model_version": "sha256:0123456789ab"}
    )
    config_map = _canary_objects(pinned, ServiceImage("registry.example.com", "t"), "t")[0]
    pin_variable = env_name(settings_class("classifier"), "model_version")
    assert config_map["data"][pin_variable] == "sha256:0123456789ab"
    assert pin_variable not in prod.find("app", "ConfigMap", "classifier")["data"]
    misspelt = pinned.model_copy(update={"canary_model_version": "0123456789ab"})
    with pytest.raises(ValidationError, match="model_version"):
        _canary_objects(misspelt, ServiceImage("registry.example.com", "t"), "t")


def test_the_ui_is_served_on_its_contract_port_behind_the_edge(prod: Synthesized) -> None:
    (port,) = prod.find("app", "Service", "ui")["spec"]["ports"]
    assert (port["port"], port["appProtocol"]) == (8080, "http")
    assert "type" not in prod.find("app", "Service", "ui")["spec"]  # ClusterIP: only via the edge


def test_the_database_runs_three_instances_with_backups_where_configured(
    synthesized: Synthesized,
) -> None:
    env = ENVIRONMENTS[synthesized.env]
    database = synthesized.find("platform-crs", "Cluster", "weather-db")
    assert database["spec"]["instances"] == 3
    if env.postgres_backups:
        store = database["spec"]["backup"]["barmanObjectStore"]
        assert store["destinationPath"] == env.postgres_backups.destination_path
        synthesized.find("platform-crs", "ScheduledBackup", "weather-db-daily")
    else:
        assert "backup" not in database["spec"]


def test_terraform_leaves_the_replicas_of_autoscaled_deployments_to_the_autoscaler(
    prod: Synthesized,
) -> None:
    resources = prod.stacks["app"]["resource"]["kubernetes_manifest"]
    for service in SERVICES:
        assert "spec.replicas" in resources[f"deployment-weather-{service}"]["computed_fields"]
    assert "computed_fields" not in resources[f"deployment-weather-{CLASSIFIER_CANARY}"]
