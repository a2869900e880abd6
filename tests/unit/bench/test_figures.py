"""The bench's arithmetic and its table: ratios, per-job costs, goals beside figures."""

from __future__ import annotations

import re

from bench.figures import GOALS, goal_table, latency_ms, peak_total, per_job, ratio, rss_table


def test_a_rate_is_stated_as_a_fraction_of_the_limit() -> None:
    assert ratio(45.0, 60.0) == 0.75
    assert ratio(10.0, 0.0) == 0.0


def test_latency_percentiles_are_measured_values_in_milliseconds() -> None:
    figures = latency_ms([0.010, 0.020, 0.030, 0.040])
    assert figures == {"p50_ms": 20.0, "p99_ms": 40.0}
    assert latency_ms([]) == {"p50_ms": None, "p99_ms": None}


def test_per_job_costs_are_counter_growth_divided_by_jobs() -> None:
    before = {"dispatcher": 10.0, "nats": 2.0, "gone": 1.0}
    after = {"dispatcher": 12.0, "nats": 2.5, "new": 9.0}
    assert per_job(before, after, 100) == {"dispatcher": 0.02, "nats": 0.005}
    assert per_job(before, after, 0) == {}


def test_the_whole_mesh_peak_is_the_highest_sum_at_one_instant() -> None:
    samples = {"a": [(0.0, 100), (0.5, 300)], "b": [(0.0, 250), (0.5, 10)]}
    # The sum of each one's peak would be 550; no instant saw that.
    assert peak_total(samples) == 350
    assert peak_total({}) == 0


def test_each_goal_is_met_or_not_by_its_own_comparison() -> None:
    classify, via_envoy, overhead = GOALS
    assert [classify.met(0.95), classify.met(0.94)] == [True, False]
    assert [via_envoy.met(0.81), via_envoy.met(0.79)] == [True, False]
    assert [overhead.met(9.5), overhead.met(10.5)] == [True, False]
    assert classify.met(None) is None


def test_the_table_puts_each_goal_beside_its_figure_and_counts_refusals() -> None:
    figures = {
        "classify": {"ratio_to_limit": 0.97},
        "via_envoy_trusted": {"ratio_to_limit": 0.612},
        "low_load": {"added_p50_ms": 12.5},
        "via_envoy_shipped_defaults": {
            "ratio_to_limit": 0.1,
            "refused": {"Submit RESOURCE_EXHAUSTED": 40, "WatchJob RESOURCE_EXHAUSTED": 2},
        },
    }
    rows = [re.split(r"\s{2,}", row) for row in goal_table(figures).splitlines()[2:]]
    assert rows[0][1:] == ["0.97", ">= 0.95 x limit", "met"]
    assert rows[1][1:] == ["0.612", ">= 0.8 x limit", "NOT met"]
    assert rows[2][1:] == ["12.5", "<= 10 ms", "NOT met"]
    assert rows[3][1:] == ["0.1", "no goal (one client)", "42 calls refused"]


def test_a_figure_the_run_lacks_is_not_measured_rather_than_a_failure() -> None:
    assert goal_table({}).splitlines()[2].endswith("not measured")


def test_the_rss_table_ends_with_the_sum() -> None:
    text = rss_table({"nats": 2 * 1024 * 1024, "envoy": 1024 * 1024})
    assert text.splitlines()[-1].split()[-1] == "3.0"


def test_a_phase_that_failed_shows_why_instead_of_a_figure() -> None:
    figures = {"via_envoy_shipped_defaults": {"error": "EnvoyConfigError: bad"}}
    last = re.split(r"\s{2,}", goal_table(figures).splitlines()[-1])
    assert last[1:] == ["-", "no goal (one client)", "not measured: EnvoyConfigError: bad"]
