"""Settings every weather-mesh service shares.

Each service subclasses `ServiceSettings` with its own environment prefix
(`DISPATCHER_`, `CLASSIFIER_`, `REPORTING_`), so one typed object holds all of a
service's configuration, validated once at start: a bad value stops the service with a
message naming the variable instead of failing later in the middle of a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from meshkit.contract_constants import MAX_UPLOAD_BYTES, UPLOAD_FRAMING_BYTES

Port = int


class ServiceSettings(BaseSettings):
    """What the shared kit needs to run a service: listeners, logging, shutdown."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    grpc_host: str = Field(
        default="127.0.0.1",
        description="Address the gRPC server listens on (use 0.0.0.0 in a container).",
    )
    grpc_port: Port = Field(ge=1, le=65535, description="gRPC listen port.")
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the Prometheus `/metrics` endpoint listens on."
    )
    metrics_port: Port = Field(
        ge=0, le=65535, description="Prometheus `/metrics` port; 0 turns it off."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level written to the JSON log on stdout."
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description="On SIGTERM, how long in-flight RPCs may run before they are cancelled.",
    )
    max_receive_message_bytes: int = Field(
        default=MAX_UPLOAD_BYTES + UPLOAD_FRAMING_BYTES,
        ge=1024,
        description="Largest gRPC request accepted, in bytes (the upload cap plus framing).",
    )


class NatsSettings(BaseSettings):
    """How a service reaches NATS JetStream; mixed into the settings of services that use it."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description=(
            "NATS server URL(s), comma-separated for a cluster; never with credentials in "
            "them (URLs are logged): see NATS_USER and NATS_PASSWORD_FILE."
        ),
    )
    nats_user: str | None = Field(
        default=None,
        description="The service's NATS user (each service has its own, with its own rights).",
    )
    nats_password_file: Path | None = Field(
        default=None,
        description="File holding the NATS user's password (a mounted secret); read on connect.",
    )
    nats_connect_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Timeout of one NATS connection attempt."
    )
    nats_retry_max_wait_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest pause between NATS connection attempts (backoff grows to this).",
    )

    @field_validator("nats_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        for url in value.split(","):
            if "@" in urlsplit(url.strip()).netloc:
                raise ValueError(
                    "the NATS URL must not carry credentials (it is logged); "
                    "set NATS_USER and NATS_PASSWORD_FILE instead"
                )
        return value

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def nats_password(self) -> SecretStr | None:
        """The password from `nats_password_file` (trailing newline dropped), if one is set."""
        if self.nats_password_file is None:
            return None
        return SecretStr(self.nats_password_file.read_text(encoding="utf-8").rstrip("\n"))
