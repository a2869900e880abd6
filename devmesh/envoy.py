"""The Envoy gateway: render the one template with ports and origins, validate, run.

Rendering is pure (`render_config`), so the same function can serve the local mesh, the
tests and whatever later renders the template for a cluster.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import string
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devmesh.binaries import find_tool
from devmesh.launcher import Launcher
from devmesh.ports import LOOPBACK
from devmesh.process import ManagedProcess
from devmesh.readiness import http_status
from devmesh.static import SECURITY_HEADERS
from devmesh.tls import ensure_dev_certificate, tls_files
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


CLIENT_ID_HEADER = "x-weather-client"
"""Set by the gateway on every request (never taken from the client): whom the per-client
limits count against, `subject:<sub>` or `address:<ip>`; services may key on it too."""
CLIENT_DESCRIPTOR_KEY = "client"
LOCAL_RATE_LIMIT_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
)


@dataclass(frozen=True)
class TokenBucket:
    """`burst` requests at once, refilled at `per_second` (both per client, or in total)."""

    burst: int
    per_second: int

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second < 1:
            raise ValueError("a token bucket needs a burst and a rate of at least 1")

    def render(self) -> dict[str, Any]:
        return {"max_tokens": self.burst, "tokens_per_fill": self.per_second, "fill_interval": "1s"}


@dataclass(frozen=True)
class RouteLimit:
    """One API route class's limits: each client's bucket, and a total for all clients
    together (the only one trusted clients meet) that protects the mesh."""

    per_client: TokenBucket
    total: TokenBucket


# Totals per route class, for all clients together: above the mesh's measured capacity
# (a job is one Submit + one WatchJob), so they protect it without capping it.
SUBMIT_TOTAL = TokenBucket(400, 200)
WATCH_TOTAL = TokenBucket(800, 400)
API_TOTAL = TokenBucket(1000, 500)


def _validated_ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


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
    jwks_file: Path | None = None
    """Public keys tokens are checked against (required to render)."""
    jwt_issuer: str = LOCAL_ISSUER
    jwt_audience: str = DEFAULT_AUDIENCE
    jwt_clock_skew_seconds: int = 30
    anonymous_demo: bool = False
    """Let API calls without a token through (never one with a bad token)."""
    xff_trusted_hops: int = 0
    trusted_clients: Sequence[str] = ()
    submit_limit: RouteLimit = field(
        default_factory=lambda: RouteLimit(TokenBucket(20, 5), SUBMIT_TOTAL)
    )
    watch_limit: RouteLimit = field(
        default_factory=lambda: RouteLimit(TokenBucket(40, 10), WATCH_TOTAL)
    )
    api_limit: RouteLimit = field(
        default_factory=lambda: RouteLimit(TokenBucket(60, 20), API_TOTAL)
    )
    max_tracked_clients: int = 10_000
    submit_timeout_seconds: int = 30
    request_receive_timeout_seconds: int = 60
    max_concurrent_streams: int = 100
    per_connection_buffer_bytes: int = 32 * 1024
    max_downstream_connections: int = 10_000
    max_heap_bytes: int = 512 * 1024 * 1024
    upstream_max_connections: int = 1024
    upstream_max_pending_requests: int = 1024
    upstream_max_requests: int = 4096
    tls_dir: Path | None = None
    """Where the HTTPS certificate and key are (made there if missing); None: beside the
    rendered config."""


def _local_rate_limit(stat_prefix: str, limit: RouteLimit, max_tracked_clients: int) -> str:
    """A route's local_ratelimit: a total bucket, and one bucket per `x-weather-client`."""
    config = {
        "@type": LOCAL_RATE_LIMIT_TYPE,
        "stat_prefix": stat_prefix,
        "rate_limited_as_resource_exhausted": True,
        "token_bucket": limit.total.render(),
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "max_dynamic_descriptors": max_tracked_clients,
        "descriptors": [
            {
                "entries": [{"key": CLIENT_DESCRIPTOR_KEY}],
                "token_bucket": limit.per_client.render(),
            }
        ],
    }
    return json.dumps(config)


