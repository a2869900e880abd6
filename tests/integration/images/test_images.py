"""The built images, run the way the cluster runs them (see containers.py for the pod security).

Proves, from outside the containers: each service reports SERVING over grpc.health.v1; a real
photo submitted to the containerised dispatcher is classified by the containerised classifier
and listed by the containerised reporting; the UI image serves the built page with its
security headers. Inside each image: a non-root user, no pip, TensorFlow only in the
classifier, no training code, no shell.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
import yaml

from devmesh.ports import free_port
from tests.integration.images.containers import (
    SERVING,
    Container,
    ContainerisedMesh,
    Containers,
    health_status,
    run_probe,
)
from tools.images.build import REVISION_LABEL, VERSION_LABEL
from tools.images.names import (
    REPO_ROOT,
    SERVICE_UID,
    SERVICES,
    UI_IMAGE_NAME,
    image_tag,
    vcs_ref,
)
from tools.images.podman import image_label, podman
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


def test_every_service_container_reports_serving_from_outside(mesh: ContainerisedMesh) -> None:
    statuses = {name: health_status(service.address) for name, service in mesh.services.items()}
    for name, status in statuses.items():
        print(f"{name} {mesh.services[name].address}: {'SERVING' if status == SERVING else status}")
    assert statuses == {name: SERVING for name in SERVICES}


def test_photo_is_classified_and_reported_by_the_containers(
    mesh: ContainerisedMesh, weather_dataset: Path, operator: Metadata
) -> None:
    photo = sorted((weather_dataset / "val" / "sunrise").glob("*.jpg"))[0]
    dispatcher = mesh.services["dispatcher"].address
    reporting = mesh.services["reporting"].address
    with grpc.insecure_channel(dispatcher) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        submitted = stub.Submit(
            dispatcher_pb2.SubmitRequest(image=photo.read_bytes(), filename=photo.name),
            timeout=RPC_TIMEOUT_SECONDS,
        ).job
        watch = stub.WatchJob(
            dispatcher_pb2.WatchJobRequest(job_id=submitted.id), timeout=RPC_TIMEOUT_SECONDS
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
                reporting_pb2.ListJobsRequest(page_size=100), metadata=tuple(operator), timeout=10
            )
            listed = [job for job in page.jobs if job.id == final.id]
            if listed and listed[0].state in TERMINAL:
                break
            time.sleep(0.5)
    assert listed, f"job {final.id} never listed by the reporting container"
    assert listed[0].state == job_pb2.JOB_STATE_SUCCEEDED
    assert listed[0].classification.label == label
    print(f"reporting ListJobs: {listed[0].id} {label} {listed[0].filename}")


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of a GET on 127.0.0.1 (errors are answers too)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # nosec B310 - http on loopback
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as refused:
        return refused.code, {k.lower(): v for k, v in refused.headers.items()}, refused.read()


def _answers(port: int) -> bool:
    try:
        _get(port, "/")
    except OSError:
        return False
    return True


def test_ui_container_serves_the_built_page_with_security_headers(
    built_images: dict[str, str], containers: Containers
) -> None:
    port = free_port()
    ui = containers.start(built_images[UI_IMAGE_NAME], {"UI_PORT": str(port)})
    ui.wait_until(lambda: _answers(port), "answering HTTP", timeout=60)

    status, headers, body = _get(port, "/")

    assert status == 200
    assert body == (REPO_ROOT / "ui" / "dist" / "index.html").read_bytes()
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert _get(port, "/assets/")[0] == 404, "no directory listings"
    assert ui.stop() == 0, f"the UI server must leave cleanly on SIGTERM:\n{ui.logs()}"


def _ui_deployment(name: str, image_ref: str, port: int) -> dict[str, object]:
    """A Deployment with the pod security the cluster sets (cdktf renders the real one)."""
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": SERVICE_UID},
                    "containers": [
                        {
                            "name": "ui",
                            "image": image_ref,
                            "env": [{"name": "UI_PORT", "value": str(port)}],
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def test_ui_deployment_runs_under_podman_kube_play(
    built_images: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    name = f"weather-mesh-test-{uuid.uuid4().hex[:12]}"
    manifest = tmp_path / "ui-deployment.yaml"
    manifest.write_text(yaml.safe_dump(_ui_deployment(name, built_images[UI_IMAGE_NAME], port)))
    try:
        podman(["kube", "play", "--network=host", str(manifest)], capture=True)
        ui = Container(f"{name}-pod-0-ui", built_images[UI_IMAGE_NAME])
        ui.wait_until(lambda: _answers(port), "answering HTTP", timeout=60)
        status, headers, _ = _get(port, "/")
        assert status == 200
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert ui.state("{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}") == f"{SERVICE_UID} true"
    finally:
        podman(["kube", "down", str(manifest)], capture=True, check=False)


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


def test_service_containers_stop_cleanly_on_sigterm(mesh: ContainerisedMesh) -> None:
    """Runs last in this module: it stops the mesh the tests above used."""
    exit_codes = {name: service.container.stop() for name, service in mesh.services.items()}
    assert exit_codes == {name: 0 for name in SERVICES}
