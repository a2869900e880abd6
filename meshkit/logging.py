"""JSON logs on stdout, one object a line, so any collector can parse them.

Every record carries the service name; records logged with `extra={"job_id": ...}`
carry those fields too. The active OpenTelemetry span's ids are added when tracing is on.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class _TraceContextFilter(logging.Filter):
    """Stamps each record with the current trace and span id, if a span is recording."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


def configure_logging(service_name: str, level: str) -> None:
    """Route every logger (ours, grpc's, nats') to one JSON stream on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    static_fields: dict[str, Any] = {"service": service_name}
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields=static_fields,
        )
    )
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
