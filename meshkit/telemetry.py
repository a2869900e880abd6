"""OpenTelemetry tracing, on only when the standard `OTEL_*` variables ask for it.

Configuration is the SDK's own: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
turns export on, `OTEL_SERVICE_NAME` names the service, `OTEL_TRACES_SAMPLER[_ARG]` pick
the sampler, `OTEL_SDK_DISABLED=true` forces it off. With nothing set, no exporter runs
and the no-op tracer costs next to nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when an OTLP endpoint is configured and the SDK is not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def setup_tracing(default_service_name: str) -> Callable[[], None]:
    """Install the tracer provider and gRPC instrumentation; return the shutdown hook.

    Must run before the gRPC server and clients are created, so the instrumentation's
    interceptors are attached to them.
    """
    if not tracing_requested(os.environ):
        return lambda: None
    service_name = os.environ.get("OTEL_SERVICE_NAME") or default_service_name
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    server_instrumentor = GrpcAioInstrumentorServer()  # type: ignore[no-untyped-call]
    client_instrumentor = GrpcAioInstrumentorClient()  # type: ignore[no-untyped-call]
    server_instrumentor.instrument()
    client_instrumentor.instrument()
    logger.info("tracing on: exporting spans of %s over OTLP", service_name)

    def shutdown() -> None:
        server_instrumentor.uninstrument()
        client_instrumentor.uninstrument()
        provider.shutdown()

    return shutdown
