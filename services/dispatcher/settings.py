"""The dispatcher's configuration: environment variables prefixed `DISPATCHER_`."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from meshkit.broker_layout import BrokerSettings
from meshkit.contract_constants import MAX_UPLOAD_BYTES
from meshkit.identity import IdentitySettings
from meshkit.images import DEFAULT_MAX_PIXELS
from meshkit.settings import NatsSettings, Port, ServiceSettings
from weather.v1 import defaults_pb2

TERMINAL_EVENT_BYTES_BOUND = 2048
"""What one terminal event may occupy on the job stream, generously: subject, headers (msg
id, trace context), file name (255 bytes at most), a classification or a failure reason."""


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
        default=DEFAULT_MAX_PIXELS,
        ge=1,
        description=(
            "Largest photo Submit accepts, in pixels, read from the header before decoding "
            "(decompression bombs); larger ones get INVALID_ARGUMENT."
        ),
    )
    max_concurrent_decodes: int = Field(
        default=64,
        ge=1,
        description=(
            "Uploads this process checks (decodes, or waits for a decode thread) at once; a "
            "Submit beyond it gets RESOURCE_EXHAUSTED at once instead of queueing without end."
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
    jobs_reserve_bytes: int = Field(
        default=64 * 1024**2,
        ge=0,
        description=(
            "Free bytes of the job event stream kept for the terminal events of accepted jobs: "
            "below it, Submit answers RESOURCE_EXHAUSTED."
        ),
    )
    max_queue_depth: int = Field(
        default=10_000,
        ge=0,
        description=(
            "Queued jobs the classifiers may owe before Submit answers RESOURCE_EXHAUSTED at "
            "once (latency stays bounded); 0: no bound."
        ),
    )
    retry_after_seconds: int = Field(
        default=5,
        ge=1,
        description="The retry hint of a RESOURCE_EXHAUSTED Submit (message and `retry-after`).",
    )
    job_deadline_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "A job still unfinished this long after Submit is ended FAILED by the reconciler "
            "(keep it above the classifier's ack wait times its max deliveries)."
        ),
    )
    reconcile_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the reconciler looks for overdue jobs.",
    )
    broker_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often storage usage and queue depth are read for admission and metrics.",
    )

    @model_validator(mode="after")
    def _room_for_the_upload_check(self) -> DispatcherSettings:
        if self.max_receive_message_bytes < self.max_upload_bytes + 64 * 1024:
            raise ValueError(
                f"max_receive_message_bytes ({self.max_receive_message_bytes}) must exceed "
                f"max_upload_bytes ({self.max_upload_bytes}) by at least 64 KiB of framing"
            )
        owed = self.max_queue_depth * TERMINAL_EVENT_BYTES_BOUND
        if self.jobs_reserve_bytes < owed:
            raise ValueError(
                f"jobs_reserve_bytes ({self.jobs_reserve_bytes}) must hold the terminal events "
                f"of max_queue_depth ({self.max_queue_depth}) accepted jobs: at least {owed}"
            )
        if self.job_deadline_seconds >= self.retention_seconds:
            raise ValueError(
                f"job_deadline_seconds ({self.job_deadline_seconds}) must be below "
                f"retention_seconds ({self.retention_seconds}): an overdue job's events "
                "must still be there to fail it"
            )
        if self.jobs_reserve_bytes >= self.jobs_max_bytes:
            raise ValueError(
                f"jobs_reserve_bytes ({self.jobs_reserve_bytes}) must be below jobs_max_bytes "
                f"({self.jobs_max_bytes}), or no job could ever be accepted"
            )
        return self
