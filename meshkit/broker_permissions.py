"""Who may do what on the broker: one NATS user per service, allowed only what it does.

The table is data, built from the subjects and streams of `meshkit.broker_layout`, so a
renamed stream moves its permissions with it. The local runner renders it into the
nats-server configuration (`devmesh.nats`); a cluster renders the same table.

What each service may publish, beyond the JetStream API calls it makes:

- dispatcher: `queued` events, cache-answered `succeeded` ones and the reconciler's `failed`
  ones, feedback on answers (`weather.job.*.feedback.given`, GiveFeedback), photo bytes in
  the image bucket (the only writer), idempotency claims;
- classifier: `succeeded` and `failed` events, the result cache, the current model
  version; never a `queued` event, never an image; it reads the model repository and its
  `current` pointer, which only the publishing tool writes;
- reporting: nothing but its consumer's acks (it only reads the job stream).

One tool has a user too, because a cluster has no admin: `models`, the model publishing
tool (`training.publish_model`), the only writer of the model repository and its `current`
pointer, and allowed nothing else.

Subscriptions are inboxes only (replies, consumers' deliveries), and for the dispatcher the
job events as they are published (`JOB_EVENT_NOTICES`: what wakes a WatchJob up).

JetStream API subjects are granted verb by verb and stream by stream: every service may
declare (create, update, look at) the mesh's streams, because each one declares the layout
it needs at start; none may delete or purge a stream, except the dispatcher purging the
image bucket's stale chunks, which the object store does when a photo is rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshkit.broker_layout import (
    ADVISORIES_STREAM,
    IDEMPOTENCY_BUCKET,
    IMAGES_BUCKET,
    IMAGES_STREAM,
    JOB_SUBJECT_ROOT,
    JOBS_STREAM,
    MODEL_RELEASES_BUCKET,
    MODEL_REPOSITORY_BUCKET,
    MODEL_REPOSITORY_STREAM,
    MODELS_BUCKET,
    RESULTS_BUCKET,
    feedback_subject,
)
from meshkit.job_states import EventKind

ADMIN_USER = "devmesh"
"""The local runner's and the tools' user (benchmarks, test fixtures): every right, for
looking at what the services stored. A cluster has no such user."""

INBOXES = "_INBOX.>"

MODEL_PUBLISHER_USER = "models"
"""The model publishing tool's user (its settings are prefixed `MODELS_`)."""


