"""The dispatcher's configuration: environment variables prefixed `DISPATCHER_`."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from meshkit.broker_layout import BrokerSettings
from meshkit.contract_constants import MAX_UPLOAD_BYTES
from meshkit.identity import IdentitySettings
from meshkit.settings import NatsSettings, Port, ServiceSettings
from weather.v1 import defaults_pb2


class DispatcherSettings(ServiceSettings, NatsSettings, BrokerSettings, IdentitySettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", frozen=True, extra="ignore")

    grpc_port: Port = Field(
        default=defaults_pb2.DEFAULT_PORT_DISPATCHER_GRPC,
        ge=1,
        le=65535,
        description="gRPC listen port.",
    )
    metrics_port: Port = Field(
        default=defaults_pb2.DEFAULT_PORT_DISPATCHER_METRICS,
        ge=0,
        le=65535,
        description="Prometheus `/metrics` port; 0 turns it off.",
    )
    max_upload_bytes: int = Field(
        default=MAX_UPLOAD_BYTES,
        ge=1,
        description=(
            "Largest photo Submit accepts, in bytes; larger uploads get RESOURCE_EXHAUSTED."
        ),
    )
    max_receive_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest gRPC request accepted, in bytes; above max_upload_bytes, so that an "
            "oversize photo gets Submit's own message rather than the transport's."
        ),
    )
    max_image_pixels: int = Field(
        default=40_000_000,
        ge=1,
        description=(
            "Largest photo Submit accepts, in pixels, read from the header before decoding "
            "(decompression bombs); larger ones get INVALID_ARGUMENT."
        ),
    )
    broker_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long Submit waits for JetStream to store the image and the event.",
    )
    watch_max_streams_per_client: int = Field(
        default=16,
        ge=1,
        description=(
            "WatchJob streams one client (as the gateway names it) may hold open at once; "
            "more get RESOURCE_EXHAUSTED."
        ),
    )

    @model_validator(mode="after")
    def _room_for_the_upload_check(self) -> DispatcherSettings:
        if self.max_receive_message_bytes < self.max_upload_bytes + 64 * 1024:
            raise ValueError(
                f"max_receive_message_bytes ({self.max_receive_message_bytes}) must exceed "
                f"max_upload_bytes ({self.max_upload_bytes}) by at least 64 KiB of framing"
            )
        return self
