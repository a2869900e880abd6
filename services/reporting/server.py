"""Wiring of reporting: its servicer, NATS and PostgreSQL dependencies, the bootstrap."""

from __future__ import annotations

import grpc

from meshkit.nats import NatsConnection
from meshkit.server import ServiceSpec, run
from services.reporting.database import PostgresPool
from services.reporting.service import ReportingService
from services.reporting.settings import ReportingSettings
from weather.v1 import reporting_pb2, reporting_pb2_grpc

SERVICE_NAME = reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name


def build(settings: ReportingSettings) -> ServiceSpec:
    nats_connection = NatsConnection(settings, client_name="reporting")
    database = PostgresPool(
        settings.database_url.get_secret_value(),
        min_size=settings.database_pool_min_size,
        max_size=settings.database_pool_max_size,
        check_interval_seconds=settings.database_check_interval_seconds,
    )
    servicer = ReportingService()

    def register(server: grpc.aio.Server) -> None:
        reporting_pb2_grpc.add_ReportingServiceServicer_to_server(servicer, server)

    return ServiceSpec(
        name="reporting",
        grpc_services=[SERVICE_NAME],
        register=register,
        dependencies=[nats_connection, database],
    )


def main() -> int:
    return run("reporting", ReportingSettings, build)