@dataclass(frozen=True)
class BrokerPermissions:
    """Subjects a user may publish to and subscribe to (NATS wildcards)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _events(*kinds: EventKind) -> list[str]:
    return [f"{JOB_SUBJECT_ROOT}.*.{kind}" for kind in kinds]


def _declare(streams: Iterable[str]) -> list[str]:
    """Create a stream, bring its limits in line, read its configuration."""
    return [
        f"$JS.API.STREAM.{verb}.{stream}"
        for stream in streams
        for verb in ("CREATE", "UPDATE", "INFO")
    ]


def _consume(stream: str) -> list[str]:
    """Declare, bind and pull durable or ordered consumers of `stream`, ack its messages."""
    consumer_api = f"$JS.API.CONSUMER.{{verb}}.{stream}.>"
    return [
        consumer_api.format(verb=verb)
        for verb in ("CREATE", "DURABLE.CREATE", "INFO", "MSG.NEXT", "DELETE")
    ] + [f"$JS.API.CONSUMER.CREATE.{stream}", f"$JS.ACK.{stream}.>", f"$JS.FC.{stream}.>"]


def _read(stream: str) -> list[str]:
    """Direct gets (by sequence or last by subject) and stored-message gets."""
    return [
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
    ]


_MESH_STREAMS = (
    JOBS_STREAM,
    IMAGES_STREAM,
    kv_stream(RESULTS_BUCKET),
    kv_stream(IDEMPOTENCY_BUCKET),
    kv_stream(MODELS_BUCKET),
    MODEL_REPOSITORY_STREAM,
    kv_stream(MODEL_RELEASES_BUCKET),
)
# STREAM.NAMES: nats.py looks a stream up by subject when a subscription names none (the
# object store's reads of multi-chunk objects do).
_LOOK_AROUND = ("$JS.API.INFO", "$JS.API.STREAM.NAMES")
"""The account's JetStream info and stream names: what every client's setup asks first."""
_EVERY_SERVICE = [*_LOOK_AROUND, *_declare(_MESH_STREAMS)]


def _permissions(publish: list[str], subscribe: tuple[str, ...] = ()) -> BrokerPermissions:
    return BrokerPermissions(
        publish=tuple(_EVERY_SERVICE + publish), subscribe=(INBOXES, *subscribe)
    )


JOB_EVENT_NOTICES = f"{JOB_SUBJECT_ROOT}.*.*"
"""A job's events as they are published (core NATS, not the stream): what wakes a WatchJob
up; it then reads the stream, which it may read anyway. Not feedback (one token more)."""


def service_permissions() -> Mapping[str, BrokerPermissions]:
    """The NATS user of each service (named after it) and what it may do."""
    return {
        "dispatcher": _permissions(
            [
                # failed: the reconciler ends jobs no event finished.
                *_events("queued", "succeeded", "failed"),
                feedback_subject("*"),  # GiveFeedback
                f"$O.{IMAGES_BUCKET}.>",
                f"$JS.API.STREAM.PURGE.{IMAGES_STREAM}",
                f"$KV.{IDEMPOTENCY_BUCKET}.>",
                *_read(JOBS_STREAM),
                *_consume(JOBS_STREAM),
                *_read(IMAGES_STREAM),
                *_read(kv_stream(IDEMPOTENCY_BUCKET)),
                *_read(kv_stream(RESULTS_BUCKET)),
                *_read(kv_stream(MODELS_BUCKET)),
                # Storage usage for admission: every stream of the budget, advisories too.
                f"$JS.API.STREAM.INFO.{ADVISORIES_STREAM}",
            ],
            subscribe=(JOB_EVENT_NOTICES,),  # WatchJob
        ),
        "classifier": _permissions(
            [
                *_events("succeeded", "failed"),
                f"$KV.{RESULTS_BUCKET}.>",
                f"$KV.{MODELS_BUCKET}.>",
                *_declare([ADVISORIES_STREAM]),
                *_read(JOBS_STREAM),
                *_consume(JOBS_STREAM),
                *_consume(ADVISORIES_STREAM),
                *_read(IMAGES_STREAM),
                *_consume(IMAGES_STREAM),
                *_read(kv_stream(RESULTS_BUCKET)),
                *_read(kv_stream(MODELS_BUCKET)),
                # The model repository: read the file the `current` pointer names, watch it.
                *_read(MODEL_REPOSITORY_STREAM),
                *_consume(MODEL_REPOSITORY_STREAM),
                *_read(kv_stream(MODEL_RELEASES_BUCKET)),
                *_consume(kv_stream(MODEL_RELEASES_BUCKET)),
            ]
        ),
        "reporting": _permissions(_consume(JOBS_STREAM)),
    }


def server_permissions(permissions: BrokerPermissions) -> dict[str, dict[str, list[str]]]:
    """A user's `permissions` block as nats-server's configuration spells it (the local
    runner's file and the cluster chart's `authorization` both write this)."""
    return {
        "publish": {"allow": list(permissions.publish)},
        "subscribe": {"allow": list(permissions.subscribe)},
    }


def tool_permissions() -> Mapping[str, BrokerPermissions]:
    """The users of the tools an operator runs against a cluster's broker (no admin there)."""
    repository, releases = MODEL_REPOSITORY_STREAM, kv_stream(MODEL_RELEASES_BUCKET)
    return {
        MODEL_PUBLISHER_USER: BrokerPermissions(
            publish=(
                *_LOOK_AROUND,
                *_declare([repository, releases]),
                f"$O.{MODEL_REPOSITORY_BUCKET}.>",
                f"$JS.API.STREAM.PURGE.{repository}",  # a rewritten object's stale chunks
                f"$KV.{MODEL_RELEASES_BUCKET}.>",
                *_read(repository),
                *_consume(repository),
                *_read(releases),
                *_consume(releases),
            ),
            subscribe=(INBOXES,),
        )
    }


def admin_permissions() -> BrokerPermissions:
    return BrokerPermissions(publish=(">",), subscribe=(">",))
