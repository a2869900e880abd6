"""The store against a real PostgreSQL: idempotent, order-independent ingest; safe, indexed
queries."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from meshkit.contract_constants import LABELS
from services.reporting.quality import CALIBRATION_BINS
from services.reporting.query import (
    Cursor,
    JobFilter,
    JobsPage,
    QualityCursor,
    QualityFilter,
    QualityPage,
    Window,
)
from services.reporting.store import JobStore, StoreRejectedError, event_record

JobEvents = Any  # the `job_events` fixture's builder class (see conftest.py)
BASE = datetime(2026, 11, 1, tzinfo=UTC)


async def _rows(pool: AsyncConnectionPool, table: str) -> list[tuple[Any, ...]]:
    queries = {
        "jobs": "SELECT id, image_sha256, filename, state, label, confidence, scores, "
        "model_version, from_cache, submitted_at, finished_at, latency_ms, error_message, "
        "failure_kind FROM jobs ORDER BY id",
        "events": "SELECT event_id, job_id, kind, occurred_at, payload FROM events ORDER BY 1",
    }
    async with pool.connection() as connection:
        cursor = await connection.execute(queries[table])
        return list(await cursor.fetchall())


async def test_duplicated_and_redelivered_events_leave_one_row_each(
    store: JobStore, pool: AsyncConnectionPool, job_events: JobEvents
) -> None:
    job = job_events()
    queued, succeeded = event_record(job.queued()), event_record(job.succeeded())
    assert await store.record([queued, queued, succeeded]) == 2
    assert await store.record([succeeded, queued]) == 0
    jobs = await _rows(pool, "jobs")
    assert len(jobs) == 1
    assert jobs[0][3] == "succeeded"
    assert len(await _rows(pool, "events")) == 2


async def test_feedback_is_recorded_once_however_often_it_is_delivered(
    store: JobStore, pool: AsyncConnectionPool, job_events: JobEvents
) -> None:
    job = job_events()
    feedback = event_record(job.feedback("shine"), stream_sequence=7)
    assert await store.record([event_record(job.queued()), event_record(job.succeeded())]) == 2
    assert await store.record([feedback, feedback]) == 1
    assert await store.record([feedback]) == 0
    async with pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT job_id, actual_label, stream_sequence FROM job_feedback"
        )
        assert await cursor.fetchall() == [(job.job_id, "shine", 7)]
        cursor = await connection.execute("SELECT count(*) FROM events WHERE kind = 'feedback'")
        assert await cursor.fetchone() == (1,)
    [row] = await store.list_jobs(JobsPage(JobFilter(), 10, None))
    assert (row.state, row.label, row.feedback_label) == ("succeeded", "rain", "shine")


async def test_the_latest_feedback_wins_in_any_delivery_order(
    store: JobStore, job_events: JobEvents
) -> None:
    """Latest = highest stream sequence (the broker's order), whatever order they arrive in;
    feedback recorded before its job's own events leaves the job's row to them."""
    job = job_events()
    first = event_record(job.feedback("shine", after_seconds=5), stream_sequence=10)
    second = event_record(job.feedback("rain", after_seconds=6), stream_sequence=11)
    await store.record([second])
    await store.record([first])
    await store.record([event_record(job.succeeded()), event_record(job.queued())])
    [row] = await store.list_jobs(JobsPage(JobFilter(), 10, None))
    assert (row.state, row.label, row.feedback_label) == ("succeeded", "rain", "rain")
    third = event_record(job.feedback("cloudy", after_seconds=7), stream_sequence=12)
    await store.record([third, first])
    [row] = await store.list_jobs(JobsPage(JobFilter(), 10, None))
    assert row.feedback_label == "cloudy"


async def test_each_job_is_listed_for_its_owner_only_and_for_everyone_without_one(
    store: JobStore, job_events: JobEvents
) -> None:
    """The owner rides on every event; whichever event arrives first records it."""
    by_owner = {"alice": job_events(), "bob": job_events(), "": job_events()}
    events = []
    for owner, job in by_owner.items():
        for event in (job.queued(), job.succeeded()):
            event.owner = owner
            events.append(event_record(event))
    await store.record(events[::-1])  # terminal events first
    for owner, job in by_owner.items():
        rows = await store.list_jobs(JobsPage(JobFilter(owner=owner), 10, None))
        assert [(row.id, row.owner, row.state) for row in rows] == [
            (job.job_id, owner, "succeeded")
        ]
    everyone = await store.list_jobs(JobsPage(JobFilter(), 10, None))
    assert {row.owner for row in everyone} == set(by_owner)


@pytest.mark.parametrize("terminal", ["succeeded", "failed"])
async def test_every_delivery_order_converges_to_the_same_row(
    store: JobStore, pool: AsyncConnectionPool, job_events: JobEvents, terminal: str
) -> None:
    """A `succeeded` before its `queued`, in separate batches or one: the same final row."""
    jobs = [job_events(submitted_at=BASE + timedelta(seconds=i)) for i in range(3)]
    in_order = [(job.queued(), getattr(job, terminal)()) for job in jobs]
    await store.record([event_record(e) for pair in in_order for e in pair])
    expected_jobs, expected_events = await _rows(pool, "jobs"), await _rows(pool, "events")
    async with pool.connection() as connection:
        await connection.execute("TRUNCATE events, job_feedback, jobs")
    await store.record([event_record(terminal_event) for _queued, terminal_event in in_order])
    await store.record([event_record(queued) for queued, _terminal in in_order][::-1])
    assert await _rows(pool, "jobs") == expected_jobs
    assert await _rows(pool, "events") == expected_events
    assert {row[3] for row in expected_jobs} == {terminal}


async def test_terminal_state_never_regresses_to_queued(
    store: JobStore, pool: AsyncConnectionPool, job_events: JobEvents
) -> None:
    job = job_events()
    await store.record([event_record(job.succeeded(label="shine"))])
    late_queued = job.queued()
    late_queued.event_id = "another-queued-event"  # even a distinct event cannot move it back
    await store.record([event_record(late_queued)])
    other_terminal = job.failed()
    other_terminal.event_id = "another-terminal-event"
    await store.record([event_record(other_terminal)])
    (row,) = await _rows(pool, "jobs")
    assert row[3] == "succeeded"
    assert row[4] == "shine"


async def test_data_postgres_cannot_hold_is_rejected_and_the_batch_rolled_back(
    store: JobStore, pool: AsyncConnectionPool, job_events: JobEvents
) -> None:
    good = job_events().queued()
    impossible = job_events().succeeded(label="rain\x00")
    with pytest.raises(StoreRejectedError):
        await store.record([event_record(good), event_record(impossible)])
    assert await _rows(pool, "jobs") == []
    assert await store.record([event_record(good)]) == 1


async def test_filter_strings_containing_sql_are_only_strings(
    store: JobStore, pool: AsyncConnectionPool, job_events: JobEvents
) -> None:
    await store.record([event_record(job_events().succeeded(label="rain"))])
    for hostile in ("rain' OR '1'='1", "'; DROP TABLE jobs; --", "rain%", "%s", "%(label)s"):
        page = JobsPage(JobFilter(label=hostile), size=10, after=None)
        assert await store.list_jobs(page) == []
    assert len(await _rows(pool, "jobs")) == 1
    stored = job_events()
    stored_event = stored.succeeded(label="'; DROP TABLE jobs; --")
    await store.record([event_record(stored_event)])
    page = JobsPage(JobFilter(label="'; DROP TABLE jobs; --"), size=10, after=None)
    assert [row.id for row in await store.list_jobs(page)] == [stored.job_id]


async def test_stats_count_per_label_state_and_model_with_latency_percentiles(
    store: JobStore, job_events: JobEvents
) -> None:
    events = []
    for i in range(100):
        job = job_events(submitted_at=BASE + timedelta(minutes=i))
        events.append(job.queued())
        if i < 80:
            label = "rain" if i % 2 else "shine"
            events.append(job.succeeded(label=label, latency_ms=float(i + 1), model_version="m1"))
        elif i < 90:
            events.append(job.failed())
    await store.record([event_record(event) for event in events])

    stats = await store.stats(Window())
    assert stats.total_jobs == 100
    assert stats.by_state == {"succeeded": 80, "queued": 10, "failed": 10}
    assert stats.by_label == {"rain": 40, "shine": 40}
    assert stats.by_model_version == {"m1": 80}
    assert stats.latency_ms is not None
    # 80 latencies 1..80 ms plus 10 failures at 1000 ms.
    p50, p95, p99 = stats.latency_ms
    assert p50 == pytest.approx(45.5)
    assert p95 == pytest.approx(1000.0)
    assert p99 == pytest.approx(1000.0)

    windowed = await store.stats(Window(BASE, BASE + timedelta(minutes=10)))
    assert windowed.total_jobs == 10
    assert windowed.latency_ms == pytest.approx((5.5, 9.55, 9.91))
    empty = await store.stats(Window(BASE - timedelta(days=1), BASE))
    assert empty.total_jobs == 0
    assert empty.latency_ms is None


async def test_paging_while_jobs_arrive_returns_each_existing_job_once(
    store: JobStore, job_events: JobEvents
) -> None:
    existing = [job_events(submitted_at=BASE + timedelta(seconds=i // 3)) for i in range(60)]
    await store.record([event_record(job.queued()) for job in existing])
    seen: list[str] = []
    after: Cursor | None = None
    rng = random.Random(5)
    while True:
        # Meanwhile: new jobs arrive, and existing ones finish (rows change, order holds).
        await store.record([event_record(job_events().queued())])
        await store.record([event_record(rng.choice(existing).succeeded())])
        rows = await store.list_jobs(JobsPage(JobFilter(), size=7, after=after))
        page = rows[:7]
        seen += [row.id for row in page if row.submitted_at < datetime.now(UTC) - timedelta(days=1)]
        if len(rows) <= 7:
            break
        after = Cursor(page[-1].submitted_at, page[-1].id)
    assert sorted(seen) == sorted(job.job_id for job in existing)
    assert len(seen) == len(set(seen))


async def test_list_jobs_plans_use_the_keyset_indexes(
    store: JobStore, pool: AsyncConnectionPool
) -> None:
    """Every page is an index range scan in the listing's order that stops after the page:
    no sort, no sequential scan, whatever the table's size. A selective filter (a rare label
    or state) uses its own index; a common one may equally well filter the main index."""
    async with pool.connection() as connection:
        await connection.execute(
            """
            INSERT INTO jobs (id, image_sha256, state, label, submitted_at, finished_at, owner)
            SELECT md5(n::text), md5(n::text), state,
                   CASE WHEN state <> 'succeeded' THEN NULL
                        WHEN n % 97 = 1 THEN 'sunrise' ELSE labels[1 + n % 3] END,
                   timestamptz '2026-01-01' + n * interval '1 second',
                   CASE WHEN state <> 'queued' THEN timestamptz '2026-01-02' END,
                   'user-' || (n % 200)
            FROM (
                SELECT n, ARRAY['cloudy', 'rain', 'shine'] AS labels,
                       CASE WHEN n % 50 = 0 THEN 'failed'
                            WHEN n % 3 = 0 THEN 'queued' ELSE 'succeeded' END AS state
                FROM generate_series(1, 20000) AS n
            ) AS generated
            """
        )
        await connection.execute("ANALYZE jobs")
    cursor = Cursor(datetime(2026, 1, 1, 3, tzinfo=UTC), "f" * 32)
    cases = {
        "jobs_submitted_at_id_idx": JobsPage(JobFilter(), 20, cursor),
        "jobs_label_submitted_at_id_idx": JobsPage(JobFilter(label="sunrise"), 20, cursor),
        "jobs_state_submitted_at_id_idx": JobsPage(JobFilter(state="failed"), 20, cursor),
        # a viewer's own listing
        "jobs_owner_submitted_at_id_idx": JobsPage(JobFilter(owner="user-7"), 20, cursor),
    }
    for index, page in cases.items():
        plan = await store.explain_list_jobs(page)
        print(f"\n{index}:\n{plan}")
        assert f"Scan using {index}" in plan, plan
        assert "ROW(submitted_at, id) < ROW(" in plan.split("Index Cond: ", 1)[1], plan
        assert "Sort" not in plan, plan
        assert "Seq Scan" not in plan, plan


Judged = tuple[str, str | None, float]
"""(the model's label, the submitter's label or None without feedback, the confidence)"""


def _as_stored(confidence: float) -> float:
    """The confidence as PostgreSQL holds it (`real`: single precision)."""
    return float(struct.unpack("f", struct.pack("f", confidence))[0])


def _by_hand(answers: list[Judged]) -> dict[str, Any]:
    """The quality figures, computed the textbook way in plain Python."""
    judged = [(answered, actual, c) for answered, actual, c in answers if actual is not None]
    labels = sorted({a for a, _, _ in judged} | {b for _, b, _ in judged})
    per_label = {}
    for label in labels:
        hits = sum(1 for a, b, _ in judged if a == label == b)
        answered_as = sum(1 for a, _, _ in judged if a == label)
        support = sum(1 for _, b, _ in judged if b == label)
        precision = hits / answered_as if answered_as else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = (precision, recall, f1, support)
    bins: dict[int, list[tuple[float, bool]]] = {}
    for a, b, c in judged:
        stored = _as_stored(c)
        index = min(int(stored * CALIBRATION_BINS) + 1, CALIBRATION_BINS)
        bins.setdefault(index, []).append((stored, a == b))
    calibration = {
        index: (len(v), sum(c for c, _ in v) / len(v), sum(r for _, r in v) / len(v))
        for index, v in bins.items()
    }
    ece = sum(n * abs(acc - conf) for n, conf, acc in calibration.values()) / len(judged)
    confusion: dict[tuple[str, str], int] = {}
    for a, b, _ in judged:
        confusion[(a, str(b))] = confusion.get((a, str(b)), 0) + 1
    return {
        "answered": len(answers),
        "judged": len(judged),
        "accuracy": sum(1 for a, b, _ in judged if a == b) / len(judged),
        "macro_f1": sum(f for _, _, f, _ in per_label.values()) / len(per_label),
        "labels": per_label,
        "confusion": confusion,
        "calibration": calibration,
        "ece": ece,
    }


async def test_quality_figures_equal_the_figures_computed_by_hand(
    store: JobStore, job_events: JobEvents
) -> None:
    window = Window(BASE, BASE + timedelta(days=1))
    answers: dict[str, list[Judged]] = {
        "sha256:aaaaaaaaaaaa": [
            ("rain", "rain", 0.95),
            ("rain", "cloudy", 0.85),
            ("cloudy", "cloudy", 0.65),
            ("cloudy", None, 0.7),
            ("shine", "shine", 0.92),
            ("shine", "sunrise", 0.55),
            ("sunrise", "sunrise", 1.0),
            ("cloudy", "rain", 0.42),
        ],
        "sha256:bbbbbbbbbbbb": [("rain", "rain", 0.81), ("shine", None, 0.6)],
    }
    records = []
    sequence = 0
    for version, version_answers in answers.items():
        for n, (answered, actual, confidence) in enumerate(version_answers):
            job = job_events(submitted_at=BASE + timedelta(minutes=n))
            records.append(event_record(job.queued()))
            records.append(
                event_record(job.succeeded(answered, model_version=version, confidence=confidence))
            )
            if actual is not None:
                # A first opinion, changed later: only the latest may count.
                sequence += 2
                first = "sunrise" if actual != "sunrise" else "rain"
                records.append(event_record(job.feedback(first, answered), sequence - 1))
                records.append(event_record(job.feedback(actual, answered), sequence))
    # Outside the window: never counted.
    late = job_events(submitted_at=BASE + timedelta(days=2))
    records += [
        event_record(late.succeeded("rain", model_version="sha256:aaaaaaaaaaaa")),
        event_record(late.feedback("shine"), 10_000),
    ]
    await store.record(records[::-1])

    page = await store.quality(QualityPage(QualityFilter(window), 100, None))
    assert not page.more
    figures = {model.model_version: model for model in page.models}
    assert list(figures) == ["sha256:aaaaaaaaaaaa", "sha256:bbbbbbbbbbbb"]  # most answers first
    for version, version_answers in answers.items():
        expected, model = _by_hand(version_answers), figures[version]
        print(f"\n{version}: {model}")
        assert (model.answered_jobs, model.judged_jobs) == (
            expected["answered"],
            expected["judged"],
        )
        assert model.accuracy == pytest.approx(expected["accuracy"])
        assert model.macro_f1 == pytest.approx(expected["macro_f1"])
        assert {(a, b): n for a, b, n in model.confusion} == expected["confusion"]
        labels = {
            label.label: (label.precision, label.recall, label.f1, label.support)
            for label in model.labels
        }
        assert list(labels) == list(expected["labels"])
        for name, figures_of_label in expected["labels"].items():
            assert labels[name] == pytest.approx(figures_of_label), name
        calibration = {
            round(b.high * CALIBRATION_BINS): (b.count, b.mean_confidence, b.accuracy)
            for b in model.calibration
        }
        assert sorted(calibration) == sorted(expected["calibration"])
        for index, figures_of_bin in expected["calibration"].items():
            assert calibration[index] == pytest.approx(figures_of_bin), index
        assert model.expected_calibration_error == pytest.approx(expected["ece"])
    only_b = await store.quality(
        QualityPage(QualityFilter(window, "sha256:bbbbbbbbbbbb"), 100, None)
    )
    assert [model.model_version for model in only_b.models] == ["sha256:bbbbbbbbbbbb"]


async def test_quality_pages_through_model_versions_most_answers_first(
    store: JobStore, job_events: JobEvents
) -> None:
    """Seven versions, two pairs tied on answers: pages of two, then three, follow the
    keyset (answers DESC, version ASC) with no version repeated or skipped, and each
    version's figures are those of the one-page listing."""
    window = Window(BASE, BASE + timedelta(days=1))
    answers = {"sha256:v1": 5, "sha256:v2": 3, "sha256:v3": 3, "sha256:v4": 4}
    answers |= {"sha256:v5": 1, "sha256:v6": 2, "sha256:v7": 2}
    records = []
    for version, count in answers.items():
        for n in range(count):
            job = job_events(submitted_at=BASE + timedelta(minutes=n))
            answered = LABELS[n % len(LABELS)]
            records.append(event_record(job.succeeded(answered, model_version=version)))
            if n % 2 == 0:  # every other answer judged, every judged one of v1 wrong
                actual = LABELS[(n + 1) % len(LABELS)] if version == "sha256:v1" else answered
                records.append(event_record(job.feedback(actual, answered), n + 1))
    outside = job_events(submitted_at=BASE - timedelta(days=1))
    records.append(event_record(outside.succeeded(model_version="sha256:v0")))
    await store.record(records)

    whole = await store.quality(QualityPage(QualityFilter(window), 100, None))
    expected = ["sha256:v1", "sha256:v4", "sha256:v2", "sha256:v3", "sha256:v6", "sha256:v7"]
    assert [model.model_version for model in whole.models] == [*expected, "sha256:v5"]
    assert not whole.more
    by_version = {model.model_version: model for model in whole.models}
    assert by_version["sha256:v1"].accuracy == 0.0
    assert by_version["sha256:v4"].accuracy == 1.0

    for size in (2, 3):
        listed = []
        after = None
        while True:
            page = await store.quality(QualityPage(QualityFilter(window), size, after))
            assert 1 <= len(page.models) <= size
            listed += page.models
            if not page.more:
                break
            last = page.models[-1]
            after = QualityCursor(last.answered_jobs, last.model_version)
        assert listed == whole.models, size

    single = QualityFilter(window, "sha256:v3")
    only = await store.quality(QualityPage(single, 1, None))
    assert ([m.model_version for m in only.models], only.more) == (["sha256:v3"], False)
    past_the_end = await store.quality(
        QualityPage(QualityFilter(window), 5, QualityCursor(1, "sha256:v5"))
    )
    assert (past_the_end.models, past_the_end.more) == ([], False)


