"""The built images, run from the Deployments cdktf synthesizes (`podman kube play`).

Proves, from outside the pods: each service reports SERVING over grpc.health.v1; a real photo
submitted to the kube-played dispatcher is classified by the kube-played classifier, listed
by the kube-played reporting, and every service's spans reach the OTLP endpoint its
Deployment names; the UI serves the built page with its security headers; podman applied the
synthesized security context and limits, and only `kube_play.ADAPTED` fields were changed.
Inside each image: a non-root user, no pip, TensorFlow only in the classifier, no training
code, no shell.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import psycopg
import pytest

from services.reporting.migrations import RUNTIME_ROLE
from tests.integration.images.containers import (
    SERVING,
    Container,
    KubePlayedMesh,
    health_status,
    run_probe,
)
from tests.integration.images.kube_pods import PLAYED
from tests.integration.images.otlp_sink import SpanSink
from tools.images.build import REVISION_LABEL, VERSION_LABEL
from tools.images.kube_play import unexplained_changes
from tools.images.names import (
    REPO_ROOT,
    SERVICE_UID,
    SERVICES,
    UI_IMAGE_NAME,
    image_tag,
    vcs_ref,
)
from tools.images.podman import image_label
from tools.proof.gateway import Metadata
from weather.v1 import (
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    job_pb2,
    reporting_pb2,
    reporting_pb2_grpc,
)

TERMINAL = {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED}
RPC_TIMEOUT_SECONDS = 120.0
REPORTED_TIMEOUT_SECONDS = 60.0
# The SDK exports in batches every 5 s (OTEL_BSP_SCHEDULE_DELAY, not set by the cluster).
SPANS_TIMEOUT_SECONDS = 60.0

# What each image must (True) or must not (False) be able to import. TensorFlow in the
# classifier is the positive control: it proves the probe sees installed packages at all.
PROBED_MODULES = ("pip", "tensorflow", "training", "services.classifier.training")
PROBE = f"""
import importlib.util, json, os
def importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
print(json.dumps({{
    "uid": os.getuid(),
    "gid": os.getgid(),
    "shell": any(os.path.exists(path) for path in ("/bin/sh", "/usr/bin/sh", "/bin/bash")),
    "modules": {{name: importable(name) for name in {PROBED_MODULES!r}}},
}}))
"""


def test_every_kube_played_service_reports_serving_from_outside(mesh: KubePlayedMesh) -> None:
    statuses = {name: health_status(service.address) for name, service in mesh.services.items()}
    for name, status in statuses.items():
        print(f"{name} {mesh.services[name].address}: {'SERVING' if status == SERVING else status}")
    assert statuses == {name: SERVING for name in SERVICES}


def test_each_kube_played_service_is_its_own_nats_user_and_reporting_the_runtime_role(
    mesh: KubePlayedMesh,
) -> None:
    """The Deployments' mounted password files, read by the services: each connects to a
    NATS that admits no anonymous client, as the user of its own name; reporting serves as
    the runtime role, not as the owner that ran the migrations."""
    with urllib.request.urlopen(f"{mesh.nats_monitor_url}/connz?auth=true", timeout=5) as reply:
        connections = json.load(reply)["connections"] or []
    users = {connection.get("authorized_user") for connection in connections}
    assert set(SERVICES) <= users, connections
    with psycopg.connect(mesh.database_superuser_dsn, autocommit=True) as connection:
        roles = {
            row[0]
            for row in connection.execute(
                "SELECT usename FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        }
    assert roles == {RUNTIME_ROLE}


def test_photo_is_classified_and_reported_by_the_kube_played_services(
    mesh: KubePlayedMesh,
    weather_dataset: Path,
    span_sink: tuple[SpanSink, int],
    cluster_operator: Metadata,
) -> None:
    photo = sorted((weather_dataset / "val" / "sunrise").glob("*.jpg"))[0]
    dispatcher = mesh.services["dispatcher"].address
    reporting = mesh.services["reporting"].address
    with grpc.insecure_channel(dispatcher) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        submitted = stub.Submit(
            dispatcher_pb2.SubmitRequest(image=photo.read_bytes(), filename=photo.name),
            timeout=RPC_TIMEOUT_SECONDS,
            metadata=tuple(cluster_operator),
        ).job
        watch = stub.WatchJob(
            dispatcher_pb2.WatchJobRequest(job_id=submitted.id),
            timeout=RPC_TIMEOUT_SECONDS,
            metadata=tuple(cluster_operator),
        )
        final = [response.job for response in watch][-1]
    assert final.state == job_pb2.JOB_STATE_SUCCEEDED, final
    label = final.classification.label
    print(f"{photo.name}: job {final.id} {job_pb2.JobState.Name(final.state)} label={label}")
    assert label in {score.label for score in final.classification.scores}

    with grpc.insecure_channel(reporting) as channel:
        reports = reporting_pb2_grpc.ReportingServiceStub(channel)
        deadline = time.monotonic() + REPORTED_TIMEOUT_SECONDS
        listed: list[job_pb2.Job] = []
        while time.monotonic() < deadline:
            page = reports.ListJobs(
                reporting_pb2.ListJobsRequest(page_size=100),
                timeout=10,
                metadata=tuple(cluster_operator),
            )
            listed = [job for job in page.jobs if job.id == final.id]
            if listed and listed[0].state in TERMINAL:
                break
            time.sleep(0.5)
    assert listed, f"job {final.id} never listed by the reporting container"
    assert listed[0].state == job_pb2.JOB_STATE_SUCCEEDED
    assert listed[0].classification.label == label
    print(f"reporting ListJobs: {listed[0].id} {label} {listed[0].filename}")

    sink, _ = span_sink
    deadline = time.monotonic() + SPANS_TIMEOUT_SECONDS
    while not set(SERVICES) <= sink.senders and time.monotonic() < deadline:
        time.sleep(0.5)
    assert set(SERVICES) <= sink.senders, f"spans only from {sorted(sink.senders)}"


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of a GET on 127.0.0.1 (errors are answers too)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # nosec B310 - http on loopback
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as refused:
        return refused.code, {k.lower(): v for k, v in refused.headers.items()}, refused.read()


def test_kube_played_ui_serves_the_built_page_with_security_headers(
    mesh: KubePlayedMesh,
) -> None:
    status, headers, body = _get(mesh.ui_port, "/")

    assert status == 200
    assert body == (REPO_ROOT / "ui" / "dist" / "index.html").read_bytes()
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert _get(mesh.ui_port, "/assets/")[0] == 404, "no directory listings"


@pytest.mark.parametrize("name", PLAYED)
def test_only_what_cannot_hold_here_was_adapted(mesh: KubePlayedMesh, name: str) -> None:
    """A change in cdktf reaches these containers unless kube_play.ADAPTED names the field."""
    synthesized = mesh.synthesized_deployment(name)
    adapted = mesh.play.deployment(name)
    assert unexplained_changes(synthesized, adapted) == set()
    (before,) = synthesized["spec"]["template"]["spec"]["containers"]
    (after,) = adapted["spec"]["template"]["spec"]["containers"]
    for kept in ("command", "args", "resources", "securityContext"):
        assert after.get(kept) == before.get(kept), kept
    assert {v["name"] for v in before.get("env", [])} <= {v["name"] for v in after["env"]}
    assert [s.get("configMapRef") for s in before.get("envFrom", [])] == [
        s.get("configMapRef") for s in after.get("envFrom", [])
    ]


def _quantity(value: str) -> float:
    """A Kubernetes CPU or memory quantity as a number (cores, bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


@pytest.mark.parametrize("name", PLAYED)
def test_podman_applied_the_synthesized_security_context_and_limits(
    mesh: KubePlayedMesh, name: str
) -> None:
    (container,) = mesh.synthesized_deployment(name)["spec"]["template"]["spec"]["containers"]
    security, limits = container["securityContext"], container["resources"]["limits"]
    played = Container(mesh.play.container_name(name, container["name"]), "")
    found = json.loads(
        played.state(
            '{"user": "{{.Config.User}}", "read_only": {{.HostConfig.ReadonlyRootfs}}, '
            '"cap_add": "{{.HostConfig.CapAdd}}", "options": "{{.HostConfig.SecurityOpt}}", '
            '"memory": {{.HostConfig.Memory}}, "cpu_quota": {{.HostConfig.CpuQuota}}, '
            '"cpu_period": {{.HostConfig.CpuPeriod}}}'
        )
    )

    assert found["user"] == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert security["runAsNonRoot"]
    assert security["runAsUser"] != 0
    assert found["read_only"] is security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert found["cap_add"] == "[]"
    assert "no-new-privileges" in found["options"]
    assert security["allowPrivilegeEscalation"] is False
    assert found["memory"] == _quantity(limits["memory"])
    assert found["cpu_quota"] / found["cpu_period"] == _quantity(limits["cpu"])


@pytest.mark.parametrize("image", [*SERVICES, UI_IMAGE_NAME])
def test_image_runs_as_non_root_with_only_what_it_needs(
    built_images: dict[str, str], image: str
) -> None:
    probe = run_probe(built_images[image], PROBE)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)

    assert (found["uid"], found["gid"]) == (SERVICE_UID, SERVICE_UID)
    assert not found["shell"], "the runtime image must carry no shell"
    assert found["modules"] == {
        "pip": False,
        "tensorflow": image == "classifier",
        "training": False,
        "services.classifier.training": False,
    }


@pytest.mark.parametrize("image", [*SERVICES, UI_IMAGE_NAME])
def test_image_is_labelled_with_the_commit_it_was_built_from(
    built_images: dict[str, str], image: str
) -> None:
    assert image_label(built_images[image], VERSION_LABEL) == image_tag()
    assert image_label(built_images[image], REVISION_LABEL) == vcs_ref()


def test_kube_played_containers_stop_cleanly_within_their_grace_period(
    mesh: KubePlayedMesh,
) -> None:
    """Runs last in this module: it stops the pods the tests above used. podman 4.3 does not
    apply terminationGracePeriodSeconds, so the synthesized one is passed to `podman stop`."""
    containers = {name: service.container for name, service in mesh.services.items()}
    containers[UI_IMAGE_NAME] = mesh.ui
    grace = {
        name: mesh.synthesized_deployment(name)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        for name in containers
    }
    exit_codes = {name: container.stop(grace[name]) for name, container in containers.items()}
    assert exit_codes == {name: 0 for name in PLAYED}
