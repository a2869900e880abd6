"""The reporting service's configuration: environment variables prefixed `REPORTING_`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from meshkit.settings import NatsSettings, Port, ServiceSettings


class ReportingSettings(ServiceSettings, NatsSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", frozen=True, extra="ignore")

    grpc_port: Port = Field(default=50053, ge=1, le=65535, description="gRPC listen port.")
    metrics_port: Port = Field(
        default=9103, ge=0, le=65535, description="Prometheus `/metrics` port; 0 turns it off."
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://weather-mesh@127.0.0.1:5433/weather"),
        description="PostgreSQL connection string (libpq URI); kept out of logs.",
    )
    database_pool_min_size: int = Field(
        default=1, ge=0, description="Connections the pool keeps open."
    )
    database_pool_max_size: int = Field(
        default=5, ge=1, description="Most connections the pool opens."
    )
    database_check_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the database is probed; health follows the probe.",
    )
