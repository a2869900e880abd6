"""OpenTelemetry tracing, on only when the standard `OTEL_*` variables ask for it.

Configuration is the SDK's own: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
turns export on, `OTEL_SERVICE_NAME` names the service, `OTEL_TRACES_SAMPLER[_ARG]` pick
the sampler, `OTEL_BSP_*` the batching of exports, `OTEL_SDK_DISABLED=true` forces it
off. With nothing set, no exporter runs and the no-op tracer costs next to nothing.

Health checks and reflection are not traced: probes every few seconds would bury the
traces of real work (the RPC metrics still count them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.instrumentation.grpc.filters import (
    any_of,
    health_check,
    negate,
    service_prefix,
)
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

    Must run before the gRPC server and clients are created: the instrumentation patches
    `grpc.aio.server` and the `grpc.aio` channel factories, so only servers and channels
    made afterwards carry its interceptors.
    """
    if not tracing_requested(os.environ):
        return lambda: None
    service_name = os.environ.get("OTEL_SERVICE_NAME") or default_service_name
    # The sampler comes from OTEL_TRACES_SAMPLER[_ARG] (default: parent-based, always on).
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    untraced = any_of(health_check(), service_prefix("grpc.reflection."))
    server_instrumentor = GrpcAioInstrumentorServer(filter_=negate(untraced))  # type: ignore[no-untyped-call]
    client_instrumentor = GrpcAioInstrumentorClient(filter_=negate(untraced))  # type: ignore[no-untyped-call]
    server_instrumentor.instrument()
    client_instrumentor.instrument()
    logger.info("tracing on: exporting spans of %s over OTLP", service_name)

    def shutdown() -> None:
        server_instrumentor.uninstrument()
        client_instrumentor.uninstrument()
        provider.shutdown()

    return shutdown
