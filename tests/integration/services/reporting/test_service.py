"""The reporting service for real: nats-server, PostgreSQL and `python -m services.reporting`.

Events are published the way the pipeline publishes them (`meshkit.job_events.publish_event`),
so these tests need no classifier; republishing under NEW `Nats-Msg-Id`s gets past
JetStream's duplicate window, which proves the database layer's own idempotency.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import psycopg
import pytest
from grpc_health.v1 import health_pb2
from nats.js import JetStreamContext

from meshkit.broker_layout import JOBS_STREAM, job_subject
from meshkit.contract_constants import LABELS
from meshkit.job_events import MSG_ID_HEADER, event_kind, publish_event
from tools.proof.gateway import Metadata
from tools.proof.tokens import signed_in_channel
from weather.v1 import events_pb2, job_pb2, reporting_pb2, reporting_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
JobEvents = Any  # the `job_events` fixture's builder class (see conftest.py)
StartService = Any  # the `start_service` fixture's factory (tests/integration/conftest.py)


@pytest.fixture
async def jetstream(nats_server: Any) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(**nats_server.connect_options())
    yield client.jetstream()
    await client.close()


async def _jobs_snapshot(dsn: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        cursor = await connection.execute(
            "SELECT id, image_sha256, filename, state, label, confidence, scores, model_version, "
            "submitted_at, finished_at, latency_ms, error_message, failure_kind FROM jobs "
            "ORDER BY id"
        )
        return list(await cursor.fetchall())


async def _counts(dsn: str) -> tuple[int, int, int]:
    """(jobs, events, jobs still queued)."""
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        cursor = await connection.execute(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM events), "
            "(SELECT count(*) FROM jobs WHERE state = 'queued')"
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


async def _until(condition: Any, within_seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    last = None
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            last = await condition()
            if last is True:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: still {last} after {within_seconds}s")


async def _caught_up(jetstream: JetStreamContext) -> bool:
    info = await jetstream.consumer_info(JOBS_STREAM, "reporting")
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


def _events_of(jobs: Sequence[Any], rng: random.Random) -> list[events_pb2.JobEvent]:
    """Both events of every job; every third job's terminal event comes first."""
    events: list[events_pb2.JobEvent] = []
    for index, job in enumerate(jobs):
        terminal = (
            job.failed()
            if index % 10 == 0
            else job.succeeded(label=LABELS[index % 4], latency_ms=float(rng.randint(50, 500)))
        )
        pair = [job.queued(), terminal]
        events += pair[::-1] if index % 3 == 0 else pair
    return events


async def _publish_all(jetstream: JetStreamContext, events: Sequence[events_pb2.JobEvent]) -> None:
    for start in range(0, len(events), 50):
        await asyncio.gather(*(publish_event(jetstream, e) for e in events[start : start + 50]))


async def _republish_with_new_msg_ids(
    jetstream: JetStreamContext, events: Sequence[events_pb2.JobEvent]
) -> None:
    for start in range(0, len(events), 50):
        await asyncio.gather(
            *(
                jetstream.publish(
                    job_subject(event.job_id, event_kind(event)),
                    event.SerializeToString(),
                    headers={MSG_ID_HEADER: uuid.uuid4().hex},
                )
                for event in events[start : start + 50]
            )
        )


async def test_every_job_is_one_row_even_when_all_events_are_published_twice(
    start_service: StartService,
    nats_server: Any,
    fresh_database: str,
    jetstream: JetStreamContext,
    job_events: JobEvents,
    operator: Metadata,
) -> None:
    service = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    await asyncio.to_thread(service.wait_for_health, SERVING)
    rng = random.Random(200)
    base = datetime.now(UTC) - timedelta(hours=1)
    jobs = [job_events(submitted_at=base + timedelta(seconds=i)) for i in range(200)]
    events = _events_of(jobs, rng)
    await _publish_all(jetstream, events)

    async def recorded() -> Any:
        counts = await _counts(fresh_database)
        return counts == (200, 400, 0) or counts

    await _until(recorded, 60, "recording 200 jobs")
    first = await _jobs_snapshot(fresh_database)

    rng.shuffle(events)
    await _republish_with_new_msg_ids(jetstream, events)
    info = await jetstream.stream_info(JOBS_STREAM)
    assert info.state.messages == 800, "JetStream deduplicated the republish"
    await _until(lambda: _caught_up(jetstream), 60, "consuming the republished events")
    assert await _counts(fresh_database) == (200, 400, 0)
    assert await _jobs_snapshot(fresh_database) == first

    async with signed_in_channel(service.address, operator) as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        stats = await stub.GetStats(reporting_pb2.GetStatsRequest(), timeout=10)
        assert stats.total_jobs == 200
        assert {c.state: c.count for c in stats.state_counts} == {
            job_pb2.JOB_STATE_SUCCEEDED: 180,
            job_pb2.JOB_STATE_FAILED: 20,
        }
        assert sum(c.count for c in stats.label_counts) == 180
        assert 50 <= stats.latency.p50_ms <= stats.latency.p95_ms <= stats.latency.p99_ms

        windowed = reporting_pb2.GetStatsRequest()
        windowed.window.start.FromDatetime(base)
        windowed.window.end.FromDatetime(base + timedelta(seconds=50))
        assert (await stub.GetStats(windowed, timeout=10)).total_jobs == 50

        await _page_while_jobs_arrive(stub, jetstream, job_events, {job.job_id for job in jobs})
        await _invalid_requests_are_invalid_argument(stub)

        rainy = await stub.ListJobs(
            reporting_pb2.ListJobsRequest(label="rain", page_size=100), timeout=10
        )
        assert len(rainy.jobs) == 50  # index % 4 == 1, never a failed one (index % 10 == 0)
        assert all(job.classification.label == "rain" for job in rainy.jobs)
        assert all(len(job.classification.scores) == 4 for job in rainy.jobs)
        failed = await stub.ListJobs(
            reporting_pb2.ListJobsRequest(state=job_pb2.JOB_STATE_FAILED, page_size=100),
            timeout=10,
        )
        assert len(failed.jobs) == 20
        assert all(job.error_message for job in failed.jobs)
    assert await asyncio.to_thread(service.terminate) == 0


