"""The job broker's shape, shared by every service that touches it: names, declarations,
event encoding and publishing, and the content-addressed image store.

Why one module: the dispatcher, the classifier and reporting must agree byte for byte on
subjects, stream and bucket names, event ids and headers. Each service declares what it
uses at start (idempotently), so any of them may start first on an empty server.

Layout on JetStream
- stream `WEATHER_JOBS`, subjects `weather.job.<job_id>.<kind>` with kind `queued`,
  `succeeded` or `failed`; a job's state is the last message on `weather.job.<job_id>.*`
  (direct get), so no service keeps a job table in memory.
- object store `weather-images`: the uploaded bytes, object name = hex sha256.
- KV `weather-results`: classification by `<model version>.<sha256>` (the result cache).
- KV `weather-idempotency`: Submit's idempotency keys → the job they created.
- KV `weather-models`: the model version the classifiers currently serve.

Event ids double as `Nats-Msg-Id`: `queued` uses the job id, and both terminal kinds use
`<job_id>.terminal`, so a redelivered job that is classified twice still yields one
terminal event (JetStream drops the second publish inside the duplicate window).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from nats import errors as nats_errors
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError, ObjectNotFoundError
from opentelemetry import context as otel_context
from opentelemetry import propagate
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from weather.v1 import events_pb2

logger = logging.getLogger(__name__)

JOBS_STREAM = "WEATHER_JOBS"
JOB_SUBJECT_ROOT = "weather.job"
QUEUED_SUBJECTS = f"{JOB_SUBJECT_ROOT}.*.queued"
IMAGES_BUCKET = "weather-images"
RESULTS_BUCKET = "weather-results"
IDEMPOTENCY_BUCKET = "weather-idempotency"
MODELS_BUCKET = "weather-models"
CURRENT_MODEL_KEY = "classifier.current"

EventKind = Literal["queued", "succeeded", "failed"]
TERMINAL_KINDS: frozenset[str] = frozenset({"succeeded", "failed"})
MSG_ID_HEADER = "Nats-Msg-Id"
STREAM_NAME_IN_USE = 10058
WRONG_LAST_SEQUENCE = 10071
EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

_KV_STREAM = "KV_{bucket}"
_OBJ_STREAM = "OBJ_{bucket}"


class BrokerSettings(BaseSettings):
    """Retention and limits of the broker's streams and buckets; mixed into the settings of
    every service that declares them. Give every service the same values: the last one to
    start applies its own."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    jobs_max_age_seconds: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="How long job events stay on the broker (GetJob answers NOT_FOUND after).",
    )
    jobs_max_bytes: int = Field(
        default=1024**3,
        ge=-1,
        description="Size cap of the job event stream in bytes (oldest dropped first); -1: none.",
    )
    jobs_duplicate_window_seconds: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Window in which a republished event (same `Nats-Msg-Id`) is dropped; keep it above "
            "the classifier's ack wait times its max deliveries."
        ),
    )
    images_ttl_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long an uploaded photo is kept in the image bucket.",
    )
    images_max_bytes: int = Field(
        default=4 * 1024**3,
        ge=-1,
        description="Size cap of the image bucket in bytes (new uploads refused when full).",
    )
    results_ttl_seconds: float = Field(
        default=30 * 24 * 3600.0,
        gt=0,
        description="How long a classification stays in the result cache.",
    )
    idempotency_ttl_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long a Submit idempotency key is remembered.",
    )
    broker_replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream replicas of every stream and bucket."
    )


def job_subject(job_id: str, kind: EventKind) -> str:
    return f"{JOB_SUBJECT_ROOT}.{job_id}.{kind}"


def job_subjects(job_id: str) -> str:
    """Every event of one job (a filter for direct gets and ordered consumers)."""
    return f"{JOB_SUBJECT_ROOT}.{job_id}.*"


def is_job_id(value: str) -> bool:
    """Job ids are 32 lowercase hex digits; anything else must never reach a subject."""
    return JOB_ID_PATTERN.fullmatch(value) is not None


def terminal_event_id(job_id: str) -> str:
    return f"{job_id}.terminal"


def result_key(model_version: str, image_sha256: str) -> str:
    """KV key of a cached classification; KV keys allow no `:`, model versions have one."""
    return f"{model_version.replace(':', '-')}.{image_sha256}"


def idempotency_kv_key(idempotency_key: str) -> str:
    """Client keys are arbitrary text; their hash is a valid, fixed-size KV key."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()


class JobAlreadyStartedError(RuntimeError):
    """A job's first event was published already (by a concurrent retry)."""


class MalformedEventError(ValueError):
    """A message on a job subject that is not a JobEvent."""


