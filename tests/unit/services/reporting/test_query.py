"""ListJobs/GetStats/GetQuality request validation and page tokens, without a database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from services.reporting.query import (
    DEFAULT_PAGE_SIZE,
    INVALID_PAGE_TOKEN,
    Cursor,
    InvalidRequestError,
    JobFilter,
    QualityCursor,
    QualityFilter,
    Window,
    decode_page_token,
    decode_quality_page_token,
    encode_page_token,
    encode_quality_page_token,
    jobs_page,
    quality_page,
    stats_window,
)
from weather.v1 import job_pb2, reporting_pb2

MOMENT = datetime(2026, 11, 25, 12, 30, 15, 123456, tzinfo=UTC)
KEY = b"k" * 32


def test_page_size_zero_means_the_default() -> None:
    assert jobs_page(reporting_pb2.ListJobsRequest(), KEY).size == DEFAULT_PAGE_SIZE


@pytest.mark.parametrize("size", [1, 100])
def test_page_size_bounds_are_accepted(size: int) -> None:
    assert jobs_page(reporting_pb2.ListJobsRequest(page_size=size), KEY).size == size


@pytest.mark.parametrize("size", [-1, 101, 2**31 - 1])
def test_page_size_outside_bounds_is_invalid(size: int) -> None:
    with pytest.raises(InvalidRequestError, match="page_size"):
        jobs_page(reporting_pb2.ListJobsRequest(page_size=size), KEY)


def test_page_token_round_trips_to_the_microsecond() -> None:
    job_filter = JobFilter(label="rain", state="succeeded")
    cursor = Cursor(MOMENT, "a" * 32)
    token = encode_page_token(cursor, job_filter, KEY)
    assert decode_page_token(token, job_filter, KEY) == cursor
    assert "=" not in token


@pytest.mark.parametrize(
    "token",
    [
        "not base64 !!",
        "@@@@",
        base64.urlsafe_b64encode(b"\xff\xff\xff").decode(),
        base64.urlsafe_b64encode(b"").decode() + "A",
        "' OR 1=1 --",
    ],
)
def test_malformed_page_token_is_invalid(token: str) -> None:
    with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
        jobs_page(reporting_pb2.ListJobsRequest(page_token=token), KEY)


def test_page_token_is_refused_with_other_filters() -> None:
    token = encode_page_token(Cursor(MOMENT, "b" * 32), JobFilter(label="rain"), KEY)
    with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
        jobs_page(reporting_pb2.ListJobsRequest(page_token=token, label="shine"), KEY)
    page = jobs_page(
        reporting_pb2.ListJobsRequest(page_token=token, label="rain", page_size=5), KEY
    )
    assert page.after == Cursor(MOMENT, "b" * 32)


def test_a_page_token_pages_only_the_listing_of_the_owner_it_was_made_for() -> None:
    token = encode_page_token(Cursor(MOMENT, "b" * 32), JobFilter(owner="alice"), KEY)
    request = reporting_pb2.ListJobsRequest(page_token=token)
    assert jobs_page(request, KEY, owner="alice").after == Cursor(MOMENT, "b" * 32)
    for other in ("bob", None, ""):
        with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
            jobs_page(request, KEY, owner=other)


def test_state_filter_maps_enum_and_refuses_unknown_values() -> None:
    request = reporting_pb2.ListJobsRequest(state=job_pb2.JOB_STATE_FAILED)
    assert jobs_page(request, KEY).filter.state == "failed"
    assert jobs_page(reporting_pb2.ListJobsRequest(), KEY).filter.state is None
    with pytest.raises(InvalidRequestError, match="state"):
        jobs_page(reporting_pb2.ListJobsRequest(state=42), KEY)  # type: ignore[arg-type]


def test_window_bounds_are_optional_and_ordered() -> None:
    request = reporting_pb2.GetStatsRequest()
    request.window.start.FromDatetime(MOMENT)
    window = stats_window(request)
    assert window.start == MOMENT
    assert window.end is None
    request.window.end.FromDatetime(datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidRequestError, match="window"):
        stats_window(request)


@pytest.mark.parametrize("label", ["rain\x00", "x" * 257])
def test_labels_no_database_can_hold_are_invalid(label: str) -> None:
    with pytest.raises(InvalidRequestError, match="label"):
        jobs_page(reporting_pb2.ListJobsRequest(label=label), KEY)


def test_page_tokens_are_refused_when_edited_or_signed_with_another_key() -> None:
    job_filter = JobFilter()
    token = encode_page_token(Cursor(MOMENT, "c" * 32), job_filter, KEY)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 0x01
    edited = base64.urlsafe_b64encode(bytes(raw)).decode()
    foreign = encode_page_token(Cursor(MOMENT, "c" * 32), job_filter, b"x" * 32)
    for bad in (edited, foreign, token + "A" * 600):
        with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
            decode_page_token(bad, job_filter, KEY)


def test_a_signed_token_still_cannot_carry_a_non_job_id() -> None:
    token = encode_page_token(Cursor(MOMENT, "x\x00y"), JobFilter(), KEY)
    with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
        decode_page_token(token, JobFilter(), KEY)


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(2**62, 0), (-(2**62), 0), (0, -1), (0, 2_000_000_000)]
)
def test_window_timestamps_outside_the_timestamp_range_name_the_field(
    seconds: int, nanos: int
) -> None:
    request = reporting_pb2.GetStatsRequest()
    request.window.end.seconds = seconds
    request.window.end.nanos = nanos
    with pytest.raises(InvalidRequestError, match=r"window\.end must be between 0001-01-01"):
        stats_window(request)


def _quality_request(**fields: object) -> reporting_pb2.GetQualityRequest:
    request = reporting_pb2.GetQualityRequest(**fields)  # type: ignore[arg-type]
    request.window.start.FromDatetime(MOMENT)
    return request


def test_quality_page_size_zero_means_the_default_and_bounds_hold() -> None:
    assert quality_page(reporting_pb2.GetQualityRequest(), KEY).size == DEFAULT_PAGE_SIZE
    assert quality_page(reporting_pb2.GetQualityRequest(page_size=100), KEY).size == 100
    for size in (-1, 101, 2**31 - 1):
        with pytest.raises(InvalidRequestError, match="page_size"):
            quality_page(reporting_pb2.GetQualityRequest(page_size=size), KEY)


@pytest.mark.parametrize("model_version", ["sha256:\x00", "x" * 257])
def test_model_versions_no_database_can_hold_are_invalid(model_version: str) -> None:
    with pytest.raises(InvalidRequestError, match="model_version"):
        quality_page(reporting_pb2.GetQualityRequest(model_version=model_version), KEY)


def test_a_quality_page_token_resumes_after_its_version_for_its_own_window_only() -> None:
    request = _quality_request(page_size=2)
    page = quality_page(request, KEY)
    assert page.filter == QualityFilter(Window(MOMENT), None)
    cursor = QualityCursor(7, "sha256:3f2a9c0d1e4b")
    token = encode_quality_page_token(cursor, page.filter, KEY)
    assert "=" not in token
    assert quality_page(_quality_request(page_size=2, page_token=token), KEY).after == cursor
    other_window = reporting_pb2.GetQualityRequest(page_token=token)
    other_version = _quality_request(page_token=token, model_version="sha256:3f2a9c0d1e4b")
    for request in (other_window, other_version):
        with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
            quality_page(request, KEY)


def test_a_list_jobs_token_is_no_quality_token_and_the_other_way_round() -> None:
    jobs_token = encode_page_token(Cursor(MOMENT, "d" * 32), JobFilter(), KEY)
    quality_token = encode_quality_page_token(QualityCursor(1, "sha256:0"), QualityFilter(), KEY)
    with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
        decode_quality_page_token(jobs_token, QualityFilter(), KEY)
    with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
        decode_page_token(quality_token, JobFilter(), KEY)


def test_quality_tokens_are_refused_when_edited_foreign_or_carrying_what_no_page_ends_on() -> None:
    quality_filter = QualityFilter()
    token = encode_quality_page_token(QualityCursor(3, "sha256:a"), quality_filter, KEY)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[2] ^= 0x01
    edited = base64.urlsafe_b64encode(bytes(raw)).decode()
    foreign = encode_quality_page_token(QualityCursor(3, "sha256:a"), quality_filter, b"x" * 32)
    signed_odd = [
        encode_quality_page_token(cursor, quality_filter, KEY)
        for cursor in (QualityCursor(0, "sha256:a"), QualityCursor(3, "a\x00b"))
    ]
    for bad in (edited, foreign, token + "A" * 600, "' OR 1=1 --", *signed_odd):
        with pytest.raises(InvalidRequestError, match=INVALID_PAGE_TOKEN):
            decode_quality_page_token(bad, quality_filter, KEY)
