"""The platform's charts, at the pinned versions, rendered with the values the platform stack
passes (read back from its synthesized helm_release), validated like our own objects."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.unit.cdktf.chart_rendering import SKIPPED_KINDS, RenderCharts, Rendered
from weather_deploy import charts
from weather_deploy.config import ENVIRONMENTS
from weather_deploy.contract import CNPG_RELEASE, KEDA_RELEASE
from weather_deploy.k8s_schemas import validate_all
from weather_deploy.synthesis import Synthesized


@pytest.fixture(scope="module", params=sorted(ENVIRONMENTS))
def rendered(request: pytest.FixtureRequest, rendered_charts: RenderCharts) -> Rendered:
    """release name -> rendered objects, for every environment in turn."""
    return rendered_charts(request.param)


def _of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_the_stack_passes_the_values_the_charts_module_defines(synthesized: Synthesized) -> None:
    passed = synthesized.stacks["platform"]["resource"]["helm_release"]
    for release in charts.releases(ENVIRONMENTS[synthesized.env]):
        assert json.loads(passed[release.name]["values"][0]) == release.values


def test_every_rendered_object_is_valid(rendered: Rendered) -> None:
    objects = [o for objs in rendered.values() for o in objs if o["kind"] not in SKIPPED_KINDS]
    assert len(objects) > 50
    assert validate_all(objects) == []


def test_nats_runs_three_jetstream_replicas_on_file_storage_with_monitoring(
    rendered: Rendered,
) -> None:
    nats = rendered[charts.NATS.chart]
    (statefulset,) = _of(nats, "StatefulSet")
    assert statefulset["spec"]["replicas"] == charts.NATS_REPLICAS == 3
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert claim["metadata"]["name"] in {m["name"] for m in mounts}
    (config,) = _of(nats, "ConfigMap")
    server_config = config["data"]["nats.conf"]
    jetstream = re.search(r'"jetstream": \{[^}]*\}', server_config)
    assert jetstream, server_config
    assert re.search(r'"sync_interval": "always"', jetstream.group(0))
    assert re.search(r'"store_dir": "[^"]+"', jetstream.group(0))
    assert f'"http_port": {charts.NATS_MONITOR_PORT}' in server_config
    headless = [
        s for s in _of(nats, "Service") if s["metadata"]["name"] == charts.NATS_MONITOR.name
    ]
    assert len(headless) == 1
    assert headless[0]["spec"]["clusterIP"] == "None"
    assert charts.NATS_MONITOR_PORT in {p["port"] for p in headless[0]["spec"]["ports"]}
    client = [s for s in _of(nats, "Service") if s["metadata"]["name"] == charts.NATS_CLIENT.name]
    assert charts.NATS_CLIENT_PORT in {p["port"] for p in client[0]["spec"]["ports"]}


def test_jaeger_receives_otlp_grpc_on_the_port_the_services_export_to(rendered: Rendered) -> None:
    services = _of(rendered[charts.JAEGER.chart], "Service")
    target = [s for s in services if s["metadata"]["name"] == charts.JAEGER_OTLP.name]
    assert len(target) == 1
    ports = {p["port"]: p.get("name") for p in target[0]["spec"]["ports"]}
    assert ports[charts.JAEGER_OTLP_GRPC_PORT] == "otlp-grpc"


def test_the_ingress_gateway_serves_http_and_https_with_the_contract_labels(
    rendered: Rendered,
) -> None:
    gateway = rendered["istio-ingress"]
    (service,) = _of(gateway, "Service")
    assert set(charts.GATEWAY_PORTS) <= {p["port"] for p in service["spec"]["ports"]}
    assert service["spec"]["type"] == "LoadBalancer"
    (deployment,) = _of(gateway, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "istio-ingress"
    assert labels["istio"] == "ingress"


def test_istiod_sends_traces_to_jaeger_and_logs_json(rendered: Rendered) -> None:
    mesh_configs = [c for c in _of(rendered["istiod"], "ConfigMap") if "mesh" in c.get("data", {})]
    assert mesh_configs
    mesh = yaml.safe_load(mesh_configs[0]["data"]["mesh"])
    assert mesh["accessLogEncoding"] == "JSON"
    (provider,) = mesh["extensionProviders"]
    assert provider["opentelemetry"] == {
        "service": charts.JAEGER_OTLP.host,
        "port": charts.JAEGER_OTLP_GRPC_PORT,
    }


def test_the_operators_charts_bring_the_crds_our_custom_resources_need(
    rendered: Rendered,
) -> None:
    def kinds(release: str) -> set[str]:
        return {
            crd["spec"]["names"]["kind"]
            for crd in _of(rendered[release], "CustomResourceDefinition")
        }

    assert {"ScaledObject"} <= kinds(KEDA_RELEASE)
    assert {"Cluster", "ScheduledBackup"} <= kinds(CNPG_RELEASE)
    assert {"VirtualService", "DestinationRule", "AuthorizationPolicy"} <= kinds("istio-base")
