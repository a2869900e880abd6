"""Spans across JetStream: the vocabulary and the two moves every consumer makes.

There is no official NATS instrumentation, so the kit does by hand what an instrumentation
would: `publish_event` (job_events.py) injects the W3C trace context into the message headers;
a consumer continues that trace with `consumer_span`, so Submit → classify → report is one
trace. Work that serves many jobs at once (a batch) cannot have many parents: it gets its
own span with a link to each job's span (`links_to`).

Attribute names are shared here so that every service tags spans the same way and a
Jaeger search on `job.id=<id>` finds every hop. None of this costs anything when tracing
is off: the API's no-op tracer ignores it all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.util.types import AttributeValue

JOB_ID = "job.id"
IMAGE_SHA256 = "image.sha256"
MODEL_VERSION = "model.version"
BATCH_SIZE = "batch.size"
EVENT_ID = "event.id"
EVENT_KIND = "event.kind"
JOB_OUTCOME = "job.outcome"

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name"


def trace_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The W3C trace context a publisher injected, so a consumer's span joins its trace."""
    return propagate.extract(dict(headers or {}))


def consumer_attributes(subject: str, consumer: str) -> dict[str, AttributeValue]:
    """OpenTelemetry's messaging conventions for a message taken from a JetStream consumer."""
    return {
        MESSAGING_SYSTEM: "nats",
        MESSAGING_DESTINATION: subject,
        MESSAGING_CONSUMER_GROUP: consumer,
    }


@contextmanager
def consumer_span(
    tracer: trace.Tracer,
    name: str,
    headers: Mapping[str, str] | None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[trace.Span]:
    """A CONSUMER span, current for the block, that continues the publisher's trace.

    Without trace headers (an old message, tracing off at the publisher) it starts a new
    trace instead of failing: the span is still useful on its own.
    """
    with tracer.start_as_current_span(
        name,
        context=trace_context(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span


def links_to(span_contexts: Iterable[trace.SpanContext]) -> list[trace.Link]:
    """Links to every valid span context (untraced callers have none and are skipped)."""
    return [trace.Link(context) for context in span_contexts if context.is_valid]


def current_span_context() -> trace.SpanContext:
    """What a batch will link to: the span of whoever handed the work in."""
    return trace.get_current_span().get_span_context()
