"""nats-server with JetStream on a file store that fsyncs every write.

`sync_interval: always` is deliberate: Jepsen's analysis of NATS 2.12.1 showed
acknowledged writes lost on power failure with the default lazy fsync, and the mesh
acknowledges jobs to clients on the strength of a JetStream publish ack.

`max_file_store` is the whole storage budget of the broker: JetStream reserves each stream's
`max_bytes` against it, so the mesh's streams and buckets (`meshkit.broker_layout.
storage_budget`) must fit inside it, or declaring them fails at start.
"""

from __future__ import annotations

import json
from pathlib import Path

from devmesh.binaries import find_tool
from devmesh.launcher import Launcher
from devmesh.ports import LOOPBACK
from devmesh.process import ManagedProcess
from devmesh.readiness import http_status

CONFIG_FILE_NAME = "nats-server.conf"
MAX_FILE_STORE_BYTES = 6 * 1024**3
"""Room for the default storage budget (5.4 GiB) with headroom for JetStream's own files."""


def render_nats_config(
    *,
    host: str,
    port: int,
    monitor_port: int,
    store_dir: Path,
    server_name: str,
    max_file_store_bytes: int = MAX_FILE_STORE_BYTES,
) -> str:
    """The nats-server configuration; strings are JSON-quoted, which the NATS format accepts."""
    return (
        f"server_name: {json.dumps(server_name)}\n"
        f"listen: {json.dumps(f'{host}:{port}')}\n"
        f"http: {json.dumps(f'{host}:{monitor_port}')}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  sync_interval: always\n"
        f"  max_file_store: {max_file_store_bytes}\n"
        "}\n"
    )


class NatsServer(Launcher):
    """A restartable nats-server: `start()`, `stop()`, `start()` again keeps port and store.

    `stop` sends SIGTERM (nats-server flushes and closes the store), SIGKILL after the grace.
    """

    name = "nats-server"
    readiness = "serving JetStream"

    def __init__(
        self,
        *,
        port: int,
        monitor_port: int,
        store_dir: Path,
        log_path: Path | None = None,
        binary: Path | None = None,
        host: str = LOOPBACK,
        server_name: str = "weather-mesh-dev",
    ) -> None:
        self.host = host
        self.port = port
        self.monitor_port = monitor_port
        self.store_dir = store_dir
        self.server_name = server_name
        self.config_path = store_dir / CONFIG_FILE_NAME
        binary = binary or find_tool("nats-server")
        self._process = ManagedProcess(
            "nats", [str(binary), "-c", str(self.config_path)], log_path=log_path
        )

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    def prepare(self) -> None:
        """Create the store dir and (re)write the config; idempotent."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            render_nats_config(
                host=self.host,
                port=self.port,
                monitor_port=self.monitor_port,
                store_dir=self.store_dir,
                server_name=self.server_name,
            )
        )

    def is_ready(self) -> bool:
        """JetStream is up, not merely the listener: /healthz checks the JetStream subsystem."""
        status = http_status(self.host, self.monitor_port, "/healthz?js-enabled-only=true")
        return status == 200
