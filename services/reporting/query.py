"""ReportingService requests turned into validated queries, and the page tokens of ListJobs
and GetQuality.

Pure code (no database, no network): everything a client can get wrong is caught here and
raised as `InvalidRequestError`, which the service maps to INVALID_ARGUMENT.

Page tokens hold where the previous page ended in the listing's order
(`submitted_at DESC, id DESC`). Keyset pagination is what keeps paging stable while jobs
arrive: a new job sorts before the cursor, so it can neither push a listed job onto the next
page (repeat) nor pull an unlisted one back (skip), as OFFSET paging would. A token also
carries a digest of the filters it was made for; using it with other filters is refused.

GetQuality pages model versions the same way, in its own order (`answered_jobs DESC,
model_version ASC`): its token holds the last version's count and name, and a digest of the
window and version filter.

Tokens are authenticated: an HMAC-SHA256 tag (cut to 16 bytes) under the reporting
service's page-token key follows the payload, so a client can only hand back a token the
service made. A GetQuality tag covers a purpose prefix too, so one RPC's token is never
taken by the other. A forged, edited or foreign token gets one answer, whatever was wrong
with it ("the page token is not valid for this query"): the refusal teaches a forger nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from meshkit.broker_layout import is_job_id
from meshkit.job_states import KIND_OF_JOB_STATE
from meshkit.request_fields import InvalidFieldError, checked_key
from weather.v1 import job_pb2, reporting_pb2

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_LABEL_BYTES = 256
MAX_MODEL_VERSION_BYTES = 256
MAX_PAGE_TOKEN_CHARS = 512
"""Real tokens are under 100 characters; anything much longer is not one of ours."""
PAGE_TOKEN_TAG_BYTES = 16
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# google.protobuf.Timestamp's own valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_TIMESTAMP_NANOS = 999_999_999
INVALID_PAGE_TOKEN = "the page token is not valid for this query"
QUALITY_TOKEN_PURPOSE = b"GetQuality\x00"
"""Prefixed to a GetQuality token's payload under its tag. ListJobs tags cover the bare
payload, a serialized ListJobsPageToken, which never starts with these bytes ('G' is no
valid protobuf tag), so neither RPC can be handed the other's token."""


class InvalidRequestError(ValueError):
    """The client's request cannot be answered as asked (a client mistake, not ours)."""


def _checked_timestamp(timestamp: Timestamp, field: str) -> datetime:
    """The timestamp as a datetime, or a refusal naming the field and the valid range."""
    if not (
        MIN_TIMESTAMP_SECONDS <= timestamp.seconds <= MAX_TIMESTAMP_SECONDS
        and 0 <= timestamp.nanos <= MAX_TIMESTAMP_NANOS
    ):
        raise InvalidRequestError(
            f"{field} must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z "
            f"(seconds {MIN_TIMESTAMP_SECONDS}..{MAX_TIMESTAMP_SECONDS}, "
            f"nanos 0..{MAX_TIMESTAMP_NANOS})"
        )
    return timestamp.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """Half-open [start, end) on submission time; None is an open bound."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class JobFilter:
    owner: str | None = None
    """Only this owner's jobs (a viewer's listing); None: everyone's (an operator's)."""
    label: str | None = None
    state: str | None = None
    window: Window = Window()


@dataclass(frozen=True)
class Cursor:
    """The last job of the previous page."""

    submitted_at: datetime
    job_id: str


@dataclass(frozen=True)
class JobsPage:
    filter: JobFilter
    size: int
    after: Cursor | None


@dataclass(frozen=True)
class QualityFilter:
    window: Window = Window()
    model_version: str | None = None
    """Only this model version; None: every version."""


@dataclass(frozen=True)
class QualityCursor:
    """The last model version of the previous page, and its answer count."""

    answered_jobs: int
    model_version: str


@dataclass(frozen=True)
class QualityPage:
    filter: QualityFilter
    size: int
    after: QualityCursor | None


def window_of(request_window: reporting_pb2.TimeWindow | None) -> Window:
    if request_window is None:
        return Window()
    start = end = None
    if request_window.HasField("start"):
        start = _checked_timestamp(request_window.start, "window.start")
    if request_window.HasField("end"):
        end = _checked_timestamp(request_window.end, "window.end")
    if start is not None and end is not None and start > end:
        raise InvalidRequestError("window.start must not be after window.end")
    return Window(start, end)


def stats_window(request: reporting_pb2.GetStatsRequest) -> Window:
    return window_of(request.window if request.HasField("window") else None)


def jobs_page(
    request: reporting_pb2.ListJobsRequest, token_key: bytes, owner: str | None = None
) -> JobsPage:
    """Validate a ListJobs request: page size, filters, and the page token against them
    (authenticated with `token_key`). `owner` limits the listing to one owner's jobs, and
    is part of the filters a page token is bound to: a token never pages someone else's."""
    size = _page_size(request.page_size)
    label = _checked_key(request.label, "label", MAX_LABEL_BYTES)
    state: str | None = None
    if request.state != job_pb2.JOB_STATE_UNSPECIFIED:
        if request.state not in KIND_OF_JOB_STATE:
            raise InvalidRequestError(f"unknown job state {request.state}")
        state = KIND_OF_JOB_STATE[request.state]
    job_filter = JobFilter(
        owner=owner,
        label=label or None,
        state=state,
        window=window_of(request.window if request.HasField("window") else None),
    )
    after = (
        decode_page_token(request.page_token, job_filter, token_key) if request.page_token else None
    )
    return JobsPage(job_filter, size, after)