def event_kind(event: events_pb2.JobEvent) -> EventKind:
    kind = event.WhichOneof("kind")
    if kind not in ("queued", "succeeded", "failed"):
        raise MalformedEventError(f"job event {event.event_id!r} has no kind")
    return kind


def decode_event(data: bytes | None) -> events_pb2.JobEvent:
    event = events_pb2.JobEvent()
    try:
        event.ParseFromString(data or b"")
    except Exception as error:  # protobuf raises its own DecodeError
        raise MalformedEventError(f"not a JobEvent: {error}") from error
    event_kind(event)
    return event


def trace_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The W3C trace context a publisher injected, so a consumer's span joins its trace."""
    return propagate.extract(dict(headers or {}))


async def publish_event(
    jetstream: JetStreamContext,
    event: events_pb2.JobEvent,
    ack_timeout_seconds: float | None = None,
    first_of_job: bool = False,
) -> api.PubAck:
    """Publish on the job's subject with `Nats-Msg-Id` = event id and the current trace
    context, and wait for the stream's ack (the event is stored once this returns).

    `first_of_job`: the stream refuses the event (JobAlreadyStartedError) when the job
    already has any event, so a job's first event is decided exactly once even when two
    Submit retries race.
    """
    headers: dict[str, str] = {MSG_ID_HEADER: event.event_id}
    if first_of_job:
        headers[EXPECTED_LAST_SUBJECT_SEQUENCE] = "0"
        headers[EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT] = job_subjects(event.job_id)
    propagate.inject(headers)
    subject = job_subject(event.job_id, event_kind(event))
    try:
        return await jetstream.publish(
            subject, event.SerializeToString(), timeout=ack_timeout_seconds, headers=headers
        )
    except APIError as error:
        if first_of_job and error.err_code == WRONG_LAST_SEQUENCE:
            raise JobAlreadyStartedError(f"job {event.job_id} already has events") from error
        raise


@dataclass(frozen=True)
class StoredEvent:
    event: events_pb2.JobEvent
    sequence: int


async def last_job_event(jetstream: JetStreamContext, job_id: str) -> StoredEvent | None:
    """The job's latest event (direct get, last by subject), or None for an unknown job."""
    try:
        message = await jetstream.get_last_msg(JOBS_STREAM, job_subjects(job_id), direct=True)
    except NotFoundError:
        return None
    return StoredEvent(decode_event(message.data), int(message.seq or 0))


