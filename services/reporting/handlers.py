"""The ReportingService RPC handlers: validate, query the store, shape the answer.

Domain errors become gRPC status codes here, once: a client's mistake is
INVALID_ARGUMENT, a database that cannot be reached is UNAVAILABLE (worth a retry).
Who may call is settled before (`meshkit.access`: GetStats and GetQuality are
operator-only); ListJobs answers a viewer with their own jobs and an operator with
everyone's. ListJobs and GetQuality page with tokens only this service can make
(`query`).
"""

from __future__ import annotations

import grpc

from meshkit.access import current_caller
from meshkit.errors import StatusFor, status_on_error
from meshkit.identity import Role
from meshkit.job_messages import classification_message
from meshkit.job_states import JOB_STATE_OF_KIND
from services.reporting.quality import ModelQuality
from services.reporting.query import (
    Cursor,
    InvalidRequestError,
    QualityCursor,
    encode_page_token,
    encode_quality_page_token,
    jobs_page,
    quality_page,
    stats_window,
)
from services.reporting.store import JobRow, JobStore, StoreUnavailableError
from weather.v1 import job_pb2, reporting_pb2, reporting_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]


STATUSES = (
    StatusFor(InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    StatusFor(
        StoreUnavailableError,
        grpc.StatusCode.UNAVAILABLE,
        "the reporting database is unavailable; retry later",
    ),
)


class ReportingService(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, store: JobStore, page_token_key: bytes) -> None:
        self._store = store
        self._page_token_key = page_token_key

    async def GetStats(
        self, request: reporting_pb2.GetStatsRequest, context: Context
    ) -> reporting_pb2.GetStatsResponse:
        async with status_on_error(context, STATUSES):
            stats = await self._store.stats(stats_window(request))
        response = reporting_pb2.GetStatsResponse(total_jobs=stats.total_jobs)
        response.label_counts.extend(
            reporting_pb2.LabelCount(label=label, count=count)
            for label, count in stats.by_label.items()
        )
        response.state_counts.extend(
            reporting_pb2.StateCount(state=JOB_STATE_OF_KIND[state], count=count)
            for state, count in stats.by_state.items()
        )
        response.model_version_counts.extend(
            reporting_pb2.ModelVersionCount(model_version=version, count=count)
            for version, count in stats.by_model_version.items()
        )
        if stats.latency_ms is not None:
            p50, p95, p99 = stats.latency_ms
            response.latency.CopyFrom(
                reporting_pb2.LatencyPercentiles(p50_ms=p50, p95_ms=p95, p99_ms=p99)
            )
        return response

    async def GetQuality(
        self, request: reporting_pb2.GetQualityRequest, context: Context
    ) -> reporting_pb2.GetQualityResponse:
        async with status_on_error(context, STATUSES):
            page = quality_page(request, self._page_token_key)
            figures = await self._store.quality(page)
        response = reporting_pb2.GetQualityResponse(
            models=[quality_of(model) for model in figures.models]
        )
        if figures.more:
            last = figures.models[-1]
            response.next_page_token = encode_quality_page_token(
                QualityCursor(last.answered_jobs, last.model_version),
                page.filter,
                self._page_token_key,
            )
        return response

    async def ListJobs(
        self, request: reporting_pb2.ListJobsRequest, context: Context
    ) -> reporting_pb2.ListJobsResponse:
        async with status_on_error(context, STATUSES):
            caller = current_caller()
            owner = None if caller.role >= Role.OPERATOR else caller.subject
            page = jobs_page(request, self._page_token_key, owner)
            rows = await self._store.list_jobs(page)
        response = reporting_pb2.ListJobsResponse(jobs=[job_of(row) for row in rows[: page.size]])
        if len(rows) > page.size:
            last = rows[page.size - 1]
            response.next_page_token = encode_page_token(
                Cursor(last.submitted_at, last.id), page.filter, self._page_token_key
            )
        return response


def job_of(row: JobRow) -> job_pb2.Job:
    job = job_pb2.Job(
        id=row.id,
        state=JOB_STATE_OF_KIND[row.state],
        image_sha256=row.image_sha256,
        filename=row.filename,
        error_message=row.error_message or "",
        owner=row.owner,
    )
    job.submitted_at.FromDatetime(row.submitted_at)
    if row.finished_at is not None:
        job.finished_at.FromDatetime(row.finished_at)
    if row.label is not None:
        job.classification.CopyFrom(
            classification_message(
                row.label, row.confidence or 0.0, row.scores or {}, row.model_version or ""
            )
        )
    if row.feedback_label is not None:
        job.feedback.actual_label = row.feedback_label
        job.feedback.right = row.feedback_label == row.label
        if row.feedback_given_at is not None:
            job.feedback.given_at.FromDatetime(row.feedback_given_at)
    return job


def quality_of(model: ModelQuality) -> reporting_pb2.ModelQuality:
    return reporting_pb2.ModelQuality(
        model_version=model.model_version,
        answered_jobs=model.answered_jobs,
        judged_jobs=model.judged_jobs,
        accuracy=model.accuracy,
        macro_f1=model.macro_f1,
        confusion=[
            reporting_pb2.ConfusionCell(answered_label=answered, actual_label=actual, count=count)
            for answered, actual, count in model.confusion
        ],
        labels=[
            reporting_pb2.LabelQuality(
                label=label.label,
                precision=label.precision,
                recall=label.recall,
                f1=label.f1,
                support=label.support,
            )
            for label in model.labels
        ],
        calibration=[
            reporting_pb2.CalibrationBin(
                confidence_low=calibration_bin.low,
                confidence_high=calibration_bin.high,
                count=calibration_bin.count,
                mean_confidence=calibration_bin.mean_confidence,
                accuracy=calibration_bin.accuracy,
            )
            for calibration_bin in model.calibration
        ],
        expected_calibration_error=model.expected_calibration_error,
    )
