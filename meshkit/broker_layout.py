"""What the job broker holds on JetStream, by name, and how it is declared.

Why one module: the dispatcher, the classifier and reporting must agree byte for byte on
subjects, stream and bucket names and keys. Each service declares what it uses at start
(idempotently), so any of them may start first on an empty server.

Layout on JetStream
- stream `WEATHER_JOBS`, subjects `weather.job.<job_id>.<kind>` with kind `queued`,
  `succeeded` or `failed`; a job's state is the last message on `weather.job.<job_id>.*`
  (direct get), so no service keeps a job table in memory. Feedback on a job's answer goes
  to `weather.job.<job_id>.feedback.given`: one token longer, so it never counts as the
  job's state, and its latest message is the job's current feedback.
- object store `weather-images`: the uploaded bytes, object name = hex sha256.
- KV `weather-results`: classification by `<model version>.<sha256>` (the result cache).
- KV `weather-idempotency`: Submit's idempotency keys → the job they created.
- KV `weather-models`: the model version the classifiers currently serve (announced by them).
- object store `weather-model-repository`: trained `.keras` files, object name = model version
  (see `meshkit.model_repository`).
- KV `weather-model-releases`: key `current`, the version classifiers should serve (moved by
  `make promote-model`; its history is the record of promotions and rollbacks).
- stream `WEATHER_JOBS_EXHAUSTED`: the classifier's max-deliveries advisories.

One storage budget: every one of them has a `max_bytes` (`storage_budget`), and their sum
must fit inside nats-server's `max_file_store` (JetStream reserves each stream's
`max_bytes` when it is created and refuses a stream that would overcommit the store). Those
whose loss would lose a job discard NEW writes when full: an accepted job's events are never
pushed out by later ones, and a full bucket refuses the next upload instead of dropping a
stored photo. Only the advisories drop their oldest (handled long ago; the reconciler
covers a job whose advisory is lost).

Event ids double as `Nats-Msg-Id`: `queued` uses the job id, and both terminal kinds use
`<job_id>.terminal`, so a redelivered job that is classified twice still yields one
terminal event (JetStream drops the second publish inside the duplicate window).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from meshkit.job_states import EventKind

logger = logging.getLogger(__name__)

JOBS_STREAM = "WEATHER_JOBS"
JOB_SUBJECT_ROOT = "weather.job"
ALL_JOB_SUBJECTS = f"{JOB_SUBJECT_ROOT}.>"
QUEUED_SUBJECTS = f"{JOB_SUBJECT_ROOT}.*.queued"
IMAGES_BUCKET = "weather-images"
IMAGES_STREAM = f"OBJ_{IMAGES_BUCKET}"
RESULTS_BUCKET = "weather-results"
IDEMPOTENCY_BUCKET = "weather-idempotency"
MODELS_BUCKET = "weather-models"
ADVISORIES_STREAM = "WEATHER_JOBS_EXHAUSTED"
"""The classifier's capture of JetStream's max-deliveries advisories (classifier's queue)."""
CLASSIFIER_CONSUMER = "classifier"
"""The classifier's durable consumer of queued jobs: its backlog is the queue depth."""
MODELS_MAX_BYTES = 1024**2
"""The model bucket holds one key with history 1: a few hundred bytes, never more."""
CURRENT_MODEL_KEY = "classifier.current"
MODEL_REPOSITORY_BUCKET = "weather-model-repository"
MODEL_REPOSITORY_STREAM = f"OBJ_{MODEL_REPOSITORY_BUCKET}"
MODEL_RELEASES_BUCKET = "weather-model-releases"
CURRENT_RELEASE_KEY = "current"
RELEASE_HISTORY = 16
RELEASES_MAX_BYTES = 1024**2  # 16 versions of one short key: a few kB, whatever the budget
STREAM_NAME_IN_USE = 10058
INSUFFICIENT_RESOURCES = 10047
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

_KV_STREAM = "KV_{bucket}"


class BrokerSettings(BaseSettings):
    """Retention and limits of the broker's streams and buckets; mixed into the settings of
    every service that declares them. Give every service the same values: the last one to
    start applies its own."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    retention_seconds: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description=(
            "How long a job is kept, everywhere at once: its events (GetJob answers NOT_FOUND "
            "after), its photo (from its last upload) and its reporting row."
        ),
    )
    jobs_max_bytes: int = Field(
        default=1024**3,
        ge=1,
        description=(
            "Size budget of the job event stream in bytes; when full, new events are refused "
            "(never an accepted job's)."
        ),
    )
    jobs_duplicate_window_seconds: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Window in which a republished event (same `Nats-Msg-Id`) is dropped; keep it above "
            "the classifier's ack wait times its max deliveries."
        ),
    )
    images_max_bytes: int = Field(
        default=4 * 1024**3,
        ge=1,
        description="Size budget of the image bucket in bytes (new uploads refused when full).",
    )
    results_ttl_seconds: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description=(
            "How long a classification stays in the result cache (at most retention_seconds: "
            "it is derived from the photo)."
        ),
    )
    results_max_bytes: int = Field(
        default=256 * 1024**2,
        ge=1,
        description="Size budget of the result cache in bytes (when full, results go uncached).",
    )
    idempotency_ttl_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long a Submit idempotency key is remembered.",
    )
    model_repository_max_bytes: int = Field(
        default=512 * 1024**2,
        ge=1,
        description="Size budget of the model repository in bytes (new models refused when full).",
    )
    idempotency_max_bytes: int = Field(
        default=64 * 1024**2,
        ge=1,
        description=(
            "Size budget of the idempotency keys in bytes (when full, Submits with a key get "
            "RESOURCE_EXHAUSTED)."
        ),
    )
    advisories_max_bytes: int = Field(
        default=64 * 1024**2,
        ge=1,
        description="Size budget of the stream of max-deliveries advisories in bytes.",
    )

    @model_validator(mode="after")
    def _nothing_outlives_its_job(self) -> BrokerSettings:
        for name in ("results_ttl_seconds", "idempotency_ttl_seconds"):
            if getattr(self, name) > self.retention_seconds:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must not exceed retention_seconds "
                    f"({self.retention_seconds}): what a job leaves expires with it"
                )
        if self.jobs_duplicate_window_seconds > self.retention_seconds:
            raise ValueError(
                f"jobs_duplicate_window_seconds ({self.jobs_duplicate_window_seconds}) must "
                f"not exceed retention_seconds ({self.retention_seconds}) (JetStream refuses it)"
            )
        return self

    broker_replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream replicas of every stream and bucket."
    )


def storage_budget(settings: BrokerSettings) -> dict[str, int]:
    """Every stream the mesh declares (buckets by their backing stream) and its `max_bytes`:
    what JetStream reserves on each server that holds a replica."""
    return {
        JOBS_STREAM: settings.jobs_max_bytes,
        IMAGES_STREAM: settings.images_max_bytes,
        _KV_STREAM.format(bucket=RESULTS_BUCKET): settings.results_max_bytes,
        _KV_STREAM.format(bucket=IDEMPOTENCY_BUCKET): settings.idempotency_max_bytes,
        _KV_STREAM.format(bucket=MODELS_BUCKET): MODELS_MAX_BYTES,
        ADVISORIES_STREAM: settings.advisories_max_bytes,
        MODEL_REPOSITORY_STREAM: settings.model_repository_max_bytes,
        _KV_STREAM.format(bucket=MODEL_RELEASES_BUCKET): RELEASES_MAX_BYTES,
    }


def job_subject(job_id: str, kind: EventKind) -> str:
    return f"{JOB_SUBJECT_ROOT}.{job_id}.{kind}"


def feedback_subject(job_id: str) -> str:
    """Where a job's feedback goes; its last message is the job's current feedback."""
    return f"{JOB_SUBJECT_ROOT}.{job_id}.feedback.given"


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


def idempotency_kv_key(idempotency_key: str, owner: str = "") -> str:
    """Client keys are arbitrary text; their hash is a valid, fixed-size KV key. A signed-in
    owner's keys are their own: another caller reusing the same key makes another job
    instead of reading theirs (anonymous keys share one space, as before owners existed)."""
    scoped = f"{owner}\x00{idempotency_key}" if owner else idempotency_key
    return hashlib.sha256(scoped.encode("utf-8")).hexdigest()


async def declare_broker(jetstream: JetStreamContext, settings: BrokerSettings) -> None:
    """Create the stream and buckets, or bring their limits in line with `settings`."""
    storage = api.StorageType.FILE
    replicas = settings.broker_replicas
    await ensure_stream(
        jetstream,
        api.StreamConfig(
            name=JOBS_STREAM,
            description="Job events: weather.job.<job_id>.queued|succeeded|failed|feedback.given",
            subjects=[ALL_JOB_SUBJECTS],
            retention=api.RetentionPolicy.LIMITS,
            storage=storage,
            num_replicas=replicas,
            max_age=settings.retention_seconds,
            max_bytes=settings.jobs_max_bytes,
            discard=api.DiscardPolicy.NEW,
            duplicate_window=settings.jobs_duplicate_window_seconds,
            allow_direct=True,
        ),
    )
    budget = storage_budget(settings)
    for bucket, ttl in (
        (RESULTS_BUCKET, settings.results_ttl_seconds),
        (IDEMPOTENCY_BUCKET, settings.idempotency_ttl_seconds),
        (MODELS_BUCKET, None),
    ):
        stream = _KV_STREAM.format(bucket=bucket)
        try:
            await jetstream.create_key_value(
                bucket=bucket,
                history=1,
                ttl=ttl,
                max_bytes=budget[stream],
                storage=storage,
                replicas=replicas,
                direct=True,
            )
        except APIError as error:
            await _update_limits(jetstream, error, stream, max_age=ttl, max_bytes=budget[stream])
    await declare_model_repository(jetstream, settings)
    try:
        await jetstream.create_object_store(
            IMAGES_BUCKET,
            ttl=settings.retention_seconds,
            max_bytes=settings.images_max_bytes,
            storage=storage,
            replicas=replicas,
        )
    except APIError as error:
        await _update_limits(
            jetstream,
            error,
            IMAGES_STREAM,
            max_age=settings.retention_seconds,
            max_bytes=settings.images_max_bytes,
        )


async def declare_model_repository(jetstream: JetStreamContext, settings: BrokerSettings) -> None:
    """The model repository and its `current` pointer: declared by every service with the
    rest, and by the publishing tool alone (which must not touch the other limits)."""
    storage = api.StorageType.FILE
    try:
        await jetstream.create_key_value(
            bucket=MODEL_RELEASES_BUCKET,
            history=RELEASE_HISTORY,
            max_bytes=RELEASES_MAX_BYTES,
            storage=storage,
            replicas=settings.broker_replicas,
            direct=True,
        )
    except APIError as error:
        await _update_limits(
            jetstream,
            error,
            _KV_STREAM.format(bucket=MODEL_RELEASES_BUCKET),
            max_bytes=RELEASES_MAX_BYTES,
        )
    try:
        await jetstream.create_object_store(
            MODEL_REPOSITORY_BUCKET,
            max_bytes=settings.model_repository_max_bytes,
            storage=storage,
            replicas=settings.broker_replicas,
        )
    except APIError as error:
        await _update_limits(
            jetstream,
            error,
            MODEL_REPOSITORY_STREAM,
            max_bytes=settings.model_repository_max_bytes,
        )


async def ensure_stream(jetstream: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or update it when it exists (the create of an existing stream with a
    `max_bytes` can fail for want of storage, see `_update_limits`)."""
    try:
        await jetstream.add_stream(config)
    except APIError as error:
        if error.err_code not in (STREAM_NAME_IN_USE, INSUFFICIENT_RESOURCES):
            raise
        assert config.name is not None  # every stream of the layout is named
        try:
            await jetstream.stream_info(config.name)
        except NotFoundError:
            raise error from None
        logger.info("stream %s exists; updating its configuration", config.name)
        await jetstream.update_stream(config)


async def _update_limits(
    jetstream: JetStreamContext, error: APIError, stream: str, **limits: Any
) -> None:
    """After a bucket's create failed: bring an existing bucket's limits in line.

    Creating a bucket that exists fails with "name in use" when its configuration differs,
    and, for an object store with a `max_bytes`, with "insufficient storage resources"
    even when it is identical (the server counts the existing reservation twice); both
    mean "update it". The error stands when the stream really is not there.
    """
    if error.err_code not in (STREAM_NAME_IN_USE, INSUFFICIENT_RESOURCES):
        raise error
    try:
        config = (await jetstream.stream_info(stream)).config
    except NotFoundError:
        raise error from None
    wanted = {name: value or 0.0 for name, value in limits.items()}
    current = {name: getattr(config, name) or 0.0 for name in wanted}
    if current == wanted:
        return
    logger.info("bucket stream %s has limits %s; updating to %s", stream, current, wanted)
    await jetstream.update_stream(config.evolve(**wanted))


ConsumerDeclarations = Callable[[JetStreamContext], Awaitable[None]]


class BrokerSetup:
    """A service's NATS setup hook (see `meshkit.nats.NatsConnection`): declares the broker,
    then the service's own consumers, then lets the service's workers start.

    `ready` is set once everything is declared, and `jetstream` is usable from then on; the
    consumers and the queue-lag probe wait on it.
    """

    def __init__(
        self, settings: BrokerSettings, declare_consumers: ConsumerDeclarations | None = None
    ) -> None:
        self._settings = settings
        self._declare_consumers = declare_consumers
        self.ready = asyncio.Event()
        self.jetstream: JetStreamContext | None = None

    async def __call__(self, jetstream: JetStreamContext) -> None:
        await declare_broker(jetstream, self._settings)
        if self._declare_consumers is not None:
            await self._declare_consumers(jetstream)
        self.jetstream = jetstream
        self.ready.set()

    async def declared(self) -> JetStreamContext:
        """Wait until everything is declared; the JetStream context to use from then on."""
        await self.ready.wait()
        assert self.jetstream is not None  # set before `ready`
        return self.jetstream
