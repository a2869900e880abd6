"""Quality per model version, judged by feedback: every figure is computed by PostgreSQL.

Why in SQL: the judged answers may be many; only the small results (a confusion matrix, a
few labels, ten bins per version) cross the wire. All statements read one snapshot (the
caller's transaction), so the figures of one answer agree with each other.

The judged answers of a window are the succeeded jobs submitted in it that have feedback:
`answered` is the model's label, `actual` the submitter's. Ratios with no denominator are 0.

Paged by model version, most answers first: the coverage query ranks every version of the
window (one pass over the window's answered jobs, from the index) and keeps one page after
the cursor; the other figures are computed for that page's versions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql

from services.reporting.query import QualityFilter, QualityPage

CALIBRATION_BINS = 10
"""Equal-width confidence bins of the reliability diagram (and of the ECE)."""

_ANSWERED = sql.SQL(
    "SELECT jobs.id, jobs.model_version, jobs.label AS answered, "
    "jobs.confidence::double precision AS confidence, job_feedback.actual_label AS actual "
    "FROM jobs LEFT JOIN job_feedback ON job_feedback.job_id = jobs.id "
    "WHERE jobs.state = 'succeeded' {conditions}"
)

_COVERAGE = sql.SQL(
    "WITH answered AS ({answered}) "
    "SELECT model_version, count(*), count(actual), "
    "COALESCE(avg((answered = actual)::int) FILTER (WHERE actual IS NOT NULL), 0) "
    "FROM answered GROUP BY model_version {after} "
    "ORDER BY count(*) DESC, model_version LIMIT %(limit)s"
)

# The keyset of GetQuality's order (answered jobs DESC, model_version ASC).
_AFTER = sql.SQL(
    "HAVING count(*) < %(after_count)s "
    "OR (count(*) = %(after_count)s AND model_version > %(after_version)s)"
)

_CONFUSION = sql.SQL(
    "WITH answered AS ({answered}) "
    "SELECT model_version, answered, actual, count(*) FROM answered "
    "WHERE actual IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)

_LABELS = sql.SQL(
    "WITH answered AS ({answered}), judged AS (SELECT * FROM answered WHERE actual IS NOT NULL), "
    "labels AS (SELECT model_version, answered AS label FROM judged "
    "UNION SELECT model_version, actual FROM judged), "
    "counts AS (SELECT labels.model_version, labels.label, "
    "count(*) FILTER (WHERE answered = labels.label AND actual = labels.label) AS hits, "
    "count(*) FILTER (WHERE answered = labels.label) AS answered_as, "
    "count(*) FILTER (WHERE actual = labels.label) AS support "
    "FROM labels JOIN judged USING (model_version) GROUP BY 1, 2), "
    "ratios AS (SELECT model_version, label, support, "
    "COALESCE(hits::double precision / NULLIF(answered_as, 0), 0) AS precision, "
    "COALESCE(hits::double precision / NULLIF(support, 0), 0) AS recall FROM counts), "
    "figures AS (SELECT model_version, label, precision, recall, support, "
    "COALESCE(2 * precision * recall / NULLIF(precision + recall, 0), 0) AS f1 FROM ratios) "
    "SELECT model_version, label, precision, recall, f1, support, "
    "avg(f1) OVER (PARTITION BY model_version) AS macro_f1 FROM figures ORDER BY 1, 2"
)

_CALIBRATION = sql.SQL(
    "WITH answered AS ({answered}), "
    "bins AS (SELECT model_version, "
    "LEAST(width_bucket(confidence, 0, 1, %(bins)s), %(bins)s) AS bin, count(*) AS count, "
    "avg(confidence) AS mean_confidence, avg((answered = actual)::int) AS accuracy "
    "FROM answered WHERE actual IS NOT NULL GROUP BY 1, 2) "
    "SELECT model_version, bin, count, mean_confidence, accuracy, "
    "sum(count * abs(accuracy - mean_confidence)) OVER versions "
    "/ sum(count) OVER versions AS ece "
    "FROM bins WINDOW versions AS (PARTITION BY model_version) ORDER BY 1, 2"
)


@dataclass(frozen=True)
class LabelFigures:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass
class ModelQuality:
    model_version: str
    answered_jobs: int
    judged_jobs: int
    accuracy: float
    macro_f1: float = 0.0
    expected_calibration_error: float = 0.0
    confusion: list[tuple[str, str, int]] = field(default_factory=list)
    labels: list[LabelFigures] = field(default_factory=list)
    calibration: list[CalibrationBin] = field(default_factory=list)


@dataclass(frozen=True)
class QualityPageFigures:
    models: list[ModelQuality]
    """At most the page's size, in the page's order."""
    more: bool
    """Whether versions follow on a next page."""


def answered_query(
    quality_filter: QualityFilter, versions: Sequence[str] | None = None
) -> tuple[sql.Composed, dict[str, Any]]:
    """The answered jobs of the window (with their feedback, if any): every figure's source.
    `versions` limits them to one page's model versions."""
    window, model_version = quality_filter.window, quality_filter.model_version
    conditions: list[sql.Composable] = []
    params: dict[str, Any] = {"bins": CALIBRATION_BINS}
    if window.start is not None:
        conditions.append(sql.SQL(" AND jobs.submitted_at >= %(start)s"))
        params["start"] = window.start
    if window.end is not None:
        conditions.append(sql.SQL(" AND jobs.submitted_at < %(end)s"))
        params["end"] = window.end
    if model_version:
        conditions.append(sql.SQL(" AND jobs.model_version = %(model_version)s"))
        params["model_version"] = model_version
    if versions is not None:
        conditions.append(sql.SQL(" AND jobs.model_version = ANY(%(versions)s)"))
        params["versions"] = list(versions)
    return _ANSWERED.format(conditions=sql.Composed(conditions)), params


