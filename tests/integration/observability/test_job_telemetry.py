"""One photo through the real mesh is one trace, and every hop shows up in the metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from weather.v1 import job_pb2

# Fixtures and their types live in conftest.py (which cannot be imported by name).
Mesh = Any
Photo = Any
ReceivedSpan = Any
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Scrape = Callable[[Any], Samples]

SUBMIT = "/weather.v1.DispatcherService/Submit"


def _one(spans: list[ReceivedSpan], **where: object) -> ReceivedSpan:
    matches = [
        span
        for span in spans
        if all(
            (
                span.attributes.get(key[5:].replace("_", "."))
                if key.startswith("attr_")
                else getattr(span, key)
            )
            == value
            for key, value in where.items()
        )
    ]
    assert len(matches) == 1, f"wanted one span with {where}, found {len(matches)}"
    return matches[0]


def _job_spans_arrived(job_id: str) -> Callable[[list[ReceivedSpan]], bool]:
    def arrived(spans: list[ReceivedSpan]) -> bool:
        names = {
            (span.service, span.name, span.attributes.get("event.kind"))
            for span in spans
            if span.attributes.get("job.id") == job_id
        }
        batches = [span for span in spans if span.name == "model forward pass"]
        return (
            bool(batches)
            and {
                ("dispatcher", SUBMIT, None),
                ("classifier", "classify job", None),
                ("reporting", "record job event", "queued"),
                ("reporting", "record job event", "succeeded"),
            }
            <= names
        )

    return arrived


async def test_one_job_is_one_trace_from_submit_to_report(mesh: Mesh, photo: Photo) -> None:
    job = await mesh.classify(photo.image, photo.filename)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job

    spans = await mesh.spans.wait_for(_job_spans_arrived(job.id))

    submit = _one(spans, service="dispatcher", name=SUBMIT, attr_job_id=job.id)
    assert submit.parent_span_id == ""  # the client is untraced: Submit roots the trace
    assert submit.attributes["image.sha256"] == job.image_sha256
    trace_id = submit.trace_id
    in_trace = [span for span in spans if span.trace_id == trace_id]
    assert {span.service for span in in_trace} == {"dispatcher", "classifier", "reporting"}

    classify = _one(in_trace, service="classifier", name="classify job")
    assert classify.parent_span_id == submit.span_id
    assert classify.attributes["job.id"] == job.id
    assert classify.attributes["image.sha256"] == job.image_sha256
    assert classify.attributes["model.version"] == job.classification.model_version
    assert int(str(classify.attributes["batch.size"])) >= 1

    queued = _one(in_trace, name="record job event", attr_event_kind="queued")
    assert queued.parent_span_id == submit.span_id
    succeeded = _one(in_trace, name="record job event", attr_event_kind="succeeded")
    assert succeeded.parent_span_id == classify.span_id

    # The forward pass served a batch: its own trace, linked to the job's span.
    batch = _one(
        [span for span in spans if span.name == "model forward pass"],
        service="classifier",
    )
    assert (trace_id, classify.span_id) in batch.links
    assert batch.attributes["batch.size"] == len(batch.links)
    assert batch.attributes["model.version"] == job.classification.model_version
    assert batch.trace_id != trace_id

    # Health probes (many while the services started) are not traced: they would bury jobs.
    assert not [span.name for span in spans if "grpc.health" in span.name]

    # The logs of the job carry its trace: from a log line to the trace and back.
    stamped = [
        line
        for service in (mesh.dispatcher, mesh.classifier)
        for line in map(_json_or_none, service.log().splitlines())
        if line is not None and line.get("job_id") == job.id
    ]
    assert stamped, "no log line names the job"
    assert {line.get("trace_id") for line in stamped} == {trace_id}
    assert all(line.get("span_id") for line in stamped)


async def test_metrics_count_the_jobs_batches_events_and_cache_hits(
    mesh: Mesh, photo: Photo, scrape: Scrape
) -> None:
    first = await mesh.classify(photo.image, photo.filename)
    again = await mesh.classify(
        photo.image, photo.filename
    )  # the same photo: the result cache answers
    assert first.state == again.state == job_pb2.JOB_STATE_SUCCEEDED

    dispatcher = scrape(mesh.dispatcher)
    assert _value(dispatcher, "weather_dispatcher_cache_lookups_total", result="hit") >= 1
    assert _value(dispatcher, "weather_dispatcher_cache_lookups_total", result="miss") >= 1
    assert _value(dispatcher, "weather_rpc_duration_seconds_count", method=SUBMIT, code="OK") == 2

    classifier = scrape(mesh.classifier)
    assert _value(classifier, "weather_classifier_jobs_total", outcome="succeeded") == 1
    assert _value(classifier, "weather_classifier_batch_size_count") >= 1
    assert _value(classifier, "weather_classifier_batch_size_sum") >= 1
    assert _value(classifier, "weather_classifier_model_seconds_count") >= 1
    assert _value(classifier, "weather_classifier_model_seconds_sum") > 0
    assert _has(classifier, "weather_queue_pending_messages", consumer="classifier")
    assert _has(classifier, "weather_queue_ack_pending_messages", consumer="classifier")

    # queued + succeeded of the first job, the cached answer of the second.
    reporting = await _eventually(
        lambda: scrape(mesh.reporting),
        lambda samples: _value(samples, "weather_reporting_events_total", outcome="recorded") >= 3,
    )
    assert _value(reporting, "weather_reporting_events_total", outcome="recorded") == 3
    assert _has(reporting, "weather_queue_pending_messages")
    assert _has(reporting, "weather_queue_ack_pending_messages")
    for samples in (dispatcher, classifier, reporting):
        assert _value(samples, "weather_serving") == 1


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and wanted <= sample_labels
    )


def _has(samples: Samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(sample == name and wanted <= sample_labels for sample, sample_labels in samples)


async def _eventually(
    read: Callable[[], Samples], done: Callable[[Samples], bool], within_seconds: float = 30.0
) -> Samples:
    deadline = time.monotonic() + within_seconds
    samples = await asyncio.to_thread(read)
    while not done(samples) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        samples = await asyncio.to_thread(read)
    return samples


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
