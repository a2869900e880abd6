"""The local mesh's ports and process list, from the environment.

Variable names are the ones the services themselves read (DISPATCHER_GRPC_PORT…), so a
developer who moves a port moves it for the runner, Envoy and the service at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from devmesh.envoy import (
    API_TOTAL,
    SUBMIT_TOTAL,
    WATCH_TOTAL,
    GatewayConfig,
    RouteLimit,
    TokenBucket,
)
from devmesh.tokens import LocalIssuer
from weather.v1 import defaults_pb2

Port = Annotated[int, Field(ge=1, le=65535)]
SERVICE_NAMES = ("dispatcher", "classifier", "reporting")


def default_data_dir() -> Path:
    """`<repo>/.data`: beside the package when installed editable, else under the cwd."""
    repository = Path(__file__).resolve().parents[1]
    if (repository / "pyproject.toml").is_file():
        return repository / ".data"
    return Path.cwd() / ".data"


@dataclass(frozen=True)
class LocalService:
    """One Python service the runner starts as `python -m services.<name>`."""

    name: str
    grpc_port: int
    metrics_port: int

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"


BURST_FACTOR = 4


def _per_client(per_second: int) -> TokenBucket:
    return TokenBucket(burst=BURST_FACTOR * per_second, per_second=per_second)


class MeshSettings(BaseSettings):
    """Every port of the local mesh plus what to start; validated before anything starts."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    nats_port: Port = 4222
    nats_monitor_port: Port = Field(default=8222, description="nats-server /healthz, /jsz.")
    postgres_port: Port = 5433
    envoy_port: Port = 8080
    envoy_admin_port: Port = 9901
    ui_port: Port = Field(default=8070, description="The UI's file server, Envoy's upstream for /.")
    dispatcher_grpc_port: Port = defaults_pb2.DEFAULT_PORT_DISPATCHER_GRPC
    classifier_grpc_port: Port = defaults_pb2.DEFAULT_PORT_CLASSIFIER_GRPC
    reporting_grpc_port: Port = defaults_pb2.DEFAULT_PORT_REPORTING_GRPC
    dispatcher_metrics_port: Port = defaults_pb2.DEFAULT_PORT_DISPATCHER_METRICS
    classifier_metrics_port: Port = defaults_pb2.DEFAULT_PORT_CLASSIFIER_METRICS
    reporting_metrics_port: Port = defaults_pb2.DEFAULT_PORT_REPORTING_METRICS
    ui_origins: Annotated[tuple[str, ...], NoDecode] = (
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    )
    gateway_xff_trusted_hops: int = Field(
        default=0,
        ge=0,
        description="Proxies of ours in front of Envoy whose X-Forwarded-For entries count.",
    )
    gateway_trusted_clients: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Client IPs exempt from the per-client limits (a benchmark), comma-separated; "
            "the total limits still apply to them."
        ),
    )
    gateway_submit_per_client: int = Field(
        default=5, ge=1, description="Submits per second per client (burst: 4x)."
    )
    gateway_watch_per_client: int = Field(
        default=10, ge=1, description="WatchJob calls per second per client (burst: 4x)."
    )
    gateway_api_per_client: int = Field(
        default=20, ge=1, description="Other API calls per second per client (burst: 4x)."
    )
    devmesh_services: Annotated[tuple[str, ...], NoDecode] = Field(
        default=SERVICE_NAMES,
        description="Services to start, comma-separated; empty starts the infrastructure only.",
    )
    devmesh_data_dir: Path = Field(default_factory=default_data_dir)
    devmesh_anonymous_demo: bool = Field(
        default=True,
        description="Anonymous demo mode for the gateway and the services (README 'Sign in').",
    )
    devmesh_ready_timeout_seconds: float = Field(default=90.0, gt=0)
    devmesh_stop_grace_seconds: float = Field(default=15.0, gt=0)

    @field_validator("ui_origins", "devmesh_services", "gateway_trusted_clients", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("devmesh_services")
    @classmethod
    def _known_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(f"unknown services {unknown}; choose from {list(SERVICE_NAMES)}")
        return value

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def gateway(self) -> GatewayConfig:
        """The Envoy gateway these ports and origins describe."""
        return GatewayConfig(
            listener_port=self.envoy_port,
            admin_port=self.envoy_admin_port,
            dispatcher_port=self.dispatcher_grpc_port,
            reporting_port=self.reporting_grpc_port,
            ui_port=self.ui_port,
            allowed_origins=self.ui_origins,
            jwks_file=self.local_issuer().jwks_path,
            anonymous_demo=self.devmesh_anonymous_demo,
            xff_trusted_hops=self.gateway_xff_trusted_hops,
            tls_dir=self.devmesh_data_dir / "tls",
            trusted_clients=self.gateway_trusted_clients,
            submit_limit=RouteLimit(_per_client(self.gateway_submit_per_client), SUBMIT_TOTAL),
            watch_limit=RouteLimit(_per_client(self.gateway_watch_per_client), WATCH_TOTAL),
            api_limit=RouteLimit(_per_client(self.gateway_api_per_client), API_TOTAL),
        )

    def local_issuer(self) -> LocalIssuer:
        """The local identity provider (`make token`); its key lives in the data dir."""
        return LocalIssuer(self.devmesh_data_dir / "identity")

    @property
    def services(self) -> list[LocalService]:
        ports = {
            "dispatcher": (self.dispatcher_grpc_port, self.dispatcher_metrics_port),
            "classifier": (self.classifier_grpc_port, self.classifier_metrics_port),
            "reporting": (self.reporting_grpc_port, self.reporting_metrics_port),
        }
        return [LocalService(name, *ports[name]) for name in self.devmesh_services]

    def ports(self) -> list[tuple[int, str, str]]:
        """(port, what wants it, the variable that moves it) for every listener we start."""
        wanted = [
            (self.nats_port, "NATS", "NATS_PORT"),
            (self.nats_monitor_port, "NATS monitoring", "NATS_MONITOR_PORT"),
            (self.postgres_port, "PostgreSQL", "POSTGRES_PORT"),
            (self.envoy_port, "Envoy", "ENVOY_PORT"),
            (self.envoy_admin_port, "Envoy admin", "ENVOY_ADMIN_PORT"),
            (self.ui_port, "UI file server", "UI_PORT"),
        ]
        for service in self.services:
            prefix = service.env_prefix
            wanted.append((service.grpc_port, f"{service.name} gRPC", f"{prefix}GRPC_PORT"))
            wanted.append(
                (service.metrics_port, f"{service.name} metrics", f"{prefix}METRICS_PORT")
            )
        return wanted
