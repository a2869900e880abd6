"""nats-server with JetStream on a file store that fsyncs every write.

`sync_interval: always` is deliberate: Jepsen's analysis of NATS 2.12.1 showed
acknowledged writes lost on power failure with the default lazy fsync, and the mesh
acknowledges jobs to clients on the strength of a JetStream publish ack.

No anonymous client is accepted: every service connects as its own user, with the rights
of `meshkit.broker_permissions`, and the tools as the admin user. Passwords are generated
on first start into `<store_dir>/credentials/<user>` (mode 0600, kept across restarts) and
handed to services as a file path (`<PREFIX>NATS_PASSWORD_FILE`), never inside a URL.

`max_file_store` is the whole storage budget of the broker: JetStream reserves each stream's
`max_bytes` against it, so the mesh's streams and buckets (`meshkit.broker_layout.
storage_budget`) must fit inside it, or declaring them fails at start.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devmesh.binaries import find_tool
from devmesh.launcher import Launcher
from devmesh.ports import LOOPBACK
from devmesh.process import ManagedProcess
from devmesh.readiness import http_status
from meshkit.broker_permissions import (
    ADMIN_USER,
    BrokerPermissions,
    admin_permissions,
    server_permissions,
    service_permissions,
    tool_permissions,
)

CONFIG_FILE_NAME = "nats-server.conf"
CREDENTIALS_DIR_NAME = "credentials"
STORE_DIR_NAME = "nats"
"""The broker's directory under the mesh's data dir (its JetStream store and passwords)."""
PASSWORD_BYTES = 24


def mesh_users() -> dict[str, BrokerPermissions]:
    """Every user the local nats-server knows: one per service, the tools', and the admin."""
    return {**service_permissions(), **tool_permissions(), ADMIN_USER: admin_permissions()}


def render_authorization(
    users: Mapping[str, tuple[str, BrokerPermissions]],
) -> str:
    """The `authorization` block: user -> (password, permissions)."""
    entries = []
    for name, (password, permissions) in users.items():
        entry = {
            "user": name,
            "password": password,
            "permissions": server_permissions(permissions),
        }
        entries.append("    " + json.dumps(entry))
    return "authorization {\n  users: [\n" + ",\n".join(entries) + "\n  ]\n}\n"


MAX_FILE_STORE_BYTES = 6 * 1024**3
"""Room for the default storage budget (5.4 GiB) with headroom for JetStream's own files."""


def render_nats_config(
    *,
    host: str,
    port: int,
    monitor_port: int,
    store_dir: Path,
    server_name: str,
    users: Mapping[str, tuple[str, BrokerPermissions]] | None = None,
    max_file_store_bytes: int = MAX_FILE_STORE_BYTES,
) -> str:
    """The nats-server configuration; strings are JSON-quoted, which the NATS format accepts.

    `users` None: no authorization (anonymous clients have every right)."""
    return (
        f"server_name: {json.dumps(server_name)}\n"
        f"listen: {json.dumps(f'{host}:{port}')}\n"
        f"http: {json.dumps(f'{host}:{monitor_port}')}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  sync_interval: always\n"
        f"  max_file_store: {max_file_store_bytes}\n"
        "}\n" + (render_authorization(users) if users is not None else "")
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
        authenticated: bool = True,
    ) -> None:
        """`authenticated` False: anonymous clients with every right (for containers that
        cannot read the host's password files)."""
        self.host = host
        self.authenticated = authenticated
        self.credentials_dir = store_dir / CREDENTIALS_DIR_NAME
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

    def password_file(self, user: str) -> Path:
        return self.credentials_dir / user

    def client_environment(self, user: str, prefix: str) -> dict[str, str]:
        """`<prefix>NATS_URL`, `_USER`, `_PASSWORD_FILE`: how a service connects as `user`."""
        environment = {f"{prefix}NATS_URL": self.url}
        if self.authenticated:
            environment[f"{prefix}NATS_USER"] = user
            environment[f"{prefix}NATS_PASSWORD_FILE"] = str(self.password_file(user))
        return environment

    def connect_options(self, user: str = ADMIN_USER) -> dict[str, Any]:
        """Keyword arguments of `nats.connect` for `user` (the admin by default)."""
        if not self.authenticated:
            return {"servers": [self.url]}
        password = self.password_file(user).read_text(encoding="utf-8")
        return {"servers": [self.url], "user": user, "password": password}

    def _passwords(self) -> dict[str, str]:
        """Each user's password, generated on first start and kept in a 0600 file."""
        self.credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        passwords = {}
        for user in mesh_users():
            path = self.password_file(user)
            if not path.is_file():
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    file.write(secrets.token_urlsafe(PASSWORD_BYTES))
            passwords[user] = path.read_text(encoding="utf-8")
        return passwords

    def prepare(self) -> None:
        """Create the store dir, the passwords and (re)write the config; idempotent."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        users = None
        if self.authenticated:
            passwords = self._passwords()
            users = {
                user: (passwords[user], permissions) for user, permissions in mesh_users().items()
            }
        descriptor = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(
                render_nats_config(
                    host=self.host,
                    port=self.port,
                    monitor_port=self.monitor_port,
                    store_dir=self.store_dir,
                    server_name=self.server_name,
                    users=users,
                )
            )

    def is_ready(self) -> bool:
        """JetStream is up, not merely the listener: /healthz checks the JetStream subsystem."""
        status = http_status(self.host, self.monitor_port, "/healthz?js-enabled-only=true")
        return status == 200
