"""PostgreSQL side of reporting: recording job events and the queries the RPCs answer.

Exactly-once *effect* under at-least-once delivery comes from two rules, both inside the
transaction that records a batch of events:

- `events` is keyed by the event id: a redelivered or republished event inserts nothing
  and changes nothing else;
- `jobs` is upserted by job id, and the only change an existing row accepts is QUEUED →
  terminal. Every event carries the job's identity, so whichever event arrives first
  creates the row; a `queued` arriving after its `succeeded` finds a terminal row and
  leaves it alone. Hence any order, any number of copies: the same row.

All SQL is static text with placeholders; filters are composed from fixed fragments.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from meshkit.job_events import any_event_kind
from meshkit.job_states import FEEDBACK_KIND
from services.reporting.quality import QualityPageFigures, quality, ranking_query
from services.reporting.query import JobFilter, JobsPage, QualityPage, Window
from weather.v1 import events_pb2

logger = logging.getLogger(__name__)

UNAVAILABLE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, OSError)

INSERT_EVENT = """
INSERT INTO events (event_id, job_id, kind, occurred_at, stream_sequence, payload)
VALUES (%(event_id)s, %(job_id)s, %(kind)s, %(occurred_at)s, %(stream_sequence)s, %(payload)s)
ON CONFLICT (event_id) DO NOTHING
"""

UPSERT_JOB = """
INSERT INTO jobs (
    id, image_sha256, filename, state, label, confidence, scores, model_version, from_cache,
    submitted_at, finished_at, latency_ms, error_message, failure_kind, owner
) VALUES (
    %(job_id)s, %(image_sha256)s, %(filename)s, %(state)s, %(label)s, %(confidence)s,
    %(scores)s, %(model_version)s, %(from_cache)s, %(submitted_at)s, %(finished_at)s,
    %(latency_ms)s, %(error_message)s, %(failure_kind)s, %(owner)s
)
ON CONFLICT (id) DO UPDATE SET
    image_sha256 = COALESCE(NULLIF(EXCLUDED.image_sha256, ''), jobs.image_sha256),
    filename = CASE WHEN EXCLUDED.filename <> '' THEN EXCLUDED.filename ELSE jobs.filename END,
    state = EXCLUDED.state,
    label = EXCLUDED.label,
    confidence = EXCLUDED.confidence,
    scores = EXCLUDED.scores,
    model_version = EXCLUDED.model_version,
    from_cache = EXCLUDED.from_cache,
    finished_at = EXCLUDED.finished_at,
    latency_ms = EXCLUDED.latency_ms,
    error_message = EXCLUDED.error_message,
    failure_kind = EXCLUDED.failure_kind,
    updated_at = now()
WHERE jobs.state = 'queued' AND EXCLUDED.state <> 'queued'
"""

# The latest feedback of a job wins: by stream sequence (the broker's order), then given_at,
# then event id, so any delivery order ends in the same row (see 0003_job_feedback.sql).
UPSERT_FEEDBACK = """
INSERT INTO job_feedback (job_id, actual_label, given_at, event_id, stream_sequence)
VALUES (%(job_id)s, %(actual_label)s, %(given_at)s, %(event_id)s, %(feedback_sequence)s)
ON CONFLICT (job_id) DO UPDATE SET
    actual_label = EXCLUDED.actual_label,
    given_at = EXCLUDED.given_at,
    event_id = EXCLUDED.event_id,
    stream_sequence = EXCLUDED.stream_sequence
WHERE (job_feedback.stream_sequence, job_feedback.given_at, job_feedback.event_id)
    < (EXCLUDED.stream_sequence, EXCLUDED.given_at, EXCLUDED.event_id)
