"""ReportingService requests turned into validated queries, and ListJobs page tokens.

Pure code (no database, no network): everything a client can get wrong is caught here and
raised as `InvalidRequestError`, which the service maps to INVALID_ARGUMENT.

Page tokens hold where the previous page ended in the listing's order
(`submitted_at DESC, id DESC`). Keyset pagination is what keeps paging stable while jobs
arrive: a new job sorts before the cursor, so it can neither push a listed job onto the next
page (repeat) nor pull an unlisted one back (skip), as OFFSET paging would. A token also
carries a digest of the filters it was made for; using it with other filters is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError

from meshkit.job_states import KIND_OF_JOB_STATE
from weather.v1 import job_pb2, reporting_pb2

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_LABEL_LENGTH = 256
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidRequestError(ValueError):
    """The client's request cannot be answered as asked (a client mistake, not ours)."""


@dataclass(frozen=True)
class Window:
    """Half-open [start, end) on submission time; None is an open bound."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class JobFilter:
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


def window_of(request_window: reporting_pb2.TimeWindow | None) -> Window:
    if request_window is None:
        return Window()
    start = end = None
    if request_window.HasField("start"):
        start = request_window.start.ToDatetime(tzinfo=UTC)
    if request_window.HasField("end"):
        end = request_window.end.ToDatetime(tzinfo=UTC)
    if start is not None and end is not None and start > end:
        raise InvalidRequestError("window.start must not be after window.end")
    return Window(start, end)


def stats_window(request: reporting_pb2.GetStatsRequest) -> Window:
    return window_of(request.window if request.HasField("window") else None)


def jobs_page(request: reporting_pb2.ListJobsRequest) -> JobsPage:
    """Validate a ListJobs request: page size, filters, and the page token against them."""
    if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
        raise InvalidRequestError(
            f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE}); "
            f"got {request.page_size}"
        )
    if len(request.label) > MAX_LABEL_LENGTH:
        raise InvalidRequestError(f"label is longer than {MAX_LABEL_LENGTH} characters")
    if "\x00" in request.label:
        raise InvalidRequestError("label must not contain NUL characters")
    state: str | None = None
    if request.state != job_pb2.JOB_STATE_UNSPECIFIED:
        if request.state not in KIND_OF_JOB_STATE:
            raise InvalidRequestError(f"unknown job state {request.state}")
        state = KIND_OF_JOB_STATE[request.state]
    job_filter = JobFilter(
        label=request.label or None,
        state=state,
        window=window_of(request.window if request.HasField("window") else None),
    )
    after = decode_page_token(request.page_token, job_filter) if request.page_token else None
    return JobsPage(job_filter, request.page_size or DEFAULT_PAGE_SIZE, after)


def filter_digest(job_filter: JobFilter) -> bytes:
    """A short fingerprint of the filters, so a token is only reused with its own filters."""
    window = job_filter.window
    parts = (
        job_filter.label or "",
        job_filter.state or "",
        window.start.isoformat() if window.start else "",
        window.end.isoformat() if window.end else "",
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:8]


def encode_page_token(cursor: Cursor, job_filter: JobFilter) -> str:
    token = reporting_pb2.ListJobsPageToken(
        last_submitted_at_micros=_micros(cursor.submitted_at),
        last_job_id=cursor.job_id,
        filter_digest=filter_digest(job_filter),
    )
    return base64.urlsafe_b64encode(token.SerializeToString()).rstrip(b"=").decode("ascii")


def decode_page_token(page_token: str, job_filter: JobFilter) -> Cursor:
    malformed = InvalidRequestError("page_token is malformed; use a next_page_token as given")
    try:
        raw = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4))
    except (binascii.Error, ValueError) as error:
        raise malformed from error
    token = reporting_pb2.ListJobsPageToken()
    try:
        token.ParseFromString(raw)
    except DecodeError as error:
        raise malformed from error
    if not token.last_job_id or not token.filter_digest:
        raise malformed
    if token.filter_digest != filter_digest(job_filter):
        raise InvalidRequestError("page_token was made for other filters; start again without it")
    try:
        submitted_at = EPOCH + timedelta(microseconds=token.last_submitted_at_micros)
    except OverflowError as error:
        raise malformed from error
    return Cursor(submitted_at, token.last_job_id)


def _micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
