"""Least privilege on the broker, against a real nats-server run as `make up` runs it:
each service's user may publish only what that service does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from devmesh.nats import NatsServer
from meshkit.broker_layout import (
    IMAGES_BUCKET,
    JOBS_STREAM,
    BrokerSettings,
    declare_broker,
    declare_model_repository,
    job_subject,
)
from meshkit.broker_permissions import MODEL_PUBLISHER_USER
from meshkit.job_states import EVENT_KINDS
from meshkit.model_repository import (
    current_model_version,
    fetch_model,
    promote_model,
    publish_model,
    release_history,
)

JOB_ID = "ab" * 16
# A denied publish gets no ack: the JetStream publish times out after this.
DENIED_ACK_SECONDS = 2.0


@asynccontextmanager
async def connected(server: NatsServer, user: str) -> AsyncIterator[Client]:
    client = await nats.connect(**server.connect_options(user), allow_reconnect=False)
    try:
        yield client
    finally:
        await client.close()


async def stored_on(server: NatsServer, subject: str) -> bool:
    async with connected(server, "devmesh") as admin:
        try:
            await admin.jetstream().get_last_msg(JOBS_STREAM, subject)
        except NotFoundError:
            return False
    return True


@pytest.fixture
async def declared(nats_server: NatsServer) -> NatsServer:
    async with connected(nats_server, "devmesh") as admin:
        await declare_broker(admin.jetstream(), BrokerSettings())
    return nats_server


async def test_the_classifier_user_cannot_publish_a_queued_event(declared: NatsServer) -> None:
    subject = job_subject(JOB_ID, "queued")
    async with connected(declared, "classifier") as classifier:
        with pytest.raises(NatsError):
            await classifier.jetstream().publish(subject, b"forged", timeout=DENIED_ACK_SECONDS)
    assert not await stored_on(declared, subject)

    async with connected(declared, "dispatcher") as dispatcher:
        await dispatcher.jetstream().publish(subject, b"queued", timeout=10)
    assert await stored_on(declared, subject)


async def test_reporting_publishes_no_event_and_writes_no_image(declared: NatsServer) -> None:
    async with connected(declared, "reporting") as reporting:
        for kind in EVENT_KINDS:
            with pytest.raises(NatsError):
                await reporting.jetstream().publish(
                    job_subject(JOB_ID, kind), b"forged", timeout=DENIED_ACK_SECONDS
                )
    for kind in EVENT_KINDS:
        assert not await stored_on(declared, job_subject(JOB_ID, kind))


async def test_the_classifier_cannot_write_images(declared: NatsServer) -> None:
    async with connected(declared, "classifier") as classifier:
        store = await classifier.jetstream().object_store(IMAGES_BUCKET)
        with pytest.raises(NatsError):
            await store.put("forged", b"not a photo")
    async with connected(declared, "devmesh") as admin:
        store = await admin.jetstream().object_store(IMAGES_BUCKET)
        with pytest.raises(NatsError):
            await store.get_info("forged")


async def test_a_client_without_credentials_is_refused(nats_server: NatsServer) -> None:
    with pytest.raises(NatsError):
        await nats.connect(nats_server.url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_the_classifier_reads_a_multi_chunk_image_the_dispatcher_wrote(
    declared: NatsServer,
) -> None:
    photo = bytes(range(256)) * 8 * 1024  # 2 MiB: many chunks, read by an ordered consumer
    async with connected(declared, "dispatcher") as dispatcher:
        store = await dispatcher.jetstream().object_store(IMAGES_BUCKET)
        await store.put("large", photo)
    async with connected(declared, "classifier") as classifier:
        store = await classifier.jetstream().object_store(IMAGES_BUCKET)
        assert (await store.get("large")).data == photo


async def test_the_model_publisher_publishes_and_promotes_but_queues_no_job(
    declared: NatsServer,
) -> None:
    """The user an operator runs `training.publish_model` as against a cluster (no admin
    there): every step of publish, show and promote passes; a job event is refused."""
    model_bytes = b"not really a keras file, but bytes with a version"
    async with connected(declared, MODEL_PUBLISHER_USER) as publisher:
        jetstream = publisher.jetstream()
        await declare_model_repository(jetstream, BrokerSettings())
        published, stored = await publish_model(
            jetstream, model_bytes, published_by="ci@test", published_at=datetime.now(UTC)
        )
        assert stored
        assert not (
            await publish_model(
                jetstream, model_bytes, published_by="x", published_at=datetime.now(UTC)
            )
        )[1]
        await promote_model(jetstream, published.version)
        assert await current_model_version(jetstream) == published.version
        assert await release_history(jetstream) == [published.version]
        assert await fetch_model(jetstream, published.version) == model_bytes
        subject = job_subject(JOB_ID, "queued")
        with pytest.raises(NatsError):
            await jetstream.publish(subject, b"forged", timeout=DENIED_ACK_SECONDS)
    assert not await stored_on(declared, subject)