async def test_quality_reads_a_window_through_an_index(
    store: JobStore, pool: AsyncConnectionPool
) -> None:
    async with pool.connection() as connection:
        await connection.execute(
            """
            INSERT INTO jobs (id, image_sha256, state, label, confidence, model_version,
                              submitted_at, finished_at)
            SELECT md5(n::text), md5(n::text), 'succeeded', 'rain', 0.8, 'sha256:' || (n % 3),
                   timestamptz '2026-01-01' + n * interval '1 minute',
                   timestamptz '2026-01-01' + n * interval '1 minute'
            FROM generate_series(1, 20000) AS n
            """
        )
        await connection.execute(
            """
            INSERT INTO job_feedback (job_id, actual_label, given_at, event_id, stream_sequence)
            SELECT md5(n::text), 'cloudy', now(), md5(n::text), n
            FROM generate_series(1, 20000) AS n
            """
        )
        await connection.execute("ANALYZE jobs")
        await connection.execute("ANALYZE job_feedback")
    start = datetime(2026, 1, 5, tzinfo=UTC)
    window = QualityFilter(Window(start, start + timedelta(hours=1)))
    plan = await store.explain_quality(QualityPage(window, 2, QualityCursor(20, "sha256:0")))
    print(f"\n{plan}")
    assert "jobs_answered_submitted_at_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