def _client_rate_limit_actions() -> str:
    action = {
        "request_headers": {
            "header_name": CLIENT_ID_HEADER,
            "descriptor_key": CLIENT_DESCRIPTOR_KEY,
            "skip_if_absent": True,
        }
    }
    return json.dumps([{"actions": [action]}])


def _circuit_breakers(config: GatewayConfig) -> str:
    thresholds = {
        "priority": "DEFAULT",
        "max_connections": config.upstream_max_connections,
        "max_pending_requests": config.upstream_max_pending_requests,
        "max_requests": config.upstream_max_requests,
        "max_retries": 3,
    }
    return json.dumps({"thresholds": [thresholds]})


def _ui_security_headers() -> str:
    return json.dumps(
        [
            {"header": {"key": name, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for name, value in SECURITY_HEADERS.items()
        ]
    )


def _trusted_clients_lua(addresses: Sequence[str]) -> str:
    """A Lua set literal of validated IP addresses (nothing else can reach the script)."""
    entries = ", ".join(f'["{_validated_ip(address)}"] = true' for address in addresses)
    return "{" + entries + "}"


def render_config(config: GatewayConfig, template: str) -> str:
    """Substitute `config` into `template`; every placeholder must be filled (no silent gaps)."""
    origins = [validate_origin(origin) for origin in config.allowed_origins]
    if not origins:
        raise ValueError("at least one allowed CORS origin is required")
    origin_matchers = "[" + ", ".join(f"{{exact: {json.dumps(o)}}}" for o in origins) + "]"
    if config.jwks_file is None:
        raise ValueError("the gateway needs a JWKS file to verify tokens (jwks_file)")
    tls = tls_files(config.tls_dir or Path("tls"))
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
        SUBJECT_HEADER=SUBJECT_HEADER,
        JWT_ISSUER=json.dumps(config.jwt_issuer),
        JWT_AUDIENCE=json.dumps(config.jwt_audience),
        JWKS_FILE=json.dumps(str(config.jwks_file)),
        JWT_CLOCK_SKEW_SECONDS=config.jwt_clock_skew_seconds,
        JWT_REQUIREMENT=JWT_REQUIRED_WHEN_SENT if config.anonymous_demo else JWT_REQUIRED,
        XFF_TRUSTED_HOPS=config.xff_trusted_hops,
        TRUSTED_CLIENTS_LUA=_trusted_clients_lua(config.trusted_clients),
        CLIENT_RATE_LIMIT_ACTIONS=_client_rate_limit_actions(),
        SUBMIT_RATE_LIMIT=_local_rate_limit(
            "submit_rate_limit", config.submit_limit, config.max_tracked_clients
        ),
        WATCH_RATE_LIMIT=_local_rate_limit(
            "watch_rate_limit", config.watch_limit, config.max_tracked_clients
        ),
        API_RATE_LIMIT=_local_rate_limit(
            "api_rate_limit", config.api_limit, config.max_tracked_clients
        ),
        SUBMIT_TIMEOUT_SECONDS=config.submit_timeout_seconds,
        REQUEST_RECEIVE_TIMEOUT_SECONDS=config.request_receive_timeout_seconds,
        MAX_CONCURRENT_STREAMS=config.max_concurrent_streams,
        PER_CONNECTION_BUFFER_BYTES=config.per_connection_buffer_bytes,
        MAX_DOWNSTREAM_CONNECTIONS=config.max_downstream_connections,
        MAX_HEAP_BYTES=config.max_heap_bytes,
        UPSTREAM_CIRCUIT_BREAKERS=_circuit_breakers(config),
        UI_SECURITY_HEADERS=_ui_security_headers(),
        TLS_CERTIFICATE=json.dumps(str(tls.certificate)),
        TLS_PRIVATE_KEY=json.dumps(str(tls.private_key)),
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

    @property
    def tls_url(self) -> str:
        return f"https://{self.config.listen_address}:{self.config.listener_port}"

    def prepare(self) -> None:
        """Make the development certificate if needed, then render the config."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        tls_dir = self.config.tls_dir or self.config_path.parent / "tls"
        ensure_dev_certificate(tls_dir)
        config = dataclasses.replace(self.config, tls_dir=tls_dir)
        self.config_path.write_text(render_config(config, self.template_path.read_text()))

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
