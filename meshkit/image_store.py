"""Content-addressed photo bytes in the `weather-images` object store.

The dispatcher stores each upload once under its sha256; the classifier reads it back by the
reference a queued event carries.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from meshkit.broker_layout import IMAGES_BUCKET, IMAGES_STREAM
from weather.v1 import events_pb2

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
ROLLUP_SUBJECT = "sub"
"""The meta message replaces the object's earlier meta (nats-py's `MSG_ROLLUP_SUBJECT`)."""


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
        self._stream = IMAGES_STREAM

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
            previous = stored[0] if stored is not None else None
            if len(data) <= self._max_chunk and SHA256_HEX.fullmatch(image_sha256):
                await self._put_one_chunk(image_sha256, data, previous)
            else:
                bucket = ObjectStore(IMAGES_BUCKET, self._stream, self._jetstream)
                await bucket.put(
                    image_sha256,
                    data,
                    meta=api.ObjectMeta(
                        name=image_sha256,
                        # nats-py allocates a whole chunk buffer per put.
                        options=api.ObjectMetaOptions(max_chunk_size=self._max_chunk),
                    ),
                )
        return events_pb2.ImageReference(
            bucket=IMAGES_BUCKET,
            object_name=image_sha256,
            sha256=image_sha256,
            size_bytes=len(data),
        )

    async def _put_one_chunk(self, name: str, data: bytes, previous: api.ObjectInfo | None) -> None:
        """Write the object as nats-py's `ObjectStore.put` does (a chunk, then its meta as a
        roll-up, then the old chunk purged), so any object-store reader finds it, minus the
        two lookups `put` makes first (the stream's info and the meta put_once has just
        read): two broker round trips fewer per Submit.

        One difference: the chunk's subject is named after the content (`name`, its sha256)
        instead of a random id, so a reader that knows the sha256 fetches the bytes in one
        direct get, without reading the meta first. A rewrite of the same content puts
        identical bytes on the same subject and keeps only the newest."""
        chunk_subject = _chunk_subject(name)
        await self._jetstream.publish(chunk_subject, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        info = api.ObjectInfo(
            name=name,
            bucket=IMAGES_BUCKET,
            nuid=name,
            size=len(data),
            chunks=1,
            mtime=datetime.now(UTC).isoformat(),
            digest=f"SHA-256={digest}",
            options=api.ObjectMetaOptions(max_chunk_size=max(1, len(data))),
        )
        rewrite = previous is not None and previous.nuid == name
        try:
            await self._jetstream.publish(
                self._meta_subject(name),
                json.dumps(info.as_dict()).encode(),
                headers={api.Header.ROLLUP: ROLLUP_SUBJECT},
            )
        except Exception:
            # The earlier meta (if any) still points at this subject: keep one chunk then.
            await self._purge(chunk_subject, keep=1 if rewrite else None)
            raise
        if rewrite:
            await self._purge(chunk_subject, keep=1)
        elif previous is not None and previous.nuid:
            await self._purge(_chunk_subject(previous.nuid))

    async def _purge(self, subject: str, keep: int | None = None) -> None:
        await self._jetstream.purge_stream(self._stream, subject=subject, keep=keep)

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

        One read when the chunk is named after the content (what `put_once` writes); else
        (objects written by nats-py's `put`) the meta first, then its chunk. A concurrent
        rewrite purges the old chunk after publishing the new meta, so a chunk that
        vanished between the two reads is looked up once more.
        """
        if SHA256_HEX.fullmatch(name):  # never a wildcard in a subject
            with contextlib.suppress(NotFoundError):
                chunk = await self._jetstream.get_last_msg(
                    self._stream, _chunk_subject(name), direct=True
                )
                return chunk.data or b""
        for _attempt in range(2):
            stored = await self._stored_info(name)
            if stored is None:
                raise ImageMissingError(f"image {name} is not in the store")
            info = stored[0]
            if info.chunks != 1 or not info.nuid:
                return None
            try:
                chunk = await self._jetstream.get_last_msg(
                    self._stream, _chunk_subject(info.nuid), direct=True
                )
            except NotFoundError:
                continue
            return chunk.data or b""
        raise ImageMissingError(f"image {name} lost its data")


def _chunk_subject(nuid: str) -> str:
    return f"$O.{IMAGES_BUCKET}.C.{nuid}"


def _b64(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode()