def quality_page(request: reporting_pb2.GetQualityRequest, token_key: bytes) -> QualityPage:
    """Validate a GetQuality request: page size, window, version filter, and the page token
    against them (authenticated with `token_key`)."""
    size = _page_size(request.page_size)
    model_version = _checked_key(request.model_version, "model_version", MAX_MODEL_VERSION_BYTES)
    quality_filter = QualityFilter(
        window=window_of(request.window if request.HasField("window") else None),
        model_version=model_version or None,
    )
    after = (
        decode_quality_page_token(request.page_token, quality_filter, token_key)
        if request.page_token
        else None
    )
    return QualityPage(quality_filter, size, after)


def _page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidRequestError(
            f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE}); "
            f"got {requested}"
        )
    return requested or DEFAULT_PAGE_SIZE


def _checked_key(value: str, field: str, max_bytes: int) -> str:
    try:
        return checked_key(value, field, max_bytes)
    except InvalidFieldError as error:
        raise InvalidRequestError(str(error)) from error


def filter_digest(job_filter: JobFilter) -> bytes:
    """A short fingerprint of the filters, so a token is only reused with its own filters."""
    return _fingerprint(
        "" if job_filter.owner is None else "owner:" + job_filter.owner,
        job_filter.label or "",
        job_filter.state or "",
        *_window_parts(job_filter.window),
    )


def quality_filter_digest(quality_filter: QualityFilter) -> bytes:
    """The fingerprint of a GetQuality request's window and version filter."""
    return _fingerprint(
        "quality", *_window_parts(quality_filter.window), quality_filter.model_version or ""
    )


def _window_parts(window: Window) -> tuple[str, str]:
    return (
        window.start.isoformat() if window.start else "",
        window.end.isoformat() if window.end else "",
    )


def _fingerprint(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:8]


def _tag(payload: bytes, token_key: bytes) -> bytes:
    return hmac.new(token_key, payload, hashlib.sha256).digest()[:PAGE_TOKEN_TAG_BYTES]


def _seal(payload: bytes, token_key: bytes, purpose: bytes = b"") -> str:
    """The payload and its tag as unpadded base64url."""
    signed = payload + _tag(purpose + payload, token_key)
    return base64.urlsafe_b64encode(signed).rstrip(b"=").decode("ascii")


def _unseal(page_token: str, token_key: bytes, purpose: bytes = b"") -> bytes:
    """The payload of a token this service sealed for `purpose`, or the one refusal."""
    invalid = InvalidRequestError(INVALID_PAGE_TOKEN)
    if len(page_token) > MAX_PAGE_TOKEN_CHARS or not page_token.isascii():
        raise invalid
    try:
        signed = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4))
    except (binascii.Error, ValueError) as error:
        raise invalid from error
    payload, tag = signed[:-PAGE_TOKEN_TAG_BYTES], signed[-PAGE_TOKEN_TAG_BYTES:]
    if len(signed) <= PAGE_TOKEN_TAG_BYTES or not hmac.compare_digest(
        tag, _tag(purpose + payload, token_key)
    ):
        raise invalid
    return payload


def encode_page_token(cursor: Cursor, job_filter: JobFilter, token_key: bytes) -> str:
    token = reporting_pb2.ListJobsPageToken(
        last_submitted_at_micros=_micros(cursor.submitted_at),
        last_job_id=cursor.job_id,
        filter_digest=filter_digest(job_filter),
    )
    return _seal(token.SerializeToString(), token_key)


def decode_page_token(page_token: str, job_filter: JobFilter, token_key: bytes) -> Cursor:
    """The cursor of a token this service made for these filters; anything else is refused
    with the one fixed message."""
    invalid = InvalidRequestError(INVALID_PAGE_TOKEN)
    token = reporting_pb2.ListJobsPageToken()
    try:
        token.ParseFromString(_unseal(page_token, token_key))
    except DecodeError as error:
        raise invalid from error
    # Signed by us, so these hold; checked anyway, since a leaked key must not become a
    # way to push arbitrary text into a query.
    if not is_job_id(token.last_job_id) or token.filter_digest != filter_digest(job_filter):
        raise invalid
    try:
        submitted_at = EPOCH + timedelta(microseconds=token.last_submitted_at_micros)
    except OverflowError as error:
        raise invalid from error
    return Cursor(submitted_at, token.last_job_id)


def encode_quality_page_token(
    cursor: QualityCursor, quality_filter: QualityFilter, token_key: bytes
) -> str:
    token = reporting_pb2.GetQualityPageToken(
        last_answered_jobs=cursor.answered_jobs,
        last_model_version=cursor.model_version,
        filter_digest=quality_filter_digest(quality_filter),
    )
    return _seal(token.SerializeToString(), token_key, QUALITY_TOKEN_PURPOSE)


def decode_quality_page_token(
    page_token: str, quality_filter: QualityFilter, token_key: bytes
) -> QualityCursor:
    """The cursor of a GetQuality token this service made for this window and version
    filter; anything else (a ListJobs token too) gets the one fixed refusal."""
    invalid = InvalidRequestError(INVALID_PAGE_TOKEN)
    token = reporting_pb2.GetQualityPageToken()
    try:
        token.ParseFromString(_unseal(page_token, token_key, QUALITY_TOKEN_PURPOSE))
    except DecodeError as error:
        raise invalid from error
    version = token.last_model_version
    if (
        token.last_answered_jobs < 1
        or "\x00" in version
        or len(version.encode("utf-8")) > MAX_MODEL_VERSION_BYTES
        or token.filter_digest != quality_filter_digest(quality_filter)
    ):
        raise invalid
    return QualityCursor(token.last_answered_jobs, version)


def _micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
