"""Wiring of reporting: its servicer, the event consumer, NATS and PostgreSQL, the bootstrap."""

from __future__ import annotations

import logging
from functools import partial

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from meshkit.access import AccessInterceptor
from meshkit.broker_layout import JOBS_STREAM, BrokerSetup
from meshkit.metrics import QueueLagProbe, ServiceMetrics
from meshkit.nats import NatsConnection
from meshkit.server import ServiceDefinition, run
from services.reporting.consumer import EventConsumer, declare_consumer
from services.reporting.database import PostgresPool
from services.reporting.handlers import ReportingService
from services.reporting.migrator import migrate, migrate_database, packaged_migrations
from services.reporting.retention import RetentionPurge
from services.reporting.settings import ReportingSettings
from services.reporting.store import JobStore
from weather.v1 import reporting_pb2, reporting_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name


async def apply_migrations(pool: AsyncConnectionPool, migration_url: str | None) -> None:
    """As the migration role when one is configured (the runtime role may not run DDL)."""
    if migration_url is not None:
        await migrate_database(migration_url)
        return
    async with pool.connection() as connection:
        await migrate(connection, packaged_migrations())


def build(settings: ReportingSettings) -> ServiceDefinition:
    metrics = ServiceMetrics()
    events = Counter(
        "weather_reporting_events",
        "Job events taken from the broker, by outcome "
        "(recorded, duplicate, malformed, rejected, retried).",
        ["outcome"],
        registry=metrics.registry,
    )
    event_setup = BrokerSetup(settings, partial(declare_consumer, settings=settings))
    nats_connection = NatsConnection(settings, client_name="reporting", setup=event_setup)
    migration_url = settings.migration_database_url
    database = PostgresPool(
        settings.database_url.get_secret_value(),
        min_size=settings.database_pool_min_size,
        max_size=settings.database_pool_max_size,
        check_interval_seconds=settings.database_check_interval_seconds,
        setup=partial(
            apply_migrations,
            migration_url=migration_url.get_secret_value() if migration_url else None,
        ),
        ingest_pool_size=settings.database_ingest_pool_size,
        statement_timeout_seconds=settings.database_statement_timeout_seconds,
    )
    store = JobStore(
        database.pool, settings.database_timeout_seconds, ingest_pool=database.ingest_pool
    )
    consumer = EventConsumer(
        event_setup,
        database.ready,
        store,
        settings,
        on_outcome=lambda outcome, count: events.labels(outcome).inc(count),
    )
    purged = Counter(
        "weather_reporting_jobs_purged",
        "Jobs deleted from PostgreSQL because they passed retention_seconds.",
        registry=metrics.registry,
    )
    retention = RetentionPurge(
        store,
        database.ready,
        retention_seconds=settings.retention_seconds,
        interval_seconds=settings.purge_interval_seconds,
        on_purged=purged.inc,
    )
    queue_lag = QueueLagProbe(metrics.registry, event_setup, JOBS_STREAM, [settings.consumer_name])
    if settings.page_token_secret is None:
        logger.warning(
            "REPORTING_PAGE_TOKEN_SECRET is unset: page tokens use the public local-development "
            "key; set a secret of 32+ characters (the same on every replica) outside development"
        )
    servicer = ReportingService(store, settings.page_token_key())

    return ServiceDefinition(
        name="reporting",
        grpc_services=[SERVICE_NAME],
        register=partial(reporting_pb2_grpc.add_ReportingServiceServicer_to_server, servicer),
        dependencies=[nats_connection, database],
        workers=[consumer, retention, queue_lag],
        metrics=metrics,
        access=AccessInterceptor.from_settings(settings),
    )


def main() -> int:
    return run("reporting", ReportingSettings, build)
