"""JSON logs on stdout, one object a line, so any collector can parse them.

Every record carries the service name; records logged with `extra={"job_id": ...}`
carry those fields too. When tracing is on, the active span adds `trace_id` and `span_id`
(so a log line leads to its trace in Jaeger and back), and `job_id` when the span is a
job's (its `job.id` attribute) and the call did not name one.

Never image bytes: a `bytes` argument is logged as its length only, so a careless
`logger.debug("got %s", image)` cannot dump a photo (or a secret) into the log stream.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from meshkit.tracing import JOB_ID


class _TraceContextFilter(logging.Filter):
    """Stamps each record with the current trace and span id (and the span's job id), if a
    span is recording."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span()
        span_context = span.get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
            attributes = getattr(span, "attributes", None)  # SDK spans only
            if not hasattr(record, "job_id") and isinstance(attributes, Mapping):
                job_id = attributes.get(JOB_ID)
                if job_id is not None:
                    record.job_id = job_id
        return True


class _NoBytesFilter(logging.Filter):
    """Replaces `bytes` arguments with their length: payloads never reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, bytes | bytearray) for arg in record.args
        ):
            record.args = tuple(
                f"<{len(arg)} bytes>" if isinstance(arg, bytes | bytearray) else arg
                for arg in record.args
            )
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
    handler.addFilter(_NoBytesFilter())
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
