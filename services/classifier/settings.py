"""The classifier's configuration: environment variables prefixed `CLASSIFIER_`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from meshkit.broker_layout import BrokerSettings
from meshkit.images import DEFAULT_MAX_PIXELS
from meshkit.model_repository import MODEL_VERSION_PATTERN
from meshkit.settings import NatsSettings, Port, ServiceSettings
from weather.v1 import defaults_pb2


class ClassifierSettings(ServiceSettings, NatsSettings, BrokerSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", frozen=True, extra="ignore")

    grpc_port: Port = Field(
        default=defaults_pb2.DEFAULT_PORT_CLASSIFIER_GRPC,
        ge=1,
        le=65535,
        description="gRPC listen port.",
    )
    metrics_port: Port = Field(
        default=defaults_pb2.DEFAULT_PORT_CLASSIFIER_METRICS,
        ge=0,
        le=65535,
        description="Prometheus `/metrics` port; 0 turns it off.",
    )
    model_path: Path | None = Field(
        default=None,
        description=(
            "The `.keras` file served while the model repository has no `current` pointer; "
            "empty: the one shipped in the package."
        ),
    )
    model_version: str | None = Field(
        default=None,
        pattern=MODEL_VERSION_PATTERN,
        description=(
            "Pin: serve this version from the model repository and ignore the `current` "
            "pointer (a canary beside the stable classifiers); empty: follow the pointer."
        ),
    )
    model_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Pause before retrying a model that could not be loaded (pinned or first).",
    )
    max_batch: int = Field(
        default=32, ge=1, le=1024, description="Most images one forward pass classifies."
    )
    max_queue_delay_seconds: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description=(
            "Longest an image waits for others to join its batch once the model is free "
            "(latency traded for throughput)."
        ),
    )
    preprocess_threads: int = Field(
        default=2, ge=1, le=64, description="Threads decoding and resizing photos."
    )
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS,
        ge=1,
        description="Images with more pixels (read from the header) are refused undecoded.",
    )
    max_concurrent_decodes: int = Field(
        default=160,
        ge=1,
        description=(
            "Photos this process decodes or holds for a decode thread at once; a Classify "
            "call beyond it gets RESOURCE_EXHAUSTED at once (queued jobs wait: at least "
            "max_ack_pending)."
        ),
    )
    ack_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How long a fetched job may stay unacknowledged before JetStream redelivers it "
            "(e.g. after a crash); progress heartbeats keep a job that is merely waiting here."
        ),
    )
    progress_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "How often a job in hand (waiting for a decode thread or a batch slot) tells "
            "JetStream it is in progress, resetting its ack wait; empty: a third of the ack "
            "wait. Checked at start against the ack wait."
        ),
    )
    max_deliver: int = Field(
        default=5,
        ge=1,
        description="Deliveries of one job before it ends FAILED (deliveries exhausted).",
    )
    max_ack_pending: int = Field(
        default=128,
        ge=1,
        description=(
            "Jobs this classifier holds unacknowledged at once (in flight); at least max_batch, "
            "a few batches keep the model busy while results are published."
        ),
    )
    nak_delay_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Delay before a job that hit a transient error is delivered again.",
    )
    fetch_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Longest one pull request waits for a job (bounds how fast a stop is seen).",
    )

    @property
    def heartbeat_seconds(self) -> float:
        """The progress heartbeat interval in force."""
        return self.progress_interval_seconds or self.ack_wait_seconds / 3

    @model_validator(mode="after")
    def _in_flight_fills_a_batch(self) -> ClassifierSettings:
        if self.max_ack_pending < self.max_batch:
            raise ValueError(
                f"max_ack_pending ({self.max_ack_pending}) must be at least max_batch "
                f"({self.max_batch}), or no batch could ever fill from the queue"
            )
        if self.max_concurrent_decodes < self.max_ack_pending:
            raise ValueError(
                f"max_concurrent_decodes ({self.max_concurrent_decodes}) must be at least "
                f"max_ack_pending ({self.max_ack_pending}): the jobs in hand all decode"
            )
        # The longest a job in hand goes without telling JetStream it is alive: one
        # heartbeat interval, plus the forward pass it may be waiting behind (bounded by
        # max_queue_delay for the batch to form; the pass itself runs in its own thread, so
        # heartbeats continue), plus slack for a busy event loop.
        worst_silence = self.heartbeat_seconds + self.max_queue_delay_seconds
        if self.ack_wait_seconds < 2 * worst_silence:
            raise ValueError(
                f"ack_wait_seconds ({self.ack_wait_seconds}) must be at least twice the "
                f"longest silence of a job in hand: progress_interval_seconds "
                f"({self.heartbeat_seconds}) + max_queue_delay_seconds "
                f"({self.max_queue_delay_seconds}); raise the ack wait or beat more often"
            )
        return self
