"""The cluster -> this machine adaptation of the synthesized Deployments, on the real synth.

`make test-images` plays what `adapt` returns; these tests pin what it changes (only
`ADAPTED` fields) and that nothing cluster-only can slip through to podman.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tools.images.kube_play import (
    AdaptationError,
    KubePlay,
    LocalMachine,
    adapt,
    changed_fields,
    podman_secret_payload,
    secret_payload,
    unexplained_changes,
)
from weather_deploy.charts import JAEGER_OTLP, NATS_CLIENT
from weather_deploy.stacks import Target
from weather_deploy.synthesis import synthesize

PLAYED = ("dispatcher", "classifier", "reporting", "ui")
ON_NATS = ("dispatcher", "classifier", "reporting")
LOCAL_NATS = "127.0.0.1:14222"
LOCAL_OTLP = "127.0.0.1:14317"
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:15432/images"
PAGE_KEY = "k" * 40
SUFFIX = "run1"
Manifests = list[dict[str, Any]]


@pytest.fixture(scope="module")
def app_objects() -> Manifests:
    return synthesize("dev", Target(), "unit-tag").manifests("app")


def machine(**changes: Any) -> LocalMachine:
    values: dict[str, Any] = {
        "image_refs": {name: f"localhost/weather-mesh/{name}:local" for name in PLAYED},
        "addresses": {NATS_CLIENT.address: LOCAL_NATS, JAEGER_OTLP.address: LOCAL_OTLP},
        "secret_values": {
            "REPORTING_DATABASE_URL": LOCAL_DATABASE,
            "REPORTING_MIGRATION_DATABASE_URL": LOCAL_DATABASE,
            "REPORTING_PAGE_TOKEN_SECRET": PAGE_KEY,
            **{f"{name}-nats/password": f"{name}-password" for name in ON_NATS},
        },
        "suffix": SUFFIX,
        **changes,
    }
    return LocalMachine(**values)


def ports_from(first: int) -> Callable[[], int]:
    return itertools.count(first).__next__


@pytest.fixture(scope="module")
def play(app_objects: Manifests) -> KubePlay:
    return adapt(app_objects, PLAYED, machine(), ports_from(20000))


def synthesized(objects: Manifests, kind: str, name: str) -> dict[str, Any]:
    (found,) = (o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def config_map(play: KubePlay, name: str) -> dict[str, str]:
    (found,) = (
        d for d in play.documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name
    )
    data: dict[str, str] = found["data"]
    return data


@pytest.mark.parametrize("name", PLAYED)
def test_only_adapted_fields_change(app_objects: Manifests, play: KubePlay, name: str) -> None:
    before = synthesized(app_objects, "Deployment", name)
    after = play.deployment(name)
    assert unexplained_changes(before, after) == set()
    for kept in ("command", "args", "resources", "securityContext"):
        assert container(after).get(kept) == container(before).get(kept)
    pod_before, pod_after = before["spec"]["template"], after["spec"]["template"]
    assert pod_after["spec"]["securityContext"] == pod_before["spec"]["securityContext"]
    assert pod_after["metadata"]["labels"] == pod_before["metadata"]["labels"]
    assert [m["mountPath"] for m in container(after)["volumeMounts"]] == [
        m["mountPath"] for m in container(before)["volumeMounts"]
    ]
    assert [_unnamed(v) for v in pod_after["spec"]["volumes"]] == [
        _unnamed(v) for v in pod_before["spec"]["volumes"]
    ]


def _unnamed(volume: dict[str, Any]) -> dict[str, Any]:
    """A volume without the names the run suffix changes (its own, its Secret's)."""
    unnamed = {**volume, "name": ""}
    if "secret" in volume:
        unnamed["secret"] = {**volume["secret"], "secretName": ""}
    return unnamed


@pytest.mark.parametrize("name", ["dispatcher", "classifier", "reporting"])
def test_grpc_probes_are_kept_but_for_the_port(
    app_objects: Manifests, play: KubePlay, name: str
) -> None:
    before = container(synthesized(app_objects, "Deployment", name))
    after = container(play.deployment(name))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert {**after[probe], "grpc": {}} == {**before[probe], "grpc": {}}
        assert after[probe]["grpc"]["port"] == play.ports[name]["grpc"]


def test_a_changed_field_outside_the_adapted_ones_is_reported(play: KubePlay) -> None:
    deployment = play.deployment("dispatcher")
    widened = json.loads(json.dumps(deployment))
    container(widened)["securityContext"]["readOnlyRootFilesystem"] = False
    assert unexplained_changes(deployment, widened) == {
        "spec.template.spec.containers[].securityContext.readOnlyRootFilesystem"
    }
    assert changed_fields({"a": [1]}, {"a": [2], "b": 0}) == {"a", "b"}


@pytest.mark.parametrize("name", PLAYED)
def test_each_image_is_the_local_build(play: KubePlay, name: str) -> None:
    assert container(play.deployment(name))["image"] == f"localhost/weather-mesh/{name}:local"


def test_in_cluster_addresses_become_the_local_ones(play: KubePlay) -> None:
    assert config_map(play, "classifier")["CLASSIFIER_NATS_URL"] == f"nats://{LOCAL_NATS}"
    env = {v["name"]: v["value"] for v in container(play.deployment("reporting"))["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{LOCAL_OTLP}"
    assert env["OTEL_SERVICE_NAME"] == "reporting"


def test_ports_move_to_free_ones_in_config_maps_probes_and_the_ui_variable(
    play: KubePlay,
) -> None:
    ports = play.ports["dispatcher"]
    assert set(ports) == {"grpc", "http-metrics"}
    data = config_map(play, "dispatcher")
    assert (data["DISPATCHER_GRPC_PORT"], data["DISPATCHER_METRICS_PORT"]) == (
        str(ports["grpc"]),
        str(ports["http-metrics"]),
    )
    dispatcher = container(play.deployment("dispatcher"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert dispatcher[probe]["grpc"]["port"] == ports["grpc"]
    assert "ports" not in dispatcher
    ui = container(play.deployment("ui"))
    assert {"name": "UI_PORT", "value": str(play.ports["ui"]["http"])} in ui["env"]
    assert "livenessProbe" not in ui
    every_port = [port for mapping in play.ports.values() for port in mapping.values()]
    assert len(every_port) == len(set(every_port)) == 7


def test_secrets_get_local_values_and_a_machine_wide_unique_name(play: KubePlay) -> None:
    assert play.secrets == {
        f"reporting-{SUFFIX}": {
            "REPORTING_DATABASE_URL": LOCAL_DATABASE,
            "REPORTING_MIGRATION_DATABASE_URL": LOCAL_DATABASE,
            "REPORTING_PAGE_TOKEN_SECRET": PAGE_KEY,
        },
        **{f"{name}-nats-{SUFFIX}": {"password": f"{name}-password"} for name in ON_NATS},
    }
    sources = container(play.deployment("reporting"))["envFrom"]
    assert sources == [
        {"configMapRef": {"name": "reporting"}},
        {"secretRef": {"name": f"reporting-{SUFFIX}"}},
    ]
    assert not any(d["kind"] == "Secret" for d in play.documents)


def test_pods_and_volumes_carry_the_run_suffix(play: KubePlay) -> None:
    assert play.pod_names() == [f"{name}-{SUFFIX}-pod-0" for name in PLAYED]
    assert set(play.volumes) == {
        *(f"{name}-tmp-{SUFFIX}" for name in PLAYED),
        # each service's password volume, and the volume podman fills from its secret
        *(f"{name}-nats-password-{SUFFIX}" for name in ON_NATS),
        *(f"{name}-nats-{SUFFIX}" for name in ON_NATS),
    }
    assert play.container_name("ui", "ui") == f"ui-{SUFFIX}-pod-0-ui"


def test_istio_and_scheduling_fields_are_dropped(play: KubePlay) -> None:
    pod = play.deployment("classifier")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {}
    assert "topologySpreadConstraints" not in pod["spec"]
    assert "serviceAccountName" not in pod["spec"]


def test_a_secret_without_a_local_value_is_refused(app_objects: Manifests) -> None:
    with pytest.raises(AdaptationError, match="REPORTING_PAGE_TOKEN_SECRET"):
        adapt(
            app_objects,
            ["reporting"],
            machine(
                secret_values={
                    "REPORTING_DATABASE_URL": LOCAL_DATABASE,
                    "REPORTING_MIGRATION_DATABASE_URL": LOCAL_DATABASE,
                    "reporting-nats/password": "reporting-password",
                }
            ),
            ports_from(1),
        )


def test_an_address_only_the_cluster_resolves_is_refused(app_objects: Manifests) -> None:
    with pytest.raises(AdaptationError, match="in-cluster address"):
        adapt(
            app_objects,
            ["dispatcher"],
            machine(addresses={NATS_CLIENT.address: LOCAL_NATS}),
            ports_from(1),
        )


def test_an_unknown_deployment_is_refused(app_objects: Manifests) -> None:
    with pytest.raises(AdaptationError, match="no Deployment"):
        adapt(app_objects, ["gateway"], machine(), ports_from(1))


def test_each_service_mounts_its_own_password_as_a_secret_podman_can_mount(
    play: KubePlay,
) -> None:
    for name in ON_NATS:
        spec = play.deployment(name)["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if "secret" in v]
        local_name = f"{name}-nats-{SUFFIX}"
        assert volume["secret"]["secretName"] == local_name
        assert volume["secret"]["optional"] is False  # podman 4.3 crashes when it is unset
        assert local_name in play.mounted_secrets
        payload = json.loads(secret_payload(play, local_name))
        assert payload["kind"] == "Secret"
        assert payload["data"] == {"password": f"{name}-password"}  # podman 4.3: not base64
    env_secret = json.loads(secret_payload(play, f"reporting-{SUFFIX}"))
    assert base64.b64decode(env_secret["REPORTING_PAGE_TOKEN_SECRET"]).decode() == PAGE_KEY


def test_a_password_without_a_local_value_is_refused(app_objects: Manifests) -> None:
    with pytest.raises(AdaptationError, match="dispatcher-nats: no local value for password"):
        adapt(app_objects, ["dispatcher"], machine(secret_values={}), ports_from(1))


def test_podman_secret_payload_is_a_json_object_of_base64_values() -> None:
    payload = json.loads(podman_secret_payload({"KEY": "välue"}))
    assert base64.b64decode(payload["KEY"]).decode() == "välue"


def test_the_play_file_holds_config_maps_before_deployments(play: KubePlay) -> None:
    kinds = [json.loads(doc)["kind"] for doc in play.yaml_documents().split("\n---\n")]
    assert kinds == ["ConfigMap"] * 3 + ["Deployment"] * 4
