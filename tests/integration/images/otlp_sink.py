"""An OTLP/gRPC trace endpoint in the test process: what Jaeger is in the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass
class SpanSink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace endpoint: what Jaeger is in the cluster. Keeps who sent spans."""

    senders: set[str] = field(default_factory=set)

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name" and resource_spans.scope_spans:
                    self.senders.add(attribute.value.string_value)
        return trace_service_pb2.ExportTraceServiceResponse()
