"""The model repository on the broker: trained `.keras` files by version, and the `current`
pointer that says which one the classifiers serve.

Why here: the publishing tool writes the repository and the classifier reads it; both must
agree on the version of a file (its content hash, the one every answer carries), on the
object headers, and on where the pointer lives. Bucket names are in `broker_layout`.

A model's version is `sha256:` + the first 12 hex digits of the SHA-256 of its bytes, so
the same bytes always get the same version (publishing twice stores one object) and a
version names exactly one file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError, ObjectNotFoundError

from meshkit.broker_layout import (
    CURRENT_RELEASE_KEY,
    MODEL_RELEASES_BUCKET,
    MODEL_REPOSITORY_BUCKET,
)

MODEL_VERSION_PREFIX = "sha256:"
MODEL_VERSION_DIGITS = 12
MODEL_VERSION_PATTERN = rf"^{MODEL_VERSION_PREFIX}[0-9a-f]{{{MODEL_VERSION_DIGITS}}}$"
PUBLISHED_BY_HEADER = "Weather-Model-Published-By"
PUBLISHED_AT_HEADER = "Weather-Model-Published-At"
METRICS_HEADER = "Weather-Model-Metrics"


class ModelNotFoundError(LookupError):
    """No model with that version in the repository (never published, or deleted)."""


def model_version(model_bytes: bytes) -> str:
    """The version of a model file: what every answer carries and the object's name."""
    digest = hashlib.sha256(model_bytes).hexdigest()[:MODEL_VERSION_DIGITS]
    return MODEL_VERSION_PREFIX + digest


def is_model_version(value: str) -> bool:
    """Whether `value` has the form `model_version` gives (what a pin or a pointer may hold)."""
    return re.fullmatch(MODEL_VERSION_PATTERN, value) is not None


@dataclass(frozen=True)
class PublishedModel:
    """What the repository knows about one model besides its bytes."""

    version: str
    size: int
    published_by: str
    published_at: str
    metrics: dict[str, Any] | None


def _published_model(info: api.ObjectInfo) -> PublishedModel:
    headers: dict[str, Any] = dict(info.headers or {})

    def header(name: str) -> str:
        value = headers.get(name, "")
        return str(value[0] if isinstance(value, list) and value else value)

    metrics_text = header(METRICS_HEADER)
    return PublishedModel(
        version=info.name,
        size=info.size or 0,
        published_by=header(PUBLISHED_BY_HEADER),
        published_at=header(PUBLISHED_AT_HEADER),
        metrics=json.loads(metrics_text) if metrics_text else None,
    )


async def describe_model(jetstream: JetStreamContext, version: str) -> PublishedModel:
    store = await jetstream.object_store(MODEL_REPOSITORY_BUCKET)
    try:
        info = await store.get_info(version)
    except (ObjectNotFoundError, NotFoundError) as error:
        raise ModelNotFoundError(f"no model {version} in the repository") from error
    return _published_model(info)


async def publish_model(
    jetstream: JetStreamContext,
    model_bytes: bytes,
    *,
    published_by: str,
    published_at: datetime,
    metrics: dict[str, Any] | None = None,
) -> tuple[PublishedModel, bool]:
    """Store a model under its version; `(model, True)` when stored now, `(existing, False)`
    when those bytes are already there (the first publication's facts are kept)."""
    version = model_version(model_bytes)
    try:
        return await describe_model(jetstream, version), False
    except ModelNotFoundError:
        pass
    store = await jetstream.object_store(MODEL_REPOSITORY_BUCKET)
    headers = {
        PUBLISHED_BY_HEADER: published_by,
        PUBLISHED_AT_HEADER: published_at.isoformat(),
    }
    if metrics is not None:
        headers[METRICS_HEADER] = json.dumps(metrics, sort_keys=True, separators=(",", ":"))
    meta = api.ObjectMeta(name=version, description="weather classifier (.keras)", headers=headers)
    await store.put(version, model_bytes, meta=meta)
    return await describe_model(jetstream, version), True


async def fetch_model(jetstream: JetStreamContext, version: str) -> bytes:
    """The model's bytes, checked against its version (a corrupt object is refused)."""
    store = await jetstream.object_store(MODEL_REPOSITORY_BUCKET)
    try:
        result = await store.get(version)
    except (ObjectNotFoundError, NotFoundError) as error:
        raise ModelNotFoundError(f"no model {version} in the repository") from error
    model_bytes = bytes(result.data or b"")
    if model_version(model_bytes) != version:
        raise ValueError(f"object {version} holds bytes of version {model_version(model_bytes)}")
    return model_bytes


async def current_model_version(jetstream: JetStreamContext) -> str | None:
    """The version the `current` pointer names; None while nothing was ever promoted."""
    releases = await jetstream.key_value(MODEL_RELEASES_BUCKET)
    try:
        entry = await releases.get(CURRENT_RELEASE_KEY)
    except KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


async def promote_model(jetstream: JetStreamContext, version: str) -> None:
    """Move the `current` pointer to a published version (rollback is the same move)."""
    if not is_model_version(version):
        raise ValueError(f"{version!r} is not a model version (sha256:<12 hex digits>)")
    await describe_model(jetstream, version)  # ModelNotFoundError: never point at nothing
    releases = await jetstream.key_value(MODEL_RELEASES_BUCKET)
    await releases.put(CURRENT_RELEASE_KEY, version.encode())


async def release_history(jetstream: JetStreamContext) -> list[str]:
    """The versions the pointer named, oldest first (as far as the bucket's history goes)."""
    releases = await jetstream.key_value(MODEL_RELEASES_BUCKET)
    try:
        entries = await releases.history(CURRENT_RELEASE_KEY)
    except (KeyNotFoundError, NoKeysError, NotFoundError):
        return []
    return [entry.value.decode() for entry in entries if entry.value]
