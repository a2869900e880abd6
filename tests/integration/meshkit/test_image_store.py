"""The photo store against a real nats-server: what the dispatcher writes, any object-store
reader (ours, nats-py's) reads back whole, and a rewrite leaves no orphaned chunk."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

from devmesh.nats import NatsServer
from meshkit.broker_layout import IMAGES_BUCKET, IMAGES_STREAM, BrokerSettings, declare_broker
from meshkit.image_store import ImageStore
from weather.v1 import events_pb2

WEEK = 7 * 24 * 3600.0


@pytest.fixture
async def jetstream(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(**nats_server.connect_options())
    jetstream = client.jetstream()
    await declare_broker(jetstream, BrokerSettings())
    yield jetstream
    await client.close()


def photo(size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


async def test_a_stored_photo_reads_back_whole_through_ours_and_nats_py(
    jetstream: JetStreamContext,
) -> None:
    store = ImageStore(jetstream, jetstream._nc.max_payload, WEEK)
    data, sha = photo(70_000)
    reference = await store.put_once(data, sha)
    assert await store.get(reference) == data
    # nats-py checks the object's digest and size against the meta we wrote.
    read = await (await jetstream.object_store(IMAGES_BUCKET)).get(sha)
    assert read.data == data
    assert read.info.size == len(data)


async def test_the_same_photo_twice_is_stored_once(jetstream: JetStreamContext) -> None:
    store = ImageStore(jetstream, jetstream._nc.max_payload, WEEK)
    data, sha = photo(5_000)
    await store.put_once(data, sha)
    await store.put_once(data, sha)
    state = (await jetstream.stream_info(IMAGES_STREAM)).state
    assert state.messages == 2  # one chunk and its meta


async def test_a_rewrite_of_a_photo_near_expiry_purges_its_old_chunk(
    jetstream: JetStreamContext,
) -> None:
    store = ImageStore(jetstream, jetstream._nc.max_payload, ttl_seconds=0.02)
    data, sha = photo(5_000)
    await store.put_once(data, sha)
    await asyncio.sleep(0.05)  # past half its TTL: the next put rewrites it
    reference = await store.put_once(data, sha)
    state = (await jetstream.stream_info(IMAGES_STREAM)).state
    assert state.messages == 2
    assert await store.get(reference) == data


async def test_a_photo_larger_than_one_message_is_stored_in_chunks(
    jetstream: JetStreamContext,
) -> None:
    store = ImageStore(jetstream, max_payload=64 * 1024, ttl_seconds=WEEK)
    data, sha = photo(300_000)
    reference = await store.put_once(data, sha)
    assert await store.get(reference) == data
    read = await (await jetstream.object_store(IMAGES_BUCKET)).get(sha)
    assert (read.info.chunks or 0) > 1


async def test_a_photo_is_read_in_one_get_from_the_chunk_named_after_its_content(
    jetstream: JetStreamContext,
) -> None:
    store = ImageStore(jetstream, jetstream._nc.max_payload, WEEK)
    data, sha = photo(5_000)
    await store.put_once(data, sha)
    chunk = await jetstream.get_last_msg(IMAGES_STREAM, f"$O.{IMAGES_BUCKET}.C.{sha}")
    assert chunk.data == data


async def test_a_photo_written_by_nats_py_is_read_through_its_meta(
    jetstream: JetStreamContext,
) -> None:
    """Objects stored before chunks were named after their content (random chunk ids)."""
    data, sha = photo(5_000)
    await (await jetstream.object_store(IMAGES_BUCKET)).put(sha, data)
    store = ImageStore(jetstream, jetstream._nc.max_payload, WEEK)
    reference = events_pb2.ImageReference(
        bucket=IMAGES_BUCKET, object_name=sha, sha256=sha, size_bytes=len(data)
    )
    assert await store.get(reference) == data