async def _page_while_jobs_arrive(
    stub: reporting_pb2_grpc.ReportingServiceAsyncStub,
    jetstream: JetStreamContext,
    job_events: JobEvents,
    existing: set[str],
) -> None:
    """Page through ListJobs (9 a page) while new jobs keep being recorded."""
    stop = asyncio.Event()

    async def keep_submitting() -> int:
        published = 0
        while not stop.is_set():
            await publish_event(jetstream, job_events().queued())
            published += 1
            await asyncio.sleep(0.02)
        return published

    submitting = asyncio.create_task(keep_submitting())
    seen: list[str] = []
    token = ""
    try:
        while True:
            page = await stub.ListJobs(
                reporting_pb2.ListJobsRequest(page_size=9, page_token=token), timeout=10
            )
            assert len(page.jobs) <= 9
            seen += [job.id for job in page.jobs if job.id in existing]
            token = page.next_page_token
            if not token:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        published = await submitting
    assert published > 5, "no jobs arrived while paging"
    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert set(seen) == existing, "a job was skipped"


async def _invalid_requests_are_invalid_argument(
    stub: reporting_pb2_grpc.ReportingServiceAsyncStub,
) -> None:
    for request in (
        reporting_pb2.ListJobsRequest(page_size=101),
        reporting_pb2.ListJobsRequest(page_size=-1),
        reporting_pb2.ListJobsRequest(page_token="definitely not a token"),
        reporting_pb2.ListJobsRequest(page_token="CgA"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListJobs(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert raised.value.details()
    hostile = await stub.ListJobs(
        reporting_pb2.ListJobsRequest(label="rain' OR '1'='1"), timeout=10
    )
    assert list(hostile.jobs) == []


async def test_get_quality_pages_model_versions_and_refuses_tokens_it_did_not_make(
    start_service: StartService,
    nats_server: Any,
    fresh_database: str,
    jetstream: JetStreamContext,
    job_events: JobEvents,
    operator: Metadata,
) -> None:
    """Five model versions (5, 4, 3, 2, 1 answers, each with one judged answer) paged two at
    a time over gRPC, most answers first; every refusal is INVALID_ARGUMENT."""
    service = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    await asyncio.to_thread(service.wait_for_health, SERVING)
    base = datetime.now(UTC) - timedelta(hours=1)
    versions = [f"sha256:{index:012x}" for index in range(1, 6)]
    events: list[events_pb2.JobEvent] = []
    for rank, version in enumerate(versions):
        for n in range(5 - rank):
            job = job_events(submitted_at=base + timedelta(seconds=n))
            events += [job.queued(), job.succeeded("rain", model_version=version)]
            if n == 0:  # the first answer judged: right for even ranks, wrong for odd ones
                events.append(job.feedback("rain" if rank % 2 == 0 else "shine", "rain"))
    await _publish_all(jetstream, events)

    async def recorded() -> Any:
        counts = await _counts(fresh_database)
        return counts == (15, len(events), 0) or counts

    await _until(recorded, 60, "recording 15 jobs and their feedback")
    async with signed_in_channel(service.address, operator) as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        request = reporting_pb2.GetQualityRequest(page_size=2)
        request.window.start.FromDatetime(base)
        pages: list[list[tuple[str, int, int, float]]] = []
        tokens: list[str] = []
        while True:
            page = await stub.GetQuality(request, timeout=10)
            pages.append(
                [(m.model_version, m.answered_jobs, m.judged_jobs, m.accuracy) for m in page.models]
            )
            if not page.next_page_token:
                break
            tokens.append(page.next_page_token)
            request.page_token = page.next_page_token
        assert pages == [
            [(versions[0], 5, 1, 1.0), (versions[1], 4, 1, 0.0)],
            [(versions[2], 3, 1, 1.0), (versions[3], 2, 1, 0.0)],
            [(versions[4], 1, 1, 1.0)],
        ]
        whole = await stub.GetQuality(reporting_pb2.GetQualityRequest(), timeout=10)
        assert [m.model_version for m in whole.models] == versions
        assert not whole.next_page_token

        jobs_token = (
            await stub.ListJobs(reporting_pb2.ListJobsRequest(page_size=1), timeout=10)
        ).next_page_token
        assert jobs_token
        other_window = reporting_pb2.GetQualityRequest(page_token=tokens[0])
        other_version = reporting_pb2.GetQualityRequest(
            page_token=tokens[0], model_version=versions[0], window=request.window
        )
        for refused in (
            reporting_pb2.GetQualityRequest(page_size=101),
            reporting_pb2.GetQualityRequest(page_size=-1),
            reporting_pb2.GetQualityRequest(model_version="sha256:\x00"),
            reporting_pb2.GetQualityRequest(page_token="definitely not a token"),
            reporting_pb2.GetQualityRequest(page_token=jobs_token),
            other_window,
            other_version,
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetQuality(refused, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused
            assert raised.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListJobs(reporting_pb2.ListJobsRequest(page_token=tokens[0]), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await asyncio.to_thread(service.terminate) == 0


async def test_postgres_outage_pauses_ingest_and_every_job_lands_once_after(
    start_service: StartService,
    nats_server: Any,
    postgres_server: Any,
    fresh_database: str,
    jetstream: JetStreamContext,
    job_events: JobEvents,
) -> None:
    service = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    await asyncio.to_thread(service.wait_for_health, SERVING)
    pid = service.process.pid
    stop = asyncio.Event()
    published: list[str] = []

    async def keep_publishing() -> None:
        while not stop.is_set():
            job = job_events()
            await publish_event(jetstream, job.queued())
            await publish_event(jetstream, job.succeeded())
            published.append(job.job_id)
            await asyncio.sleep(0.1)

    publishing = asyncio.create_task(keep_publishing())

    async def enough_published() -> Any:
        return len(published) > 20 or len(published)

    # A count, not a sleep: on a loaded machine 2 s may publish fewer than 21 jobs.
    await _until(enough_published, 60, "publishing 21 jobs before the outage")
    await asyncio.to_thread(postgres_server.stop)
    try:
        stopped_at = asyncio.get_running_loop().time()
        await asyncio.to_thread(service.wait_for_health, NOT_SERVING, 20)
        published_before_outage_ended = len(published)
        await asyncio.sleep(max(0.0, 30 - (asyncio.get_running_loop().time() - stopped_at)))
    finally:
        await asyncio.to_thread(postgres_server.start)
    await asyncio.to_thread(service.wait_for_health, SERVING, 30)
    await asyncio.sleep(1)
    stop.set()
    await publishing
    assert len(published) > published_before_outage_ended > 20

    async def all_recorded() -> Any:
        counts = await _counts(fresh_database)
        return counts == (len(published), 2 * len(published), 0) or counts

    await _until(all_recorded, 90, f"recording {len(published)} jobs after the outage")
    assert {row[0] for row in await _jobs_snapshot(fresh_database)} == set(published)
    assert service.process.pid == pid
    assert service.process.poll() is None
    assert "cannot record" in service.log()


async def test_started_before_postgres_it_waits_then_migrates_and_records(
    start_service: StartService,
    nats_server: Any,
    postgres_server: Any,
    fresh_database: str,
    jetstream: JetStreamContext,
    job_events: JobEvents,
) -> None:
    await asyncio.to_thread(postgres_server.stop)
    try:
        service = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
        await asyncio.to_thread(service.wait_for_health, NOT_SERVING)
        await asyncio.sleep(2)
        assert service.process.poll() is None, "reporting gave up instead of waiting"
        assert await asyncio.to_thread(service.health) == NOT_SERVING
    finally:
        await asyncio.to_thread(postgres_server.start)
    await asyncio.to_thread(service.wait_for_health, SERVING)
    job = job_events()
    await publish_event(jetstream, job.succeeded())

    async def recorded() -> Any:
        counts = await _counts(fresh_database)
        return counts == (1, 1, 0) or counts

    await _until(recorded, 30, "recording after a late database")
    assert "applying migration 1" in service.log()


async def test_reporting_that_recorded_events_stops_promptly_on_sigterm(
    start_service: StartService,
    nats_server: Any,
    fresh_database: str,
    jetstream: JetStreamContext,
    job_events: JobEvents,
) -> None:
    # Regression: a pull subscription that had fetched kept the NATS drain waiting for its
    # whole timeout, so `make up` had to SIGKILL reporting at every stop.
    service = start_service("reporting", nats_url=nats_server.url, database_url=fresh_database)
    await asyncio.to_thread(service.wait_for_health, SERVING)
    await publish_event(jetstream, job_events().queued())

    async def recorded() -> Any:
        counts = await _counts(fresh_database)
        return counts == (1, 1, 1) or counts

    await _until(recorded, 30, "recording one event")
    await asyncio.sleep(5)  # idle fetches time out meanwhile, as in a mesh at rest
    started = time.monotonic()
    assert await asyncio.to_thread(service.terminate) == 0, service.log()
    assert time.monotonic() - started < 8, f"reporting took long to stop:\n{service.log()}"
    assert "reporting stopped" in service.log()