"""

# Every aggregate of one GetStats sees the same jobs, however many arrive meanwhile.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

JOB_COLUMNS = sql.SQL(
    "id, image_sha256, filename, state, label, confidence, scores, model_version, "
    "submitted_at, finished_at, error_message, owner, "
    "job_feedback.actual_label, job_feedback.given_at"
)
JOBS_WITH_FEEDBACK = sql.SQL("jobs LEFT JOIN job_feedback ON job_feedback.job_id = jobs.id")


PURGE_EVENTS = "DELETE FROM events WHERE job_id IN (SELECT id FROM jobs WHERE submitted_at < %s)"
PURGE_JOBS = "DELETE FROM jobs WHERE submitted_at < %s"


class StoreUnavailableError(RuntimeError):
    """PostgreSQL cannot be reached, went away mid-transaction, or failed in a way that is
    not about the data; retrying later may work, so nothing is dropped."""


class StoreRejectedError(ValueError):
    """PostgreSQL refused the data itself (a constraint, an impossible value); retrying the
    same data cannot work."""


class UnrecordableEventError(ValueError):
    """A JobEvent that lacks what a row needs (job id, submission time)."""


@dataclass(frozen=True)
class EventRecord:
    """One event as it will be written: the event row and the job row it implies."""

    event_id: str
    job_id: str
    kind: str
    occurred_at: datetime
    stream_sequence: int | None
    payload: bytes
    job: dict[str, Any]
    feedback: dict[str, Any] | None = None
    """For a feedback event: the `job_feedback` row it proposes."""

    def params(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "occurred_at": self.occurred_at,
            "stream_sequence": self.stream_sequence,
            "payload": self.payload,
            **self.job,
            **(self.feedback or {}),
        }


def event_record(event: events_pb2.JobEvent, stream_sequence: int | None = None) -> EventRecord:
    """The rows one JobEvent implies. UnrecordableEventError when it cannot make a row."""
    try:
        kind = any_event_kind(event)
    except ValueError as error:
        raise UnrecordableEventError(str(error)) from error
    if not event.event_id or not event.job_id:
        raise UnrecordableEventError("a job event needs an event_id and a job_id")
    occurred = event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else None
    submitted_at = (
        event.submitted_at.ToDatetime(tzinfo=UTC) if event.HasField("submitted_at") else occurred
    )
    if submitted_at is None:
        raise UnrecordableEventError(f"event {event.event_id!r} has no time")
    occurred_at = occurred if occurred is not None else submitted_at
    filename = event.filename or (event.queued.filename if kind == "queued" else "")
    job: dict[str, Any] = {
        "job_id": event.job_id,
        "image_sha256": event.image_sha256 or event.queued.image.sha256,
        "filename": filename,
        "state": kind,
        "label": None,
        "confidence": None,
        "scores": None,
        "model_version": None,
        "from_cache": None,
        "submitted_at": submitted_at,
        "finished_at": None,
        "latency_ms": None,
        "error_message": None,
        "failure_kind": None,
        "owner": event.owner,
    }
    feedback = None
    if kind == FEEDBACK_KIND:
        # Feedback changes no state: its job row is only a stand-in until the job's own
        # events arrive (the upsert never lets a `queued` row overwrite anything).
        given = event.feedback.feedback
        if not given.actual_label:
            raise UnrecordableEventError(f"feedback {event.event_id!r} names no label")
        job["state"] = "queued"
        feedback = {
            "actual_label": given.actual_label,
            "given_at": given.given_at.ToDatetime(tzinfo=UTC)
            if given.HasField("given_at")
            else occurred_at,
            "feedback_sequence": stream_sequence or 0,
        }
    elif kind != "queued":
        job["finished_at"] = occurred_at
        job["latency_ms"] = max(0.0, (occurred_at - submitted_at).total_seconds() * 1000.0)
    if kind == "succeeded":
        classification = event.succeeded.classification
        job["label"] = classification.label
        job["confidence"] = classification.confidence
        job["scores"] = Jsonb({score.label: score.score for score in classification.scores})
        job["model_version"] = classification.model_version
        job["from_cache"] = event.succeeded.from_cache
    elif kind == "failed":
        job["error_message"] = event.failed.reason
        job["failure_kind"] = events_pb2.FailureKind.Name(event.failed.kind)
    return EventRecord(
        event_id=event.event_id,
        job_id=event.job_id,
        kind=kind,
        occurred_at=occurred_at,
        stream_sequence=stream_sequence,
        payload=event.SerializeToString(),
        job=job,
        feedback=feedback,
    )


@dataclass(frozen=True)
class JobRow:
    id: str
    image_sha256: str
    filename: str
    state: str
    label: str | None
    confidence: float | None
    scores: dict[str, float] | None
    model_version: str | None
    submitted_at: datetime
    finished_at: datetime | None
    error_message: str | None
    owner: str = ""
    feedback_label: str | None = None
    feedback_given_at: datetime | None = None


@dataclass(frozen=True)
class Stats:
    total_jobs: int
    by_label: dict[str, int] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    by_model_version: dict[str, int] = field(default_factory=dict)
    latency_ms: tuple[float, float, float] | None = None
    """p50, p95, p99 of finished jobs; None when no job finished."""


class JobStore:
    """Records events and answers queries; every database failure surfaces as one of the
    two domain errors above, so callers need not know psycopg."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        timeout_seconds: float,
        ingest_pool: AsyncConnectionPool | None = None,
    ) -> None:
        """`pool` serves queries; `ingest_pool` (default: the same) takes the event writes,
        so a burst of events never queues the RPCs behind it, nor slow queries the ingest."""
        self._pool = pool
        self._ingest_pool = ingest_pool or pool
        self._timeout = timeout_seconds

    async def record(self, records: Sequence[EventRecord]) -> int:
        """Write the events in one transaction; return how many were new (not duplicates).

        Returns only after the commit, so the caller may then ack every message. Rows are
        written in (job id, event id) order: the result does not depend on the order, and
        one order for every replica means two batches never lock the same rows crosswise.
        """
        new = 0
        try:
            async with (
                self._ingest_pool.connection(timeout=self._timeout) as connection,
                connection.transaction(),
            ):
                for record in sorted(records, key=lambda r: (r.job_id, r.event_id)):
                    params = record.params()
                    inserted = await connection.execute(INSERT_EVENT, params)
                    if inserted.rowcount == 0:
                        continue
                    new += 1
                    await connection.execute(UPSERT_JOB, params)
                    if record.feedback is not None:
                        await connection.execute(UPSERT_FEEDBACK, params)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as error:
            raise StoreRejectedError(f"PostgreSQL refused the events: {error}") from error
        except (*UNAVAILABLE_ERRORS, psycopg.Error) as error:
            # Anything else may pass (or is ours to fix): keep the events for a retry.
            raise StoreUnavailableError(f"PostgreSQL failed: {error}") from error
        return new

    async def purge_submitted_before(self, cutoff: datetime) -> int:
        """Delete the jobs submitted before `cutoff` and their events (retention); return
        how many jobs went. One transaction: a job never loses its events alone."""
        try:
            async with (
                self._pool.connection(timeout=self._timeout) as connection,
                connection.transaction(),
            ):
                await connection.execute(PURGE_EVENTS, (cutoff,))
                purged = await connection.execute(PURGE_JOBS, (cutoff,))
                return purged.rowcount
        except (*UNAVAILABLE_ERRORS, psycopg.Error) as error:
            raise StoreUnavailableError(f"PostgreSQL failed: {error}") from error

    async def list_jobs(self, page: JobsPage) -> list[JobRow]:
        """Up to `page.size + 1` jobs after the cursor, newest first (the extra one tells
        the caller there is a next page)."""
        query, params = _list_query(page)
        return [JobRow(*row) for row in await self._fetch(query, params)]

    async def explain_list_jobs(self, page: JobsPage) -> str:
        """The plan PostgreSQL picks for `list_jobs(page)` (for tests and the docs)."""
        query, params = _list_query(page)
        rows = await self._fetch(sql.SQL("EXPLAIN ") + query, params)
        return "\n".join(str(row[0]) for row in rows)

    async def stats(self, window: Window) -> Stats:
        """Aggregates over the jobs submitted in `window`, from one consistent snapshot."""
        job_filter = JobFilter(window=window)
        where = _where(_filter_conditions(job_filter))
        params = _filter_params(job_filter)
        try:
            async with (
                self._pool.connection(timeout=self._timeout) as connection,
                connection.transaction(),
            ):
                await connection.execute(SNAPSHOT)
                return await _stats(connection, where, params)
        except UNAVAILABLE_ERRORS as error:
            raise StoreUnavailableError(f"PostgreSQL unavailable: {error}") from error

    async def quality(self, page: QualityPage) -> QualityPageFigures:
        """One page of quality per model version over the answers submitted in the page's
        window, from one snapshot."""
        try:
            async with (
                self._pool.connection(timeout=self._timeout) as connection,
                connection.transaction(),
            ):
                await connection.execute(SNAPSHOT)
                return await quality(connection, page)
        except UNAVAILABLE_ERRORS as error:
            raise StoreUnavailableError(f"PostgreSQL unavailable: {error}") from error

    async def explain_quality(self, page: QualityPage) -> str:
        """The plan of the page's ranking, the statement that reads the whole window."""
        ranking, params = ranking_query(page)
        try:
            async with self._pool.connection(timeout=self._timeout) as connection:
                cursor = await connection.execute(sql.SQL("EXPLAIN ") + ranking, params)
                return "\n".join(str(row[0]) for row in await cursor.fetchall())
        except UNAVAILABLE_ERRORS as error:
            raise StoreUnavailableError(f"PostgreSQL unavailable: {error}") from error

    async def _fetch(self, query: sql.Composed, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection(timeout=self._timeout) as connection:
                cursor = await connection.execute(query, params)
                return list(await cursor.fetchall())
        except UNAVAILABLE_ERRORS as error:
            raise StoreUnavailableError(f"PostgreSQL unavailable: {error}") from error


async def _stats(
    connection: AsyncConnection[Any], where: sql.Composable, params: Sequence[Any]
) -> Stats:
    totals = await connection.execute(
        sql.SQL(
            "SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) "
            "WITHIN GROUP (ORDER BY latency_ms) FROM jobs {where}"
        ).format(where=where),
        params,
    )
    total, percentiles = await totals.fetchone() or (0, None)
    counts: dict[str, dict[str, int]] = {}
    for column in ("label", "state", "model_version"):
        grouped = await connection.execute(
            sql.SQL(
                "SELECT {column}, count(*) FROM jobs {where} GROUP BY {column} "
                "HAVING {column} IS NOT NULL ORDER BY count(*) DESC, {column}"
            ).format(column=sql.Identifier(column), where=where),
            params,
        )
        counts[column] = {str(key): int(count) for key, count in await grouped.fetchall()}
    latency = None
    if percentiles is not None and None not in percentiles:
        latency = (float(percentiles[0]), float(percentiles[1]), float(percentiles[2]))
    return Stats(
        total_jobs=int(total),
        by_label=counts["label"],
        by_state=counts["state"],
        by_model_version=counts["model_version"],
        latency_ms=latency,
    )


def _list_query(page: JobsPage) -> tuple[sql.Composed, list[Any]]:
    conditions = _filter_conditions(page.filter)
    params = _filter_params(page.filter)
    if page.after is not None:
        conditions.append(sql.SQL("(submitted_at, id) < (%s, %s)"))
        params += [page.after.submitted_at, page.after.job_id]
    params.append(page.size + 1)
    query = sql.SQL(
        "SELECT {columns} FROM {jobs} {where} ORDER BY submitted_at DESC, id DESC LIMIT %s"
    ).format(columns=JOB_COLUMNS, jobs=JOBS_WITH_FEEDBACK, where=_where(conditions))
    return query, params


def _filter_conditions(job_filter: JobFilter) -> list[sql.Composable]:
    conditions: list[sql.Composable] = []
    if job_filter.owner is not None:
        conditions.append(sql.SQL("owner = %s"))
    if job_filter.label is not None:
        conditions.append(sql.SQL("label = %s"))
    if job_filter.state is not None:
        conditions.append(sql.SQL("state = %s"))
    if job_filter.window.start is not None:
        conditions.append(sql.SQL("submitted_at >= %s"))
    if job_filter.window.end is not None:
        conditions.append(sql.SQL("submitted_at < %s"))
    return conditions


def _filter_params(job_filter: JobFilter) -> list[Any]:
    """The values for `_filter_conditions`, in the same order."""
    candidates = (
        job_filter.owner,
        job_filter.label,
        job_filter.state,
        job_filter.window.start,
        job_filter.window.end,
    )
    return [value for value in candidates if value is not None]


def _where(conditions: Sequence[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)
