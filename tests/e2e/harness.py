"""The whole local mesh for browser tests: `python -m devmesh up` on free ports.

The mesh is started exactly as `make up` starts it, with the gateway's own address as the
only origin on the CORS allow-list. Its merged log is saved beside the screenshots in
`<repo>/test-artifacts/e2e/` (gitignored) so a CI run can keep both.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devmesh.nats import CREDENTIALS_DIR_NAME
from devmesh.nats import STORE_DIR_NAME as NATS_STORE_DIR_NAME
from devmesh.ports import free_port
from devmesh.settings import MeshSettings
from devmesh.tokens import LocalIssuer
from meshkit.broker_permissions import ADMIN_USER

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"
DATASET = Path(
    os.environ.get("WEATHER_DATASET", REPO_ROOT.parent / "shared" / "datasets" / "weather")
)
MESH_START_SECONDS = 240.0
PORT_VARIABLES = (
    "NATS_PORT",
    "NATS_MONITOR_PORT",
    "POSTGRES_PORT",
    "ENVOY_PORT",
    "ENVOY_ADMIN_PORT",
    "UI_PORT",
    "DISPATCHER_GRPC_PORT",
    "CLASSIFIER_GRPC_PORT",
    "REPORTING_GRPC_PORT",
    "DISPATCHER_METRICS_PORT",
    "CLASSIFIER_METRICS_PORT",
    "REPORTING_METRICS_PORT",
)


@dataclass
class RunningMesh:
    """A `devmesh up` child: the gateway's URL, its admin port and the merged log."""

    process: subprocess.Popen[str]
    ports: dict[str, int]
    lines: list[str]
    issuer: LocalIssuer
    """The mesh's own identity provider (its key is in the mesh's data dir)."""
    data_dir: Path

    def nats_connect_options(self) -> dict[str, Any]:
        """`nats.connect` keyword arguments as the mesh's local admin (as the model tools
        connect), for a test that puts events on the broker itself."""
        password_file = self.data_dir / NATS_STORE_DIR_NAME / CREDENTIALS_DIR_NAME / ADMIN_USER
        return {
            "servers": [f"nats://127.0.0.1:{self.ports['NATS_PORT']}"],
            "user": ADMIN_USER,
            "password": password_file.read_text(encoding="utf-8"),
        }

    def token(self, subject: str, role: str = "viewer") -> str:
        return self.issuer.mint(subject, role)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['ENVOY_PORT']}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['ENVOY_PORT']}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def envoy_stat(self, name: str) -> int:
        """One counter or gauge from Envoy's admin /stats (0 when Envoy has not created it)."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.ports["ENVOY_ADMIN_PORT"], timeout=5
        )
        try:
            connection.request(
                "GET", "/stats?format=json&filter=^" + name.replace(".", "\\.") + "$"
            )
            stats = json.loads(connection.getresponse().read())["stats"]
        finally:
            connection.close()
        return sum(int(stat.get("value", 0)) for stat in stats if stat.get("name") == name)


def start_mesh(services: str, log_name: str) -> Iterator[RunningMesh]:
    """Run `python -m devmesh up` with `services` until the generator is closed."""
    if not (REPO_ROOT / "ui" / "dist" / "index.html").is_file():
        pytest.fail("ui/dist is not built: run `make ui` (make test-e2e does it)")
    data_dir = Path(tempfile.mkdtemp(prefix="weather-mesh-e2e-"))
    data_dir.chmod(0o711)  # PostgreSQL runs as an unprivileged user under root
    ports = {name: free_port() for name in PORT_VARIABLES}
    environment = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "UI_ORIGINS": f"http://127.0.0.1:{ports['ENVOY_PORT']}",
        "DEVMESH_SERVICES": services,
        "DEVMESH_DATA_DIR": str(data_dir),
        "DEVMESH_READY_TIMEOUT_SECONDS": str(MESH_START_SECONDS),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devmesh", "up"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    issuer = MeshSettings(devmesh_data_dir=data_dir).local_issuer()
    mesh = RunningMesh(process, ports, [], issuer, data_dir)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            mesh.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + MESH_START_SECONDS + 60
        while "mesh is up" not in mesh.output:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"devmesh up did not come up; output:\n{mesh.output}")
            time.sleep(0.2)
        yield mesh
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{log_name}.log").write_text(mesh.output)
        shutil.rmtree(data_dir, ignore_errors=True)
