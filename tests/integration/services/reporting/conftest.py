"""Reporting against a real PostgreSQL: a migrated pool on a fresh database per test,
builders of the JobEvents the pipeline publishes, and the real service as a subprocess."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from meshkit.contract_constants import LABELS
from services.reporting.migrator import migrate, packaged_migrations
from services.reporting.store import JobStore
from weather.v1 import events_pb2, job_pb2

REPO_ROOT = Path(__file__).resolve().parents[4]
MODEL_VERSION = "sha256:3f2a9c0d1e4b"


class JobEvents:
    """The events of one job as the dispatcher and classifier would publish them."""

    def __init__(self, job_id: str | None = None, submitted_at: datetime | None = None) -> None:
        self.job_id = job_id or uuid.uuid4().hex
        self.submitted_at = submitted_at or datetime.now(UTC)
        self.image_sha256 = uuid.uuid4().hex * 2

    def _base(self, event_id: str, occurred_at: datetime) -> events_pb2.JobEvent:
        event = events_pb2.JobEvent(
            event_id=event_id,
            job_id=self.job_id,
            image_sha256=self.image_sha256,
            filename=f"{self.job_id[:8]}.jpg",
        )
        event.submitted_at.FromDatetime(self.submitted_at)
        event.occurred_at.FromDatetime(occurred_at)
        return event

    def queued(self) -> events_pb2.JobEvent:
        event = self._base(self.job_id, self.submitted_at)
        event.queued.filename = f"{self.job_id[:8]}.jpg"
        event.queued.image.sha256 = self.image_sha256
        return event

    def succeeded(
        self,
        label: str = "rain",
        latency_ms: float = 120.0,
        model_version: str = MODEL_VERSION,
        confidence: float = 0.7,
    ) -> events_pb2.JobEvent:
        event = self._base(
            f"{self.job_id}.terminal", self.submitted_at + timedelta(milliseconds=latency_ms)
        )
        others = [other for other in LABELS if other != label]
        event.succeeded.classification.CopyFrom(
            job_pb2.Classification(
                label=label,
                confidence=confidence,
                model_version=model_version,
                scores=[
                    job_pb2.LabelScore(label=label, score=0.7),
                    *(job_pb2.LabelScore(label=other, score=0.1) for other in others),
                ],
            )
        )
        return event

    def feedback(
        self, actual_label: str, answered_label: str = "rain", after_seconds: float = 5.0
    ) -> events_pb2.JobEvent:
        """Feedback as GiveFeedback publishes it: a fresh event id every time it is given."""
        given_at = self.submitted_at + timedelta(seconds=after_seconds)
        event = self._base(f"{self.job_id}.feedback.{uuid.uuid4().hex}", given_at)
        event.feedback.feedback.actual_label = actual_label
        event.feedback.feedback.right = actual_label == answered_label
        event.feedback.feedback.given_at.FromDatetime(given_at)
        event.feedback.answered_label = answered_label
        event.feedback.model_version = MODEL_VERSION
        return event

    def failed(self, reason: str = "not an image") -> events_pb2.JobEvent:
        event = self._base(f"{self.job_id}.terminal", self.submitted_at + timedelta(seconds=1))
        event.failed.reason = reason
        event.failed.kind = events_pb2.FAILURE_KIND_UNREADABLE_IMAGE
        return event


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a fresh database with the shipped migrations applied."""
    async with AsyncConnectionPool(fresh_database, min_size=1, max_size=4, open=False) as opened:
        async with opened.connection() as connection:
            await migrate(connection, packaged_migrations())
        yield opened


@pytest.fixture
def store(pool: AsyncConnectionPool) -> JobStore:
    return JobStore(pool, timeout_seconds=5.0)


@pytest.fixture
def job_events() -> type[JobEvents]:
    """`job_events(job_id=None, submitted_at=None)` → builder of one job's events."""
    return JobEvents
