"""The capacity model: arithmetic from per-job figures, and CAPACITY.md kept in step."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.capacity import (
    DEFAULT_FIGURES,
    DEFAULT_OUTPUT,
    HEADROOM,
    REPO_ROOT,
    Budget,
    Measured,
    budget_lines,
    plan,
    render,
    retention_seconds,
    saturates_first,
    shipped_budgets,
)
from meshkit.broker_layout import BrokerSettings

MIB = 1024 * 1024


def figures(**per_job: Any) -> dict[str, Any]:
    return {
        "machine": {"cores": 2, "cpu": "test cpu"},
        "limit": {"images_per_second": 100.0},
        "classify": {"images_per_second": 50.0},
        "via_envoy_trusted": {"images_per_second": 40.0},
        "per_job": {
            "cpu_seconds": {
                "classifier": 0.02,
                "dispatcher": 0.004,
                "reporting": 0.001,
                "envoy": 0.001,
                "nats": 0.002,
                "postgres": 0.001,
            },
            "nats_messages": 6.0,
            "nats_bytes": 30_000.0,
            "nats_stream_bytes": {"OBJ_weather-images": 25_000.0, "WEATHER_JOBS": 5_000.0},
            "postgres_writes": 4.0,
            "postgres_bytes": 2_000.0,
            **per_job,
        },
        "rss_peak_bytes": {
            "classifier": 800 * MIB,
            "dispatcher": 100 * MIB,
            "reporting": 90 * MIB,
            "envoy": 70 * MIB,
            "nats": 50 * MIB,
            "postgres": 30 * MIB,
        },
    }


MEASURED = Measured.from_figures(figures())
# 25 kB of photo per job: at one photo/s this budget holds one hour, not a week.
SMALL = Budget(
    "OBJ_weather-images", "IMAGES_MAX_BYTES", 25_000 * 3600, 7 * 86_400.0, "uploads are refused"
)
ROOMY = Budget("WEATHER_JOBS", "JOBS_MAX_BYTES", 10**12, 86_400.0, "jobs are refused")


def by_component(rate: int) -> dict[str, Any]:
    return {need.component: need for need in plan(MEASURED, rate).needs}


def test_classifier_replicas_cover_the_rate_with_headroom() -> None:
    # 100 photos/s x 1.5 = 150, at 50 per replica: 3 replicas of 2 cores.
    classifier = by_component(100)["classifier"]
    assert (classifier.replicas, classifier.cores) == (3, 6.0)
    assert classifier.memory_bytes == 3 * 800 * MIB


def test_scaled_out_services_get_a_core_per_replica_from_their_cpu_per_job() -> None:
    # 1000 x 1.5 x 4 ms = 6 cores of dispatcher: 6 replicas, each fully loaded.
    dispatcher = by_component(1000)["dispatcher"]
    assert (dispatcher.replicas, dispatcher.cores) == (6, 6.0)
    assert dispatcher.load == pytest.approx(1.0)


def test_stateful_components_stay_one_instance_measured_against_a_node() -> None:
    nats = by_component(1000)["nats"]
    assert nats.replicas == 1
    assert nats.cores == pytest.approx(3.0)
    assert nats.load == pytest.approx(3.0 / 8)


def test_what_saturates_first_is_the_biggest_consumer_of_cores() -> None:
    assert plan(MEASURED, 10).first_to_saturate().component == "classifier"
    assert plan(MEASURED, 1000).busiest_stateful().component == "nats"


def test_writes_per_second_are_per_job_writes_times_the_rate() -> None:
    step = plan(MEASURED, 100)
    assert (step.nats_writes_per_second, step.postgres_writes_per_second) == (600.0, 400.0)


def test_a_budget_too_small_for_the_retention_says_when_it_fills() -> None:
    (line,) = budget_lines(MEASURED, 1, (SMALL,))
    assert "is full after 1.0 h, then uploads are refused" in line
    (line,) = budget_lines(MEASURED, 1, (ROOMY,))
    assert "fits" in line


def test_a_budget_that_fills_before_retention_saturates_before_any_cpu() -> None:
    step = plan(MEASURED, 1)
    assert "full after 1.0 h" in saturates_first(MEASURED, 1, (SMALL, ROOMY), step)
    assert saturates_first(MEASURED, 1, (ROOMY,), step).startswith(
        "- Saturates first: **classifier** CPU"
    )


def test_retention_and_budgets_are_the_shipped_settings() -> None:
    settings = BrokerSettings()
    assert retention_seconds() == settings.retention_seconds
    budgets = {budget.setting: budget.max_bytes for budget in shipped_budgets()}
    assert budgets["IMAGES_MAX_BYTES"] == settings.images_max_bytes
    assert budgets["JOBS_MAX_BYTES"] == settings.jobs_max_bytes


def test_the_document_is_the_same_for_the_same_figures() -> None:
    first = render(figures(), 86_400.0, shipped_budgets(), "f.json")
    assert first == render(figures(), 86_400.0, shipped_budgets(), "f.json")
    assert f"Headroom {HEADROOM:.0%}" in first
    for rate in ("## 10 photos/s", "## 100 photos/s", "## 1,000 photos/s"):
        assert rate in first


def test_the_committed_capacity_md_is_what_make_capacity_makes_from_the_committed_figures() -> None:
    committed = json.loads(DEFAULT_FIGURES.read_text())
    expected = render(
        committed,
        retention_seconds(),
        shipped_budgets(),
        str(DEFAULT_FIGURES.relative_to(REPO_ROOT)),
    )
    assert DEFAULT_OUTPUT.read_text() == expected, "run `make capacity` and commit CAPACITY.md"