async def declare_broker(jetstream: JetStreamContext, settings: BrokerSettings) -> None:
    """Create the stream and buckets, or bring their limits in line with `settings`."""
    storage = api.StorageType.FILE
    replicas = settings.broker_replicas
    await ensure_stream(
        jetstream,
        api.StreamConfig(
            name=JOBS_STREAM,
            description="Job events: weather.job.<job_id>.queued|succeeded|failed",
            subjects=[f"{JOB_SUBJECT_ROOT}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=storage,
            num_replicas=replicas,
            max_age=settings.jobs_max_age_seconds,
            max_bytes=settings.jobs_max_bytes,
            discard=api.DiscardPolicy.OLD,
            duplicate_window=settings.jobs_duplicate_window_seconds,
            allow_direct=True,
        ),
    )
    for bucket, ttl in (
        (RESULTS_BUCKET, settings.results_ttl_seconds),
        (IDEMPOTENCY_BUCKET, settings.idempotency_ttl_seconds),
        (MODELS_BUCKET, None),
    ):
        try:
            await jetstream.create_key_value(
                bucket=bucket, history=1, ttl=ttl, storage=storage, replicas=replicas, direct=True
            )
        except APIError as error:
            await _update_limits(jetstream, error, _KV_STREAM.format(bucket=bucket), max_age=ttl)
    try:
        await jetstream.create_object_store(
            IMAGES_BUCKET,
            ttl=settings.images_ttl_seconds,
            max_bytes=settings.images_max_bytes,
            storage=storage,
            replicas=replicas,
        )
    except APIError as error:
        await _update_limits(
            jetstream,
            error,
            _OBJ_STREAM.format(bucket=IMAGES_BUCKET),
            max_age=settings.images_ttl_seconds,
            max_bytes=settings.images_max_bytes,
        )


async def ensure_stream(jetstream: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or update it when it exists with another configuration."""
    try:
        await jetstream.add_stream(config)
    except APIError as error:
        if error.err_code != STREAM_NAME_IN_USE:
            raise
        logger.info("stream %s exists with other limits; updating it", config.name)
        await jetstream.update_stream(config)


async def _update_limits(
    jetstream: JetStreamContext, error: APIError, stream: str, **limits: Any
) -> None:
    if error.err_code != STREAM_NAME_IN_USE:
        raise error
    config = (await jetstream.stream_info(stream)).config
    wanted = {name: value or 0.0 for name, value in limits.items()}
    current = {name: getattr(config, name) or 0.0 for name in wanted}
    if current == wanted:
        return
    logger.info("bucket stream %s has limits %s; updating to %s", stream, current, wanted)
    await jetstream.update_stream(config.evolve(**wanted))


async def release_pull_subscription(subscription: JetStreamContext.PullSubscription) -> None:
    """Unsubscribe a pull subscription before the connection drains.

    nats-py's `fetch` takes status messages off the pending queue without `task_done`, so
    draining a connection that still holds a fetched-from subscription waits on that queue
    for the whole drain timeout: every pull consumer calls this when it stops.
    """
    with contextlib.suppress(nats_errors.Error):
        await subscription.unsubscribe()


class ImageMissingError(LookupError):
    """The image a job refers to is not in the bucket (expired, or never stored)."""


class ImageStore:
    """Content-addressed photo bytes in the `weather-images` object store.

    Objects are written as ONE chunk up to the connection's max payload, so that reading
    one back is a single direct get instead of an ordered consumer per photo.
    """

    def __init__(self, jetstream: JetStreamContext, max_payload: int, ttl_seconds: float) -> None:
        self._jetstream = jetstream
        self._max_chunk = max(64 * 1024, max_payload - 4096)
        self._ttl = timedelta(seconds=ttl_seconds)
        self._stream = _OBJ_STREAM.format(bucket=IMAGES_BUCKET)

    def _meta_subject(self, name: str) -> str:
        return f"$O.{IMAGES_BUCKET}.M.{_b64(name)}"

    async def _stored_info(self, name: str) -> tuple[api.ObjectInfo, datetime | None] | None:
        try:
            message = await self._jetstream.get_last_msg(
                self._stream, self._meta_subject(name), direct=True
            )
        except NotFoundError:
            return None
        info = api.ObjectInfo.from_response(json.loads(message.data or b"{}"))
        if info.deleted:
            return None
        return info, message.time

    async def put_once(self, data: bytes, image_sha256: str) -> events_pb2.ImageReference:
        """Store the bytes unless this exact content is already there and not about to
        expire (under half its TTL left: rewritten, so a queued job never outlives it)."""
        stored = await self._stored_info(image_sha256)
        fresh_after = datetime.now(UTC) - self._ttl / 2
        if stored is None or stored[1] is None or stored[1] < fresh_after:
            bucket = await self._jetstream.object_store(IMAGES_BUCKET)
            await bucket.put(
                image_sha256,
                data,
                meta=api.ObjectMeta(
                    name=image_sha256,
                    # Sized to the photo: nats-py allocates a whole chunk buffer per put.
                    options=api.ObjectMetaOptions(
                        max_chunk_size=max(1, min(len(data), self._max_chunk))
                    ),
                ),
            )
        return events_pb2.ImageReference(
            bucket=IMAGES_BUCKET,
            object_name=image_sha256,
            sha256=image_sha256,
            size_bytes=len(data),
        )

    async def get(self, image_ref: events_pb2.ImageReference) -> bytes:
        """The bytes, checked against the reference's sha256. ImageMissingError when gone."""
        data = await self._get_single_chunk(image_ref.object_name)
        if data is None:
            bucket = await self._jetstream.object_store(IMAGES_BUCKET)
            try:
                data = (await bucket.get(image_ref.object_name)).data or b""
            except ObjectNotFoundError as error:
                raise ImageMissingError(f"image {image_ref.object_name} is gone") from error
        if image_ref.sha256 and hashlib.sha256(data).hexdigest() != image_ref.sha256:
            raise ImageMissingError(f"image {image_ref.object_name} does not match its sha256")
        return data

    async def _get_single_chunk(self, name: str) -> bytes | None:
        """The bytes of a one-chunk object by direct get; None for a multi-chunk one.

        A concurrent rewrite of the same photo purges the old chunk after publishing the new
        meta, so a chunk that vanished between the two reads is looked up once more.
        """
        for _attempt in range(2):
            stored = await self._stored_info(name)
            if stored is None:
                raise ImageMissingError(f"image {name} is not in the store")
            info = stored[0]
            if info.chunks != 1 or not info.nuid:
                return None
            try:
                chunk = await self._jetstream.get_last_msg(
                    self._stream, f"$O.{IMAGES_BUCKET}.C.{info.nuid}", direct=True
                )
            except NotFoundError:
                continue
            return chunk.data or b""
        raise ImageMissingError(f"image {name} lost its data")


def _b64(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode()
