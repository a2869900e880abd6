"""The built images started with podman the way the cluster starts them.

Every container runs with the pod security the cdktf Deployments set (non-root uid, read-only
root filesystem, no capabilities, no privilege escalation, a writable /tmp only) and shares
the host's network, so the services reach the test's nats-server and PostgreSQL on 127.0.0.1
and the tests reach the services from outside the container.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.images.names import SERVICE_UID
from tools.images.podman import podman

POD_SECURITY = (
    "--network=host",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--tmpfs=/tmp",
)
SERVING = health_pb2.HealthCheckResponse.SERVING
STOP_GRACE_SECONDS = 30


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

    def stop(self) -> int:
        """SIGTERM, SIGKILL after the grace period; the exit code."""
        podman(["stop", f"--time={STOP_GRACE_SECONDS}", self.name], capture=True)
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
class Containers:
    """Starts containers and removes every one of them at `remove_all`, whatever happened."""

    started: list[Container] = field(default_factory=list)

    def start(
        self,
        image_ref: str,
        environment: Mapping[str, str],
        *,
        user: int | None = SERVICE_UID,
    ) -> Container:
        name = f"weather-mesh-test-{uuid.uuid4().hex[:12]}"
        arguments = ["run", "--detach", f"--name={name}", *POD_SECURITY]
        if user is not None:
            arguments.append(f"--user={user}")
        for variable, value in environment.items():
            arguments.append(f"--env={variable}={value}")
        container = Container(name, image_ref)
        self.started.append(container)
        podman([*arguments, image_ref], capture=True)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            podman(["rm", "--force", "--time=5", container.name], capture=True, check=False)
        self.started.clear()


@dataclass
class RunningService:
    name: str
    container: Container
    grpc_port: int
    metrics_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@dataclass
class ContainerisedMesh:
    services: dict[str, RunningService]
    nats_url: str


def run_probe(image_ref: str, script: str) -> subprocess.CompletedProcess[str]:
    """`python3 -c script` in a throw-away container of the image, as the image's own user."""
    return podman(
        ["run", "--rm", *POD_SECURITY, "--entrypoint=python3", image_ref, "-c", script],
        capture=True,
        check=False,
    )
