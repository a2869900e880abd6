"""Wiring of the classifier: its servicer, its NATS dependency, the shared bootstrap."""

from __future__ import annotations

import grpc

from meshkit.nats import NatsConnection
from meshkit.server import ServiceSpec, run
from services.classifier.service import ClassifierService
from services.classifier.settings import ClassifierSettings
from weather.v1 import classifier_pb2, classifier_pb2_grpc

SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


def build(settings: ClassifierSettings) -> ServiceSpec:
    nats_connection = NatsConnection(settings, client_name="classifier")
    servicer = ClassifierService()

    def register(server: grpc.aio.Server) -> None:
        classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(servicer, server)

    return ServiceSpec(
        name="classifier",
        grpc_services=[SERVICE_NAME],
        register=register,
        dependencies=[nats_connection],
    )


def main() -> int:
    return run("classifier", ClassifierSettings, build)
