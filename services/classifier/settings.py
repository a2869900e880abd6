"""The classifier's configuration: environment variables prefixed `CLASSIFIER_`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from meshkit.settings import NatsSettings, Port, ServiceSettings


class ClassifierSettings(ServiceSettings, NatsSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", frozen=True, extra="ignore")

    grpc_port: Port = Field(default=50052, ge=1, le=65535, description="gRPC listen port.")
    metrics_port: Port = Field(
        default=9102, ge=0, le=65535, description="Prometheus `/metrics` port; 0 turns it off."
    )
