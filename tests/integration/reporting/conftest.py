"""Reporting against a real PostgreSQL: a migrated pool on a fresh database per test,
builders of the JobEvents the pipeline publishes, and the real service as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from devmesh.ports import free_port
from services.reporting.migrator import migrate, packaged_migrations
from services.reporting.store import JobStore
from weather.v1 import events_pb2, job_pb2

REPO_ROOT = Path(__file__).resolve().parents[3]
LABELS = ("cloudy", "rain", "shine", "sunrise")
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
        self, label: str = "rain", latency_ms: float = 120.0, model_version: str = MODEL_VERSION
    ) -> events_pb2.JobEvent:
        event = self._base(
            f"{self.job_id}.terminal", self.submitted_at + timedelta(milliseconds=latency_ms)
        )
        others = [other for other in LABELS if other != label]
        event.succeeded.classification.CopyFrom(
            job_pb2.Classification(
                label=label,
                confidence=0.7,
                model_version=model_version,
                scores=[
                    job_pb2.LabelScore(label=label, score=0.7),
                    *(job_pb2.LabelScore(label=other, score=0.1) for other in others),
                ],
            )
        )
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


@dataclass
class ReportingProcess:
    """`python -m services.reporting` with its ports; health is read synchronously (call it
    through `asyncio.to_thread` from async tests)."""

    grpc_port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def health(self) -> int | None:
        with grpc.insecure_channel(self.address) as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
            except grpc.RpcError:
                return None
            return int(response.status)

    def wait_for_health(self, expected: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"reporting exited:\n{self.log()}"
            status = self.health()
            if status == expected:
                return
            time.sleep(0.2)
        raise AssertionError(f"health stayed {status}, wanted {expected}:\n{self.log()}")

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


StartReporting = Callable[..., ReportingProcess]


@pytest.fixture
def start_reporting(tmp_path: Path) -> Iterator[StartReporting]:
    """Factory: start_reporting(nats_url=..., database_url=..., **REPORTING_* settings)."""
    started: list[ReportingProcess] = []

    def start(**settings: str) -> ReportingProcess:
        grpc_port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "REPORTING_GRPC_PORT": str(grpc_port),
            "REPORTING_METRICS_PORT": str(metrics_port),
            "REPORTING_NATS_RETRY_MAX_WAIT_SECONDS": "0.5",
            "REPORTING_DATABASE_CHECK_INTERVAL_SECONDS": "0.3",
            "REPORTING_DATABASE_TIMEOUT_SECONDS": "1",
            "REPORTING_CONSUMER_RETRY_DELAY_SECONDS": "1",
            **{f"REPORTING_{key.upper()}": value for key, value in settings.items()},
        }
        log_path = tmp_path / f"reporting-{len(started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.reporting"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        service = ReportingProcess(grpc_port, metrics_port, process, log_path)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)