def ranking_query(page: QualityPage) -> tuple[sql.Composed, dict[str, Any]]:
    """The page's model versions with their coverage, one more than the page holds (the
    extra one says a next page exists): the statement that reads the whole window."""
    answered, params = answered_query(page.filter)
    after: sql.Composable = sql.SQL("")
    params["limit"] = page.size + 1
    if page.after is not None:
        after = _AFTER
        params["after_count"] = page.after.answered_jobs
        params["after_version"] = page.after.model_version
    return _COVERAGE.format(answered=answered, after=after), params


async def quality(connection: AsyncConnection[Any], page: QualityPage) -> QualityPageFigures:
    """One page of model versions with their figures over their answers in the page's window
    (one snapshot: the caller's transaction)."""
    ranking, params = ranking_query(page)
    cursor = await connection.execute(ranking, params)
    ranked = list(await cursor.fetchall())
    models = {
        str(version): ModelQuality(str(version), int(total), int(judged), float(accuracy))
        for version, total, judged, accuracy in ranked[: page.size]
    }
    more = len(ranked) > page.size
    if not models:
        return QualityPageFigures([], more)
    answered, params = answered_query(page.filter, list(models))

    async def rows(statement: sql.SQL) -> list[tuple[Any, ...]]:
        cursor = await connection.execute(statement.format(answered=answered), params)
        return list(await cursor.fetchall())

    for version, answered_label, actual, count in await rows(_CONFUSION):
        models[str(version)].confusion.append((str(answered_label), str(actual), int(count)))
    for version, label, precision, recall, f1, support, macro_f1 in await rows(_LABELS):
        model = models[str(version)]
        model.labels.append(
            LabelFigures(str(label), float(precision), float(recall), float(f1), int(support))
        )
        model.macro_f1 = float(macro_f1)
    width = 1.0 / CALIBRATION_BINS
    for version, index, count, mean_confidence, accuracy, ece in await rows(_CALIBRATION):
        model = models[str(version)]
        model.calibration.append(
            CalibrationBin(
                (int(index) - 1) * width,
                int(index) * width,
                int(count),
                float(mean_confidence),
                float(accuracy),
            )
        )
        model.expected_calibration_error = float(ece)
    return QualityPageFigures(list(models.values()), more)
