"""The containers of the kube-played Deployments, seen from outside, and image probes.

The pods share the host's network, so the services reach the test's nats-server and
PostgreSQL on 127.0.0.1 and the tests reach the services from outside the containers.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.images.kube_play import KubePlay
from tools.images.podman import podman

# A throw-away probe container runs with the pods' security (cdktf's Deployments).
PROBE_SECURITY = (
    "--network=host",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--tmpfs=/tmp",
)
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class Container:
    name: str
    image_ref: str

    def state(self, template: str) -> str:
        return podman(
            ["container", "inspect", "--format", template, self.name], capture=True
        ).stdout.strip()

    @property
    def running(self) -> bool:
        return self.state("{{.State.Running}}") == "true"

    def logs(self) -> str:
        result = podman(["logs", self.name], capture=True, check=False)
        return result.stdout + result.stderr

    def stop(self, grace_seconds: int) -> int:
        """SIGTERM, SIGKILL after `grace_seconds`; the exit code."""
        podman(["stop", f"--time={grace_seconds}", self.name], capture=True)
        return int(self.state("{{.State.ExitCode}}"))

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll `check` until true; fail with the logs if the container exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if not self.running:
                raise AssertionError(f"{self.name} exited before {what}:\n{self.logs()}")
            time.sleep(0.5)
        raise AssertionError(f"{self.name}: not {what} after {timeout:.0f} s:\n{self.logs()}")


def health_status(address: str) -> int | None:
    """grpc.health.v1 Check of the whole server; None while nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return None
        return int(response.status)


@dataclass
class RunningService:
    """A kube-played service: its container and the ports it listens on here."""

    name: str
    container: Container
    grpc_port: int
    metrics_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@dataclass
class KubePlayedMesh:
    """The app stack's dispatcher, classifier, reporting and UI Deployments, played here."""

    synthesized: list[dict[str, Any]]
    play: KubePlay
    services: dict[str, RunningService]
    ui: Container
    ui_port: int
    nats_url: str
    nats_monitor_url: str
    """The nats-server's monitoring endpoint: who is connected, as which user."""
    database_superuser_dsn: str
    """The played database as the superuser: who is connected, as which role."""

    def synthesized_deployment(self, name: str) -> dict[str, Any]:
        (found,) = (
            m
            for m in self.synthesized
            if m["kind"] == "Deployment" and m["metadata"]["name"] == name
        )
        return found


def run_probe(image_ref: str, script: str) -> subprocess.CompletedProcess[str]:
    """`python3 -c script` in a throw-away container of the image, as the image's own user."""
    return podman(
        ["run", "--rm", *PROBE_SECURITY, "--entrypoint=python3", image_ref, "-c", script],
        capture=True,
        check=False,
    )
