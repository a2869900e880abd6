"""The dispatcher's configuration: environment variables prefixed `DISPATCHER_`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from meshkit.settings import NatsSettings, Port, ServiceSettings


class DispatcherSettings(ServiceSettings, NatsSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", frozen=True, extra="ignore")

    grpc_port: Port = Field(default=50051, ge=1, le=65535, description="gRPC listen port.")
    metrics_port: Port = Field(
        default=9101, ge=0, le=65535, description="Prometheus `/metrics` port; 0 turns it off."
    )
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1,
        description=(
            "Largest photo Submit accepts, in bytes; larger uploads get RESOURCE_EXHAUSTED."
        ),
    )
