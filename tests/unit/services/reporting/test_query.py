"""ListJobs/GetStats request validation and page tokens, without a database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from services.reporting.query import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    InvalidRequestError,
    JobFilter,
    decode_page_token,
    encode_page_token,
    jobs_page,
    stats_window,
)
from weather.v1 import job_pb2, reporting_pb2

MOMENT = datetime(2026, 11, 25, 12, 30, 15, 123456, tzinfo=UTC)


def test_page_size_zero_means_the_default() -> None:
    assert jobs_page(reporting_pb2.ListJobsRequest()).size == DEFAULT_PAGE_SIZE


@pytest.mark.parametrize("size", [1, 100])
def test_page_size_bounds_are_accepted(size: int) -> None:
    assert jobs_page(reporting_pb2.ListJobsRequest(page_size=size)).size == size


@pytest.mark.parametrize("size", [-1, 101, 2**31 - 1])
def test_page_size_outside_bounds_is_invalid(size: int) -> None:
    with pytest.raises(InvalidRequestError, match="page_size"):
        jobs_page(reporting_pb2.ListJobsRequest(page_size=size))


def test_page_token_round_trips_to_the_microsecond() -> None:
    job_filter = JobFilter(label="rain", state="succeeded")
    cursor = Cursor(MOMENT, "a" * 32)
    token = encode_page_token(cursor, job_filter)
    assert decode_page_token(token, job_filter) == cursor
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
    with pytest.raises(InvalidRequestError, match="page_token"):
        jobs_page(reporting_pb2.ListJobsRequest(page_token=token))


def test_page_token_is_refused_with_other_filters() -> None:
    token = encode_page_token(Cursor(MOMENT, "b" * 32), JobFilter(label="rain"))
    with pytest.raises(InvalidRequestError, match="other filters"):
        jobs_page(reporting_pb2.ListJobsRequest(page_token=token, label="shine"))
    page = jobs_page(reporting_pb2.ListJobsRequest(page_token=token, label="rain", page_size=5))
    assert page.after == Cursor(MOMENT, "b" * 32)


def test_state_filter_maps_enum_and_refuses_unknown_values() -> None:
    request = reporting_pb2.ListJobsRequest(state=job_pb2.JOB_STATE_FAILED)
    assert jobs_page(request).filter.state == "failed"
    assert jobs_page(reporting_pb2.ListJobsRequest()).filter.state is None
    with pytest.raises(InvalidRequestError, match="state"):
        jobs_page(reporting_pb2.ListJobsRequest(state=42))  # type: ignore[arg-type]


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
        jobs_page(reporting_pb2.ListJobsRequest(label=label))
