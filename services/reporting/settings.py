"""The reporting service's configuration: environment variables prefixed `REPORTING_`."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from meshkit.broker_layout import BrokerSettings
from meshkit.identity import IdentitySettings
from meshkit.settings import NatsSettings, Port, ServiceSettings
from weather.v1 import defaults_pb2

LOCAL_DEV_PAGE_TOKEN_SECRET = "weather-mesh-local-development-page-tokens"
"""Used when `page_token_secret` is unset (with a startup warning): every replica agrees on
it, so paging works behind a load balancer, but anyone who reads this file can forge tokens.
Fine for `make up`; a cluster sets REPORTING_PAGE_TOKEN_SECRET from a Secret."""


class ReportingSettings(ServiceSettings, NatsSettings, BrokerSettings, IdentitySettings):
    """Reporting declares the broker too (it may be the first service up on an empty
    server), so it carries the broker's limits; give it the same values as the others."""

    model_config = SettingsConfigDict(env_prefix="REPORTING_", frozen=True, extra="ignore")

    grpc_port: Port = Field(
        default=defaults_pb2.DEFAULT_PORT_REPORTING_GRPC,
        ge=1,
        le=65535,
        description="gRPC listen port.",
    )
    metrics_port: Port = Field(
        default=defaults_pb2.DEFAULT_PORT_REPORTING_METRICS,
        ge=0,
        le=65535,
        description="Prometheus `/metrics` port; 0 turns it off.",
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://weather-mesh@127.0.0.1:5433/weather"),
        description=(
            "PostgreSQL connection string (libpq URI) of the runtime role: reads and writes "
            "rows, no DDL; kept out of logs."
        ),
    )
    migration_database_url: SecretStr | None = Field(
        default=None,
        description=(
            "Connection string of the migration role (owns the schema), used only to apply "
            "migrations at start; unset: migrations run with `database_url`."
        ),
    )
    database_statement_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest a statement may run before PostgreSQL cancels it.",
    )
    database_ingest_pool_size: int = Field(
        default=2,
        ge=1,
        description="Connections writing events, apart from the pool that serves queries.",
    )
    page_token_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description=(
            "Key that authenticates ListJobs page tokens (HMAC-SHA256); every replica needs "
            "the same one. Unset: a fixed local-development key, with a warning at startup."
        ),
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
    database_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long a query or an event write waits for a pooled connection before it "
            "fails (RPCs then answer UNAVAILABLE; events are redelivered)."
        ),
    )
    purge_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often jobs past retention_seconds are deleted from PostgreSQL.",
    )
    consumer_name: str = Field(
        default="reporting",
        pattern=r"^[A-Za-z0-9_-]+$",
        description=(
            "Durable JetStream consumer name on `weather.job.>`; replicas sharing it share "
            "the work, another name gets its own copy of every event."
        ),
    )
    consumer_ack_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long an event may stay unacknowledged before JetStream redelivers it.",
    )
    consumer_max_ack_pending: int = Field(
        default=1000,
        ge=1,
        description="Most events handed out and not yet acknowledged, across replicas.",
    )
    consumer_batch_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most events fetched at once and written in one transaction.",
    )
    consumer_fetch_timeout_seconds: float = Field(
        default=2.0, gt=0, description="How long one fetch waits for events to arrive."
    )
    consumer_retry_delay_seconds: float = Field(
        default=2.0,
        gt=0,
        description=(
            "While PostgreSQL is unavailable: delay before unacknowledged events are "
            "redelivered, and the pause between write attempts."
        ),
    )

    def page_token_key(self) -> bytes:
        secret = self.page_token_secret
        value = secret.get_secret_value() if secret else LOCAL_DEV_PAGE_TOKEN_SECRET
        return value.encode("utf-8")

    @model_validator(mode="after")
    def _batch_fits_ack_pending(self) -> ReportingSettings:
        if self.consumer_batch_size > self.consumer_max_ack_pending:
            raise ValueError("consumer_batch_size must not exceed consumer_max_ack_pending")
        return self
