"""The Envoy gateway: render the one template with ports and origins, validate, run.

Rendering is pure (`render_config`), so the same function can serve the local mesh, the
tests and whatever later renders the template for a cluster.
"""

from __future__ import annotations

import json
import string
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devmesh.binaries import find_tool
from devmesh.launcher import Launcher
from devmesh.ports import LOOPBACK
from devmesh.process import ManagedProcess
from devmesh.readiness import http_status
from meshkit.identity import DEFAULT_AUDIENCE, LOCAL_ISSUER
from weather.v1 import defaults_pb2

UPLOAD_CAP_BYTES: int = defaults_pb2.LIMIT_MAX_UPLOAD_BYTES
# gRPC framing, the other request fields and grpc-web trailers ride on top of the image.
REQUEST_OVERHEAD_BYTES = 64 * 1024
SUBJECT_HEADER = "x-weather-subject"
"""Request header with the verified token's `sub`, set by the gateway only (rate limits key
on it); a client-sent copy is removed first."""
JWT_PROVIDER = "weather"
JWT_REQUIRED = f"{{provider_name: {JWT_PROVIDER}}}"
JWT_REQUIRED_WHEN_SENT = (
    f"{{requires_any: {{requirements: [{JWT_REQUIRED}, {{allow_missing: {{}}}}]}}}}"
)
"""Anonymous demo mode: no token passes (the services decide what anonymous callers may do),
a token that is sent must verify."""


class EnvoyConfigError(RuntimeError):
    """The rendered configuration is rejected by `envoy --mode validate`."""


def default_template_path() -> Path:
    """`envoy/envoy.yaml.tmpl` at the repository root (the package is installed editable)."""
    return Path(__file__).resolve().parents[1] / "envoy" / "envoy.yaml.tmpl"


def validate_origin(origin: str) -> str:
    """Accept only an exact `scheme://host[:port]`; a wildcard would let any site call us."""
    parts = urlsplit(origin)
    if (
        "*" in origin
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{origin!r} is not an allowed CORS origin (want scheme://host[:port])")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the template varies on."""

    listener_port: int
    admin_port: int
    dispatcher_port: int
    reporting_port: int
    allowed_origins: Sequence[str]
    ui_port: int
    listen_address: str = LOOPBACK
    dispatcher_host: str = LOOPBACK
    reporting_host: str = LOOPBACK
    ui_host: str = LOOPBACK
    max_request_bytes: int = UPLOAD_CAP_BYTES + REQUEST_OVERHEAD_BYTES
    rate_limit_burst: int = 200
    rate_limit_per_second: int = 100
    jwks_file: Path | None = None
    """Public keys tokens are checked against (required to render)."""
    jwt_issuer: str = LOCAL_ISSUER
    jwt_audience: str = DEFAULT_AUDIENCE
    jwt_clock_skew_seconds: int = 30
    anonymous_demo: bool = False
    """Let API calls without a token through (never one with a bad token)."""


def render_config(config: GatewayConfig, template: str) -> str:
    """Substitute `config` into `template`; every placeholder must be filled (no silent gaps)."""
    origins = [validate_origin(origin) for origin in config.allowed_origins]
    if not origins:
        raise ValueError("at least one allowed CORS origin is required")
    origin_matchers = "[" + ", ".join(f"{{exact: {json.dumps(o)}}}" for o in origins) + "]"
    if config.jwks_file is None:
        raise ValueError("the gateway needs a JWKS file to verify tokens (jwks_file)")
    return string.Template(template).substitute(
        LISTEN_ADDRESS=config.listen_address,
        LISTENER_PORT=config.listener_port,
        ADMIN_PORT=config.admin_port,
        DISPATCHER_HOST=config.dispatcher_host,
        DISPATCHER_PORT=config.dispatcher_port,
        REPORTING_HOST=config.reporting_host,
        REPORTING_PORT=config.reporting_port,
        UI_HOST=config.ui_host,
        UI_PORT=config.ui_port,
        ALLOWED_ORIGINS=origin_matchers,
        MAX_REQUEST_BYTES=config.max_request_bytes,
        RATE_LIMIT_BURST=config.rate_limit_burst,
        RATE_LIMIT_PER_SECOND=config.rate_limit_per_second,
        SUBJECT_HEADER=SUBJECT_HEADER,
        JWT_ISSUER=json.dumps(config.jwt_issuer),
        JWT_AUDIENCE=json.dumps(config.jwt_audience),
        JWKS_FILE=json.dumps(str(config.jwks_file)),
        JWT_CLOCK_SKEW_SECONDS=config.jwt_clock_skew_seconds,
        JWT_REQUIREMENT=JWT_REQUIRED_WHEN_SENT if config.anonymous_demo else JWT_REQUIRED,
    )


class EnvoyProxy(Launcher):
    """Envoy run from a rendered config file; hot restart off so several can share a host."""

    name = "Envoy"
    readiness = "ready"

    def __init__(
        self,
        config: GatewayConfig,
        *,
        config_path: Path,
        template_path: Path | None = None,
        log_path: Path | None = None,
        binary: Path | None = None,
        log_level: str = "warning",
        concurrency: int = 1,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.template_path = template_path or default_template_path()
        self.binary = binary or find_tool("envoy")
        self._process = ManagedProcess(
            "envoy",
            [
                str(self.binary),
                "-c",
                str(config_path),
                "--disable-hot-restart",
                "--log-level",
                log_level,
                "--concurrency",
                str(concurrency),
            ],
            log_path=log_path,
        )

    @property
    def url(self) -> str:
        return f"http://{self.config.listen_address}:{self.config.listener_port}"

    def prepare(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.config, self.template_path.read_text()))

    def validate(self) -> None:
        """Run `envoy --mode validate`, raising with Envoy's own explanation on failure."""
        result = subprocess.run(
            [str(self.binary), "--mode", "validate", "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EnvoyConfigError(
                f"envoy rejected {self.config_path}:\n{result.stdout}{result.stderr}"
            )

    def is_ready(self) -> bool:
        return http_status(LOOPBACK, self.config.admin_port, "/ready") == 200
